"""Per-step cost of the torch, optax, Lightning and Hugging Face adapters vs the same schedule in-process.

    .venv/bin/python bench/bench_adapters.py [--rounds 10] [--batches 200] [--batch-size 32] [--threads 1]
                                             [--frameworks torch,optax,lightning,transformers] [--donate]

(Keras is measured by bench_callback.py.) For each framework two identical 2x64 MLPs train side by
side in one process, batch by batch, with the same warmup + cosine decay per batch (0 -> 0.05 over
500 steps, then cosine over 5,000): one with the schedule in-process, the other with the lr set
every step by the adapter from a real lrserve process (`python -m lrserve serve`, temporary SQLite):

- torch: `LambdaLR` vs `lrclient.torch.ServiceScheduler` (`step()` every batch, `report()` each epoch);
- optax: the same warmup + cosine as `optax.warmup_cosine_decay_schedule`, each adapter variant beside the
  in-process loop written the same way: `ServiceLR.scale_by_learning_rate(compiled=True)` (plain SGD, the table
  compiled into the update), `chain(sgd(1.0), ServiceLR.scale_by_lr())` and
  `inject_hyperparams(sgd)(learning_rate=ServiceLR.schedule())`, with one `ServiceLR.sync` per epoch (the run's
  lrs as a table on the device, nothing on the host per step), vs `sgd(schedule)` and
  `inject_hyperparams(sgd)(learning_rate=schedule)`; `set_lr(opt_state, ServiceLR.lr(step))` outside `jit`
  every step vs `set_lr(opt_state, lr(step))` with the same schedule in Python; `ServiceLR.report` each epoch. The batches are separate
  device arrays (as a data loader gives them); `--donate` jits every update with `donate_argnums=(0, 1)`;
- lightning: `configure_optimizers` returning the `LambdaLR` with `interval: "step"` vs
  `lrclient.lightning.LearningRateCallback`, vs `configure_optimizers` returning `lrclient.torch.ServiceScheduler`
  with `interval: "step"` (no callback), and vs the `LambdaLR` with a callback that does nothing (what Lightning's
  calling one more callback's hooks costs by itself) (a new `Trainer.fit` of one epoch per round for each; the
  time is the epoch's, from `on_train_epoch_start` to `on_train_epoch_end`, so the run's opening at
  `on_train_start` is not in it; without validation nothing is reported);
- transformers: a `Trainer` given `optimizers=(sgd, LambdaLR)` vs `lrclient.transformers.LearningRateCallback`
  with a constant `LambdaLR` (a Trainer always steps a scheduler; the callback sets the lr after it); a new
  one-epoch `train()` per round for each, timed from `on_epoch_begin` to `on_epoch_end`, nothing evaluated.

Each epoch's steps are timed apart from its end (the torch and optax adapters' report and `sync`), so the
per-step overhead is not hidden behind the epoch's requests; both are printed. Each round trains one epoch of
every variant, in a new random order each round (round 0 warms up), so drift in the machine and the place in
a round hit all variants alike. Per step: the steps' wall time over the batches; per epoch: the same with the
epoch's end included. Medians over rounds; each ratio is paired (a round's adapter epoch over the same
round's in-process epoch; the median over rounds, with the quartiles of the rounds' ratios to show the noise).
It also prints the adapters' lr fetches (`rates.requests`: run reads and lr/range calls, not the reports) per
epoch, and for Lightning per one-epoch `fit` (which opens the run again).
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from functools import partial
from typing import Any

WARMUP, DECAY, PEAK = 500, 5_000, 0.05
SPEC = {"schedule": {"type": "cosine_decay", "initial_learning_rate": 0.0, "decay_steps": DECAY,
                     "warmup_target": PEAK, "warmup_steps": WARMUP}, "step_unit": "batch"}

Epoch = Callable[[int], tuple[float, float]]  # trains epoch N: seconds of its steps, seconds of its boundary
# The variants by name, the (in-process, adapter) pairs to compare, and the adapters' lr fetches so far.
Variants = tuple[dict[str, Epoch], list[tuple[str, str]], Callable[[], int]]


def in_process_lr(step: int) -> float:
    """The spec's schedule in plain Python (as Keras' CosineDecay with warmup computes it)."""
    if step < WARMUP:
        return PEAK * step / WARMUP
    return PEAK * 0.5 * (1 + math.cos(math.pi * min(step - WARMUP, DECAY) / DECAY))


def torch_variants(url: str, args: argparse.Namespace, stack: ExitStack) -> Variants:
    import torch
    from lrclient.torch import ServiceScheduler

    torch.set_num_threads(args.threads)
    x, y = torch.randn(args.batches * args.batch_size, 32), torch.randn(args.batches * args.batch_size, 1)

    def model() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
        net = mlp()
        return net, torch.optim.SGD(net.parameters(), lr=PEAK)

    def epoch_of(net: torch.nn.Module, optimizer: torch.optim.Optimizer, scheduler: Any, service: bool) -> Epoch:
        def epoch(n: int) -> tuple[float, float]:
            started = time.perf_counter()
            for batch in range(args.batches):
                rows = slice(batch * args.batch_size, (batch + 1) * args.batch_size)
                optimizer.zero_grad()
                loss = torch.nn.functional.mse_loss(net(x[rows]), y[rows])
                loss.backward()
                optimizer.step()
                scheduler.step()
            stepped = time.perf_counter()
            if service:
                scheduler.report({"loss": loss.item()})
            return stepped - started, time.perf_counter() - stepped
        return epoch

    net, optimizer = model()
    local = epoch_of(net, optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: in_process_lr(s) / PEAK),
                     service=False)
    net, optimizer = model()
    scheduler = ServiceScheduler(optimizer, "bench-torch", base_url=url, spec=SPEC,
                                 horizon=(args.rounds + 1) * args.batches)
    stack.callback(scheduler.close)
    return ({"in-process LambdaLR": local, "ServiceScheduler": epoch_of(net, optimizer, scheduler, service=True)},
            [("in-process LambdaLR", "ServiceScheduler")], lambda: scheduler.rates.requests)


def optax_batches(batches: int, batch_size: int) -> tuple[list[Any], list[Any]]:
    """Inputs and targets, one device array per batch, as a data loader yields them (slicing one big array in
    the loop would add two dispatches per step, the same for every variant, and their noise)."""
    import jax

    key = jax.random.PRNGKey(0)
    return (list(jax.random.normal(key, (batches, batch_size, 32))),
            list(jax.random.normal(jax.random.split(key)[0], (batches, batch_size, 1))))


def optax_trainer(optimizer: Any, donate: bool) -> tuple[list[Any], Callable[..., Any]]:
    """[params, opt_state] of a fresh 2x64 MLP, and its jitted update (params, opt_state, x, y) -> (params,
    opt_state, loss), with `donate_argnums=(0, 1)` if `donate`."""
    import jax
    import jax.numpy as jnp
    import optax

    def loss(params: Any, xs: jax.Array, ys: jax.Array) -> jax.Array:
        h = xs
        for i, (w, b) in enumerate(params):
            h = h @ w + b
            h = jax.nn.relu(h) if i < len(params) - 1 else h
        return jnp.mean((h - ys) ** 2)

    @partial(jax.jit, donate_argnums=(0, 1) if donate else ())
    def update(params: Any, opt_state: Any, xs: jax.Array, ys: jax.Array) -> Any:
        value, grads = jax.value_and_grad(loss)(params, xs, ys)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, value

    keys = jax.random.split(jax.random.PRNGKey(1), 3)
    sizes = [(32, 64), (64, 64), (64, 1)]
    params = [(jax.random.normal(k, s) / math.sqrt(s[0]), jnp.zeros(s[1])) for k, s in zip(keys, sizes)]
    return [params, optimizer.init(params)], update


def optax_variants(url: str, args: argparse.Namespace, stack: ExitStack) -> Variants:
    import jax
    import jax.numpy as jnp
    import optax
    from lrclient.optax import ServiceLR, set_lr

    x, y = optax_batches(args.batches, args.batch_size)

    def trainer(optimizer: optax.GradientTransformation) -> tuple[Any, Callable[..., Any]]:
        return optax_trainer(optimizer, args.donate)

    schedule = optax.warmup_cosine_decay_schedule(0.0, PEAK, WARMUP, WARMUP + DECAY)
    local_state, local_update = trainer(optax.sgd(schedule))
    local_set_state, local_set_update = trainer(optax.inject_hyperparams(optax.sgd)(learning_rate=0.0))
    local_inject_state, local_inject_update = trainer(optax.inject_hyperparams(optax.sgd)(learning_rate=schedule))
    service_state, service_update = trainer(optax.inject_hyperparams(optax.sgd)(learning_rate=0.0))
    service = stack.enter_context(ServiceLR("bench-optax", base_url=url, spec=SPEC,
                                            steps=(args.rounds + 1) * args.batches))
    table_service = stack.enter_context(ServiceLR("bench-optax-table", base_url=url, spec=SPEC,
                                                  steps=(args.rounds + 1) * args.batches))
    table_state, table_update = trainer(optax.inject_hyperparams(optax.sgd)(learning_rate=table_service.schedule()))
    scale_service = stack.enter_context(ServiceLR("bench-optax-scale", base_url=url, spec=SPEC,
                                                  steps=(args.rounds + 1) * args.batches))
    scale_state, scale_update = trainer(optax.chain(optax.sgd(1.0), scale_service.scale_by_lr()))
    compiled_service = stack.enter_context(ServiceLR("bench-optax-compiled", base_url=url, spec=SPEC,
                                                     steps=(args.rounds + 1) * args.batches))
    compiled_state, compiled_update = trainer(compiled_service.scale_by_learning_rate(compiled=True))

    def epoch_of(state: list[Any], update: Callable[..., Any], service: ServiceLR | None = None,
                 sync: bool = False, lr_of: Callable[[int], float] | None = None) -> Epoch:
        def epoch(n: int) -> tuple[float, float]:
            first = n * args.batches
            started = time.perf_counter()
            params, opt_state = state
            if sync:
                opt_state = service.sync(opt_state, first)
            synced = time.perf_counter()
            for batch in range(args.batches):
                if lr_of is not None:
                    opt_state = set_lr(opt_state, lr_of(first + batch))
                params, opt_state, value = update(params, opt_state, x[batch], y[batch])
            jax.block_until_ready(params)
            stepped = time.perf_counter()
            if service is not None:
                service.report(first + args.batches - 1, {"loss": value})
            state[:] = [params, opt_state]
            return stepped - synced, synced - started + time.perf_counter() - stepped
        return epoch

    variants = {"in-process sgd(schedule)": epoch_of(local_state, local_update),
                "in-process set_lr(lr(step))": epoch_of(local_set_state, local_set_update,
                                                              lr_of=in_process_lr),
                "in-process inject(sgd)(schedule)": epoch_of(local_inject_state, local_inject_update),
                "set_lr(ServiceLR.lr(step))": epoch_of(service_state, service_update, service, lr_of=service.lr),
                "inject(sgd)(ServiceLR.schedule())": epoch_of(table_state, table_update, table_service, sync=True),
                "sgd(1) + scale_by_lr() + sync": epoch_of(scale_state, scale_update, scale_service, sync=True),
                "scale_by_learning_rate(compiled=True) + sync": epoch_of(compiled_state, compiled_update,
                                                                        compiled_service, sync=True)}
    pairs = [("in-process sgd(schedule)", "scale_by_learning_rate(compiled=True) + sync"),
             ("in-process sgd(schedule)", "sgd(1) + scale_by_lr() + sync"),
             ("in-process sgd(schedule)", "inject(sgd)(ServiceLR.schedule())"),
             ("in-process sgd(schedule)", "set_lr(ServiceLR.lr(step))"),
             ("in-process inject(sgd)(schedule)", "inject(sgd)(ServiceLR.schedule())"),
             ("in-process set_lr(lr(step))", "set_lr(ServiceLR.lr(step))")]
    return variants, pairs, lambda: service.rates.requests


def lightning_variants(url: str, args: argparse.Namespace,
                       stack: ExitStack) -> Variants:
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

    def adapter() -> LearningRateCallback:
        adapters[:] = [LearningRateCallback("bench-lightning", spec=SPEC, client=client)]
        return adapters[0]

    def epoch_of(scheduler: str, callback: Callable[[], pl.Callback] | None = None) -> Epoch:
        def epoch(n: int) -> tuple[float, float]:
            timer = Timer()
            stop = Stop(timer)
            extra = [callback()] if callback is not None else []
            trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                                 enable_progress_bar=False, enable_model_summary=False, callbacks=[timer, *extra, stop])
            trainer.fit(lightning_mlp(scheduler, client), data)
            return stop.seconds, 0.0  # the epoch, its boundary inside the fit
        return epoch

    # A callback that does nothing: what Lightning's calling the hooks of one more callback costs by itself.
    return ({"in-process LambdaLR": epoch_of("lambda"), "LearningRateCallback": epoch_of("none", adapter),
             "LambdaLR + a callback doing nothing": epoch_of("lambda", pl.Callback),
             "ServiceScheduler, interval step": epoch_of("service")},
            [("in-process LambdaLR", "LearningRateCallback"),
             ("in-process LambdaLR", "ServiceScheduler, interval step"),
             ("in-process LambdaLR", "LambdaLR + a callback doing nothing"),
             ("LambdaLR + a callback doing nothing", "LearningRateCallback")],
            lambda: adapters[0].follower.rates.requests if adapters else 0)


def mlp() -> Any:
    """Every benchmark's model: a fresh 2x64 MLP from 32 inputs to 1, the same weights each time (seed 0)."""
    import torch

    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(32, 64), torch.nn.ReLU(), torch.nn.Linear(64, 64), torch.nn.ReLU(),
                               torch.nn.Linear(64, 1))


