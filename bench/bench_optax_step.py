"""The per-step cost of following an lrserve run in a jitted optax loop, measured closely.

    .venv/bin/python bench/bench_optax_step.py [--epochs 40] [--batches 500] [--chunk 25] [--batch-size 32]

bench_adapters.py times whole epochs, whose spread on a shared machine (a few percent between identical
epochs) hides a difference of one or two microseconds per step. Here the loops advance side by side through
each epoch in chunks of `--chunk` steps: for every chunk, each variant (in a new random order) trains those
steps and waits for them (`block_until_ready`), so a burst of noise lands on neighbouring chunks of every
variant alike. Each adapter chunk is paired with its in-process twin's chunk; the figure is the median of the
pairs' ratios over all chunks (hundreds), with their quartiles, and the median time per step; and the time of
each loop's first chunk, whose first update traces and compiles it (what a change of the compiled table costs).

The model, data and schedule are bench_adapters.py's: a 2x64 MLP (an ~80 µs step on CPU: the worst case for a per-step cost),
warmup + cosine per batch. Pairs, each built both with and without `donate_argnums=(0, 1)` on the jitted
update (donation lets the run's lr table stay in place instead of being copied at every step):

- `optax.sgd(schedule)` (that is, `scale_by_learning_rate(schedule)`) vs `ServiceLR.scale_by_learning_rate()`
  (the run's lr table a state leaf) and vs `ServiceLR.scale_by_learning_rate(compiled=True)` (the table a constant
  of the update, the state one leaf, its step index);
- `inject_hyperparams(sgd)(learning_rate=schedule)` vs `inject_hyperparams(sgd)(learning_rate=ServiceLR.schedule())`.

The service variants `sync` before each epoch and `report` after it, outside the timed chunks (their cost
is bench_adapters.py's "epoch's end"). The lr table holds the whole training (`--epochs` x `--batches`).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class Loop:
    """One training loop: its jitted update, params and optimizer state, and the run it follows (if any)."""

    update: Callable[..., Any]
    state: list[Any]
    service: Any = None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=40)
    parser.add_argument("--batches", type=int, default=500, help="steps per epoch")
    parser.add_argument("--chunk", type=int, default=25, help="steps per timed chunk")
    parser.add_argument("--batch-size", type=int, default=32)
    args = parser.parse_args()
    if args.batches % args.chunk:
        parser.error("--batches must be a multiple of --chunk")

    import jax
    import optax
    from _servers import lrserve
    from bench_adapters import DECAY, PEAK, SPEC, WARMUP, optax_batches, optax_trainer
    from lrclient.optax import ServiceLR

    xs, ys = optax_batches(args.batches, args.batch_size)

    def loop(optimizer: optax.GradientTransformation, donate: bool, service: Any = None) -> Loop:
        state, update = optax_trainer(optimizer, donate)
        return Loop(update, [*state, None], service)

    schedule = optax.warmup_cosine_decay_schedule(0.0, PEAK, WARMUP, WARMUP + DECAY)
    steps = (args.epochs + 1) * args.batches
    with lrserve() as port:
        url = f"http://127.0.0.1:{port}"
        loops: dict[str, Loop] = {}
        pairs: list[tuple[str, str]] = []
        for donate in (False, True):
            tag = ", donated" if donate else ""
            scale = ServiceLR(f"optax-step-scale{int(donate)}", base_url=url, spec=SPEC, steps=steps)
            compiled = ServiceLR(f"optax-step-compiled{int(donate)}", base_url=url, spec=SPEC, steps=steps)
            table = ServiceLR(f"optax-step-table{int(donate)}", base_url=url, spec=SPEC, steps=steps)
            loops[f"sgd(schedule){tag}"] = loop(optax.sgd(schedule), donate)
            loops[f"scale_by_learning_rate(){tag}"] = loop(scale.scale_by_learning_rate(), donate, scale)
            loops[f"scale_by_learning_rate(compiled=True){tag}"] = loop(
                compiled.scale_by_learning_rate(compiled=True), donate, compiled)
            loops[f"inject(sgd)(schedule){tag}"] = loop(optax.inject_hyperparams(optax.sgd)(learning_rate=schedule),
                                                        donate)
            loops[f"inject(sgd)(service.schedule()){tag}"] = loop(
                optax.inject_hyperparams(optax.sgd)(learning_rate=table.schedule()), donate, table)
            pairs += [(f"sgd(schedule){tag}", f"scale_by_learning_rate(){tag}"),
                      (f"sgd(schedule){tag}", f"scale_by_learning_rate(compiled=True){tag}"),
                      (f"inject(sgd)(schedule){tag}", f"inject(sgd)(service.schedule()){tag}")]

        order = random.Random(0)
        chunk_seconds: dict[str, list[float]] = {name: [] for name in loops}
        first_chunk: dict[str, float] = {}  # its first update traces and compiles it
        for epoch in range(args.epochs + 1):  # epoch 0 warms up (traces, compiles)
            first = epoch * args.batches
            for current in loops.values():
                if current.service is not None:
                    current.state[1] = current.service.sync(current.state[1], first)
            for start in range(0, args.batches, args.chunk):
                names = list(loops)
                order.shuffle(names)
                for name in names:
                    current = loops[name]
                    params, opt_state, value = current.state
                    started = time.perf_counter()
                    for batch in range(start, min(start + args.chunk, args.batches)):
                        params, opt_state, value = current.update(params, opt_state, xs[batch], ys[batch])
                    jax.block_until_ready((params, opt_state))
                    if epoch > 0:
                        chunk_seconds[name].append(time.perf_counter() - started)
                    elif start == 0:
                        first_chunk[name] = time.perf_counter() - started
                    current.state = [params, opt_state, value]
            for current in loops.values():
                if current.service is not None:
                    current.service.report(first + args.batches - 1, {"loss": float(current.state[2])})
        for current in loops.values():
            if current.service is not None:
                current.service.close()

    print(f"\n{args.epochs} epochs x {args.batches} steps in chunks of {args.chunk}, 2x64 MLP, batch "
          f"{args.batch_size}, lr table of {steps} steps; medians over {len(chunk_seconds[pairs[0][0]])} chunks")
    print("| in-process | per step | following the run | per step | paired ratio (quartiles) | first chunk (compile) |")
    print("|---|---|---|---|---|---|")
    for local, served in pairs:
        ratios = [s / b for s, b in zip(chunk_seconds[served], chunk_seconds[local])]
        low, median, high = statistics.quantiles(ratios, n=4)
        per_step = {name: statistics.median(chunk_seconds[name]) / args.chunk * 1e6 for name in (local, served)}
        print(f"| {local} | {per_step[local]:.1f} us | {served} | {per_step[served]:.1f} us | "
              f"{statistics.median(ratios):.3f} ({low:.3f}–{high:.3f}) | "
              f"{first_chunk[local] * 1e3:.0f} ms; {first_chunk[served] * 1e3:.0f} ms |")


if __name__ == "__main__":
    main()
