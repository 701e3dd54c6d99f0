"""Large `lr/range` answers, bounded in memory per request and in total.

A range of up to 1,000,000 values is computed in chunks of 65,536 steps (so numpy's temporaries stay
small) into one float64 array (8 MB at most), checked whole (a step whose lr is not finite is a 422,
decided before anything is sent), then sent as JSON a chunk at a time. Sending waits for the client to
read (the server's flow control), so a client that never reads holds one array, not the whole JSON.
At most `RangeSlots.size` large ranges are computed or sent at once; the others wait their turn.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import numpy as np
import orjson
from starlette.concurrency import run_in_threadpool
from starlette.responses import StreamingResponse

from lrserve.history import RunView

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


def lrs_in_chunks(view: RunView, start: int, count: int, every: int) -> np.ndarray:
    values = np.empty(count, dtype=np.float64)
    for first in range(0, count, CHUNK):
        n = min(CHUNK, count - first)
        steps = start + every * np.arange(first, first + n, dtype=np.float64)
        values[first:first + n] = view.lrs(steps)
    return values


async def stream_range(slots: RangeSlots, view: RunView, head: dict, start: int, count: int, every: int,
                       headers: dict[str, str]) -> StreamingResponse:
    """The answer `{**head, "lr": [...]}`, computed off the event loop and sent in chunks."""
    await slots.acquire()
    try:
        values = await run_in_threadpool(lrs_in_chunks, view, start, count, every)
    except BaseException:
        slots.release()
        raise

    async def body() -> AsyncIterator[bytes]:
        try:
            yield orjson.dumps(head)[:-1] + b',"lr":['
            for first in range(0, count, CHUNK):
                chunk = orjson.dumps(values[first:first + CHUNK], option=orjson.OPT_SERIALIZE_NUMPY)
                yield (b"," if first else b"") + chunk[1:-1]
            yield b"]}"
        finally:
            slots.release()

    return StreamingResponse(body(), media_type="application/json", headers=headers)
