"""What a `GET /runs/{id}/lr` that misses the service's cache costs, measured inside this process.

`profile(url, run_ids, steps)` drives `lrserve.runs.Runs` directly on a database the benchmark filled,
and prints:

- the parts of one miss, one after the other: the stamp query (what an unsettled read of a cached run
  costs), `store.load`, `view_of` (validate the stored spec, build the schedule) and `RunView.lr` (its
  1,024-step block);
- the thread-pool hop: the endpoint runs any storage access with `run_in_threadpool`, so the same calls
  are made again from 16 concurrent tasks through that hop, as in the service, and the process's CPU
  time per call is compared with the direct calls;
- the memory one cached view holds (tracemalloc), next to the memo's 8 KiB per 1,024-step block;
- a cProfile of `Runs.view` + `RunView.lr` over random runs, by own time.
"""

from __future__ import annotations

import asyncio
import cProfile
import pstats
import random
import time
import tracemalloc
from collections.abc import Callable

from starlette.concurrency import run_in_threadpool

from lrserve.run_view import view_of
from lrserve.memo import BLOCK
from lrserve.runs import Runs
from lrserve.store import open_store

CONCURRENCY = 16


def _cpu_per_call(calls: list[Callable[[], object]], hop: bool) -> float:
    """CPU seconds of this process (every thread) per call, made directly or from 16 tasks via the pool."""
    async def through_pool() -> None:
        async def task(mine: list[Callable[[], object]]) -> None:
            for call in mine:
                await run_in_threadpool(call)
        await asyncio.gather(*(task(calls[i::CONCURRENCY]) for i in range(CONCURRENCY)))

    started = time.process_time()
    if hop:
        asyncio.run(through_pool())
    else:
        for call in calls:
            call()
    return (time.process_time() - started) / len(calls)


def profile(url: str, run_ids: list[str], one_run: str, steps: int, samples: int) -> None:
    rng = random.Random(2)
    store = open_store(url)
    try:
        def picks() -> list[tuple[str, int]]:
            return [(rng.choice(run_ids), rng.randrange(steps)) for _ in range(samples)]

        parts = dict.fromkeys(["stamp query (an unsettled read of a cached run)", "store.load (3 queries)",
                               "view_of (validate the spec, build the schedule)", "RunView.lr (a 1,024-step block)"],
                              0.0)
        names = list(parts)
        for run_id, step in picks():
            t0 = time.perf_counter()
            store.stamp(run_id)
            t1 = time.perf_counter()
            stored = store.load(run_id)
            t2 = time.perf_counter()
            view = view_of(stored)  # type: ignore[arg-type]
            t3 = time.perf_counter()
            view.lr(step)
            t4 = time.perf_counter()
            for name, spent in zip(names, (t1 - t0, t2 - t1, t3 - t2, t4 - t3)):
                parts[name] += spent
        miss = sum(parts[n] for n in names[1:])
        print(f"\nin process, one call at a time, mean of {samples} random runs: a miss costs "
              f"{miss / samples * 1e6:,.0f} µs")
        for name, spent in parts.items():
            share = "" if name == names[0] else f" ({spent / miss:.0%} of a miss)"
            print(f"  {name:50s} {spent / samples * 1e6:6,.0f} µs{share}")

        print(f"\nCPU µs per call, direct vs from {CONCURRENCY} tasks through run_in_threadpool (as the endpoint):")
        for hop in (False, True):
            runs = Runs(store)  # a fresh cache each time, so random runs miss; no event-log thread
            runs.view(one_run)
            stamp = _cpu_per_call([lambda: runs.view(one_run)] * samples, hop)
            misses = _cpu_per_call([lambda r=r, s=s: runs.view(r).lr(s) for r, s in picks()], hop)
            print(f"  {'through the pool' if hop else 'direct':16s} stamp check of a cached run {stamp * 1e6:6,.0f} µs,"
                  f" miss (load + compile + block) {misses * 1e6:6,.0f} µs")

        runs = Runs(store)
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        loaded = {run_id for run_id, _ in picks()}
        for run_id in loaded:
            runs.view(run_id)
        held = (tracemalloc.get_traced_memory()[0] - before) / len(loaded)
        tracemalloc.stop()
        print(f"\nmemory: one cached view holds {held / 1024:,.1f} KiB (tracemalloc); one memoized lr block "
              f"{BLOCK * 8 / 1024:.0f} KiB; the service keeps up to 10,000 views and 64 MiB of blocks")

        runs = Runs(store)
        profiler = cProfile.Profile()
        calls = picks()
        profiler.enable()
        for run_id, step in calls:
            runs.view(run_id).lr(step)
        profiler.disable()
        print(f"\ncProfile of Runs.view + RunView.lr on {samples} random runs (direct calls)")
        pstats.Stats(profiler).sort_stats("tottime").print_stats(15)
    finally:
        store.close()
