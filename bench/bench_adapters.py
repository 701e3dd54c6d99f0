"""Per-step cost of the torch, optax, Lightning and Hugging Face adapters vs the same schedule in-process.

    .venv/bin/python bench/bench_adapters.py [--rounds 10] [--batches 200] [--batch-size 32] [--threads 1]
                                             [--frameworks torch,optax,lightning,transformers]

(Keras is measured by bench_callback.py.) For each framework two identical 2x64 MLPs train side by
side in one process, batch by batch, with the same warmup + cosine decay per batch (0 -> 0.05 over
500 steps, then cosine over 5,000): one with the schedule in-process, the other with the lr set
every step by the adapter from a real lrserve process (`python -m lrserve serve`, temporary SQLite):

- torch: `LambdaLR` vs `lrclient.torch.ServiceScheduler` (`step()` every batch, `report()` each epoch);
- optax: `optax.warmup_cosine_decay_schedule` inside the jitted `sgd` vs `inject_hyperparams(sgd)` with
  `set_lr(opt_state, ServiceLR.lr(step))` outside `jit` and `ServiceLR.report` each epoch, and vs
  `inject_hyperparams(sgd)(learning_rate=ServiceLR.schedule())` with one `ServiceLR.sync` per epoch (the
  run's lrs as a table on the device, nothing on the host per step), and vs
  `optax.chain(optax.sgd(1.0), ServiceLR.scale_by_lr())` with one `sync` per epoch (the same table, no
  `inject_hyperparams`);
- lightning: `configure_optimizers` returning the `LambdaLR` with `interval: "step"` vs
  `lrclient.lightning.LearningRateCallback` (a new `Trainer.fit` of one epoch per round for each; the
  time is the epoch's, from `on_train_epoch_start` to `on_train_epoch_end`, so the run's opening at
  `on_train_start` is not in it; without validation nothing is reported);
- transformers: a `Trainer` given `optimizers=(sgd, LambdaLR)` vs `lrclient.transformers.LearningRateCallback`
  with a constant `LambdaLR` (a Trainer always steps a scheduler; the callback sets the lr after it); a new
  one-epoch `train()` per round for each, timed from `on_epoch_begin` to `on_epoch_end`, nothing evaluated.

Rounds of one epoch alternate in-process, service, in-process, service, ... (round 0 warms up), so
drift in the machine hits both alike. The figure is the epoch's wall time divided by its batches
(the adapter's per-step work and its epoch's HTTP included); medians over rounds; ratio = service /
in-process. It also prints the adapters' lr fetches (`rates.requests`: run reads and lr/range calls, not the
reports) per epoch, and for Lightning per one-epoch `fit` (which opens the run again).
"""

from __future__ import annotations

import argparse
import math
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from typing import Any

WARMUP, DECAY, PEAK = 500, 5_000, 0.05
SPEC = {"schedule": {"type": "cosine_decay", "initial_learning_rate": 0.0, "decay_steps": DECAY,
                     "warmup_target": PEAK, "warmup_steps": WARMUP}, "step_unit": "batch"}

Epoch = Callable[[int], float]  # trains epoch N, returns its wall time in seconds


def in_process_lr(step: int) -> float:
    """The spec's schedule in plain Python (as Keras' CosineDecay with warmup computes it)."""
    if step < WARMUP:
        return PEAK * step / WARMUP
    return PEAK * 0.5 * (1 + math.cos(math.pi * min(step - WARMUP, DECAY) / DECAY))


