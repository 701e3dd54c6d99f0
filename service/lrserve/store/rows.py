"""Records to and from the rows both SQL backends store: JSON documents as text, nothing else."""

from __future__ import annotations

import json
from typing import Any

from lrserve.errors import RunNotFound
from lrserve.store.base import ReportRecord, RevisionRecord, RunRecord


def run_from_row(seq: int, run_id: str, spec: str, created_at: str, version: int) -> RunRecord:
    return RunRecord(run_id=run_id, spec=json.loads(spec), created_at=created_at, version=version, seq=seq)


def report_from_row(step: int, metrics: str, reduced: Any, next_lr: float, state: str | None,
                    received_at: str) -> ReportRecord:
    return ReportRecord(step, json.loads(metrics), bool(reduced), next_lr,
                        json.loads(state) if state else None, received_at)


def report_to_row(report: ReportRecord) -> tuple[int, str, bool, float, str | None, str]:
    state = json.dumps(report.state) if report.state is not None else None
    return (report.step, json.dumps(report.metrics), report.reduced, report.next_lr, state, report.received_at)


def revision_from_row(from_step: int, schedule: str, reason: str, created_at: str,
                      plateau: str | None) -> RevisionRecord:
    """`schedule` is the JSON text "null" for a plateau-only revision (the column predates them and is NOT
    NULL); `plateau` is NULL in rows written before revisions could change the plateau."""
    return RevisionRecord(from_step, json.loads(schedule), reason, created_at,
                          json.loads(plateau) if plateau else None)


def revision_to_row(revision: RevisionRecord) -> tuple[int, str, str, str, str | None]:
    plateau = json.dumps(revision.plateau) if revision.plateau is not None else None
    return (revision.from_step, json.dumps(revision.schedule), revision.reason, revision.created_at, plateau)


def checked_seq(row: Any, run_id: str) -> int:
    """The seq of the run's (seq, version) row, or RunNotFound if it is gone."""
    if row is None:
        raise RunNotFound(run_id)
    return row[0]
