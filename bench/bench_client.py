"""lrclient round trips: `Client.lr` and `Client.report` against bare httpx requests to the same server.

    .venv/bin/python bench/bench_client.py [--rounds 3] [--calls 1000] [--reports 300]

One real lrserve (temporary SQLite file), one keep-alive connection per client, calls one after the
other as a training loop makes them. The baselines and the client take turns call by call, so drift in
the machine hits all alike. Prints per-call latency (median and p99 over all rounds) and the ratios:
against a bare httpx GET /healthz (what any request to this server costs) and against the same
endpoint requested with bare httpx (what lrclient itself adds). Last, a `LearningRates.lr` lookup
served from its cache, as the Keras callback makes it on every batch.
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from collections.abc import Callable

import httpx
import lrclient
from _servers import HOST, lrserve
from _specs import SPEC, TOTAL_STEPS, create_trained_run

RUN_ID = "bench-client"


def interleaved(kinds: dict[str, Callable[[int], object]], indices: range) -> dict[str, list[float]]:
    """Seconds per call of each kind's `call(i)`, taking turns call by call so drift hits all alike."""
    times: dict[str, list[float]] = {name: [] for name in kinds}
    for i in indices:
        for name, call in kinds.items():
            start = time.perf_counter()
            call(i)
            times[name].append(time.perf_counter() - start)
    return times


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q / 100 * len(ordered)))]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--calls", type=int, default=1_000, help="GETs per kind and round")
    parser.add_argument("--reports", type=int, default=300, help="reports per kind and round (each one a commit)")
    args = parser.parse_args()
    rng = random.Random(0)
    steps = [rng.randrange(TOTAL_STEPS) for _ in range(4096)]
    timings: dict[str, list[float]] = {name: [] for name in (
        "httpx GET /healthz", "httpx GET lr", "Client.lr", "httpx POST metrics", "Client.report")}

    with lrserve() as port:
        url = f"http://{HOST}:{port}"
        create_trained_run(port, RUN_ID)
        with httpx.Client(base_url=url) as bare, lrclient.Client(url) as client:
            for name in ("raw", "client"):
                assert bare.put(f"/runs/{RUN_ID}-{name}", json=SPEC).status_code == 201
            reads: dict[str, Callable[[int], object]] = {
                "httpx GET /healthz": lambda i: bare.get("/healthz").raise_for_status(),
                "httpx GET lr": lambda i: bare.get(f"/runs/{RUN_ID}/lr", params={"step": steps[i % 4096]})
                .raise_for_status(),
                "Client.lr": lambda i: client.lr(RUN_ID, steps[i % 4096]),
            }
            writes: dict[str, Callable[[int], object]] = {
                "httpx POST metrics": lambda i: bare.post(f"/runs/{RUN_ID}-raw/metrics", json={
                    "step": i, "metrics": {"val_loss": 1.0 / (1 + i)}}).raise_for_status(),
                "Client.report": lambda i: client.report(f"{RUN_ID}-client", i, {"val_loss": 1.0 / (1 + i)}),
            }
            warmup = 50
            for kinds, count in ((reads, warmup), (writes, warmup)):  # imports, first connection, caches
                interleaved(kinds, range(count))
            for round_number in range(args.rounds):
                for name, values in interleaved(reads, range(args.calls)).items():
                    timings[name].extend(values)
                first = warmup + round_number * args.reports  # report steps keep increasing
                for name, values in interleaved(writes, range(first, first + args.reports)).items():
                    timings[name].extend(values)

            rates = lrclient.LearningRates(client, RUN_ID, horizon=2_000)
            rates.lr(0)
            cached = []
            for _ in range(args.rounds):
                start = time.perf_counter()
                for step in range(2_000):
                    rates.lr(step)
                cached.append((time.perf_counter() - start) / 2_000)

    print(f"one keep-alive connection each, {args.rounds} rounds; "
          f"{args.calls} GETs and {args.reports} reports per kind and round")
    print(f"{'':20s} {'median us':>10s} {'p99 us':>9s} {'x healthz':>10s} {'x bare httpx':>13s}")
    base = statistics.median(timings["httpx GET /healthz"])
    medians = {name: statistics.median(values) for name, values in timings.items()}
    same_endpoint = {"Client.lr": "httpx GET lr", "Client.report": "httpx POST metrics"}
    for name, values in timings.items():
        versus = f"{medians[name] / medians[same_endpoint[name]]:13.2f}" if name in same_endpoint else f"{'':13s}"
        print(f"{name:20s} {medians[name] * 1e6:10.0f} {percentile(values, 99) * 1e6:9.0f} "
              f"{medians[name] / base:10.2f} {versus}")
    print(f"{'LearningRates.lr':20s} {statistics.median(cached) * 1e6:10.2f} {'':9s} "
          f"{statistics.median(cached) / base:10.4f}   (served from its cache, per lookup)")


if __name__ == "__main__":
    main()