def torch_variants(url: str, args: argparse.Namespace, stack: ExitStack) -> tuple[dict[str, Epoch], Callable[[], int]]:
    import torch
    from lrclient.torch import ServiceScheduler

    torch.set_num_threads(args.threads)
    x, y = torch.randn(args.batches * args.batch_size, 32), torch.randn(args.batches * args.batch_size, 1)

    def model() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        torch.manual_seed(0)
        net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                                  torch.nn.Linear(64, 1))
        return net, torch.optim.SGD(net.parameters(), lr=PEAK)

    def epoch_of(net: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, service: bool) -> Epoch:
        def epoch(n: int) -> float:
            started = time.perf_counter()
            for batch in range(args.batches):
                rows = slice(batch * args.batch_size, (batch + 1) * args.batch_size)
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(net(x[rows]), y[rows])
                loss.backward()
                optimizer.step()
                scheduler.step()
            if service:
                scheduler.report({"loss": loss.item()})
            return time.perf_counter() - started
        return epoch

    net, optimizer = model()
    local = epoch_of(net, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: in_process_lr(s) / PEAK),
                     service=False)
    net, optimizer = model()
    scheduler = ServiceScheduler(optimizer, "bench-torch", base_url=url, spec=SPEC,
                                 horizon=(args.rounds + 1) * args.batches)
    stack.callback(scheduler.close)
    return ({"in-process LambdaLR": local, "ServiceScheduler": epoch_of(net, optimizer, scheduler, service=True)},
            lambda: scheduler.rates.requests)


def optax_variants(url: str, args: argparse.Namespace, stack: ExitStack) -> tuple[dict[str, Epoch], Callable[[], int]]:
    import jax
    import jax.numpy as jnp
    import optax
    from lrclient.optax import ServiceLR, set_lr

    key = jax.random.PRNGKey(0)
    x = jax.random.normal(key, (args.batches, args.batch_size, 32))
    y = jax.random.normal(jax.random.split(key)[0], (args.batches, args.batch_size, 1))

    def init() -> Any:
        keys = jax.random.split(jax.random.PRNGKey(1), 3)
        sizes = [(32, 64), (64, 64), (64, 1)]
        return [(jax.random.normal(k, s) / math.sqrt(s[0]), jnp.zeros(s[1])) for k, s in zip(keys, sizes)]

    def loss(params: Any, xs: jax.Array, ys: jax.Array) -> jax.Array:
        h = xs
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            h = jax.nn.relu(h) if i < len(params) - 1 else h
        return jnp.mean((h - ys) ** 2)

    def trainer(optimizer: optax.GradientTransformation) -> tuple[Any, Callable[..., Any]]:
        @jax.jit
        def update(params: Any, opt_state: Any, xs: jax.Array, ys: jax.Array) -> Any:
            value, grads = jax.value_and_grad(loss)(params, xs, ys)
            updates, opt_state = optimizer.update(grads, opt_state, params)
            return optax.apply_updates(params, updates), opt_state, value
        params = init()
        return [params, optimizer.init(params)], update

    schedule = optax.warmup_cosine_decay_schedule(0.0, PEAK, WARMUP, WARMUP + DECAY)
    local_state, local_update = trainer(optax.sgd(schedule))
    service_state, service_update = trainer(optax.inject_hyperparams(optax.sgd)(learning_rate=0.0))
    service = stack.enter_context(ServiceLR("bench-optax", base_url=url, spec=SPEC,
                                            steps=(args.rounds + 1) * args.batches))
    table_service = stack.enter_context(ServiceLR("bench-optax-table", base_url=url, spec=SPEC,
                                                  steps=(args.rounds + 1) * args.batches))
    table_state, table_update = trainer(optax.inject_hyperparams(optax.sgd)(learning_rate=table_service.schedule()))
    scale_service = stack.enter_context(ServiceLR("bench-optax-scale", base_url=url, spec=SPEC,
                                                  steps=(args.rounds + 1) * args.batches))
    scale_state, scale_update = trainer(optax.chain(optax.sgd(1.0), scale_service.scale_by_lr()))

    def local(n: int) -> float:
        started = time.perf_counter()
        params, opt_state = local_state
        for batch in range(args.batches):
            params, opt_state, value = local_update(params, opt_state, x[batch], y[batch])
        jax.block_until_ready(params)
        local_state[:] = [params, opt_state]
        return time.perf_counter() - started

    def served(n: int) -> float:
        started = time.perf_counter()
        params, opt_state = service_state
        for batch in range(args.batches):
            opt_state = set_lr(opt_state, service.lr(n * args.batches + batch))
            params, opt_state, value = service_update(params, opt_state, x[batch], y[batch])
        service.report(n * args.batches + args.batches - 1, {"loss": value})
        jax.block_until_ready(params)
        service_state[:] = [params, opt_state]
        return time.perf_counter() - started

    def tabled(n: int) -> float:
        started = time.perf_counter()
        params, opt_state = table_state
        opt_state = table_service.sync(opt_state, n * args.batches)
        for batch in range(args.batches):
            params, opt_state, value = table_update(params, opt_state, x[batch], y[batch])
        table_service.report(n * args.batches + args.batches - 1, {"loss": value})
        jax.block_until_ready(params)
        table_state[:] = [params, opt_state]
        return time.perf_counter() - started

    def scaled(n: int) -> float:
        started = time.perf_counter()
        params, opt_state = scale_state
        opt_state = scale_service.sync(opt_state, n * args.batches)
        for batch in range(args.batches):
            params, opt_state, value = scale_update(params, opt_state, x[batch], y[batch])
        scale_service.report(n * args.batches + args.batches - 1, {"loss": value})
        jax.block_until_ready(params)
        scale_state[:] = [params, opt_state]
        return time.perf_counter() - started

    return ({"in-process optax schedule": local, "ServiceLR": served, "ServiceLR.schedule + sync": tabled,
             "sgd(1) + scale_by_lr + sync": scaled},
            lambda: service.rates.requests)


