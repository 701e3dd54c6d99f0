"""Keep the event loop free of long computations: run one there only while it is cheap."""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

from starlette.concurrency import run_in_threadpool

from lrserve.schedules import NotCached, cached_only

T = TypeVar("T")


async def off_the_loop_if_costly(compute: Callable[..., T], *args: object, costly: bool = False) -> T:
    """`compute(*args)`: on the event loop when it is cheap, else in the thread pool.

    Any schedule over a few steps is cheap, except a recursive expression whose steps are not computed yet:
    it computes them in order, up to about a second for step 1,000,000. So the first try here only reads
    recursive expressions' caches (`cached_only`), and when a step is missing (`NotCached`) the computation
    moves to the pool; the event loop, and every other request on it (/healthz too), never waits for it.
    `costly=True` goes to the pool at once.
    """
    if not costly:
        try:
            with cached_only():
                return compute(*args)
        except NotCached:
            pass
    return await run_in_threadpool(compute, *args)
