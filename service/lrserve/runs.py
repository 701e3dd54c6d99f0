"""The use cases: create, read, report, rewind, revise. No HTTP here and no SQL.

Reads are served from an in-memory view per run, loaded from storage and revalidated (one cheap query
for the run's stamp) when older than `revalidate_after` seconds; every write goes to storage first
(committed) and then swaps in a new view. Writes to one run, and loads of it, are serialized by a
per-run lock in this process; across processes sharing a database, each write carries the stamp of the
view it was decided on, and a write that lost the race is decided again on a fresh view.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections.abc import Callable
from collections import OrderedDict
from dataclasses import asdict, replace
from datetime import datetime, timezone
from typing import Any, TypeVar

import numpy as np

from lrserve.errors import (
    InvalidInput,
    ReportConflict,
    RevisionConflict,
    RunNotFound,
    SpecConflict,
    StorageUnavailable,
)
from lrserve.history import RunView, schedule_with_revisions, view_of
from lrserve.plateau import advance
from lrserve.spec import MAX_STEP, Report, Revision, Rewind, RunSpec
from lrserve.store import ReportRecord, RevisionRecord, RunRecord, Stamp, StaleRun, Store

MAX_RANGE_VALUES = 1_000_000
_WRITE_ATTEMPTS = 5
_LOCK_STRIPES = 1024
T = TypeVar("T")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


def canonical_metrics(metrics: dict[str, Any]) -> str:
    return json.dumps(metrics, sort_keys=True)


class Runs:
    """Every operation on runs, over one `Store`, with a bounded cache of compiled views."""

    def __init__(self, store: Store, cache_size: int = 10_000, revalidate_after: float = 1.0) -> None:
        self.store = store
        self._cache: OrderedDict[str, RunView] = OrderedDict()
        self._cache_size = cache_size
        self._revalidate_after = revalidate_after
        self._checked_at: dict[str, float] = {}
        # Striped locks: bounded memory however many runs come and go; two runs may share a stripe.
        self._locks = [threading.RLock() for _ in range(_LOCK_STRIPES)]

    # -- reading -------------------------------------------------------------------------------

    def cached(self, run_id: str) -> RunView | None:
        """The view if it is in memory and recently checked; never touches storage (the fast path of GET /lr)."""
        view = self._cache.get(run_id)
        return view if view is not None and self._fresh(run_id) else None

    def view(self, run_id: str) -> RunView:
        """The current view: from memory, revalidated against storage when due, else loaded."""
        view = self.cached(run_id)
        if view is not None:
            return view
        # Under the run's lock, so that a slow load never caches a view older than a concurrent write.
        with self._lock(run_id):
            view = self._cache.get(run_id)
            if view is not None and (self._fresh(run_id) or self._still_current(view)):
                return view
            stored = self.store.load(run_id)
            if stored is None:
                self._forget(run_id)
                raise RunNotFound(run_id)
            return self._remember(view_of(stored))

    def list_runs(self, after_seq: int, limit: int) -> list[RunRecord]:
        return self.store.list_runs(after_seq, limit)

    # -- writing -------------------------------------------------------------------------------

    def create(self, run_id: str, spec: RunSpec) -> tuple[RunView, bool]:
        """Create the run; (view, False) when the same spec already exists under this id."""
        canonical = spec.canonical()
        with self._lock(run_id):
            created = self.store.create_run(RunRecord(run_id=run_id, spec=canonical, created_at=now()))
            self._forget(run_id)
            view = self.view(run_id)
        if not created and view.record.spec != canonical:
            raise SpecConflict(
                f"Run {run_id!r} already exists with a different spec; use another run id, "
                f"DELETE /runs/{run_id} first, or POST /runs/{run_id}/revisions to change its schedule."
            )
        return view, created

    def delete(self, run_id: str) -> None:
        with self._lock(run_id):
            deleted = self.store.delete_run(run_id)
            self._forget(run_id)
        if not deleted:
            raise RunNotFound(run_id)

    def report(self, run_id: str, report: Report) -> tuple[ReportRecord, int]:
        """Accept a report (or recognise a repeat); return its outcome and the run's version."""
        return self._write(run_id, lambda view: self._report(view, report))

    def _report(self, view: RunView, report: Report) -> tuple[ReportRecord, int]:
        repeat = self._check_order(view, report)
        if repeat is not None:
            return repeat, view.record.version
        record, after = self._decide(view, report)
        version = self.store.append_report(view.record.run_id, record, expected=_stamp(view))
        self._remember(replace(after, record=replace(view.record, version=version)))
        return record, version

    def rewind(self, run_id: str, rewind: Rewind) -> RunView:
        def truncate(view: RunView) -> RunView:
            self.store.truncate_reports(run_id, rewind.step, expected=_stamp(view))
            self._forget(run_id)
            return self.view(run_id)

        return self._write(run_id, truncate)

    def revise(self, run_id: str, revision: Revision) -> tuple[RevisionRecord, int]:
        return self._write(run_id, lambda view: self._revise(view, revision))

    def _revise(self, view: RunView, revision: Revision) -> tuple[RevisionRecord, int]:
        latest = view.latest_step
        if latest is not None and revision.from_step <= latest:
            raise RevisionConflict(
                f"from_step: must be greater than {latest}, the step of the latest accepted report, "
                f"so that history never changes; received {revision.from_step}"
            )
        if view.revisions and revision.from_step < view.revisions[-1].from_step:
            raise RevisionConflict(
                f"from_step: must not be below {view.revisions[-1].from_step}, the from_step of the "
                f"previous revision; received {revision.from_step}"
            )
        record = RevisionRecord(
            from_step=revision.from_step, schedule=revision.schedule.model_dump(mode="json"),
            reason=revision.reason, created_at=now(),
        )
        version = self.store.append_revision(view.record.run_id, record, expected=_stamp(view))
        revisions = (*view.revisions, record)
        self._remember(replace(
            view, record=replace(view.record, version=version), revisions=revisions,
            schedule=schedule_with_revisions(view.spec, revisions),
        ))
        return record, version

    # -- internals -----------------------------------------------------------------------------

    def _write(self, run_id: str, decide_and_write: Callable[[RunView], T]) -> T:
        """Decide a write on the current view; if another process wrote first, decide again on a fresh one."""
        with self._lock(run_id):
            for _ in range(_WRITE_ATTEMPTS):
                try:
                    return decide_and_write(self.view(run_id))
                except StaleRun:
                    self._forget(run_id)
        raise StorageUnavailable(
            f"run {run_id!r} kept changing under concurrent writers from other processes; try again"
        )

    def _fresh(self, run_id: str) -> bool:
        return time.monotonic() - self._checked_at.get(run_id, -math.inf) < self._revalidate_after

    def _still_current(self, view: RunView) -> bool:
        """One cheap query: has anyone written to the run since this view was made?"""
        if self.store.stamp(view.record.run_id) != _stamp(view):
            return False
        self._checked_at[view.record.run_id] = time.monotonic()
        return True

    def _forget(self, run_id: str) -> None:
        self._cache.pop(run_id, None)
        self._checked_at.pop(run_id, None)

    def _check_order(self, view: RunView, report: Report) -> ReportRecord | None:
        """The original outcome for an exact repeat; raise for a conflict; None for a new report."""
        earlier = view.report_at(report.step)
        if earlier is not None:
            if canonical_metrics(earlier.metrics) == canonical_metrics(report.metrics):
                return earlier
            raise ReportConflict(
                f"step: a report for step {report.step} was already accepted with different metrics "
                f"({canonical_metrics(earlier.metrics)}); reports are never overwritten. If workers measure "
                "their own values, all-reduce them first or let one worker report; to redo training from a "
                "checkpoint, POST /rewind first."
            )
        latest = view.latest_step
        if latest is not None and report.step < latest:
            raise ReportConflict(
                f"step: reports must come in increasing step order; step {report.step} is lower than "
                f"{latest}, the latest accepted report. To resume from a checkpoint, POST /rewind first."
            )
        return None

    def _decide(self, view: RunView, report: Report) -> tuple[ReportRecord, RunView]:
        """The report's outcome, and the view as it will be once the report is stored."""
        if report.step + 1 > MAX_STEP:
            raise InvalidInput(f"step: must be below {MAX_STEP}; received {report.step}")
        plateau, state, reduced = view.plateau, view.state, False
        reduction_steps = view.reduction_steps
        if plateau is not None and state is not None:
            value = report.value(plateau.monitor)
            if value is not None:
                lr_now = float(view.lrs(np.array([report.step], dtype=np.float64))[0])
                outcome = advance(plateau, state, value, lr_now)
                state, reduced = outcome.state, outcome.reduced
                if reduced:
                    reduction_steps = np.append(reduction_steps, float(report.step))
        next_lr = float(view.lrs_with(np.array([report.step + 1], dtype=np.float64), reduction_steps)[0])
        record = ReportRecord(
            step=report.step, metrics=dict(report.metrics), reduced=reduced, next_lr=next_lr,
            state=asdict(state) if state is not None else None, received_at=now(),
        )
        after = replace(view, reports=(*view.reports, record), reduction_steps=reduction_steps, state=state)
        return record, after

    def _remember(self, view: RunView) -> RunView:
        cache = self._cache
        cache[view.record.run_id] = view
        self._checked_at[view.record.run_id] = time.monotonic()
        if len(cache) > self._cache_size:
            oldest, _ = cache.popitem(last=False)
            self._checked_at.pop(oldest, None)
        return view

    def _lock(self, run_id: str) -> threading.RLock:
        return self._locks[hash(run_id) % _LOCK_STRIPES]


def _stamp(view: RunView) -> Stamp:
    return (view.record.seq, view.record.version)


def range_steps(start: int, stop: int, every: int) -> np.ndarray:
    count = max(0, math.ceil((stop - start) / every))
    if count > MAX_RANGE_VALUES:
        raise InvalidInput(
            f"stop: the range start={start}, stop={stop}, every={every} has {count} steps; "
            f"at most {MAX_RANGE_VALUES} per call (split the range or raise every)"
        )
    return np.arange(start, stop, every, dtype=np.float64)
