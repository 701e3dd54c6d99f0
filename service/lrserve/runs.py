"""The use cases: create, read, report, rewind, revise, delete. No HTTP here and no SQL.

Reads are answered from an in-memory view per run when `lrserve.freshness` says the view is right for
the read, else after one query for the run's stamp (reloading the view if another process wrote).
Every write is decided on the database's current state: inside a transaction that holds the run's
write lock, the cached view is used only if its stamp is the stored one, else the run is loaded there
and then; the view's pure transition decides, and what it returns is stored and swapped in.
"""

from __future__ import annotations

import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TypeVar

import numpy as np

from lrserve.errors import InvalidInput, RunNotFound, SpecConflict
from lrserve.freshness import DEFAULT_LEASE_SECONDS, EventWatch
from lrserve.heavy import HEAVY_WORK
from lrserve.run_view import RunView, view_of
from lrserve.spec import Report, Revision, Rewind, RunSpec, accepted_warnings
from lrserve.store import ListedRun, ReportRecord, RevisionRecord, RunRecord, RunWriter, Store

MAX_RANGE_VALUES = 1_000_000
_LOCK_STRIPES = 1024
T = TypeVar("T")


def now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="microseconds").replace("+00:00", "Z")


@dataclass(frozen=True)
class Reported:
    """The answer to a report: its outcome, the run's version, whether it was new (False: an exact repeat),
    and what the answer warns about."""

    record: ReportRecord
    version: int
    new: bool
    warnings: list[str]


@dataclass(frozen=True)
class Created:
    """The answer to a PUT: the run, whether it was new (False: the same spec again), and what it warns
    about (a schedule that stops being finite after step 0)."""

    view: RunView
    new: bool
    warnings: list[str]


@dataclass(frozen=True)
class Revised:
    """The answer to a revision: the record (the original one for a repeat), the run's version, whether
    it was new, and what it warns about."""

    record: RevisionRecord
    version: int
    new: bool
    warnings: list[str]


