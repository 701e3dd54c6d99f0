"""The per-step cost of the Lightning and Hugging Face adapters, measured closely: trainers in lockstep.

    .venv/bin/python bench/bench_trainer_step.py [--epochs 10] [--batches 500] [--chunk 25] [--batch-size 32]
                                                 [--frameworks lightning,transformers]

bench_adapters.py times whole one-epoch fits, which vary by ±10-20% between identical rounds on a shared
machine: too much to tell 1.00 from 1.03. Here every variant's `Trainer` runs one long fit (`--epochs` of
`--batches`) in its own thread, and the threads take turns: each trains `--chunk` steps while the others wait,
then hands the turn back, and the turns go round the variants in a new random order for every chunk. So a
burst of noise lands on neighbouring chunks of every variant alike, as in bench_optax_step.py. The turn is
passed in the data loader's `collate_fn` (called once per batch by every trainer, in its training thread); a
chunk's time runs from the trainer's getting the turn to its asking for the next chunk's first batch, so the
hand-over is outside it, and every chunk holds `--chunk` steps of the trainer's loop with all its hooks.
Each adapter chunk is paired with the in-process chunk of the same index; the figure is the median of the
pairs' ratios over all chunks after the first epoch (hundreds), with their quartiles, and the median time per step.

That ratio still carries a percent or two of noise. Closer, and free of it: the time spent inside the
per-step hooks themselves, every call timed, added up over the whole fit (first epoch included: the fetches of
lrs happen there) and divided by its steps, with the median call's time: the adapter's hooks
(`on_train_epoch_start` and `on_train_batch_start` of the Lightning callback, `on_pre_optimizer_step` and `on_log`
of the Hugging Face one, `step()` of `ServiceScheduler`) vs the in-process scheduler's `step()`. With Lightning the
adapter takes the scheduler's place; a Hugging Face Trainer still steps its (constant) scheduler, so there the
callback's hooks come on top of it. What the framework's calling one more callback's hooks costs is the callback
doing nothing's ratio.

The model, data and schedule are bench_adapters.py's (a 2x64 MLP, 1 torch thread, warmup + cosine per batch):

- lightning: `configure_optimizers` returning the `LambdaLR` with `interval: "step"` vs
  `lrclient.lightning.LearningRateCallback`; vs `configure_optimizers` returning `lrclient.torch.ServiceScheduler`
  with `interval: "step"` (no callback); and the `LambdaLR` with a callback that does nothing (what Lightning's
  calling one more callback's hooks costs by itself); no validation, so nothing is reported;
- transformers: a `Trainer` given `optimizers=(sgd, LambdaLR)` vs `lrclient.transformers.LearningRateCallback`
  with a constant `LambdaLR` (a Trainer always steps a scheduler; the callback sets the lr after it); and the
  `LambdaLR` with a `TrainerCallback` that does nothing (the noise floor, and what one more callback costs);
  nothing evaluated.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from contextlib import ExitStack
from dataclasses import dataclass, field
from typing import Any

Collate = Callable[[list[Any]], Any]  # a data loader's collate_fn: samples -> batch
Fit = Callable[[Callable[[Collate], Collate]], None]  # trains every epoch, its collate_fn wrapped by the given function


class Spent:
    """The seconds spent inside some methods of some objects (their per-step hooks), added up."""

    def __init__(self) -> None:
        self.calls: list[float] = []  # the seconds of each call

    def per_step(self, steps: int) -> str:
        """The seconds per step over `steps` (all calls added up), and the median call's."""
        return f"{sum(self.calls) / steps * 1e6:.1f} us ({statistics.median(self.calls) * 1e6:.1f} us)"

    def watch(self, owner: Any, *names: str) -> Any:
        """`owner`, its methods `names` timed (instance attributes in front of the class's methods)."""
        for name in names:
            method = getattr(owner, name)

            def timed(*args: Any, __method: Callable[..., Any] = method, **kwargs: Any) -> Any:
                started = time.perf_counter()
                try:
                    return __method(*args, **kwargs)
                finally:
                    self.calls.append(time.perf_counter() - started)
            setattr(owner, name, timed)
        return owner