def lightning_variants(url: str, args: argparse.Namespace,
                       stack: ExitStack) -> tuple[dict[str, Epoch], Callable[[], int]]:
    import warnings

    import lightning.pytorch as pl
    import lrclient
    import torch
    from lrclient.lightning import LearningRateCallback
    from torch.utils.data import DataLoader, TensorDataset

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    torch.set_num_threads(args.threads)
    data = DataLoader(TensorDataset(torch.randn(args.batches * args.batch_size, 32),
                                    torch.randn(args.batches * args.batch_size, 1)), batch_size=args.batch_size)

    class MLP(pl.LightningModule):
        def __init__(self, in_process: bool) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                                           torch.nn.ReLU(), torch.nn.Linear(64, 1))
            self.in_process = in_process

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])

        def configure_optimizers(self) -> Any:
            optimizer = torch.optim.SGD(self.parameters(), lr=PEAK)
            if not self.in_process:
                return optimizer
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: in_process_lr(s) / PEAK)
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}

    class Timer(pl.Callback):
        def on_train_epoch_start(self, trainer: Any, pl_module: Any) -> None:
            self.started = time.perf_counter()

    class Stop(pl.Callback):
        def __init__(self, timer: Timer) -> None:
            self.timer = timer

        def on_train_epoch_end(self, trainer: Any, pl_module: Any) -> None:
            self.seconds = time.perf_counter() - self.timer.started

    client = stack.enter_context(lrclient.Client(url))
    adapters: list[LearningRateCallback] = []

    def epoch_of(in_process: bool) -> Epoch:
        def epoch(n: int) -> float:
            timer = Timer()
            stop = Stop(timer)
            extra = [] if in_process else [LearningRateCallback("bench-lightning", spec=SPEC, client=client)]
            adapters[:] = extra or adapters
            trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                                 enable_progress_bar=False, enable_model_summary=False, callbacks=[timer, *extra, stop])
            trainer.fit(MLP(in_process), data)
            return stop.seconds
        return epoch

    return ({"in-process LambdaLR": epoch_of(True), "LearningRateCallback": epoch_of(False)},
            lambda: adapters[0].follower.rates.requests if adapters else 0)


