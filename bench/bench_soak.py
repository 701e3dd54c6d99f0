"""Soak: one `lrserve serve` process at 80% of its peak GET /lr rate for minutes, reports arriving.

    .venv/bin/python bench/bench_soak.py [--minutes 10] [--interval 30] [--load 0.8]

1. Peak: `GET /runs/{id}/lr` at random steps over all the runs, 16 keep-alive connections in a
   closed loop (as `bench_lr.py`), for `--peak-seconds`.
2. Soak, for `--minutes`: the same GETs in an open loop at `--load` x the peak (a fixed schedule;
   each latency runs from its request's due time, so a server falling behind shows), plus
   `POST /runs/{id}/metrics` at `--reports-per-second` spread over `--report-runs` runs of their
   own (one connection each, steps increasing, one plateau reduction per 100 reports of a run).

Every `--interval` seconds it prints the GETs' achieved rate and latency in that interval, the
reports', the server's resident memory (VmRSS), the share of its lr reads answered from memory
(from its `/metrics`; the others queried the database) and the non-2xx responses; at the end,
memory at start against end and the first interval's p99 against the last's. One server process on
a temporary SQLite file, on 127.0.0.1; the run stops by itself when the schedule is over (requests
still waiting to be sent then are counted, not sent).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import time
from dataclasses import dataclass

from _load import LoadResult, Request, load, run_paced
from _servers import HOST, Server, lrserve_server, metric_samples, request_json
from _specs import SPEC, create_trained_run
from bench_lr import steps

MB = 1 << 20
LOOKUPS = "lrserve_view_cache_lookups_total"  # lr reads answered from memory ("hit") or after a query ("miss")
REPORT_STRIDE = 25  # batches between two reports of a run


def reader(runs: list[str], step_list: list[int]):
    """GETs of the lr at the listed steps, spread over the runs."""
    def get(conn: int, k: int) -> Request:
        i = conn * 7919 + k
        return Request("GET", f"/runs/{runs[i % len(runs)]}/lr?step={step_list[i % len(step_list)]}")
    return get


def reporter(run: str):
    """The run's reports: the k-th at step (k + 1) * REPORT_STRIDE, with `soak_loss(k)`."""
    def report(conn: int, k: int) -> Request:
        body = {"step": (k + 1) * REPORT_STRIDE, "metrics": {"val_loss": soak_loss(k)}}
        return Request("POST", f"/runs/{run}/metrics", json.dumps(body).encode())
    return report


