"""`/runs/{id}/metrics`, `/rewind` and `/revisions`: the writes that make up a run's history."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response
from starlette.concurrency import run_in_threadpool

from lrserve.api import answers, events
from lrserve.api.bodies import openapi_body, validated
from lrserve.api.deps import RunId, RunsDep
from lrserve.api.schemas import ErrorOut, ReportList, ReportOutcome, RevisionCreated, RunOut
from lrserve.pages import report_page
from lrserve.spec import MAX_STEP, Report, Revision, Rewind

MAX_REPORTS_PAGE = 10_000

router = APIRouter(
    tags=["history"],
    responses={404: {"model": ErrorOut}, 409: {"model": ErrorOut}, 422: {"model": ErrorOut}},
)


@router.post("/runs/{run_id}/metrics", response_model=ReportOutcome)
def report_metrics(run_id: RunId, report: Report, runs: RunsDep, response: Response) -> dict[str, Any]:
    """Report metrics measured at the end of `step`; committed before this answers. `warnings` says when the
    report lacks the metric the plateau monitors (it is recorded but does not move the tracker)."""
    answer = runs.report(run_id, report)
    record = answer.record
    events.reported(run_id, record, answer.new)
    response.headers.update(answers.version_header(answer.version))
    return answers.report_outcome(run_id, record, answer.warnings)


@router.get("/runs/{run_id}/metrics", response_model=ReportList)
def list_reports(
    run_id: RunId,
    runs: RunsDep,
    response: Response,
    after_step: Annotated[int | None, Query(ge=-1, le=MAX_STEP, description=(
        "only reports on later steps: the next_after_step of the previous page; leave out to start "
        "from the first report"))] = None,
    limit: Annotated[int, Query(ge=1, le=MAX_REPORTS_PAGE, description="at most this many reports")] = 1000,
) -> dict[str, Any]:
    """The accepted reports, oldest first, each with its outcome, a page at a time: pass `next_after_step`
    back as `after_step` for the next page; it is null on the last page."""
    view = runs.view(run_id)
    response.headers.update(answers.version_header(view.record.version))
    page, next_after_step = report_page(view.reports, after_step, limit)
    return answers.report_list(run_id, page, next_after_step)


@router.post("/runs/{run_id}/rewind", response_model=RunOut)
async def rewind(run_id: RunId, body: Rewind, runs: RunsDep, response: Response) -> dict[str, Any]:
    """Forget every report after `step` (resume from a checkpoint); revisions are kept."""
    view = await run_in_threadpool(runs.rewind, run_id, body)
    events.rewound(run_id, body.step, view)
    await asyncio.sleep(runs.lease)  # every process has seen it before anyone is told
    response.headers.update(answers.version_header(view.record.version))
    return answers.run(view)


@router.post("/runs/{run_id}/revisions", response_model=RevisionCreated, status_code=201,
             responses={200: {"model": RevisionCreated, "description": "A repeat of an accepted revision"}},
             openapi_extra=openapi_body(Revision))
async def revise(run_id: RunId, body: Annotated[Revision, validated(Revision)], runs: RunsDep,
                 response: Response) -> dict[str, Any]:
    """From `from_step` on, follow a new schedule (which sees `step - from_step`) and/or decide reports with
    changed plateau settings: 201. The same body as an accepted revision: 200 with the original, nothing
    stored. `warnings` names the first of the schedule's first 10,000 steps where its lr stops being finite."""
    revised = await run_in_threadpool(runs.revise, run_id, body)
    events.revised(run_id, revised.record, revised.new)
    if revised.new:
        await asyncio.sleep(runs.lease)  # every process has seen it before anyone is told
    response.status_code = 201 if revised.new else 200
    response.headers.update(answers.version_header(revised.version))
    return answers.revision_created(run_id, revised.record, revised.warnings)
