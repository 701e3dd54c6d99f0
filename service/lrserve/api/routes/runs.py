"""`/runs`: create, read, list and delete runs."""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request, Response
from starlette.concurrency import run_in_threadpool

from lrserve.api import answers, events
from lrserve.api.bodies import openapi_body, validated
from lrserve.api.deps import RunId, RunIdPrefix, RunsDep
from lrserve.api.schemas import ErrorOut, RunCreated, RunList, RunOut
from lrserve.api.waits import DEFAULT_WAIT, MAX_WAIT, until_reported
from lrserve.pages import parse_cursor
from lrserve.spec import MAX_STEP, RunSpec

router = APIRouter(tags=["runs"], responses={422: {"model": ErrorOut}})


@router.put("/runs/{run_id}", response_model=RunCreated, status_code=201,
            responses={200: {"model": RunCreated, "description": "The same spec already exists"},
                       409: {"model": ErrorOut}},
            openapi_extra=openapi_body(RunSpec))
def create_run(run_id: RunId, spec: Annotated[RunSpec, validated(RunSpec)], runs: RunsDep,
               response: Response) -> dict[str, Any]:
    """Create a run: 201; the same spec again: 200; a different spec under this id: 409. `warnings` names
    the first of the first 10,000 steps where the schedule's lr stops being a finite number >= 0."""
    created = runs.create(run_id, spec)
    events.run_put(run_id, created.new)
    response.status_code = 201 if created.new else 200
    response.headers.update(answers.version_header(created.view.record.version))
    return answers.run_created(created.view, created.warnings)


@router.get("/runs/{run_id}", response_model=RunOut,
            responses={304: {"description": "If-None-Match matched the run's ETag"}, 404: {"model": ErrorOut}})
async def get_run(
    run_id: RunId, runs: RunsDep, request: Request, response: Response,
    wait_for_step: Annotated[int | None, Query(
        ge=0, le=MAX_STEP, description="answer once the run has a report at this step or later, or after `wait` "
                                       "seconds (a worker waiting for the chief's report)")] = None,
    wait: Annotated[float, Query(gt=0, le=MAX_WAIT, description="seconds `wait_for_step` waits at most")]
        = DEFAULT_WAIT,
) -> Any:
    """The run, its spec, plateau state and revisions; 304 while `If-None-Match` matches its `ETag`.

    The ETag names this creation of the run and its version, so a run deleted and created again never
    matches an ETag of its predecessor. With `wait_for_step`, the answer waits (see `lrserve.api.waits`);
    `latest_step` tells whether the report came.
    """
    view = await run_in_threadpool(runs.view, run_id)
    if wait_for_step is not None:
        view = await until_reported(runs, run_id, view, wait_for_step, wait)
    etag = answers.etag(view.record.stamp)
    headers = {**answers.version_header(view.record.version), "ETag": etag}
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers=headers)
    response.headers.update(headers)
    return answers.run(view)


@router.delete("/runs/{run_id}", status_code=204, responses={404: {"model": ErrorOut}})
async def delete_run(run_id: RunId, runs: RunsDep) -> Response:
    """Remove the run and its whole history."""
    await run_in_threadpool(runs.delete, run_id)
    events.deleted(run_id)
    await asyncio.sleep(runs.lease)  # every process has seen it before anyone is told
    return Response(status_code=204)


@router.get("/runs", response_model=RunList)
def list_runs(
    runs: RunsDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
    cursor: Annotated[str | None, Query(description="a next_cursor from the previous page")] = None,
    prefix: RunIdPrefix = None,
) -> dict[str, Any]:
    """Runs, oldest first, only those whose id starts with `prefix` if given; pass `next_cursor` back as
    `cursor` (with the same `prefix`) for the next page."""
    listed = runs.list_runs(parse_cursor(cursor), limit + 1, prefix)
    page = listed[:limit]
    return answers.run_list(page, str(page[-1].record.seq) if len(listed) > limit else None)