def soak_loss(n: int) -> float:
    """The n-th report's val_loss: better by 0.001 each time (more than Keras' `min_delta`), but the
    same for the last 5 of every 100, so the plateau (patience 3) reduces the lr once per 100 reports."""
    return 10.0 - 0.001 * (100 * (n // 100) + min(n % 100, 95))


@dataclass
class Interval:
    elapsed: float
    gets: LoadResult
    posts: LoadResult
    non_2xx: int
    rss: int
    from_memory: float  # the share of the server's lr reads answered without asking the database


def lookups(server: Server) -> tuple[float, float]:
    samples = metric_samples(server.port, LOOKUPS)
    return samples.get('{result="hit"}', 0.0), samples.get('{result="miss"}', 0.0)


class Watch:
    """Cuts the running results into intervals: what arrived since the previous cut."""

    def __init__(self, server: Server, gets: LoadResult, posts: LoadResult) -> None:
        self.server, self.gets, self.posts = server, gets, posts
        self.seen_gets = self.seen_posts = self.seen_errors = 0
        self.seen_lookups = lookups(server)
        self.last = time.perf_counter()

    async def cut(self, elapsed: float) -> Interval:
        now = time.perf_counter()
        span = LoadResult(latencies=self.gets.latencies[self.seen_gets:], elapsed=now - self.last)
        reports = LoadResult(latencies=self.posts.latencies[self.seen_posts:], elapsed=now - self.last)
        errors = self.gets.errors + self.posts.errors
        non_2xx = errors - self.seen_errors
        self.seen_gets += span.count
        self.seen_posts += reports.count
        self.seen_errors, self.last = errors, now
        # In a thread: the scrape waits its turn at a busy server, and the load's schedule must not wait.
        (hits, misses), (seen_hits, seen_misses) = await asyncio.to_thread(lookups, self.server), self.seen_lookups
        self.seen_lookups = (hits, misses)
        answered = (hits - seen_hits) + (misses - seen_misses)
        return Interval(elapsed, span, reports, non_2xx, self.server.rss_bytes(),
                        (hits - seen_hits) / answered if answered else math.nan)


def print_interval(i: Interval) -> None:
    print(f"{i.elapsed:7.0f} {i.gets.throughput:8,.0f} {i.gets.percentile(50) * 1e3:8.2f} "
          f"{i.gets.percentile(99) * 1e3:8.2f} {i.posts.throughput:7.1f} {i.posts.percentile(99) * 1e3:8.2f} "
          f"{i.rss / MB:8.1f} {i.from_memory:6.0%} {i.non_2xx:7d}", flush=True)


async def soak(server: Server, get_runs: list[str], report_runs: list[str], step_list: list[int],
               rate: float, args: argparse.Namespace) -> tuple[list[Interval], tuple[int, int]]:
    """The intervals, and how many GETs and reports fell due but were never sent."""
    gets, posts = LoadResult(), LoadResult()
    duration = args.minutes * 60
    if not args.reports_per_second:
        report_runs = []  # GETs alone (the reported runs are still read)
    loads = asyncio.ensure_future(asyncio.gather(
        run_paced(HOST, server.port, reader(get_runs, step_list), rate=rate, duration=duration,
                  connections=args.connections, result=gets),
        # one connection per reported run, so that its reports arrive in order
        *(run_paced(HOST, server.port, reporter(run), rate=args.reports_per_second / len(report_runs),
                    duration=duration, connections=1, result=posts)
          for run in report_runs),
    ))
    watch, started, intervals = Watch(server, gets, posts), time.perf_counter(), []
    cuts = [args.interval * n for n in range(1, int(duration // args.interval) + 1)]
    if not cuts or cuts[-1] < duration:
        cuts.append(duration)
    try:
        for n, cut in enumerate(cuts, 1):
            last = n == len(cuts)  # the last interval also takes the responses to requests in flight
            await asyncio.wait([loads], timeout=None if last else max(0.0, started + cut - time.perf_counter()))
            if loads.done() and not last:
                loads.result()  # a failed connection: raise now, not minutes later
                break
            intervals.append(await watch.cut(time.perf_counter() - started))
            print_interval(intervals[-1])
        await loads
    finally:
        loads.cancel()
    return intervals, (gets.unsent, posts.unsent)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--interval", type=int, default=30, help="seconds between two printed lines")
    parser.add_argument("--load", type=float, default=0.8, help="GET rate as a share of the measured peak")
    parser.add_argument("--peak-seconds", type=float, default=15)
    parser.add_argument("--runs", type=int, default=8, help="trained runs that are only read")
    parser.add_argument("--report-runs", type=int, default=4, help="runs that receive the reports (and are read)")
    parser.add_argument("--reports-per-second", type=float, default=20)
    parser.add_argument("--connections", type=int, default=32, help="keep-alive connections of the paced GETs")
    args = parser.parse_args()
    read_only = [f"soak-read-{i}" for i in range(args.runs)]
    reported = [f"soak-report-{i}" for i in range(args.report_runs)]
    step_list = steps(4096)
    get = reader(read_only + reported, step_list)

    with lrserve_server() as server:
        for run in read_only:
            create_trained_run(server.port, run)
        for run in reported:
            status, body = request_json(server.port, "PUT", f"/runs/{run}", SPEC)
            assert status == 201, (status, body)
        load(HOST, server.port, get, connections=16, requests=2_000)  # warmup
        peak = load(HOST, server.port, get, connections=16, duration=args.peak_seconds)
        if peak.errors:
            raise SystemExit(f"non-2xx responses while measuring the peak: {dict(peak.statuses)}")
        rate = args.load * peak.throughput
        print(f"peak, closed loop, 16 connections: {peak.summary()}")
        print(f"soak: {args.minutes:g} min of GET /lr at {rate:,.0f} req/s ({args.load:.0%} of peak) over "
              f"{len(read_only) + len(reported)} runs on {args.connections} connections, open loop; "
              f"{args.reports_per_second:g} reports/s over {len(reported)} runs")
        print(f"{'elapsed':>7s} {'GET/s':>8s} {'p50 ms':>8s} {'p99 ms':>8s} {'POST/s':>7s} {'p99 ms':>8s} "
              f"{'RSS MB':>8s} {'memory':>6s} {'non-2xx':>7s}", flush=True)
        rss_start = server.rss_bytes()
        intervals, unsent = asyncio.run(soak(server, read_only + reported, reported, step_list, rate, args))
        rss_end, hwm = server.rss_bytes(), server.peak_bytes()
        stored = {}
        for run in reported:
            status, body = request_json(server.port, "GET", f"/runs/{run}")
            assert status == 200, (status, body)
            stored[run] = body

    gets = sum(i.gets.count for i in intervals)
    posts = sum(i.posts.count for i in intervals)
    elapsed = intervals[-1].elapsed
    accepted = sum(b["reports"] for b in stored.values())  # type: ignore[index]
    reductions = sum((b["state"] or {}).get("reductions", 0) for b in stored.values())  # type: ignore[index]
    print(f"\nGETs: {gets:,} in {elapsed:.0f} s = {gets / elapsed:,.0f} req/s (target {rate:,.0f}); "
          f"{unsent[0]:,} fell due but were never sent (how far behind the server was at the end)")
    print(f"reports: {posts:,} answered, {accepted:,} stored, {unsent[1]:,} never sent; "
          f"{reductions} plateau reductions; non-2xx responses: {sum(i.non_2xx for i in intervals)}")
    print(f"RSS: start {rss_start / MB:.1f} MB, end {rss_end / MB:.1f} MB ({(rss_end - rss_start) / MB:+.1f} MB), "
          f"max sampled {max(i.rss for i in intervals) / MB:.1f} MB, peak since start (VmHWM) {hwm / MB:.1f} MB")
    first, last = intervals[0].gets, intervals[-1].gets
    print(f"GET p99: first interval {first.percentile(99) * 1e3:.2f} ms, last {last.percentile(99) * 1e3:.2f} ms "
          f"(p50 {first.percentile(50) * 1e3:.2f} -> {last.percentile(50) * 1e3:.2f} ms)")


if __name__ == "__main__":
    main()