class Runs:
    """Every operation on runs, over one `Store`, with a bounded cache of compiled views.

    `cache_seconds` > 0 lets a view answer any read, settled or not, for that many seconds after it was
    last checked (fewer queries, reads from other processes' writes may lag by that much); 0, the default,
    is exact. `lease`: see `lrserve.freshness`.
    """

    def __init__(self, store: Store, cache_size: int = 10_000, cache_seconds: float = 0.0,
                 lease: float = DEFAULT_LEASE_SECONDS) -> None:
        self.store = store
        self._cache: OrderedDict[str, RunView] = OrderedDict()
        self._checked_at: dict[str, float] = {}
        self._cache_size = cache_size
        self._cache_seconds = cache_seconds
        self.events = EventWatch(store, drop=self._forget, drop_all=self._forget_all, lease=lease)
        # Striped locks: bounded memory however many runs come and go (two runs may share a stripe). One
        # lock serialises a run's writes and its reloads, so a slow load never caches a view older than a
        # concurrent write (see `view`). Re-entrant because writes once reloaded through `view` while holding
        # their lock; today no path takes a stripe twice (a write loads through its `RunWriter`), but a
        # re-entrant lock keeps `view` callable from inside `_write` without a self-deadlock, and costs nothing.
        self._locks = [threading.RLock() for _ in range(_LOCK_STRIPES)]

    @property
    def cached_count(self) -> int:
        """How many runs' views this process holds in memory."""
        return len(self._cache)

    @property
    def lease(self) -> float:
        """Seconds to hold back the answer to a rewind, revision or delete (see `lrserve.freshness`)."""
        return self.events.lease

    # -- reading -------------------------------------------------------------------------------

    def cached(self, run_id: str, last_step: int) -> RunView | None:
        """The view, if memory alone may answer for steps up to `last_step`; never touches storage."""
        view = self._cache.get(run_id)
        if view is None:
            return None
        if view.settled(last_step) and self.events.lease_held():
            return view
        if self._cache_seconds and time.monotonic() - self._checked_at.get(run_id, -math.inf) < \
                self._cache_seconds:
            return view
        return None

    def view(self, run_id: str, spec: RunSpec | None = None) -> RunView:
        """The run's current view: the cached one if its stamp is still the stored one, else loaded
        (`spec`: the run's spec if the caller has it validated already)."""
        view = self._cache.get(run_id)
        stamp = self.store.stamp(run_id) if view is not None else None  # nothing to check without a view
        if view is not None and view.stamp == stamp:
            self._checked_at[run_id] = time.monotonic()
            return view
        # Stale or missing: one reader loads while the others wait for it, rather than all reloading the
        # run's whole history at once. A write of this process holds the same lock until its new view is
        # cached, so a reader that waited finds it: any view of this creation at least as new as the stamp
        # read above includes every write acknowledged before this request.
        with self._lock(run_id):
            generation = self.events.generation
            view = self._cache.get(run_id)
            if view is not None and stamp is not None and view.record.seq == stamp[0] \
                    and view.record.version >= stamp[1]:
                return view
            stored = self.store.load(run_id)
            if stored is None:
                self._forget(run_id)
                raise RunNotFound(run_id)
            with HEAVY_WORK:  # compiling a schedule can take milliseconds (expressions)
                compiled = view_of(stored, spec)
            return self._remember(compiled, generation)

    def list_runs(self, after_seq: int, limit: int, prefix: str | None = None) -> list[ListedRun]:
        return self.store.list_runs(after_seq, limit, prefix)

    # -- writing -------------------------------------------------------------------------------

    def create(self, run_id: str, spec: RunSpec) -> Created:
        """Create the run, or recognise the same spec under this id (`new` False); 409 for another spec."""
        warnings = accepted_warnings(spec.schedule)
        canonical = spec.canonical()
        created = self.store.create_run(RunRecord(run_id=run_id, spec_json=canonical, created_at=now()))
        view = self.view(run_id, spec)
        if not created and view.record.spec_json != canonical:
            raise SpecConflict(
                f"Run {run_id!r} already exists with a different spec; use another run id, "
                f"DELETE /runs/{run_id} first, or POST /runs/{run_id}/revisions to change its schedule."
            )
        return Created(view, created, warnings)

    def delete(self, run_id: str) -> None:
        with self._lock(run_id):
            deleted = self.store.delete_run(run_id)
            self._forget(run_id)
        if not deleted:
            raise RunNotFound(run_id)

    def report(self, run_id: str, report: Report) -> Reported:
        """Accept a report, or recognise an exact repeat (answered with the original outcome)."""
        def accept(view: RunView, writer: RunWriter) -> tuple[Reported, RunView]:
            record, after = view.accept(report, now())
            if after is None:
                return Reported(record, view.record.version, False, view.report_warnings(report)), view
            writer.append_report(record)
            return Reported(record, after.record.version, True, view.report_warnings(report)), after

        return self._write(run_id, accept)

    def rewind(self, run_id: str, rewind: Rewind) -> RunView:
        def truncate(view: RunView, writer: RunWriter) -> tuple[RunView, RunView]:
            after = view.rewound(rewind.step)
            writer.truncate_reports(rewind.step)
            return after, after

        return self._write(run_id, truncate)

    def revise(self, run_id: str, revision: Revision) -> Revised:
        """Append the revision, or recognise a repeat of an accepted one (answered with the original)."""
        warnings = [] if revision.schedule is None else accepted_warnings(revision.schedule, revision.from_step)

        def append(view: RunView, writer: RunWriter) -> tuple[Revised, RunView]:
            record, after = view.revised(revision, now())
            if after is None:
                return Revised(record, view.record.version, False, warnings), view
            writer.append_revision(record)
            return Revised(record, after.record.version, True, warnings), after

        return self._write(run_id, append)

    # -- internals -----------------------------------------------------------------------------

    def _write(self, run_id: str, decide: Callable[[RunView, RunWriter], tuple[T, RunView]]) -> T:
        """Decide on the run's current state with its write lock held, store the change, swap the view in."""
        with self._lock(run_id):
            generation = self.events.generation
            with self.store.writing(run_id) as writer:
                cached = self._cache.get(run_id)
                if cached is not None and cached.stamp == writer.stamp:
                    current = cached
                else:
                    with HEAVY_WORK:
                        current = view_of(writer.load())
                result, after = decide(current, writer)
                assert after.record.version == writer.version_after, "the view and the store disagree"
            self._remember(after, generation)
            return result

    def _remember(self, view: RunView, generation: int) -> RunView:
        """Cache the view, unless views were dropped since `generation` (it may predate the event)."""
        run_id = view.record.run_id
        if generation != self.events.generation:
            self._forget(run_id)
            return view
        cache = self._cache
        held = cache.get(run_id)
        if held is not None and held.record.seq == view.record.seq and held.record.version > view.record.version:
            return view  # a concurrent write of this process already cached a newer view
        cache[run_id] = view
        self._checked_at[run_id] = time.monotonic()
        if len(cache) > self._cache_size:
            oldest, _ = cache.popitem(last=False)
            self._checked_at.pop(oldest, None)
        return view

    def _forget(self, run_id: str) -> None:
        self._cache.pop(run_id, None)
        self._checked_at.pop(run_id, None)

    def _forget_all(self) -> None:
        self._cache.clear()
        self._checked_at.clear()

    def _lock(self, run_id: str) -> threading.RLock:
        return self._locks[hash(run_id) % _LOCK_STRIPES]


def range_count(start: int, stop: int, every: int) -> int:
    """How many steps start, start+every, ... < stop are; 422 over MAX_RANGE_VALUES."""
    count = max(0, -(-(stop - start) // every))
    if count > MAX_RANGE_VALUES:
        raise InvalidInput(
            f"stop: the range start={start}, stop={stop}, every={every} has {count} steps; "
            f"at most {MAX_RANGE_VALUES} per call (split the range or raise every)"
        )
    return count


def range_steps(start: int, stop: int, every: int) -> np.ndarray:
    range_count(start, stop, every)
    return np.arange(start, stop, every, dtype=np.float64)
