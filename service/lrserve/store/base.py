"""The storage interface: runs, their append-only report log and their revisions.

Every method is one atomic transaction, and every write bumps the run's `version`, so a cache can tell
whether what it holds is current. Backends store JSON documents as text and know nothing of schedules.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from typing import Any


Stamp = tuple[int, int]
"""(seq, version): which creation of a run, and how many writes it has seen."""


class StaleRun(Exception):
    """A write expected a stamp the run no longer has: another process wrote first. Never shown to users."""


@dataclass(frozen=True)
class RunRecord:
    run_id: str
    spec: dict[str, Any]
    created_at: str
    version: int = 0
    seq: int = 0
    latest_step: int | None = None


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
    from_step: int
    schedule: dict[str, Any]
    reason: str
    created_at: str


@dataclass(frozen=True)
class StoredRun:
    run: RunRecord
    reports: list[ReportRecord] = field(default_factory=list)
    revisions: list[RevisionRecord] = field(default_factory=list)


class Store(ABC):
    """What the service needs from a database, and nothing more."""

    @abstractmethod
    def create_run(self, run: RunRecord) -> bool:
        """Insert the run; False (and no change) when the id is taken."""

    @abstractmethod
    def load(self, run_id: str) -> StoredRun | None:
        """The run with its reports (by step) and revisions (in order), or None."""

    @abstractmethod
    def list_runs(self, after_seq: int, limit: int, prefix: str | None = None) -> list[RunRecord]:
        """At most `limit` runs created after `after_seq`, oldest first; only ids starting with `prefix`
        (case-sensitive, every character literal) when one is given."""

    @abstractmethod
    def delete_run(self, run_id: str) -> bool:
        """Remove the run, its reports and revisions; False when there was no such run."""

    @abstractmethod
    def stamp(self, run_id: str) -> Stamp | None:
        """The run's (seq, version), or None: a cheap way to tell whether a cached copy is current."""

    # Every write takes the stamp of the copy it was decided on, and raises StaleRun if the run has
    # moved since (another service process on the same database wrote first).

    @abstractmethod
    def append_report(self, run_id: str, report: ReportRecord, expected: Stamp | None = None) -> int:
        """Add a report and return the run's new version."""

    @abstractmethod
    def truncate_reports(self, run_id: str, after_step: int, expected: Stamp | None = None) -> int:
        """Delete the reports on steps > `after_step` and return the run's new version."""

    @abstractmethod
    def append_revision(self, run_id: str, revision: RevisionRecord, expected: Stamp | None = None) -> int:
        """Add a revision and return the run's new version."""

    @abstractmethod
    def ping(self) -> None:
        """Raise StorageUnavailable unless the database answers."""

    @abstractmethod
    def close(self) -> None: ...
