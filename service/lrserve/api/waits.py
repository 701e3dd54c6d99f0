"""Waiting for a report: `GET /runs/{id}?wait_for_step=N` answers once the run has a report at step N or later.

A worker that does not report (the chief reports for everyone) must not train its next epoch before the
chief's report is in, when the run has a plateau tracker: the report may reduce the lr. Polling from the
worker would cost a request every few milliseconds of the chief's validation; here the worker sends one
request and the service checks for it, in this process, how long the chief takes. The check is the read
path's (`Runs.view`: one stamp query, a reload only when another process wrote), at most every
`MAX_INTERVAL` seconds, so a report acknowledged by any process is seen within that.
"""

from __future__ import annotations

import asyncio

from starlette.concurrency import run_in_threadpool

from lrserve.run_view import RunView
from lrserve.runs import Runs

MAX_WAIT = 10.0
"""The longest a request waits, in seconds: well within a client's timeout and a graceful shutdown."""
DEFAULT_WAIT = 5.0
FIRST_INTERVAL = 0.005
MAX_INTERVAL = 0.05


def reported(view: RunView, step: int) -> bool:
    return view.latest_step is not None and view.latest_step >= step


async def until_reported(runs: Runs, run_id: str, view: RunView, step: int, seconds: float) -> RunView:
    """The run's view once it has a report at `step` or later, or after `seconds`, whichever comes first."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    interval = FIRST_INTERVAL
    while not reported(view, step):
        left = deadline - loop.time()
        if left <= 0:
            break
        await asyncio.sleep(min(interval, left))
        interval = min(interval * 2, MAX_INTERVAL)
        view = await run_in_threadpool(runs.view, run_id)
    return view
