"""`/runs/{id}/lr/curve` and `/preview`: lr curves downsampled for display (see `lrserve.curve`).

Both compute in the thread pool: a curve scans up to a million steps. `/preview` validates a spec exactly as
`PUT /runs/{id}` does and answers its curve without storing anything; it is a POST (the spec is a body), so
like every POST it needs a token of LRSERVE_TOKEN when auth is on, not a read-only one.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from lrserve.api.bodies import openapi_body, validated
from lrserve.api import answers
from lrserve.api.deps import RunId
from lrserve.api.schemas import ErrorOut, PreviewOut, RunCurveOut
from lrserve.curve import DEFAULT_POINTS, MAX_POINTS, MIN_POINTS, curve
from lrserve.run_view import new_view
from lrserve.runs import Runs
from lrserve.spec import MAX_STEP, RunSpec, accepted_warnings

router = APIRouter(tags=["display"], responses={422: {"model": ErrorOut}})

Start = Annotated[int, Query(ge=0, le=MAX_STEP, description="first step of the curve")]
Stop = Annotated[int | None, Query(ge=1, le=MAX_STEP + 1, description=(
    "first step not included; leave out for the run's extent: past its latest report and last revision, "
    "and the schedule's own horizon (its phase lengths)"))]
Points = Annotated[int, Query(ge=MIN_POINTS, le=MAX_POINTS, description=(
    "about how many points to answer: each of points/4 buckets keeps its first, lowest, highest and last step, "
    "plus every reduction and revision and the step before it"))]


@router.get("/runs/{run_id}/lr/curve", response_model=RunCurveOut, responses={404: {"model": ErrorOut}})
async def get_lr_curve(run_id: RunId, request: Request, start: Start = 0, stop: Stop = None,
                       points: Points = DEFAULT_POINTS) -> Response:
    """The run's lr curve for display: `steps` and their `lr` (each exactly the lr of that step), with the
    first step of every plateau reduction (`reductions`) and every revision's `from_step` (`revisions`)."""
    runs: Runs = request.app.state.runs
    view = await run_in_threadpool(runs.view, run_id)
    body = await run_in_threadpool(curve, view, start, stop, points)
    return answers.json_response(answers.run_curve(run_id, body), view.record.version)


@router.post("/preview", response_model=PreviewOut, openapi_extra=openapi_body(RunSpec))
async def preview(spec: Annotated[RunSpec, validated(RunSpec)], start: Start = 0, stop: Stop = None,
                  points: Points = DEFAULT_POINTS) -> Response:
    """The curve a run with this spec would start with, validated as `PUT /runs/{id}` validates it (422
    names the field), with the `warnings` its PUT would answer; nothing is stored."""
    def compute() -> dict:
        warnings = accepted_warnings(spec.schedule)
        return answers.preview(curve(new_view(spec), start, stop, points), warnings)

    return answers.json_response(await run_in_threadpool(compute))