def lightning_mlp(scheduler: str, client: Any = None, watch: Callable[[Any], Any] = lambda s: s) -> Any:
    """The MLP as a Lightning module with SGD at PEAK (MSE on (x, y) batches), and as the lr scheduler Lightning steps
    every batch (`interval: "step"`): "lambda", the in-process schedule as a `LambdaLR`; "service", a
    `ServiceScheduler` of the run through `client`; "none", none (a callback sets the lr). `watch(scheduler)` is
    what Lightning gets (the scheduler itself, or it with its `step` timed)."""
    import lightning.pytorch as pl
    import torch
    from lrclient.torch import ServiceScheduler

    def scheduler_of(optimizer: torch.optim.Optimizer) -> Any:
        if scheduler == "service":
            return ServiceScheduler(optimizer, "bench-lightning-scheduler", spec=SPEC, client=client)
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda s: in_process_lr(s) / PEAK)

    class MLP(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            return torch.nn.functional.mse_loss(self.net(batch[0]), batch[1])

        def configure_optimizers(self) -> Any:
            optimizer = torch.optim.SGD(self.parameters(), lr=PEAK)
            if scheduler == "none":
                return optimizer
            return {"optimizer": optimizer, "lr_scheduler": {"scheduler": watch(scheduler_of(optimizer)),
                                                             "interval": "step"}}

    return MLP()


def transformers_mlp() -> Any:
    """The MLP as a Hugging Face Trainer takes it: `forward(x, labels)` returns the loss."""
    import torch

    class MLP(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.net = mlp()

        def forward(self, x: torch.Tensor, labels: torch.Tensor) -> dict[str, torch.Tensor]:
            return {"loss": torch.nn.functional.mse_loss(self.net(x), labels)}

    return MLP()


def transformers_variants(url: str, args: argparse.Namespace,
                          stack: ExitStack) -> Variants:
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
        def epoch(n: int) -> tuple[float, float]:
            model = transformers_mlp()
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
            return stop.seconds, 0.0  # the epoch, its boundary inside the fit
        return epoch

    return ({"in-process LambdaLR": epoch_of(True), "LearningRateCallback": epoch_of(False)},
            [("in-process LambdaLR", "LearningRateCallback")], lambda: adapters[0].rates.requests if adapters else 0)


VARIANTS = {"torch": torch_variants, "optax": optax_variants, "lightning": lightning_variants,
            "transformers": transformers_variants}


def rounds(variants: dict[str, Epoch], args: argparse.Namespace) -> Iterator[tuple[int, str, float, float]]:
    """(round, variant, seconds per step, seconds of the epoch's boundary) of every timed epoch."""
    order = random.Random(0)
    for n in range(args.rounds + 1):  # round 0 warms up: first traces, first connections
        names = list(variants)
        order.shuffle(names)
        for name in names:
            steps, boundary = variants[name](n)
            if n > 0:
                yield n, name, steps / args.batches, boundary


def paired(adapter: list[float], in_process: list[float]) -> str:
    """The median of the rounds' ratios adapter / in-process, with their quartiles."""
    ratios = [a / b for a, b in zip(adapter, in_process)]
    low, _, high = statistics.quantiles(ratios, n=4) if len(ratios) > 1 else (ratios[0],) * 3
    return f"{statistics.median(ratios):.3f} ({low:.3f}–{high:.3f})"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10, help="timed one-epoch rounds per variant")
    parser.add_argument("--batches", type=int, default=200, help="batches per epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (less noise)")
    parser.add_argument("--frameworks", default="torch,optax,lightning,transformers")
    parser.add_argument("--donate", action="store_true",
                        help="optax: jit the updates with donate_argnums=(params, opt_state), as large models do")
    args = parser.parse_args()

    from _servers import lrserve

    rows = []
    with lrserve() as port, ExitStack() as stack:
        for framework in args.frameworks.split(","):
            variants, pairs, requests = VARIANTS[framework](f"http://127.0.0.1:{port}", args, stack)
            per_step: dict[str, list[float]] = {name: [] for name in variants}
            per_epoch: dict[str, list[float]] = {name: [] for name in variants}  # steps and boundary, per step
            boundaries: dict[str, list[float]] = {name: [] for name in variants}
            before = requests()
            for n, name, step, boundary in rounds(variants, args):
                per_step[name].append(step)
                per_epoch[name].append(step + boundary / args.batches)
                boundaries[name].append(boundary)
                print(f"{framework:12s} round {n:2d} {name:28s} {step * 1e6:8.1f} us per step, "
                      f"{boundary * 1e3:6.2f} ms at the epoch's end")
            fetches = (requests() - before) / (args.rounds + 1) if framework in ("torch", "optax") else requests()
            for local_name, name in pairs:
                rows.append((framework, local_name, statistics.median(per_step[local_name]), name,
                             statistics.median(per_step[name]), paired(per_step[name], per_step[local_name]),
                             statistics.median(boundaries[name]), paired(per_epoch[name], per_epoch[local_name]),
                             fetches))

    print(f"\n{args.rounds} rounds of 1 epoch x {args.batches} batches of {args.batch_size}, 2x64 MLP, "
          f"{args.threads} thread{', donated buffers (optax)' if args.donate else ''}, warmup + cosine decay per "
          f"batch; medians over rounds; ratios: the median of the rounds' paired ratios (quartiles)")
    print("| adapter | in-process | per step | with the adapter | per step | step ratio | epoch's end | "
          "epoch ratio | lr fetches |")
    print("|---|---|---|---|---|---|---|---|---|")
    for framework, local_name, local, name, service, step_ratio, boundary, epoch_ratio, fetches in rows:
        label = "per epoch" if framework in ("torch", "optax") else "per one-epoch fit"
        print(f"| {framework} | {local_name} | {local * 1e6:.1f} us | {name} | {service * 1e6:.1f} us | {step_ratio} | "
              f"{boundary * 1e3:.2f} ms | {epoch_ratio} | {fetches:.1f} {label} |")

if __name__ == "__main__":
    main()
