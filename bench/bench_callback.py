"""Per-batch cost of LearningRateCallback (batch mode) against in-process Keras with the same schedule.

    .venv/bin/python bench/bench_callback.py [--rounds 20] [--batches 200] [--batch-size 32] [--threads 1]

Two identical small models train side by side in one process: one with the schedule as a Keras
`LearningRateSchedule` object on its optimizer (Keras evaluates it every step), the other with a
float learning rate set before every batch by `LearningRateCallback` from a real lrserve process
(`python -m lrserve serve`, temporary SQLite file). Rounds of one epoch alternate in-process,
service, in-process, service, ... so drift in the machine hits both alike. Two figures per variant:

- per batch: the median interval between consecutive `on_train_batch_begin` calls of a callback
  listed first, i.e. one whole training step including LearningRateCallback's work for it;
- per epoch: the epoch's wall time (first callback's `on_epoch_begin` to the last callback's
  `on_epoch_end`) divided by its batches, which adds the epoch's revalidation, prefetch and report.

Medians over rounds; the ratios are service / in-process. It also prints the time spent inside
the callback's own hooks: `on_train_batch_begin` (a cache lookup and Keras's variable assignment)
and the train and epoch hooks (HTTP: each one-epoch round is a `fit` that opens the run and fetches
its lrs; nothing is validated, so nothing is reported; a longer `fit` costs one request per epoch).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from typing import Any


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=20, help="timed one-epoch rounds per variant")
    parser.add_argument("--batches", type=int, default=200, help="batches per epoch")
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1, help="torch intra-op threads (less noise)")
    args = parser.parse_args()
    os.environ["KERAS_BACKEND"] = "torch"

    import keras
    import numpy as np
    import torch

    torch.set_num_threads(args.threads)

    from _servers import lrserve
    from lrclient.keras import LearningRateCallback

    def schedule() -> keras.optimizers.schedules.LearningRateSchedule:
        return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=5_000, warmup_target=0.05, warmup_steps=500)

    def small_model(learning_rate: object) -> keras.Model:
        keras.utils.set_random_seed(0)
        model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
                                  keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
        model.compile(keras.optimizers.SGD(learning_rate), "mse")
        return model

    class Timer(keras.callbacks.Callback):
        """Listed first: times each batch, begin to next begin; `stop` (listed last) ends the epoch."""

        def __init__(self) -> None:
            super().__init__()
            self.batch_seconds: list[float] = []
            self.epoch_seconds: list[float] = []
            self.stop = keras.callbacks.LambdaCallback(
                on_epoch_end=lambda epoch, logs: self.epoch_seconds.append(time.perf_counter() - self.started))

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = self.last = time.perf_counter()
            self.batch_seconds = []

        def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
            now = time.perf_counter()
            if batch > 0:
                self.batch_seconds.append(now - self.last)
            self.last = now

    def timed(hook: Callable[..., None], total: list[float]) -> Callable[..., None]:
        """`hook`, adding its wall time to total[0]."""

        def wrapper(*args: Any, **kwargs: Any) -> None:
            started = time.perf_counter()
            try:
                return hook(*args, **kwargs)
            finally:
                total[0] += time.perf_counter() - started

        return wrapper

    rng = np.random.default_rng(0)
    x = rng.normal(size=(args.batches * args.batch_size, 32)).astype("float32")
    y = rng.normal(size=(len(x), 1)).astype("float32")

    with lrserve() as port:
        callback = LearningRateCallback("bench-callback", base_url=f"http://127.0.0.1:{port}", spec=schedule())
        # Time spent inside the callback's own hooks: per batch, and at epoch boundaries (HTTP).
        batch_hook, epoch_hooks = [0.0], [0.0]
        callback.on_train_batch_begin = timed(callback.on_train_batch_begin, batch_hook)
        for hook in ("on_train_begin", "on_epoch_begin", "on_epoch_end", "on_train_end"):
            setattr(callback, hook, timed(getattr(callback, hook), epoch_hooks))
        models = {"in-process Keras": (small_model(schedule()), []),
                  "LearningRateCallback": (small_model(0.05), [callback])}
        per_batch: dict[str, list[float]] = {name: [] for name in models}
        per_epoch: dict[str, list[float]] = {name: [] for name in models}
        requests: list[int] = []
        for round_number in range(args.rounds + 1):  # round 0 warms up: first traces, first connections
            if round_number == 1:
                batch_hook[0] = epoch_hooks[0] = 0.0
            for name, (model, extra) in models.items():
                timer = Timer()
                model.fit(x, y, batch_size=args.batch_size, epochs=1, shuffle=False, verbose=0,
                          callbacks=[timer, *extra, timer.stop])
                if round_number == 0:
                    continue
                per_batch[name].append(statistics.median(timer.batch_seconds))
                per_epoch[name].append(timer.epoch_seconds[0] / args.batches)
                if extra:
                    requests.append(callback.rates.requests)
                print(f"round {round_number:2d} {name:21s} {per_batch[name][-1] * 1e6:8.1f} us/batch (median), "
                      f"{per_epoch[name][-1] * 1e6:8.1f} us/batch over the epoch")

    print(f"\nKeras {keras.__version__} on {keras.backend.backend()} ({args.threads} thread), {args.rounds} rounds "
          f"of 1 epoch x {args.batches} batches of {args.batch_size}, 2x64 MLP, warmup + cosine decay per batch")
    print(f"{'':21s} {'per batch (us)':>15s} {'per batch over the epoch (us)':>31s}")
    batch = {name: statistics.median(values) for name, values in per_batch.items()}
    epoch = {name: statistics.median(values) for name, values in per_epoch.items()}
    for name in models:
        print(f"{name:21s} {batch[name] * 1e6:15.1f} {epoch[name] * 1e6:31.1f}")
    service, keras_name = "LearningRateCallback", "in-process Keras"
    print(f"{'ratio':21s} {batch[service] / batch[keras_name]:15.3f} {epoch[service] / epoch[keras_name]:31.3f}")
    timed_batches = args.rounds * args.batches
    for label, seconds in (("on_train_batch_begin", batch_hook[0]), ("epoch hooks, HTTP", epoch_hooks[0])):
        own = seconds / timed_batches
        print(f"LearningRateCallback {label}: {own * 1e6:.1f} us per batch ({own / epoch[service] * 100:.1f}% of a step)")
    print(f"HTTP requests per epoch (LearningRateCallback): {statistics.mean(requests):.1f}")


if __name__ == "__main__":
    main()