@dataclass
class Lane:
    """One variant's trainer, run in its own thread one chunk at a time."""

    fit: Fit
    chunk: int
    go: threading.Event = field(default_factory=threading.Event)
    done: threading.Event = field(default_factory=threading.Event)
    seconds: list[float] = field(default_factory=list)  # of every chunk, in order
    batches: int = 0
    started: float = 0.0
    finished: bool = False
    error: BaseException | None = None

    def wait_for_turn(self) -> None:
        self.go.wait()
        self.go.clear()
        self.started = time.perf_counter()

    def give_turn_back(self) -> None:
        self.done.set()

    def paced(self, collate: Collate) -> Collate:
        """`collate`, with the turn handed back before every chunk's first batch."""
        def collate_in_turn(samples: list[Any]) -> Any:
            if self.batches and self.batches % self.chunk == 0:
                self.seconds.append(time.perf_counter() - self.started)
                self.give_turn_back()
                self.wait_for_turn()
            self.batches += 1
            return collate(samples)
        return collate_in_turn

    def run(self) -> None:
        self.wait_for_turn()
        try:
            self.fit(self.paced)
        except BaseException as error:  # reported by the conductor
            self.error = error
        self.finished = True
        self.give_turn_back()


def lockstep(fits: dict[str, Fit], chunk: int) -> dict[str, list[float]]:
    """Every fit in its own thread, `chunk` batches at a time, the turns in a new random order for each chunk;
    each fit's chunk times in order (the first includes the trainer's set-up)."""
    lanes = {name: Lane(fit, chunk) for name, fit in fits.items()}
    threads = [threading.Thread(target=lane.run, name=name, daemon=True) for name, lane in lanes.items()]
    for thread in threads:
        thread.start()
    order = random.Random(0)
    while running := [name for name, lane in lanes.items() if not lane.finished]:
        order.shuffle(running)
        for name in running:
            lanes[name].done.clear()
            lanes[name].go.set()
            lanes[name].done.wait()
    for thread in threads:
        thread.join()
    for name, lane in lanes.items():
        if lane.error is not None:
            raise RuntimeError(f"{name} failed") from lane.error
    return {name: lane.seconds for name, lane in lanes.items()}


Fits = tuple[dict[str, Fit], list[tuple[str, str]], dict[str, Spent]]  # the fits, pairs, time in their hooks


def lightning_fits(url: str, args: argparse.Namespace, stack: ExitStack) -> Fits:
    import lightning.pytorch as pl
    import lrclient
    import torch
    from bench_adapters import SPEC, lightning_mlp
    from lrclient.lightning import LearningRateCallback
    from torch.utils.data import DataLoader, TensorDataset, default_collate

    warnings.filterwarnings("ignore", ".*does not have many workers.*")
    dataset = TensorDataset(torch.randn(args.batches * args.batch_size, 32),
                            torch.randn(args.batches * args.batch_size, 1))
    client = stack.enter_context(lrclient.Client(url))

    def fit_of(scheduler: str, spent: Spent, callbacks: Callable[[], list[pl.Callback]] = list) -> Fit:
        def fit(paced: Callable[[Collate], Collate]) -> None:
            torch.set_num_threads(1)
            data = DataLoader(dataset, batch_size=args.batch_size, collate_fn=paced(default_collate))
            trainer = pl.Trainer(max_epochs=args.epochs, accelerator="cpu", devices=1, logger=False,
                                 enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                                 callbacks=callbacks())
            trainer.fit(lightning_mlp(scheduler, client, watch=lambda s: spent.watch(s, "step")), data)
        return fit

    spent = {name: Spent() for name in ("LambdaLR", "LearningRateCallback", "ServiceScheduler, interval step",
                                         "LambdaLR + a callback doing nothing")}
    adapter = LearningRateCallback("bench-step-lightning", spec=SPEC, client=client)
    fits = {"LambdaLR": fit_of("lambda", spent["LambdaLR"]),
            "LearningRateCallback": fit_of("none", spent["LearningRateCallback"], lambda: [spent[
                "LearningRateCallback"].watch(adapter, "on_train_epoch_start", "on_train_batch_start")]),
            "ServiceScheduler, interval step": fit_of("service", spent["ServiceScheduler, interval step"]),
            "LambdaLR + a callback doing nothing": fit_of("lambda", spent["LambdaLR + a callback doing nothing"],
                                                          lambda: [pl.Callback()])}
    return fits, [("LambdaLR", "LearningRateCallback"), ("LambdaLR", "ServiceScheduler, interval step"),
                  ("LambdaLR", "LambdaLR + a callback doing nothing")], spent


