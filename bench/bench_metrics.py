"""POST /runs/{id}/metrics throughput: every accepted report is a durable commit.

    .venv/bin/python bench/bench_metrics.py [--requests 3000] [--connections 1,8]

Each connection reports to its own run (warmup + cosine decay with a Keras plateau) at steps
0, 1, 2, ... so that no report conflicts; the run's tracker moves on every report.
"""

from __future__ import annotations

import argparse
import json

from _load import LoadResult, Request, load
from _servers import HOST, lrserve, request_json
from _specs import SPEC, val_loss


def report_round(port: int, prefix: str, connections: int, requests: int) -> LoadResult:
    for conn in range(connections):
        status, body = request_json(port, "PUT", f"/runs/{prefix}-{conn}", SPEC)
        assert status == 201, (status, body)

    def make(conn: int, k: int) -> Request:
        body = json.dumps({"step": k, "metrics": {"val_loss": val_loss(k % 60), "accuracy": 0.5}})
        return Request("POST", f"/runs/{prefix}-{conn}/metrics", body.encode())

    result = load(HOST, port, make, connections=connections, requests=requests)
    if result.errors:
        raise SystemExit(f"non-2xx responses: {dict(result.statuses)}")
    accepted = 0
    for conn in range(connections):
        status, run = request_json(port, "GET", f"/runs/{prefix}-{conn}")
        assert status == 200, (status, run)
        accepted += run["reports"]  # type: ignore[index]
    assert accepted == result.count, f"{result.count} reports answered 200 but {accepted} were stored"
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=3_000, help="per configuration")
    parser.add_argument("--connections", default="1,8", help="comma-separated connection counts")
    args = parser.parse_args()
    counts = [int(c) for c in args.connections.split(",")]

    with lrserve() as port:
        report_round(port, "warmup", 2, 200)
        print("POST /runs/{id}/metrics, one run per connection, increasing steps")
        print(f"{'connections':>11s} {'requests':>9s} {'req/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s}")
        for connections in counts:
            r = report_round(port, f"bench-c{connections}", connections, args.requests)
            print(f"{connections:11d} {r.count:9d} {r.throughput:8,.0f} "
                  f"{r.percentile(50) * 1e3:8.2f} {r.percentile(99) * 1e3:8.2f}")


if __name__ == "__main__":
    main()
