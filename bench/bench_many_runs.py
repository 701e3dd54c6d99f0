"""GET /runs/{id}/lr with 100,000 runs stored: one run asked again and again, against random runs.

    .venv/bin/python bench/bench_many_runs.py [--database sqlite|postgresql] [--runs 100000]
                                              [--requests 20000] [--connections 16] [--profile]

The runs go straight into the service's tables (created by `lrserve.store.open_store`) in one
transaction, as the rows the service itself writes: the canonical spec JSON of bench_lr.py's run
(warmup + cosine in batches, Keras plateau) and, on every 10th run, 5 reports decided by
`RunView.accept` (`report_to_row`, the version bumped once per report). 100,000 PUTs, a durable
commit each, would take minutes. Then one `lrserve serve` starts on that database and answers:

(a) one run (with reports), random steps up to its latest report: every read from memory;
(a2) the same run, the step after its latest report: one stamp query per read, through the thread pool;
(b) a random run among all for each request, a random step below 10,000: mostly cache misses (the
    service keeps 10,000 views), each loading the run's row, reports and revisions, compiling its
    spec and computing the 1,024-step lr block of the step.

Prints req/s, p50, p99 and the service's CPU time per request of each, the ratio random/one
(target: p99 <= 1.2), and the service's resident memory (VmRSS) after start, after (a) and after
(b). `--profile` then measures, in this process, what a cache miss costs (see `_miss_profile.py`).
"""

from __future__ import annotations

import argparse
import itertools
import json
import random
import sqlite3
import time

from _databases import KINDS, database
from _load import LoadResult, Request, load
from _miss_profile import profile
from _servers import HOST, Server, lrserve_processes
from _specs import REPORT_EVERY, SPEC, val_loss
from lrserve.run_view import view_of
from lrserve.runs import now
from lrserve.spec import Report, RunSpec
from lrserve.store import RunRecord, StoredRun, open_store
from lrserve.store.sql import report_to_row

REPORTS_EVERY_NTH_RUN = 10
REPORTS_PER_RUN = 5
LATEST_REPORT = REPORTS_PER_RUN * REPORT_EVERY - 1
STEPS = 10_000  # steps asked for: [0, STEPS)


def run_id(index: int) -> str:
    return f"run-{index:06d}"


def report_rows() -> list[tuple[object, ...]]:
    """The report rows the service stores for 5 validations of the spec (they do not depend on the run id)."""
    view = view_of(StoredRun(RunRecord(run_id="template", spec_json=RunSpec.model_validate(SPEC).canonical(),
                                       created_at=now())))
    rows = []
    for epoch in range(REPORTS_PER_RUN):
        report = Report(step=(epoch + 1) * REPORT_EVERY - 1, metrics={"val_loss": val_loss(epoch)})
        record, after = view.accept(report, now())
        assert after is not None
        view = after
        rows.append(report_to_row(record))
    return rows


def store_runs(url: str, count: int) -> None:
    """Write `count` runs (and the reports of every 10th) in one transaction, as the service would."""
    open_store(url).close()  # the service's own schema
    spec = json.dumps(RunSpec.model_validate(SPEC).canonical())
    created_at = now()
    reports = report_rows()
    runs = [(run_id(i), spec, created_at, REPORTS_PER_RUN if i % REPORTS_EVERY_NTH_RUN == 0 else 0)
            for i in range(count)]
    insert_runs = "INSERT INTO runs (run_id, spec, created_at, version) VALUES (?, ?, ?, ?)"
    insert_reports = ("INSERT INTO reports (run_seq, step, metrics, reduced, next_lr, state, received_at) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)")
    if url.startswith("sqlite:///"):
        with sqlite3.connect(url.removeprefix("sqlite:///")) as db:  # one transaction, committed on exit
            db.executemany(insert_runs, runs)
            seqs = dict(db.execute("SELECT run_id, seq FROM runs").fetchall())
            db.executemany(insert_reports, [(seqs[run_id(i)], *row) for i in range(0, count, REPORTS_EVERY_NTH_RUN)
                                            for row in reports])
    else:
        import psycopg

        with psycopg.connect(url) as db, db.cursor() as cursor:  # one transaction, committed on exit
            with cursor.copy("COPY runs (run_id, spec, created_at, version) FROM STDIN") as copy:
                for row in runs:
                    copy.write_row(row)
            seqs = dict(cursor.execute("SELECT run_id, seq FROM runs").fetchall())
            with cursor.copy("COPY reports (run_seq, step, metrics, reduced, next_lr, state, received_at) "
                             "FROM STDIN") as copy:
                for i in range(0, count, REPORTS_EVERY_NTH_RUN):
                    for row in reports:
                        copy.write_row((seqs[run_id(i)], *row))


