"""GET /runs/{id}/lr/range with 100,000 values: lrserve against a bare app's pre-built JSON.

    .venv/bin/python bench/bench_range.py [--repeats 20] [--values 100000]

Client-side wall time per request over one keep-alive connection (median of the repeats, after
two warmups) and the response size. The baseline returns a cached JSON body of about the same
size from the bare FastAPI app, so the difference is lrserve computing and encoding the values.
"""

from __future__ import annotations

import argparse
import statistics

from _load import LoadResult, Request, load
from _servers import HOST, bare_app, lrserve, request_json
from _specs import create_trained_run

RUN_ID = "bench-range"


def timed(port: int, path: str, repeats: int) -> LoadResult:
    load(HOST, port, lambda conn, k: Request("GET", path), connections=1, requests=2)  # warmup
    result = load(HOST, port, lambda conn, k: Request("GET", path), connections=1, requests=repeats)
    if result.errors:
        raise SystemExit(f"non-2xx responses: {dict(result.statuses)}")
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=20)
    parser.add_argument("--values", type=int, default=100_000)
    args = parser.parse_args()
    path = f"/runs/{RUN_ID}/lr/range?start=0&stop={args.values}&every=1"

    with bare_app() as bare_port, lrserve() as lr_port:
        create_trained_run(lr_port, RUN_ID)
        status, body = request_json(lr_port, "GET", path)
        assert status == 200 and len(body["lr"]) == args.values, (status, str(body)[:200])  # type: ignore[index]
        results = {}
        for name, port in (("bare", bare_port), ("lrserve", lr_port)):
            results[name] = timed(port, path, args.repeats)

    print(f"GET /runs/{{id}}/lr/range, {args.values:,} values, median of {args.repeats} on one keep-alive connection")
    print(f"{'':8s} {'median ms':>10s} {'min ms':>8s} {'max ms':>8s} {'bytes':>10s}")
    medians = {}
    for name, r in results.items():
        medians[name] = statistics.median(r.latencies)
        print(f"{name:8s} {medians[name] * 1e3:10.1f} {min(r.latencies) * 1e3:8.1f} "
              f"{max(r.latencies) * 1e3:8.1f} {r.body_bytes // r.count:10,d}")
    print(f"ratio lrserve/bare (median time): {medians['lrserve'] / medians['bare']:.2f}")


if __name__ == "__main__":
    main()
