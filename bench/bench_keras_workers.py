"""Eight Keras processes in batch mode against one service: step time vs the same processes in-process.

    .venv/bin/python bench/bench_keras_workers.py [--workers 8] [--rounds 3] [--epochs 4] [--batches 100]

Each round launches `--workers` training processes three times, one set after the other (so drift in
the machine hits all alike): with the schedule in-process (a Keras `CosineDecay` with warmup on the
optimizer); following one lrserve run with `LearningRateCallback` in batch mode and the same warmup +
cosine schedule ("service"); and the same with a Keras plateau on `val_loss` ("service + plateau").
Every process trains its own copy of a 2x64 MLP (1 thread each) and evaluates on its own validation
shard; only the chief (`RANK=0`) reports (`report="chief"`). With a plateau the others wait for its
report at each epoch end (one held request each) and follow its lr: an epoch barrier, which costs
nothing in a real data-parallel job (its all-reduce already keeps the workers in step) but here, where
the processes are independent and share the cores, makes every process wait for the slowest chief.
The service is one `lrserve serve` process with a temporary SQLite file; each set uses a new run.

Figures per process: the median wall time per batch over the epochs after the first (the first
compiles and opens the run), i.e. training step + the callback's work + the epoch's HTTP and the
wait for the chief, spread over the epoch's batches. The script prints the median over processes and
rounds, the slowest process, and the ratio service / in-process. With 8 processes on a machine with
fewer cores the processes share the CPU alike in both variants.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

WARMUP, DECAY, PEAK = 100, 2_000, 0.05
MODES = ("in-process", "service", "service + plateau")


def worker(args: argparse.Namespace) -> None:
    """One training process; prints one JSON line: its seconds per batch for each epoch."""
    os.environ["KERAS_BACKEND"] = "torch"
    import keras
    import numpy as np
    import torch

    torch.set_num_threads(1)
    from lrclient.keras import LearningRateCallback

    def schedule() -> keras.optimizers.schedules.LearningRateSchedule:
        return keras.optimizers.schedules.CosineDecay(0.0, decay_steps=DECAY, warmup_target=PEAK,
                                                      warmup_steps=WARMUP)

    keras.utils.set_random_seed(args.rank)
    rng = np.random.default_rng(args.rank)
    x = rng.normal(size=(args.batches * 32, 32)).astype("float32")
    y = rng.normal(size=(len(x), 1)).astype("float32")
    val = (x[:256], y[:256])
    model = keras.Sequential([keras.Input((32,)), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(64, activation="relu"), keras.layers.Dense(1)])
    callbacks: list[keras.callbacks.Callback] = []
    if args.mode != "in-process":
        spec = {"schedule": {"type": "cosine_decay", "initial_learning_rate": 0.0, "decay_steps": DECAY,
                             "warmup_target": PEAK, "warmup_steps": WARMUP}, "step_unit": "batch"}
        if args.mode == "service + plateau":
            spec["plateau"] = {"monitor": "val_loss", "patience": 2, "factor": 0.5}
        callbacks.append(LearningRateCallback(args.run_id, base_url=args.url, spec=spec, report="chief",
                                              is_chief=lambda: args.rank == 0))
        model.compile(keras.optimizers.SGD(PEAK), "mse")
    else:
        model.compile(keras.optimizers.SGD(schedule()), "mse")

    class EpochTimer(keras.callbacks.Callback):
        def __init__(self) -> None:
            super().__init__()
            self.seconds: list[float] = []

        def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
            self.started = time.perf_counter()

        def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
            self.seconds.append((time.perf_counter() - self.started) / args.batches)

    timer = EpochTimer()
    # The timer's on_epoch_end runs after the service callback's (which reports or waits for the chief).
    model.fit(x, y, batch_size=32, epochs=args.epochs, shuffle=False, verbose=0, validation_data=val,
              callbacks=[*callbacks, timer])
    print(json.dumps({"rank": args.rank, "per_batch": timer.seconds}), flush=True)


def launch(mode: str, workers: int, args: argparse.Namespace, url: str, run_id: str) -> list[list[float]]:
    """Start `workers` processes at once and wait for all; each one's seconds per batch, epoch by epoch."""
    env = {**os.environ, "KERAS_BACKEND": "torch", "OMP_NUM_THREADS": "1"}
    processes = [
        subprocess.Popen([sys.executable, __file__, "--worker", mode, "--rank", str(rank), "--url", url,
                          "--run-id", run_id, "--epochs", str(args.epochs), "--batches", str(args.batches)],
                         stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
                         env={**env, "RANK": str(rank)})
        for rank in range(workers)
    ]
    results = []
    for process in processes:
        out, _ = process.communicate(timeout=900)
        if process.returncode != 0:
            raise SystemExit(f"a {mode} worker failed (exit {process.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1])["per_batch"])
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workers", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--epochs", type=int, default=4)
    parser.add_argument("--batches", type=int, default=100, help="batches per epoch")
    parser.add_argument("--worker", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--rank", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--run-id", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.mode = args.worker
        worker(args)
        return

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from _servers import lrserve_server

    figures: dict[str, list[float]] = {mode: [] for mode in MODES}
    slowest: dict[str, list[float]] = {mode: [] for mode in MODES}
    with lrserve_server() as server:
        url = f"http://127.0.0.1:{server.port}"
        for round_number in range(1, args.rounds + 1):
            for mode in MODES:
                run_id = f"bench-workers-{round_number}-{MODES.index(mode)}"
                per_process = [statistics.median(epochs[1:]) for epochs in launch(mode, args.workers, args, url, run_id)]
                figures[mode] += per_process
                slowest[mode].append(max(per_process))
                print(f"round {round_number} {mode:17s}: median {statistics.median(per_process) * 1e6:8.1f} us/batch, "
                      f"slowest process {max(per_process) * 1e6:8.1f} us/batch", flush=True)

    print(f"\n{args.workers} Keras processes (torch backend, 1 thread each), {args.rounds} rounds of "
          f"{args.epochs} epochs x {args.batches} batches (first epoch not timed), validation each epoch")
    print("| variant | per batch, median over processes | slowest process |")
    print("|---|---|---|")
    for mode in figures:
        print(f"| {mode} | {statistics.median(figures[mode]) * 1e6:.1f} us | "
              f"{statistics.median(slowest[mode]) * 1e6:.1f} us |")
    for mode in MODES[1:]:
        ratio = statistics.median(figures[mode]) / statistics.median(figures["in-process"])
        ratio_slowest = statistics.median(slowest[mode]) / statistics.median(slowest["in-process"])
        print(f"ratio {mode} / in-process: {ratio:.3f} (median), {ratio_slowest:.3f} (slowest process)")


if __name__ == "__main__":
    main()
