"""The storage interface: runs, their append-only report log and their revisions.

Every method is one atomic transaction, and every write bumps the run's `version`, so a cache can tell
whether what it holds is current. Backends store JSON documents as text and know nothing of schedules.

Writes to a run go through `Store.writing(run_id)`: a transaction that holds the run's write lock (a row
lock on PostgreSQL, `BEGIN IMMEDIATE` on SQLite) from the moment it reads the run's stamp until it commits,
so a write is decided on the database's current state and concurrent writers wait for each other.

Rewinds, revisions and deletes also append to a database-wide *event log*: they are the writes that can
change a learning rate a process may already be serving from memory as settled (see `lrserve.freshness`).
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any


Stamp = tuple[int, int]
"""(seq, version): which creation of a run, and how many writes it has seen. The API answers the version in
`X-Run-Version` and the stamp as the run's ETag (`lrserve.api.answers`)."""


@dataclass(frozen=True)
class RunRecord:
    """A run as stored. `spec_json` is its spec's canonical JSON document (`RunSpec.canonical()`), not
    validated again here; `RunView.spec` is the validated `RunSpec` made from it."""

    run_id: str
    spec_json: dict[str, Any]
    created_at: str
    version: int = 0
    seq: int = 0

    @property
    def stamp(self) -> Stamp:
        return (self.seq, self.version)


@dataclass(frozen=True)
class ListedRun:
    """A run as a listing shows it: its record and the step of its latest report (None: none yet), read
    with it in one query (a loaded run's latest step is that of its last report, see `StoredRun`)."""

    record: RunRecord
    latest_step: int | None


@dataclass(frozen=True)
class ReportRecord:
    """An accepted report and its outcome; `metrics` keeps non-finite values as "NaN"/"Infinity" strings."""

    step: int
    metrics: dict[str, Any]
    reduced: bool
    next_lr: float
    state: dict[str, Any] | None
    received_at: str


@dataclass(frozen=True)
class RevisionRecord:
    """A revision: from `from_step` on, `schedule` (None: the schedule carries on) and the plateau
    settings `plateau` changes (None: none)."""

    from_step: int
    schedule: dict[str, Any] | None
    reason: str
    created_at: str
    plateau: dict[str, Any] | None = None


@dataclass(frozen=True)
class StoredRun:
    run: RunRecord
    reports: list[ReportRecord] = field(default_factory=list)
    revisions: list[RevisionRecord] = field(default_factory=list)


class RunWriter(ABC):
    """One write to one run, inside a transaction that holds the run's write lock until it commits.

    `stamp` is the run's stamp when the lock was taken; the changes made here are committed together
    with one version bump when the `Store.writing` block ends without an exception.
    """

    stamp: Stamp

    @abstractmethod
    def load(self) -> StoredRun:
        """The run as it is in the database now (under the lock, so nobody else changes it meanwhile)."""

    @abstractmethod
    def append_report(self, report: ReportRecord) -> None: ...

    @abstractmethod
    def truncate_reports(self, after_step: int) -> None:
        """Delete the reports on steps > `after_step`; logs an event."""

    @abstractmethod
    def append_revision(self, revision: RevisionRecord) -> None:
        """Add a revision after the existing ones; logs an event."""

    @property
    def version_after(self) -> int:
        """The run's version once this write commits."""
        return self.stamp[1] + (1 if self.changed else 0)

    changed: bool = False


class Store(ABC):
    """What the service needs from a database, and nothing more."""

    @abstractmethod
    def create_run(self, run: RunRecord) -> bool:
        """Insert the run; False (and no change) when the id is taken."""

    @abstractmethod
    def load(self, run_id: str) -> StoredRun | None:
        """The run with its reports (by step) and revisions (in order), or None."""

    @abstractmethod
    def list_runs(self, after_seq: int, limit: int, prefix: str | None = None) -> list[ListedRun]:
        """At most `limit` runs created after `after_seq`, oldest first; only ids starting with `prefix`
        (case-sensitive, every character literal) when one is given."""

    @abstractmethod
    def delete_run(self, run_id: str) -> bool:
        """Remove the run, its reports and revisions, logging an event; False when there was no such run."""

    @abstractmethod
    def stamp(self, run_id: str) -> Stamp | None:
        """The run's (seq, version), or None: one indexed query that tells whether a cached copy is current."""

    @abstractmethod
    def writing(self, run_id: str) -> AbstractContextManager[RunWriter]:
        """A write transaction on the run, its write lock held; raises RunNotFound when there is no such run."""

    @abstractmethod
    def events_after(self, event_id: int) -> list[tuple[int, str]]:
        """(event id, run id) of the rewinds, revisions and deletes logged after `event_id`, in commit order."""

    @abstractmethod
    def last_event(self) -> int:
        """The id of the latest logged event (0 when there is none)."""

    @abstractmethod
    def prune_events(self, before: float) -> None:
        """Forget events logged before the Unix time `before` (the log is only read a moment after a write)."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StorageUnavailable unless the database answers."""

    @abstractmethod
    def close(self) -> None: ...


__all__ = ["ReportRecord", "RevisionRecord", "RunRecord", "RunWriter", "Stamp", "Store", "StoredRun"]
