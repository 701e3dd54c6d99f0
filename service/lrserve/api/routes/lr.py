"""`/runs/{id}/lr` and `/runs/{id}/lr/range`: the hot path. Cached views, orjson, no storage on a hit."""

from __future__ import annotations

from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from lrserve.api import answers
from lrserve.api.deps import RunId
from lrserve.api.offload import off_the_loop_if_costly
from lrserve.api.ranges import LARGE, stream_range
from lrserve.api.schemas import ErrorOut, LrOut, LrRangeOut
from lrserve.run_view import RunView
from lrserve.runs import Runs, range_count
from lrserve.spec import MAX_STEP

router = APIRouter(tags=["learning rates"], responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}})
StepQuery = Annotated[int, Query(ge=0, le=MAX_STEP, description="0-based step (batch or epoch)")]


async def _view(request: Request, run_id: str, last_step: int) -> RunView:
    """The run's view: from memory when it is right for steps up to `last_step` (see `lrserve.freshness`),
    else checked against storage in the thread pool; counted as a hit or a miss of the view cache.

    `Runs` comes from `request.app.state` rather than a dependency: this is the hottest endpoint, and
    every FastAPI dependency costs a measurable share of a request.
    """
    state = request.app.state
    runs: Runs = state.runs
    view = runs.cached(run_id, last_step)
    if view is not None:
        state.telemetry.cache_hit.inc()
        return view
    state.telemetry.cache_miss.inc()
    view = await run_in_threadpool(runs.view, run_id)
    state.telemetry.refresh_cache_gauge()
    return view


@router.get("/runs/{run_id}/lr", response_model=LrOut)
async def get_lr(run_id: RunId, step: StepQuery, request: Request) -> Response:
    """The learning rate to train step `step` with, and for a run whose schedules cycle momentum its `momentum`
    (null at a step whose schedule in effect does not); a run without any answers no `momentum` field."""
    view = await _view(request, run_id, step)
    lr = await off_the_loop_if_costly(view.lr, step)  # a recursive expression may have to compute up to step
    return answers.json_response(answers.lr(view, run_id, step, lr), view.record.version)


@router.get("/runs/{run_id}/lr/range", response_model=LrRangeOut)
async def get_lr_range(
    run_id: RunId,
    request: Request,
    stop: Annotated[int, Query(ge=0, le=MAX_STEP + 1, description="first step not included")],
    start: StepQuery = 0,
    every: Annotated[int, Query(ge=1, le=MAX_STEP + 1)] = 1,  # bounded: it is echoed, and orjson stops at 2**64
) -> Response:
    """Learning rates of steps start, start+every, ... < stop (up to 1,000,000 values per call); `momentum`, a
    list of the same steps' momentum (null where none), only for a run whose schedules cycle momentum."""
    count = range_count(start, stop, every)
    view = await _view(request, run_id, start + every * (count - 1) if count else start)
    head = answers.lr_range_head(run_id, start, stop, every)
    if count < LARGE:
        steps = np.arange(start, stop, every, dtype=np.float64)
        lrs = await off_the_loop_if_costly(view.lrs, steps)
        momentums = view.momentums(steps)  # closed forms only: under 10,000 steps, cheap; None without momentum
        return answers.json_response(answers.lr_range(head, lrs, momentums), view.record.version)
    return await stream_range(request.app.state.range_slots, view, head, start, count, every,
                              answers.version_header(view.record.version))