def measure(server: Server, picks: list[tuple[int, int]], connections: int) -> tuple[LoadResult, float]:
    """One GET /lr per (run index, step) in `picks`, in order, over `connections` keep-alive connections;
    and the service's CPU seconds per request meanwhile."""
    counter = itertools.count()

    def make(conn: int, k: int) -> Request:
        index, step = picks[next(counter)]
        return Request("GET", f"/runs/{run_id(index)}/lr?step={step}")

    cpu = server.cpu_seconds()
    result = load(HOST, server.port, make, connections=connections, requests=len(picks))
    if result.errors:
        raise SystemExit(f"non-2xx responses: {dict(result.statuses)}")
    return result, (server.cpu_seconds() - cpu) / result.count


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database", choices=KINDS, default="sqlite")
    parser.add_argument("--runs", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=20_000, help="per measurement")
    parser.add_argument("--connections", type=int, default=16)
    parser.add_argument("--profile", action="store_true", help="then profile cache misses in this process")
    parser.add_argument("--profile-samples", type=int, default=2_000)
    args = parser.parse_args()
    rng = random.Random(0)
    one = [(0, rng.randrange(LATEST_REPORT + 1)) for _ in range(args.requests)]
    spread = [(rng.randrange(args.runs), rng.randrange(STEPS)) for _ in range(args.requests)]

    with database(args.database) as url:
        started = time.perf_counter()
        store_runs(url, args.runs)
        print(f"{args.database}: stored {args.runs:,} runs ({args.runs // REPORTS_EVERY_NTH_RUN:,} with "
              f"{REPORTS_PER_RUN} reports) in {time.perf_counter() - started:.1f} s")
        with lrserve_processes(url) as (server,):
            rss = {"after start": server.rss_bytes()}
            measure(server, one[:1_000], args.connections)  # warm up the hot path and the connections
            rows = {"(a) one run": measure(server, one, args.connections)}
            rss["after (a) one run"] = server.rss_bytes()
            rows["(a2) one run, unsettled step (stamp query)"] = measure(
                server, [(0, LATEST_REPORT + 1)] * args.requests, args.connections)
            measure(server, [(rng.randrange(args.runs), rng.randrange(STEPS)) for _ in range(500)], args.connections)
            rows["(b) random runs"] = measure(server, spread, args.connections)
            rss["after (b) random runs"] = server.rss_bytes()

        plural = "" if args.connections == 1 else "s"
        print(f"\nGET /runs/{{id}}/lr, {args.runs:,} runs stored, {args.connections} keep-alive connection{plural}, "
              f"{args.requests:,} requests each")
        print(f"{'':40s} {'req/s':>7s} {'p50 ms':>7s} {'p99 ms':>7s} {'service CPU µs/req':>18s}")
        for name, (result, cpu) in rows.items():
            print(f"{name:40s} {result.throughput:7,.0f} {result.percentile(50) * 1e3:7.2f} "
                  f"{result.percentile(99) * 1e3:7.2f} {cpu * 1e6:18,.0f}")
        (a, a_cpu), (b, b_cpu) = rows["(a) one run"], rows["(b) random runs"]
        print(f"ratio random/one: p50 {b.percentile(50) / a.percentile(50):.2f}, "
              f"p99 {b.percentile(99) / a.percentile(99):.2f} (target <= 1.2), "
              f"throughput {b.throughput / a.throughput:.2f}, service CPU per request {b_cpu / a_cpu:.2f}")
        print("service RSS: " + ", ".join(f"{name} {value / 2**20:,.0f} MiB" for name, value in rss.items()))
        if args.profile:
            profile(url, [run_id(i) for i in range(args.runs)], run_id(0), STEPS, args.profile_samples)


if __name__ == "__main__":
    main()
