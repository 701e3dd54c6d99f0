"""Large `lr/range` answers, bounded in memory per request and in total, and never held by a slow client.

A range of up to 1,000,000 values is checked first, in chunks of 65,536 steps (so numpy's temporaries
stay small): a step whose lr is not finite is a 422, decided before anything is sent. At most
`RangeSlots.size` ranges are checked at once. The answer is then computed again and sent a chunk at a
time; sending waits for the client to read (the server's flow control), so a client that never reads
holds one chunk and no slot: it cannot keep other clients' ranges waiting.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from lrserve.run_view import RunView

CHUNK = 65_536
LARGE = 10_000
"""Ranges with at least this many values take this path; smaller ones are answered at once."""


class RangeSlots:
    """How many large ranges may be in flight at once (each holds up to 8 MB of values)."""

    def __init__(self, size: int = 4) -> None:
        self.size = size
        self._free = asyncio.Semaphore(size)

    async def acquire(self) -> None:
        await self._free.acquire()

    def release(self) -> None:
        self._free.release()


def lrs_of_chunk(view: RunView, start: int, first: int, count: int, every: int) -> np.ndarray:
    """The lrs of the range's values first .. first + CHUNK (fewer at its end); InvalidInput where bad."""
    n = min(CHUNK, count - first)
    return view.lrs(start + every * np.arange(first, first + n, dtype=np.float64))


def momentums_of_chunk(view: RunView, start: int, first: int, count: int, every: int) -> np.ndarray:
    """The momentum of the same steps as `lrs_of_chunk` (NaN, sent as null, where none); the run has some."""
    n = min(CHUNK, count - first)
    return view.momentum(start + every * np.arange(first, first + n, dtype=np.float64))


def check_range(view: RunView, start: int, count: int, every: int) -> None:
    for first in range(0, count, CHUNK):
        lrs_of_chunk(view, start, first, count, every)


async def stream_range(slots: RangeSlots, view: RunView, head: dict, start: int, count: int, every: int,
                       headers: dict[str, str]) -> StreamingResponse:
    """The answer `{**head, "lr": [...]}` (and `"momentum": [...]` for a run that cycles momentum), checked,
    then computed off the event loop and sent in chunks."""
    await slots.acquire()
    try:
        await run_in_threadpool(check_range, view, start, count, every)
    finally:
        slots.release()

    async def body() -> AsyncIterator[bytes]:
        yield orjson.dumps(head)[:-1] + b',"lr":['
        for first in range(0, count, CHUNK):
            values = await run_in_threadpool(lrs_of_chunk, view, start, first, count, every)
            yield (b"," if first else b"") + orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
        if view.momentum is not None:
            yield b'],"momentum":['
            for first in range(0, count, CHUNK):
                values = await run_in_threadpool(momentums_of_chunk, view, start, first, count, every)
                yield (b"," if first else b"") + orjson.dumps(values, option=orjson.OPT_SERIALIZE_NUMPY)[1:-1]
        yield b"]}"

    return StreamingResponse(body(), media_type="application/json", headers=headers)
