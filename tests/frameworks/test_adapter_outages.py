"""Outages, `on_error` and `report="chief"` in real Lightning, Hugging Face Trainer and optax loops against a
real lrserve process.

Every adapter is a thin layer over `RunFollower`; the Keras callback and the torch scheduler have these tests
in test_keras_callback.py and test_torch_scheduler.py. Here each of the other three adapters is wired into
its framework's own events and trained through the same outage and the same chief/worker split, by one
small loop per framework (`LOOPS`): 6 epochs of 3 optimizer steps of a batch run, reporting at each epoch's
end a probe metric the test chooses, so that reductions happen at known reports.
"""

from __future__ import annotations

import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import httpx
import jax
import jax.numpy as jnp
import lrclient
import lrclient._follower
import lrclient.transformers
import optax
import pytest
import torch
from support import Server, running_server, stop_process, wait_until_healthy
from lrclient.optax import ServiceLR, set_lr
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from transformers import Trainer, TrainerCallback, TrainingArguments

pl = pytest.importorskip("lightning.pytorch")
import lrclient.lightning  # noqa: E402 - needs lightning

pytestmark = pytest.mark.filterwarnings(
    "ignore:.*does not have many workers:UserWarning", "ignore:.*log_every_n_steps:UserWarning")

EPOCHS, BATCHES = 6, 3  # 6 epochs of 3 optimizer steps; a report at the last step of each epoch
REPORT_STEPS = [BATCHES * e + BATCHES - 1 for e in range(EPOCHS)]
# constant 0.04; patience 0 halves the lr at every report that does not improve the probe metric
SPEC = {"schedule": {"type": "constant", "learning_rate": 0.04}, "step_unit": "batch"}
# improves at reports 0 and 1, then every report reduces; exact in float32, as Lightning logs it
PROBE = [1.0, 0.5, 0.75, 0.75, 0.75, 0.75]
REDUCED = [False, False, True, True, True, True]

AfterEpoch = Callable[[int], None]


def spec_for(monitor: str) -> dict[str, Any]:
    return {**SPEC, "plateau": {"monitor": monitor, "mode": "min", "patience": 0, "factor": 0.5}}


