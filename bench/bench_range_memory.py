"""Peak memory of 8 concurrent 1,000,000-value lr/range calls: streamed ranges against the code before them.

    .venv/bin/python bench/bench_range_memory.py [--before bb09160] [--clients 8] [--values 1000000] [--repeats 10]

Two codes, each served by a fresh `lrserve serve` process on a temporary SQLite file: this checkout's
(`service/` and `client/` next to `bench/`), and `--before` (by default the commit before large ranges
were streamed), checked out into a temporary git worktree that is removed at the end. On each, after
creating the benchmark's trained run: `--clients` keep-alive connections ask
`GET /runs/{id}/lr/range?start=0&stop=1000000` at once and read the whole answer, then the process's
peak resident memory (VmHWM) is read; then the same call `--repeats` times on one connection.
Prints per code the resident memory before, the peak, the time per call (median, alone and among the
concurrent ones), the answer's size and framing, and the ratios now/before.
"""

from __future__ import annotations

import argparse
import http.client
import shutil
import statistics
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from _load import Request, load
from _servers import BENCH, HOST, lrserve_server
from _specs import create_trained_run

REPO = BENCH.parent
RUN_ID = "bench-range-memory"
MB = 1 << 20


@dataclass(frozen=True)
class Figures:
    rss_before: int  # bytes, after the run was created and before any range
    peak: int  # VmHWM after the concurrent calls
    concurrent_median: float  # seconds, among the concurrent calls
    alone_median: float  # seconds, one call at a time
    framing: str  # "chunked" (streamed) or "content-length"
    body_bytes: int  # of one answer


def git(*args: str) -> str:
    return subprocess.run(["git", "-C", str(REPO), *args], check=True, capture_output=True, text=True).stdout.strip()


@contextmanager
def checkout(ref: str) -> Iterator[Path]:
    """`ref` in a temporary git worktree (detached), removed on exit."""
    parent = Path(tempfile.mkdtemp(prefix="range-before-"))
    tree = parent / "tree"
    git("worktree", "add", "--detach", str(tree), ref)
    try:
        yield tree
    finally:
        git("worktree", "remove", "--force", str(tree))
        shutil.rmtree(parent, ignore_errors=True)


def framing(port: int, path: str) -> str:
    connection = http.client.HTTPConnection(HOST, port, timeout=120)
    try:
        connection.request("GET", path)
        response = connection.getresponse()
        body = response.read()
        assert response.status == 200, (response.status, body[:200])
        return "chunked" if response.getheader("transfer-encoding") == "chunked" else "content-length"
    finally:
        connection.close()


def measure(tree: Path, path: str, clients: int, repeats: int) -> Figures:
    with lrserve_server(pythonpath=f"{tree / 'service'}:{tree / 'client'}") as server:
        create_trained_run(server.port, RUN_ID)
        rss_before = server.rss_bytes()
        together = load(HOST, server.port, lambda conn, k: Request("GET", path), connections=clients,
                        requests=clients, hard_timeout=600)
        peak = server.peak_bytes()
        alone = load(HOST, server.port, lambda conn, k: Request("GET", path), connections=1,
                     requests=repeats, hard_timeout=600)
        for result in (together, alone):
            if result.errors:
                raise SystemExit(f"non-2xx responses: {dict(result.statuses)}")
        return Figures(rss_before, peak, statistics.median(together.latencies), statistics.median(alone.latencies),
                       framing(server.port, path), alone.body_bytes // alone.count)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--before", default="bb09160", help="the git commit to compare with")
    parser.add_argument("--clients", type=int, default=8)
    parser.add_argument("--values", type=int, default=1_000_000)
    parser.add_argument("--repeats", type=int, default=10, help="calls one at a time, for the median time")
    args = parser.parse_args()
    path = f"/runs/{RUN_ID}/lr/range?start=0&stop={args.values}"

    codes = {}
    with checkout(args.before) as before_tree:
        codes[f"before {git('rev-parse', '--short', args.before)}"] = measure(before_tree, path, args.clients,
                                                                              args.repeats)
    codes[f"now {git('rev-parse', '--short', 'HEAD')}"] = measure(REPO, path, args.clients, args.repeats)

    print(f"GET /runs/{{id}}/lr/range, {args.values:,} values, {args.clients} clients at once reading fully; "
          f"a fresh server per code")
    print(f"{'code':16s} {'RSS before MB':>13s} {'peak MB':>8s} {'rise MB':>8s} "
          f"{'median s alone':>14s} {f'median s, {args.clients} at once':>19s} {'bytes':>11s}  framing")
    for name, f in codes.items():
        print(f"{name:16s} {f.rss_before / MB:13.1f} {f.peak / MB:8.1f} {(f.peak - f.rss_before) / MB:8.1f} "
              f"{f.alone_median:14.3f} {f.concurrent_median:19.3f} {f.body_bytes:11,d}  {f.framing}")
    before, now = codes.values()
    print(f"ratio now/before: peak {now.peak / before.peak:.2f}, "
          f"rise {(now.peak - now.rss_before) / (before.peak - before.rss_before):.2f}, "
          f"time alone {now.alone_median / before.alone_median:.2f}, "
          f"time {args.clients} at once {now.concurrent_median / before.concurrent_median:.2f}")


if __name__ == "__main__":
    main()
