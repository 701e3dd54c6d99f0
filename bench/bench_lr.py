"""GET /runs/{id}/lr throughput and latency: lrserve against a bare FastAPI app.

    .venv/bin/python bench/bench_lr.py [--rounds 4] [--requests 5000] [--connections 16]

Both servers run side by side under the same uvicorn settings; rounds alternate bare, lrserve,
bare, lrserve, ... with the same load generator, so drift in the machine hits both alike.
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Sequence

from _load import LoadResult, Request, load, pooled
from _servers import HOST, bare_app, lrserve
from _specs import TOTAL_STEPS, create_trained_run

RUN_ID = "bench-lr"


def steps(count: int, seed: int = 0) -> list[int]:
    """Varied steps across the whole run, before and after the reported ones."""
    rng = random.Random(seed)
    return [rng.randrange(TOTAL_STEPS) for _ in range(count)]


def run_round(port: int | Sequence[int], requests: int, connections: int, step_list: list[int]) -> LoadResult:
    """`requests` GETs of the run's lr at the listed steps; connections round-robin over the ports."""
    def make(conn: int, k: int) -> Request:
        return Request("GET", f"/runs/{RUN_ID}/lr?step={step_list[(conn * 7919 + k) % len(step_list)]}")

    result = load(HOST, port, make, connections=connections, requests=requests)
    if result.errors:
        raise SystemExit(f"non-2xx responses: {dict(result.statuses)}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=4)
    parser.add_argument("--requests", type=int, default=5_000, help="per round")
    parser.add_argument("--connections", type=int, default=16)
    args = parser.parse_args()
    step_list = steps(4096)

    with bare_app() as bare_port, lrserve() as lr_port:
        create_trained_run(lr_port, RUN_ID)
        servers = {"bare": bare_port, "lrserve": lr_port}
        for port in servers.values():  # warm both up (imports, caches, first connections)
            run_round(port, 1_000, args.connections, step_list)
        results: dict[str, list[LoadResult]] = {name: [] for name in servers}
        for round_number in range(1, args.rounds + 1):
            for name, port in servers.items():
                result = run_round(port, args.requests, args.connections, step_list)
                results[name].append(result)
                print(f"round {round_number} {name:8s} {result.summary()}")

    print(f"\nGET /runs/{{id}}/lr, {args.connections} keep-alive connections, "
          f"{args.rounds} x {args.requests} requests per server")
    print(f"{'':8s} {'req/s (median round)':>22s} {'p50 ms':>8s} {'p99 ms':>8s}")
    summary = {}
    for name, rounds in results.items():
        total = pooled(rounds)
        rps = statistics.median(r.throughput for r in rounds)
        summary[name] = (rps, total.percentile(50), total.percentile(99))
        print(f"{name:8s} {rps:22,.0f} {summary[name][1] * 1e3:8.2f} {summary[name][2] * 1e3:8.2f}")
    (b_rps, b50, b99), (l_rps, l50, l99) = summary["bare"], summary["lrserve"]
    print(f"ratio lrserve/bare: throughput {l_rps / b_rps:.2f}, p50 {l50 / b50:.2f}, p99 {l99 / b99:.2f}")


if __name__ == "__main__":
    main()
