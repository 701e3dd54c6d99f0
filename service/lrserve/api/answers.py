"""Response bodies and the run-scoped headers: every answer's fields, listed here, in the order they are sent.

Routes hand these what the use cases returned; nothing is built from a store record's `__dict__`, so a field
added to a record never leaks into an answer, and a field's name and source are found in one place. The
field lists match the response models in `lrserve.api.schemas` (the OpenAPI document).

Every run-scoped answer carries the run's version in `X-Run-Version` (see `version_header`); `GET /runs/{id}`
also carries the run's ETag, its *stamp* (seq, version) quoted (see `etag`).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from typing import Any

import orjson
from fastapi import Response

from lrserve.run_view import RunView
from lrserve.lr_finder import RangeTest
from lrserve.plateau import TrackerState
from lrserve.store import ListedRun, ReportRecord, RevisionRecord, RunRecord, Stamp

VERSION_HEADER = "X-Run-Version"
"""Every run-scoped response carries the run's version; it grows with each accepted write."""


def version_header(version: int) -> dict[str, str]:
    """The header every run-scoped answer carries: the run's version after the request."""
    return {VERSION_HEADER: str(version)}


def etag(stamp: Stamp) -> str:
    """The ETag of a run: its stamp (seq, version), so a run deleted and created again (a new seq) never
    matches an ETag of its predecessor."""
    seq, version = stamp
    return f'"{seq}-{version}"'


def json_response(body: object, version: int | None = None) -> Response:
    """A body written with orjson (numpy arrays as lists) for the routes that bypass the response model
    for speed; with the version header when the answer is run-scoped."""
    return Response(orjson.dumps(body, option=orjson.OPT_SERIALIZE_NUMPY), media_type="application/json",
                    headers=None if version is None else version_header(version))


def tracker_state(state: TrackerState | None) -> dict[str, Any] | None:
    if state is None:
        return None
    return {"best": state.best, "wait": state.wait, "cooldown_counter": state.cooldown_counter,
            "reductions": state.reductions}


def revision(record: RevisionRecord) -> dict[str, Any]:
    return {"from_step": record.from_step, "schedule": record.schedule, "reason": record.reason,
            "created_at": record.created_at, "plateau": record.plateau}


def run(view: RunView) -> dict[str, Any]:
    """`GET /runs/{id}`, and the run after a rewind."""
    return {
        "run_id": view.record.run_id,
        "spec": view.record.spec_json,
        "state": tracker_state(view.state),
        "latest_step": view.latest_step,
        "reports": len(view.reports),
        "revisions": [revision(r) for r in view.revisions],
        "created_at": view.record.created_at,
        "version": view.record.version,
    }


def run_created(view: RunView, warnings: list[str]) -> dict[str, Any]:
    return {**run(view), "warnings": warnings}


def run_list(listed: Iterable[ListedRun], next_cursor: str | None) -> dict[str, Any]:
    return {
        "runs": [
            {"run_id": r.record.run_id, "spec": r.record.spec_json, "created_at": r.record.created_at,
             "latest_step": r.latest_step, "version": r.record.version}
            for r in listed
        ],
        "next_cursor": next_cursor,
    }


def report_outcome(run_id: str, record: ReportRecord, warnings: list[str]) -> dict[str, Any]:
    """A report's answer; `state` is the tracker state stored with the report (a JSON document)."""
    return {"run_id": run_id, "step": record.step, "next_lr": record.next_lr, "reduced": record.reduced,
            "state": record.state, "warnings": warnings}


def report_entry(record: ReportRecord) -> dict[str, Any]:
    return {"step": record.step, "metrics": record.metrics, "reduced": record.reduced, "next_lr": record.next_lr,
            "state": record.state, "received_at": record.received_at}


def report_list(run_id: str, page: Iterable[ReportRecord], next_after_step: int | None) -> dict[str, Any]:
    return {"run_id": run_id, "reports": [report_entry(r) for r in page], "next_after_step": next_after_step}


def revision_created(run_id: str, record: RevisionRecord, warnings: list[str]) -> dict[str, Any]:
    return {"run_id": run_id, **revision(record), "warnings": warnings}


def lr(view: RunView, run_id: str, step: int, value: float) -> dict[str, Any]:
    """`GET /runs/{id}/lr`: `momentum` only for a run whose schedules cycle momentum (the contract's absent)."""
    if view.momentum is None:
        return {"run_id": run_id, "step": step, "lr": value}
    return {"run_id": run_id, "step": step, "lr": value, "momentum": view.momentum_at(step)}


def lr_range_head(run_id: str, start: int, stop: int, every: int) -> dict[str, Any]:
    """The fields of `GET /runs/{id}/lr/range` before its lists (a large range streams the lists after it)."""
    return {"run_id": run_id, "start": start, "stop": stop, "every": every}


def lr_range(head: dict[str, Any], lrs: Any, momentums: Any | None) -> dict[str, Any]:
    """`GET /runs/{id}/lr/range`: the head, `lr`, and `momentum` only for a run that cycles momentum."""
    if momentums is None:
        return {**head, "lr": lrs}
    return {**head, "lr": lrs, "momentum": momentums}


def lr_finder(run_id: str, monitor: str, test: RangeTest) -> dict[str, Any]:
    """`GET /runs/{id}/lr-finder`: a point per report of `monitor`, the suggestion, the step it diverged at."""
    points = [{"step": step, "lr": lr, "loss": metric_number(loss), "smoothed": metric_number(smoothed)}
              for step, lr, loss, smoothed in zip(test.steps, test.lrs, test.losses, test.smoothed)]
    return {"run_id": run_id, "monitor": monitor, "points": points, "suggestion": test.suggestion,
            "diverged_at": None if test.diverged_at is None else test.steps[test.diverged_at]}


def metric_number(value: float) -> float | str:
    """A loss as the API writes metrics: a JSON number, or "NaN", "Infinity", "-Infinity"."""
    if math.isfinite(value):
        return value
    return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"


def run_curve(run_id: str, curve: dict[str, Any]) -> dict[str, Any]:
    """`GET /runs/{id}/lr/curve`: the run's id, then the curve's fields (see `lrserve.curve`)."""
    return {"run_id": run_id, **curve}


def preview(curve: dict[str, Any], warnings: list[str]) -> dict[str, Any]:
    """`POST /preview`: the curve's fields, then the warnings a PUT of the spec would answer."""
    return {**curve, "warnings": warnings}
