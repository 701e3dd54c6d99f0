"""GET /runs/{id}/lr throughput with 1, 2 and 4 service processes on one database, against the bare app.

    .venv/bin/python bench/bench_scale.py [--processes 1,2,4] [--databases sqlite,postgresql]
                                          [--rounds 5] [--requests 5000] [--connections 16]

N separate `lrserve serve` processes share one database (a temporary SQLite file, then a throwaway
PostgreSQL schema), and the load generator spreads its keep-alive connections over their N ports
round-robin; N processes of the bare FastAPI app, measured in the same rounds, are the baseline. Two
kinds of read of a trained run with a plateau tracker (bench_lr.py's run):

- settled: random steps up to the latest report; every process answers them from memory;
- unsettled: the step after the latest report; every such read costs one indexed stamp query.

Rounds alternate bare, settled, unsettled at each N, so drift in the machine hits all three alike.
The largest N of each server is started once and each configuration uses its first N processes; the
idle lrserve processes only read the event log every 50 ms. On a small machine the load generator
(one asyncio process) and the servers share the cores: the table shows how many cores the load
generator, the N servers and everything else on the machine used during the rows' rounds.
"""

from __future__ import annotations

import argparse
import os
import random
import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from _databases import KINDS, database
from _load import LoadResult, pooled
from _servers import Server, bare_apps, lrserve_processes, request_json
from _specs import create_trained_run
from bench_lr import RUN_ID, run_round

READS = ("bare", "settled", "unsettled")


@dataclass(frozen=True)
class Round:
    """One round's load result, and the cores used meanwhile by the servers and by the whole machine."""

    result: LoadResult
    server_cores: float
    busy_cores: float

    @property
    def server_cpu_per_request(self) -> float:
        return self.server_cores / self.result.throughput

    @property
    def other_cores(self) -> float:
        """Cores used by neither the load generator nor the servers: other work, and the PostgreSQL server."""
        return max(0.0, self.busy_cores - self.server_cores - self.result.cpu_share)


def busy_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the whole machine so far, from /proc/stat."""
    fields = [int(x) for x in Path("/proc/stat").read_text().splitlines()[0].split()[1:]]
    idle = fields[3] + fields[4]  # idle + iowait
    return sum(fields) - idle, sum(fields)


def measured(servers: Sequence[Server], requests: int, connections: int, steps: list[int]) -> Round:
    busy, total = busy_ticks()
    cpu = sum(s.cpu_seconds() for s in servers)
    result = run_round([s.port for s in servers], requests, connections, steps)
    server_cpu = sum(s.cpu_seconds() for s in servers) - cpu
    busy_after, total_after = busy_ticks()
    cores = os.cpu_count() or 1
    return Round(result, server_cpu / result.elapsed, (busy_after - busy) / max(1, total_after - total) * cores)


def bench_database(kind: str, bare: list[Server], counts: list[int], args: argparse.Namespace) -> None:
    with database(kind) as url, lrserve_processes(url, max(counts)) as lr:
        create_trained_run(lr[0].port, RUN_ID)
        status, run = request_json(lr[0].port, "GET", f"/runs/{RUN_ID}")
        assert status == 200, (status, run)
        latest: int = run["latest_step"]  # type: ignore[index]
        rng = random.Random(0)
        steps = {"bare": [rng.randrange(latest + 1) for _ in range(4096)], "unsettled": [latest + 1]}
        steps["settled"] = steps["bare"]
        servers = {"bare": bare, "settled": lr, "unsettled": lr}
        for read in READS:  # every process loads the run, fills its lr blocks, opens its connections
            run_round([s.port for s in servers[read]], 500 * max(counts), args.connections, steps[read])

        rounds: dict[tuple[int, str], list[Round]] = {}
        for n in counts:
            for round_number in range(1, args.rounds + 1):
                for read in READS:
                    measurement = measured(servers[read][:n], args.requests, args.connections, steps[read])
                    rounds.setdefault((n, read), []).append(measurement)
                    print(f"{kind} N={n} round {round_number} {read:9s} {measurement.result.summary()}", flush=True)
        report(kind, url, latest, counts, rounds, args)


def report(kind: str, url: str, latest: int, counts: list[int], rounds: dict[tuple[int, str], list[Round]],
           args: argparse.Namespace) -> None:
    print(f"\n{kind} ({url.split('?')[0]}): GET /runs/{{id}}/lr, {args.connections} keep-alive connections "
          f"round-robin over N processes, {args.rounds} x {args.requests} requests per row; settled = random "
          f"steps <= {latest} (the latest report), unsettled = step {latest + 1}")
    print(f"{'N':>2s} {'read':9s} {'req/s':>7s} {'p50 ms':>7s} {'p99 ms':>7s} {'req/s/bare':>10s} "
          f"{'p99/bare':>8s} {'per process/N=1':>15s} {'server CPU µs/req':>17s}   "
          f"cores: {'loadgen':>7s} {'servers':>7s} {'other':>6s}")
    rps = {key: statistics.median(r.result.throughput for r in rs) for key, rs in rounds.items()}
    first = counts[0]
    for n in counts:
        bare = pooled([r.result for r in rounds[(n, "bare")]])
        for read in READS:
            these = rounds[(n, read)]
            total = pooled([r.result for r in these])
            vs_bare = f"{rps[(n, read)] / rps[(n, 'bare')]:.2f}" if read != "bare" else ""
            p99_vs = f"{total.percentile(99) / bare.percentile(99):.2f}" if read != "bare" else ""
            per_process = (rps[(n, read)] / n) / (rps[(first, read)] / first)

            def median(of: Callable[[Round], float]) -> float:
                return statistics.median(of(r) for r in these)

            print(f"{n:2d} {read:9s} {rps[(n, read)]:7,.0f} {total.percentile(50) * 1e3:7.2f} "
                  f"{total.percentile(99) * 1e3:7.2f} {vs_bare:>10s} {p99_vs:>8s} {per_process:15.2f} "
                  f"{median(lambda r: r.server_cpu_per_request) * 1e6:17,.0f}          "
                  f"{median(lambda r: r.result.cpu_share):7.2f} {median(lambda r: r.server_cores):7.2f} "
                  f"{median(lambda r: r.other_cores):6.2f}")
    for n in counts[1:]:
        settled, single = rps[(n, "settled")], rps[(first, "settled")] / first
        print(f"settled, {n} processes: {settled:,.0f} req/s = {settled / n:,.0f} per process, "
              f"{settled / n / single:.2f} of the {first}-process figure ({single:,.0f} per process); "
              f"x{settled / (single * first):.2f} in total")
    print()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--processes", default="1,2,4", help="comma-separated process counts")
    parser.add_argument("--databases", default=",".join(KINDS), help="comma-separated: sqlite, postgresql")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--requests", type=int, default=5_000, help="per round and configuration")
    parser.add_argument("--connections", type=int, default=16, help="in all, spread over the N processes")
    args = parser.parse_args()
    counts = sorted(int(c) for c in args.processes.split(","))
    kinds = args.databases.split(",")
    print(f"machine: {os.cpu_count()} cores, load average {os.getloadavg()[0]:.1f} at start")
    with bare_apps(max(counts)) as bare:
        for kind in kinds:
            bench_database(kind, bare, counts, args)


if __name__ == "__main__":
    main()
