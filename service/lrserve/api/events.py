"""The domain events, counted and logged in one place: a run created or deleted, a report accepted or
repeated, a reduction taken, a conflict, a rewind, a revision.

They are derived in the HTTP layer from what the use cases return (`created`, the report's `reduced`, the
exception raised), so the pure core stays free of logging and metrics. A route calls one function here
after its use case succeeded; the error handler calls `conflict`. The request's `Telemetry` and id come
from the request context (`lrserve.api.observe`).
"""

from __future__ import annotations

import logging
import os

from lrserve import __version__
from lrserve.api.observe import current
from lrserve.errors import Conflict, ReportConflict, RevisionConflict, SpecConflict
from lrserve.run_view import RunView
from lrserve.logs import log_event
from lrserve.settings import Settings, masked_url
from lrserve.store import ReportRecord, RevisionRecord

CONFLICT_KINDS: dict[type[Conflict], str] = {SpecConflict: "spec", ReportConflict: "report", RevisionConflict: "revision"}


def run_put(run_id: str, created: bool) -> None:
    """PUT /runs/{id} answered: a new run (201), or the same spec again (200)."""
    telemetry = current().telemetry
    if created:
        telemetry.runs_created.inc()
        log_event("run_created", run_id=run_id)
    else:
        telemetry.repeats.labels("spec").inc()
        log_event("repeat", kind="spec", run_id=run_id)
    telemetry.refresh_cache_gauge()


def reported(run_id: str, record: ReportRecord, new: bool) -> None:
    """A report answered 200: accepted (and maybe a reduction), or an exact repeat of an accepted one."""
    telemetry = current().telemetry
    outcome = {"run_id": run_id, "step": record.step, "reduced": record.reduced, "next_lr": record.next_lr}
    if not new:
        telemetry.repeats.labels("report").inc()
        log_event("repeat", kind="report", **outcome)
        return
    telemetry.reports_accepted.inc()
    log_event("report_accepted", **outcome)
    if record.reduced:
        telemetry.reductions.inc()
        reductions = record.state["reductions"] if record.state else None
        log_event("reduction", run_id=run_id, step=record.step, next_lr=record.next_lr, reductions=reductions)
    telemetry.refresh_cache_gauge()


def rewound(run_id: str, step: int, view: RunView) -> None:
    current().telemetry.rewinds.inc()
    log_event("rewind", run_id=run_id, step=step, latest_step=view.latest_step, reports=len(view.reports),
              version=view.record.version)


def revised(run_id: str, record: RevisionRecord, new: bool) -> None:
    """A revision answered: accepted (201), or an exact repeat of an accepted one (200)."""
    telemetry = current().telemetry
    if not new:
        telemetry.repeats.labels("revision").inc()
        log_event("repeat", kind="revision", run_id=run_id, from_step=record.from_step)
        return
    telemetry.revisions.inc()
    log_event("revision", run_id=run_id, from_step=record.from_step, reason=record.reason,
              schedule=record.schedule is not None, plateau=record.plateau)


def deleted(run_id: str) -> None:
    telemetry = current().telemetry
    telemetry.runs_deleted.inc()
    log_event("run_deleted", run_id=run_id)
    telemetry.refresh_cache_gauge()


def conflict(run_id: str | None, error: Conflict) -> None:
    """A write refused with 409; this line stands for the request's error line."""
    context = current()
    kind = next((name for cls, name in CONFLICT_KINDS.items() if isinstance(error, cls)), "other")
    context.telemetry.conflicts.labels(kind).inc()
    context.error_logged = True
    log_event("conflict", logging.WARNING, kind=kind, run_id=run_id, status=409, detail=str(error))


def started(settings: Settings) -> None:
    log_event("started", version=__version__, pid=os.getpid(), database=masked_url(settings.database_url),
              auth="on" if settings.auth else "off", access_log=settings.access_log,
              metrics="multiprocess" if os.environ.get("PROMETHEUS_MULTIPROC_DIR") else "single process")


def stopped() -> None:
    log_event("stopped", pid=os.getpid())
