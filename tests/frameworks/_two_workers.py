"""One worker of a data-parallel job following an lrserve run with one adapter; used by the tests.

    RANK=0 python _two_workers.py FRAMEWORK URL RUN_ID OUT_FILE

FRAMEWORK is torch, lightning, transformers or optax. The worker trains a tiny model in a real loop of
that framework with the adapter's `report="chief"` (RANK 0 reports, the others wait for its reports),
and writes to OUT_FILE the lr every optimizer step used, as JSON. Every worker measures the same
deterministic metric, so whichever process reports, the plateau acts on the same values.
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

EPOCHS, BATCHES = 5, 4  # 20 optimizer steps of 8 samples
VAL_LOSS = [1.0, 0.5, 0.5, 0.5, 0.5]  # improves once, then a plateau: the service reduces the lr
PLATEAU = {"factor": 0.5, "patience": 1, "threshold": 0.01, "semantics": "torch"}


def spec(monitor: str = "val_loss") -> dict[str, Any]:
    return {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.05, "decay_steps": 1,
                         "decay_rate": 0.95}, "plateau": {"monitor": monitor, **PLATEAU}, "step_unit": "batch"}


def torch_data() -> tuple[Any, Any]:
    import torch

    generator = torch.Generator().manual_seed(0)
    x = torch.randn(BATCHES * 8, 4, generator=generator)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])


def train_torch(url: str, run_id: str) -> list[float]:
    import torch
    from lrclient.torch import ServiceScheduler

    torch.manual_seed(0)
    model = torch.nn.Linear(4, 1)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    scheduler = ServiceScheduler(optimizer, run_id, base_url=url, spec=spec(), report="chief")
    x, y = torch_data()
    used = []
    for epoch in range(EPOCHS):
        for batch in range(BATCHES):
            optimizer.zero_grad()
            torch.nn.functional.mse_loss(model(x[batch * 8:(batch + 1) * 8]), y[batch * 8:(batch + 1) * 8]).backward()
            used.append(optimizer.param_groups[0]["lr"])
            optimizer.step()
            scheduler.step()
        scheduler.report({"val_loss": VAL_LOSS[epoch]})
    scheduler.close()
    return used


def train_lightning(url: str, run_id: str) -> list[float]:
    import lightning.pytorch as pl
    import torch
    from lrclient.lightning import LearningRateCallback
    from torch.utils.data import DataLoader, TensorDataset

    class Regression(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])

        def validation_step(self, batch: Any, batch_idx: int) -> None:
            self.log("val_loss", VAL_LOSS[self.current_epoch])

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    used: list[float] = []

    class Recorder(pl.Callback):
        def on_before_optimizer_step(self, trainer: Any, pl_module: Any, optimizer: Any) -> None:
            used.append(optimizer.param_groups[0]["lr"])

    x, y = torch_data()
    trainer = pl.Trainer(max_epochs=EPOCHS, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False, num_sanity_val_steps=0,
                         callbacks=[LearningRateCallback(run_id, base_url=url, spec=spec(), report="chief"),
                                    Recorder()])
    trainer.fit(Regression(), DataLoader(TensorDataset(x, y), batch_size=8),
                DataLoader(TensorDataset(x[:8], y[:8]), batch_size=8))
    return used


def train_transformers(url: str, run_id: str, out: Path) -> list[float]:
    import torch
    from lrclient.transformers import LearningRateCallback
    from transformers import Trainer, TrainerCallback, TrainingArguments

    class Tiny(torch.nn.Module):
        """Answers as a Hugging Face model does; in evaluation its loss is the epoch's VAL_LOSS."""

        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.linear = torch.nn.Linear(4, 1)
            self.evaluations = 0

        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            if self.training:
                return {"loss": torch.nn.functional.mse_loss(self.linear(x), labels)}
            self.evaluations += 1  # one evaluation batch per evaluation
            return {"loss": torch.tensor(VAL_LOSS[self.evaluations - 1])}

    used: list[float] = []

    class Recorder(TrainerCallback):
        def on_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kw: Any) -> None:
            used.append(optimizer.param_groups[0]["lr"])

    x, y = torch_data()
    args = TrainingArguments(output_dir=str(out.parent / f"{out.stem}-hf"), use_cpu=True, report_to=[],
                             max_steps=EPOCHS * BATCHES, per_device_train_batch_size=8, per_device_eval_batch_size=8,
                             eval_strategy="steps", eval_steps=BATCHES, save_strategy="no", optim="sgd",
                             learning_rate=0.1, dataloader_num_workers=0, disable_tqdm=True)
    trainer = Trainer(model=Tiny(), args=args, train_dataset=[{"x": x[i], "labels": y[i]} for i in range(len(x))],
                      eval_dataset=[{"x": x[i], "labels": y[i]} for i in range(8)],
                      callbacks=[LearningRateCallback(run_id, base_url=url, spec=spec("eval_loss"), report="chief"),
                                 Recorder()])
    trainer.train()
    return used


def train_optax(url: str, run_id: str) -> list[float]:
    import jax
    import jax.numpy as jnp
    import optax
    from lrclient.optax import ServiceLR, set_lr

    jax.config.update("jax_enable_x64", True)  # the lr in the state is the service's float64 value exactly
    x = jax.random.normal(jax.random.PRNGKey(0), (BATCHES * 8, 3))
    y = x @ jnp.array([1.0, -2.0, 0.5])
    optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=0.0)
    w = jnp.zeros(3)
    opt_state = optimizer.init(w)

    @jax.jit
    def update(w: jax.Array, opt_state: Any, xs: jax.Array, ys: jax.Array) -> Any:
        updates, opt_state = optimizer.update(jax.grad(lambda w: jnp.mean((xs @ w - ys) ** 2))(w), opt_state, w)
        return optax.apply_updates(w, updates), opt_state

    used = []
    with ServiceLR(run_id, base_url=url, spec=spec(), report="chief", steps=EPOCHS * BATCHES) as service:
        for epoch in range(EPOCHS):
            for batch in range(BATCHES):
                opt_state = set_lr(opt_state, service.lr(epoch * BATCHES + batch))
                used.append(float(opt_state.hyperparams["learning_rate"]))
                w, opt_state = update(w, opt_state, x[batch * 8:(batch + 1) * 8], y[batch * 8:(batch + 1) * 8])
            service.report(epoch * BATCHES + BATCHES - 1, {"val_loss": VAL_LOSS[epoch]})
    return used


def main() -> int:
    framework, url, run_id, out = sys.argv[1:5]
    trainers: dict[str, Callable[[], list[float]]] = {
        "torch": lambda: train_torch(url, run_id), "lightning": lambda: train_lightning(url, run_id),
        "transformers": lambda: train_transformers(url, run_id, Path(out)), "optax": lambda: train_optax(url, run_id)}
    Path(out).write_text(json.dumps(trainers[framework]()))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