def transformers_variants(url: str, args: argparse.Namespace,
                          stack: ExitStack) -> tuple[dict[str, Epoch], Callable[[], int]]:
    import tempfile

    import torch
    from lrclient.transformers import LearningRateCallback
    from transformers import Trainer, TrainerCallback, TrainingArguments
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    torch.set_num_threads(args.threads)
    x, y = torch.randn(args.batches * args.batch_size, 32), torch.randn(args.batches * args.batch_size, 1)
    data = [{"x": x[i], "labels": y[i]} for i in range(len(x))]
    output = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-hf-"))

    class MLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            torch.manual_seed(0)
            self.net = torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64),
                                           torch.nn.ReLU(), torch.nn.Linear(64, 1))

        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"loss": torch.nn.functional.mse_loss(self.net(x), labels)}

    class Timer(TrainerCallback):
        def on_epoch_begin(self, *a: Any, **kw: Any) -> None:
            self.started = time.perf_counter()

    class Stop(TrainerCallback):
        def __init__(self, timer: Timer) -> None:
            self.timer = timer

        def on_epoch_end(self, *a: Any, **kw: Any) -> None:
            self.seconds = time.perf_counter() - self.timer.started

    adapters: list[LearningRateCallback] = []

    def epoch_of(in_process: bool) -> Epoch:
        def epoch(n: int) -> float:
            model = MLP()
            optimizer = torch.optim.SGD(model.parameters(), lr=PEAK)
            factor = (lambda s: in_process_lr(s) / PEAK) if in_process else (lambda s: 1.0)  # the Trainer's "constant"
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
            timer = Timer()
            stop = Stop(timer)
            extra = [] if in_process else [LearningRateCallback("bench-transformers", base_url=url, spec=SPEC)]
            adapters[:] = extra or adapters
            training = TrainingArguments(output_dir=output, use_cpu=True, report_to=[], num_train_epochs=1,
                                         per_device_train_batch_size=args.batch_size, save_strategy="no",
                                         logging_strategy="no", dataloader_num_workers=0, disable_tqdm=True)
            trainer = Trainer(model=model, args=training, train_dataset=data, callbacks=[timer, *extra, stop],
                              optimizers=(optimizer, scheduler))
            trainer.train()
            return stop.seconds
        return epoch

    return ({"in-process LambdaLR": epoch_of(True), "LearningRateCallback": epoch_of(False)},
            lambda: adapters[0].rates.requests if adapters else 0)


VARIANTS = {"torch": torch_variants, "optax": optax_variants, "lightning": lightning_variants,
            "transformers": transformers_variants}


def rounds(variants: dict[str, Epoch], args: argparse.Namespace) -> Iterator[tuple[int, str, float]]:
    for n in range(args.rounds + 1):  # round 0 warms up: first traces, first connections
        for name, epoch in variants.items():
            seconds = epoch(n)
            if n > 0:
                yield n, name, seconds / args.batches


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="timed one-epoch rounds per variant")
    parser.add_argument("--batches", type=int, default=200, help="batches per epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (less noise)")
    parser.add_argument("--frameworks", default="torch,optax,lightning,transformers")
    args = parser.parse_args()

    from _servers import lrserve

    rows = []
    with lrserve() as port, ExitStack() as stack:
        for framework in args.frameworks.split(","):
            variants, requests = VARIANTS[framework](f"http://127.0.0.1:{port}", args, stack)
            per_batch: dict[str, list[float]] = {name: [] for name in variants}
            before = requests()
            for n, name, seconds in rounds(variants, args):
                per_batch[name].append(seconds)
                print(f"{framework:9s} round {n:2d} {name:26s} {seconds * 1e6:8.1f} us/batch over the epoch")
            per_epoch = (requests() - before) / (args.rounds + 1) if framework in ("torch", "optax") else requests()
            local_name, *service_names = variants  # the in-process baseline first, then each adapter variant
            for service_name in service_names:
                rows.append((framework, local_name, service_name, statistics.median(per_batch[local_name]),
                             statistics.median(per_batch[service_name]), per_epoch))

    print(f"\n{args.rounds} rounds of 1 epoch x {args.batches} batches of {args.batch_size}, 2x64 MLP, "
          f"{args.threads} thread, warmup + cosine decay per batch; medians of the epoch's time per batch")
    print("| adapter | in-process | per batch | with the adapter | per batch | ratio | lr fetches |")
    print("|---|---|---|---|---|---|---|")
    for framework, local_name, service_name, local, service, per_epoch in rows:
        label = "per epoch" if framework in ("torch", "optax") else "per one-epoch fit"
        print(f"| {framework} | {local_name} | {local * 1e6:.1f} us | {service_name} | {service * 1e6:.1f} us | "
              f"{service / local:.3f} | {per_epoch:.1f} {label} |")


if __name__ == "__main__":
    main()