def transformers_fits(url: str, args: argparse.Namespace, stack: ExitStack) -> Fits:
    import torch
    from bench_adapters import PEAK, SPEC, in_process_lr, transformers_mlp
    from lrclient.transformers import LearningRateCallback
    from transformers import Trainer, TrainerCallback, TrainingArguments, default_data_collator
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    x, y = torch.randn(args.batches * args.batch_size, 32), torch.randn(args.batches * args.batch_size, 1)
    data = [{"x": x[i], "labels": y[i]} for i in range(len(x))]

    def fit_of(adapter: bool, spent: Spent, callbacks: Callable[[], list[Any]] = list) -> Fit:
        def fit(paced: Callable[[Collate], Collate]) -> None:
            torch.set_num_threads(1)
            model = transformers_mlp()
            optimizer = torch.optim.SGD(model.parameters(), lr=PEAK)
            factor = (lambda s: 1.0) if adapter else (lambda s: in_process_lr(s) / PEAK)  # 1.0: the "constant" type
            scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
            if adapter:
                extra = [spent.watch(LearningRateCallback("bench-step-transformers", base_url=url, spec=SPEC),
                                     "on_pre_optimizer_step", "on_log")]
            else:
                spent.watch(scheduler, "step")
                extra = callbacks()
            output = stack.enter_context(tempfile.TemporaryDirectory(prefix="bench-hf-"))
            training = TrainingArguments(output_dir=output, use_cpu=True, report_to=[], num_train_epochs=args.epochs,
                                         per_device_train_batch_size=args.batch_size, save_strategy="no",
                                         logging_strategy="no", dataloader_num_workers=0, disable_tqdm=True)
            Trainer(model=model, args=training, train_dataset=data, callbacks=extra,
                    optimizers=(optimizer, scheduler), data_collator=paced(default_data_collator)).train()
        return fit

    spent = {name: Spent() for name in ("LambdaLR given to the Trainer", "LearningRateCallback",
                                         "LambdaLR + a callback doing nothing")}
    fits = {"LambdaLR given to the Trainer": fit_of(False, spent["LambdaLR given to the Trainer"]),
            "LearningRateCallback": fit_of(True, spent["LearningRateCallback"]),
            "LambdaLR + a callback doing nothing": fit_of(False, spent["LambdaLR + a callback doing nothing"],
                                                          lambda: [TrainerCallback()])}
    return fits, [("LambdaLR given to the Trainer", "LearningRateCallback"),
                  ("LambdaLR given to the Trainer", "LambdaLR + a callback doing nothing")], spent


FITS = {"lightning": lightning_fits, "transformers": transformers_fits}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batches", type=int, default=500, help="steps per epoch")
    parser.add_argument("--chunk", type=int, default=25, help="steps per timed chunk")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--frameworks", default="lightning,transformers")
    args = parser.parse_args()
    if args.batches % args.chunk:
        parser.error("--batches must be a multiple of --chunk")

    from _servers import lrserve

    rows = []
    with lrserve() as port, ExitStack() as stack:
        for framework in args.frameworks.split(","):
            fits, pairs, spent = FITS[framework](f"http://127.0.0.1:{port}", args, stack)
            chunks = lockstep(fits, args.chunk)
            skip = args.batches // args.chunk  # the first epoch warms up
            steps = args.epochs * args.batches
            for local, served in pairs:
                ratios = [s / b for s, b in zip(chunks[served][skip:], chunks[local][skip:])]
                low, median, high = statistics.quantiles(ratios, n=4)
                rows.append((framework, local, statistics.median(chunks[local][skip:]) / args.chunk, served,
                             statistics.median(chunks[served][skip:]) / args.chunk,
                             f"{statistics.median(ratios):.3f} ({low:.3f}–{high:.3f})", len(ratios),
                             f"{spent[served].per_step(steps)}; {spent[local].per_step(steps)}"))

    print(f"\n{args.epochs} epochs x {args.batches} steps in chunks of {args.chunk}, 2x64 MLP, batch "
          f"{args.batch_size}, 1 thread; the first epoch left out; medians over chunks")
    print("| framework | in-process | per step | with the adapter | per step | paired ratio (quartiles) | chunks | "
          "in the hooks per step (median call): adapter; in-process |")
    print("|---|---|---|---|---|---|---|---|")
    for framework, local, local_step, served, served_step, ratio, count, hooks in rows:
        print(f"| {framework} | {local} | {local_step * 1e6:.1f} us | {served} | {served_step * 1e6:.1f} us | "
              f"{ratio} | {count} | {hooks} |")


if __name__ == "__main__":
    main()