def features(samples: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """A noisy linear problem (the losses do not matter here: the probe metric drives the plateau)."""
    generator = torch.Generator().manual_seed(seed)
    x = torch.randn(samples, 4, generator=generator)
    return x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + torch.randn(samples, 1, generator=generator)


# --- one training loop per framework: train(adapter, epochs, probe, after_epoch, used) ---------------------
# `used` receives the lr of every optimizer step as the optimizer used it; `after_epoch(e)` runs in the
# framework's own epoch-end event, after the adapter has reported epoch e.


class LightningLoop:
    """`Trainer.fit` of a tiny `LightningModule` that logs `probe[epoch]` at each validation's end."""

    name, monitor = "lightning", "probe"

    def adapter(self, run_id: str, **kwargs: Any) -> lrclient.lightning.LearningRateCallback:
        return lrclient.lightning.LearningRateCallback(run_id, spec=spec_for(self.monitor), **kwargs)

    def train(self, adapter: pl.Callback, epochs: int, probe: Sequence[float], after_epoch: AfterEpoch,
              used: list[float]) -> None:
        class Probed(pl.LightningModule):
            def __init__(self) -> None:
                super().__init__()
                self.net = nn.Linear(4, 1)

            def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
                return nn.functional.mse_loss(self.net(batch[0]), batch[1])

            def validation_step(self, batch: Any, batch_idx: int) -> None:
                self.log("val_loss", nn.functional.mse_loss(self.net(batch[0]), batch[1]))

            def on_validation_epoch_end(self) -> None:
                self.log("probe", probe[self.current_epoch])

            def configure_optimizers(self) -> torch.optim.Optimizer:
                return torch.optim.SGD(self.parameters(), lr=0.1)

        class Hooks(pl.Callback):
            def on_before_optimizer_step(self, trainer: pl.Trainer, module: Any, optimizer: Any) -> None:
                used.append(optimizer.param_groups[0]["lr"])

            def on_train_epoch_end(self, trainer: pl.Trainer, module: Any) -> None:
                after_epoch(trainer.current_epoch)  # Lightning validates before the epoch ends

        x, y = features(8 * BATCHES + 8, seed=0)
        train = DataLoader(TensorDataset(x[:8 * BATCHES], y[:8 * BATCHES]), batch_size=8)
        val = DataLoader(TensorDataset(x[8 * BATCHES:], y[8 * BATCHES:]), batch_size=8)
        trainer = pl.Trainer(max_epochs=epochs, accelerator="cpu", devices=1, callbacks=[adapter, Hooks()],
                             logger=False, enable_checkpointing=False, enable_progress_bar=False,
                             enable_model_summary=False, num_sanity_val_steps=0)
        trainer.fit(Probed(), train, val)


class TinyRegression(nn.Module):
    """A model built locally (no download) that answers as a Hugging Face model does: {"loss": ...}."""

    def __init__(self) -> None:
        super().__init__()
        self.linear = nn.Linear(4, 1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
        return {"loss": nn.functional.mse_loss(self.linear(x), labels)}


class TransformersLoop:
    """`Trainer.train()` evaluating at each epoch's end; a callback listed before the adapter adds
    `eval_probe` to the evaluation's metrics."""

    name, monitor = "transformers", "eval_probe"

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path

    def adapter(self, run_id: str, **kwargs: Any) -> lrclient.transformers.LearningRateCallback:
        return lrclient.transformers.LearningRateCallback(run_id, spec=spec_for(self.monitor), **kwargs)

    def train(self, adapter: TrainerCallback, epochs: int, probe: Sequence[float], after_epoch: AfterEpoch,
              used: list[float]) -> None:
        class Probe(TrainerCallback):
            def on_evaluate(self, args: Any, state: Any, control: Any, metrics: dict, **kwargs: Any) -> None:
                metrics["eval_probe"] = probe[state.global_step // BATCHES - 1]

        class Hooks(TrainerCallback):
            def on_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None,
                                  **kwargs: Any) -> None:
                used.append(optimizer.param_groups[0]["lr"])

            # The Trainer calls on_epoch_end before the epoch's evaluation (so before the adapter reports):
            # the epoch ends, for the report, at its evaluation.
            def on_evaluate(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
                after_epoch(state.global_step // BATCHES - 1)

        x, y = features(4 * BATCHES + 8, seed=0)
        rows = [{"x": x[i], "labels": y[i]} for i in range(len(x))]
        args = TrainingArguments(
            output_dir=str(self.tmp_path / "hf"), use_cpu=True, report_to=[], num_train_epochs=epochs,
            per_device_train_batch_size=4, eval_strategy="epoch", logging_strategy="no", save_strategy="no",
            optim="sgd", learning_rate=0.1, lr_scheduler_type="constant", dataloader_num_workers=0,
            disable_tqdm=True)
        Trainer(model=TinyRegression(), args=args, train_dataset=rows[:4 * BATCHES], eval_dataset=rows[4 * BATCHES:],
                callbacks=[Probe(), adapter, Hooks()]).train()


class OptaxLoop:
    """A hand-written JAX loop over `inject_hyperparams(sgd)` with a jitted update, in float64."""

    name, monitor = "optax", "probe"

    def adapter(self, run_id: str, **kwargs: Any) -> ServiceLR:
        return ServiceLR(run_id, spec=spec_for(self.monitor), steps=EPOCHS * BATCHES, **kwargs)

    def train(self, adapter: ServiceLR, epochs: int, probe: Sequence[float], after_epoch: AfterEpoch,
              used: list[float]) -> None:
        with jax.enable_x64(True), adapter:  # x64: the lr in the state is the service's float64 value
            x, y = (jnp.asarray(a.numpy(), dtype=jnp.float64) for a in features(8 * BATCHES, seed=0))
            optimizer = optax.inject_hyperparams(optax.sgd)(learning_rate=0.0)
            w = jnp.zeros((4, 1))
            opt_state = optimizer.init(w)

            def loss(w: jax.Array, xs: jax.Array, ys: jax.Array) -> jax.Array:
                return jnp.mean((xs @ w - ys) ** 2)

            @jax.jit
            def update(w: jax.Array, opt_state: Any, xs: jax.Array, ys: jax.Array) -> tuple[jax.Array, Any]:
                updates, opt_state = optimizer.update(jax.grad(loss)(w, xs, ys), opt_state, w)
                return optax.apply_updates(w, updates), opt_state

            for epoch in range(epochs):
                for batch in range(BATCHES):
                    opt_state = set_lr(opt_state, adapter.lr(epoch * BATCHES + batch))
                    used.append(float(opt_state.hyperparams["learning_rate"]))
                    w, opt_state = update(w, opt_state, x[batch * 8:(batch + 1) * 8], y[batch * 8:(batch + 1) * 8])
                adapter.report(epoch * BATCHES + BATCHES - 1, {"val_loss": loss(w, x, y), "probe": probe[epoch]})
                after_epoch(epoch)


Loop = LightningLoop | TransformersLoop | OptaxLoop


@pytest.fixture(params=["lightning", "transformers", "optax"])
def loop(request: pytest.FixtureRequest, tmp_path: Path) -> Loop:
    return {"lightning": LightningLoop, "transformers": lambda: TransformersLoop(tmp_path),
            "optax": OptaxLoop}[request.param]()


def nothing(epoch: int) -> None:
    pass


# --- what the service holds --------------------------------------------------------------------------------


def service_lrs(url: str, run_id: str) -> list[float]:
    response = httpx.get(f"{url}/runs/{run_id}/lr/range", params={"start": 0, "stop": EPOCHS * BATCHES})
    response.raise_for_status()
    return response.json()["lr"]


def reports(url: str, run_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{url}/runs/{run_id}/metrics")
    response.raise_for_status()
    return response.json()["reports"]


def epoch_steps(lrs: list[float], epoch: int) -> list[float]:
    return lrs[epoch * BATCHES:(epoch + 1) * BATCHES]


# --- outages -----------------------------------------------------------------------------------------------


@pytest.fixture
def quick_client() -> Iterator[Callable[[str], lrclient.Client]]:
    """Clients that give up fast, so an outage costs milliseconds, not seconds."""
    clients: list[lrclient.Client] = []

    def make(url: str) -> lrclient.Client:
        clients.append(lrclient.Client(url, retries=1, backoff=0.01))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


class Outage:
    """An `after_epoch` hook: stops the service after epoch `stop`, and starts it again on the same port and
    database after epoch `start` (never, with None)."""

    def __init__(self, server: Server, stop: int, start: int | None) -> None:
        self.server, self.stop, self.start = server, stop, start
        self.restarted: subprocess.Popen | None = None

    def __call__(self, epoch: int) -> None:
        if epoch == self.stop:
            stop_process(self.server.process)
        if epoch == self.start:
            port = self.server.url.rsplit(":", 1)[1]
            self.restarted = subprocess.Popen([sys.executable, "-m", "lrserve", "serve", "--host", "127.0.0.1",
                                               "--port", port, "--database", self.server.database_url])
            wait_until_healthy(self.server.url, self.restarted)

    def end(self) -> None:
        if self.restarted is not None:
            stop_process(self.restarted)


def test_on_error_last_trains_through_an_outage_and_resends_the_missed_reports(
    loop: Loop, tmp_path: Path, run_id: str, quick_client: Callable[[str], lrclient.Client],
    monkeypatch: pytest.MonkeyPatch
) -> None:
    """Down after epoch 1, back after epoch 3: the reports of epochs 2 and 3 are queued, and each reduces.

    The Hugging Face and optax adapters try to resend at the report (the epoch's end, before the restart) and
    then from `lr` at most every `RESEND_INTERVAL` (1 s): which lr the first steps after a restart take would
    depend on how fast the service restarted. With no interval, the first `lr` after the restart resends.
    """
    monkeypatch.setattr(lrclient._follower, "RESEND_INTERVAL", 0.0)
    used: list[float] = []
    with running_server(f"sqlite:///{tmp_path / 'lr.db'}") as server:
        outage = Outage(server, stop=1, start=3)
        try:
            adapter = loop.adapter(run_id, on_error="last", client=quick_client(server.url))
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                loop.train(adapter, EPOCHS, PROBE, outage, used)
            served = service_lrs(server.url, run_id)
            sent = reports(server.url, run_id)
        finally:
            outage.end()

    assert [r["step"] for r in sent] == REPORT_STEPS, "the reports missed in the outage are resent in order"
    assert [r["metrics"][loop.monitor] for r in sent] == PROBE
    assert [r["reduced"] for r in sent] == REDUCED
    assert len(used) == EPOCHS * BATCHES, "training went on through the outage"
    assert used[:3 * BATCHES] == served[:3 * BATCHES], "lr(epoch 2) was known before the outage began"
    assert epoch_steps(used, 3) == epoch_steps(served, 2), "epoch 3 runs in the outage: the last known lr"
    assert used[4 * BATCHES:] == served[4 * BATCHES:], "after the outage: the lr of all reports, resent first"
    assert served == [lr for lr in (0.04, 0.04, 0.04, 0.02, 0.01, 0.005) for _ in range(BATCHES)], \
        "reports 2-4 each halve the next epoch's lr (epoch 3's too: the outage's lr was not the service's)"
    ours = [w for w in caught if "lrserve" in str(w.message)]
    assert [w.category for w in ours] == [RuntimeWarning], [str(w.message) for w in ours]
    assert f"to report step {REPORT_STEPS[2]} of run '{run_id}'" in str(ours[0].message)


def test_on_error_raise_stops_training_at_the_first_report_in_an_outage_naming_the_service_and_the_run(
    loop: Loop, tmp_path: Path, run_id: str, quick_client: Callable[[str], lrclient.Client]
) -> None:
    used: list[float] = []
    with running_server(f"sqlite:///{tmp_path / 'lr.db'}") as server:
        adapter = loop.adapter(run_id, client=quick_client(server.url))  # on_error="raise", the default
        with pytest.raises(lrclient.ServiceUnreachable) as failure:
            loop.train(adapter, EPOCHS, PROBE, Outage(server, stop=1, start=None), used)

    assert server.url in str(failure.value) and repr(run_id) in str(failure.value)
    assert len(used) == 3 * BATCHES, "epoch 2 was trained (its lrs were known), its report failed"


# --- report="chief" ----------------------------------------------------------------------------------------


def test_only_the_chief_reports_and_a_worker_training_beside_it_uses_its_lrs_at_every_step(
    loop: Loop, server: Server, run_id: str
) -> None:
    """The chief and a worker train at the same time (two threads); the worker measures other values."""
    chief = loop.adapter(run_id, base_url=server.url, report="chief", is_chief=lambda: True)
    worker = loop.adapter(run_id, base_url=server.url, report="chief", is_chief=lambda: False)
    chief_used: list[float] = []
    worker_used: list[float] = []
    with ThreadPoolExecutor(2) as pool:
        trainings = [pool.submit(loop.train, worker, EPOCHS, [p + 10 for p in PROBE], nothing, worker_used),
                     pool.submit(loop.train, chief, EPOCHS, PROBE, nothing, chief_used)]
        for training in trainings:
            training.result(timeout=60)

    sent = reports(server.url, run_id)
    assert [r["step"] for r in sent] == REPORT_STEPS
    assert [r["metrics"][loop.monitor] for r in sent] == PROBE, "only the chief's values"
    assert [r["reduced"] for r in sent] == REDUCED
    served = service_lrs(server.url, run_id)
    assert chief_used == served
    assert worker_used == served, "the worker waits for each of the chief's reports before the next lr"


def test_when_the_chief_dies_a_worker_fails_clearly_within_chief_timeout(
    loop: Loop, server: Server, run_id: str
) -> None:
    """The chief reports epoch 0 and dies; the worker waits 0.5 s for the report of epoch 1, then raises."""
    chief = loop.adapter(run_id, base_url=server.url, report="chief", is_chief=lambda: True)
    loop.train(chief, 1, PROBE, nothing, [])
    worker = loop.adapter(run_id, base_url=server.url, report="chief", is_chief=lambda: False, chief_timeout=0.5)
    ended: list[float] = []
    used: list[float] = []

    with pytest.raises(TimeoutError) as caught:
        loop.train(worker, EPOCHS, PROBE, lambda epoch: ended.append(time.monotonic()), used)
    waited = time.monotonic() - ended[0]

    assert len(ended) == 1 and len(used) == 2 * BATCHES, "epoch 1 was trained, then its end waited for the chief"
    assert 0.5 <= waited < 5.0
    message = str(caught.value)
    assert (f"No report at step {REPORT_STEPS[1]} reached run '{run_id}' within 0.5 s "
            f"(latest reported step: {REPORT_STEPS[0]})") in message
    assert "chief_timeout" in message
