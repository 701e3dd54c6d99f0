"""The SQL both backends share. A backend supplies its schema, its transactions and its dialect's
differences: the parameter placeholder, how a run's row is locked (`FOR UPDATE`), how the event log is
kept in commit order, and how to compare run ids byte by byte (`COLLATE "C"`)."""

from __future__ import annotations

import json
import time
from abc import abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from typing import Any, Protocol

from lrserve.errors import RunNotFound
from lrserve.store.base import ListedRun, ReportRecord, RevisionRecord, RunRecord, RunWriter, Stamp, Store, StoredRun


# Records to and from the rows both backends store: JSON documents as text, nothing else.


def run_from_row(seq: int, run_id: str, spec: str, created_at: str, version: int) -> RunRecord:
    return RunRecord(run_id=run_id, spec_json=json.loads(spec), created_at=created_at, version=version, seq=seq)


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


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Connection(Protocol):
    def execute(self, query: Any, params: Any = ...) -> Cursor: ...


class SqlStore(Store):
    """Every method is one transaction; queries are written with `?` and adapted to the dialect."""

    placeholder = "?"
    lock_row = ""
    lock_events = ""
    """A statement that makes event inserts wait for each other, so that event ids follow commit order
    (a reader that has seen event n must never later find a smaller id committed after it)."""
    bytewise = ""
    """Makes a comparison of run_id follow code points (bytes of UTF-8), whatever the database's locale."""

    @abstractmethod
    def _transaction(self, write: bool = True) -> AbstractContextManager[Connection]:
        """A transaction; `write=False` promises only reads (SQLite then takes no write lock)."""

    def _run(self, db: Connection, query: str, params: tuple[Any, ...] = ()) -> Cursor:
        return db.execute(query.replace("?", self.placeholder), params)

    def create_run(self, run: RunRecord) -> bool:
        with self._transaction() as db:
            cursor = self._run(
                db, "INSERT INTO runs (run_id, spec, created_at) VALUES (?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
                (run.run_id, json.dumps(run.spec_json), run.created_at),
            )
            return cursor.rowcount == 1

    def load(self, run_id: str) -> StoredRun | None:
        with self._transaction(write=False) as db:
            return self._load(db, run_id)

    def _load(self, db: Connection, run_id: str) -> StoredRun | None:
        row = self._run(
            db, "SELECT seq, run_id, spec, created_at, version FROM runs WHERE run_id = ?", (run_id,)
        ).fetchone()
        if row is None:
            return None
        reports = self._run(
            db, "SELECT step, metrics, reduced, next_lr, state, received_at FROM reports "
                "WHERE run_seq = ? ORDER BY step", (row[0],)
        ).fetchall()
        revisions = self._run(
            db, "SELECT from_step, schedule, reason, created_at, plateau FROM revisions WHERE run_seq = ? "
                "ORDER BY position", (row[0],)
        ).fetchall()
        return StoredRun(
            run=run_from_row(*row),
            reports=[report_from_row(*r) for r in reports],
            revisions=[revision_from_row(*r) for r in revisions],
        )

    def list_runs(self, after_seq: int, limit: int, prefix: str | None = None) -> list[ListedRun]:
        # A prefix is a range of ids, not a LIKE pattern: no wildcard to escape ('_' is common in ids),
        # no case folding (SQLite's LIKE ignores case), and an index on run_id can serve it.
        where = "seq > ?"
        params: list[Any] = [after_seq]
        if prefix:
            where += f" AND run_id{self.bytewise} >= ? AND run_id{self.bytewise} < ?"
            params += prefix_range(prefix)
        with self._transaction(write=False) as db:
            rows = self._run(
                db, "SELECT seq, run_id, spec, created_at, version, "
                    "(SELECT MAX(step) FROM reports WHERE run_seq = runs.seq) "
                    f"FROM runs WHERE {where} ORDER BY seq LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [ListedRun(run_from_row(*row[:5]), row[5]) for row in rows]

    def delete_run(self, run_id: str) -> bool:
        with self._transaction() as db:
            deleted = self._run(db, "DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount == 1
            if deleted:
                self._log_event(db, run_id)
            return deleted

    def stamp(self, run_id: str) -> Stamp | None:
        with self._transaction(write=False) as db:
            row = self._run(db, "SELECT seq, version FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    @contextmanager
    def writing(self, run_id: str) -> Iterator[RunWriter]:
        with self._transaction() as db:
            row = self._run(db, f"SELECT seq, version FROM runs WHERE run_id = ?{self.lock_row}", (run_id,)).fetchone()
            writer = _SqlRunWriter(self, db, run_id, (checked_seq(row, run_id), row[1]))
            yield writer
            if writer.changed:
                self._run(db, "UPDATE runs SET version = version + 1 WHERE seq = ?", (writer.stamp[0],))

    def events_after(self, event_id: int) -> list[tuple[int, str]]:
        with self._transaction(write=False) as db:
            rows = self._run(db, "SELECT id, run_id FROM run_events WHERE id > ? ORDER BY id", (event_id,)).fetchall()
        return [(row[0], row[1]) for row in rows]

    def last_event(self) -> int:
        with self._transaction(write=False) as db:
            (last,) = self._run(db, "SELECT COALESCE(MAX(id), 0) FROM run_events").fetchone()
        return int(last)

    def prune_events(self, before: float) -> None:
        with self._transaction() as db:
            self._run(db, "DELETE FROM run_events WHERE at < ?", (before,))

    def _log_event(self, db: Connection, run_id: str) -> None:
        if self.lock_events:
            self._run(db, self.lock_events)
        self._run(db, "INSERT INTO run_events (run_id, at) VALUES (?, ?)", (run_id, time.time()))


class _SqlRunWriter(RunWriter):
    def __init__(self, store: SqlStore, db: Connection, run_id: str, stamp: Stamp) -> None:
        self._store, self._db, self._run_id, self.stamp = store, db, run_id, stamp
        self.changed = False

    def load(self) -> StoredRun:
        stored = self._store._load(self._db, self._run_id)
        assert stored is not None  # the row is locked: it cannot have gone
        return stored

    def append_report(self, report: ReportRecord) -> None:
        self._store._run(
            self._db, "INSERT INTO reports (run_seq, step, metrics, reduced, next_lr, state, received_at) "
                      "VALUES (?, ?, ?, ?, ?, ?, ?)",
            (self.stamp[0], *report_to_row(report)),
        )
        self.changed = True

    def truncate_reports(self, after_step: int) -> None:
        self._store._run(self._db, "DELETE FROM reports WHERE run_seq = ? AND step > ?", (self.stamp[0], after_step))
        self._store._log_event(self._db, self._run_id)
        self.changed = True

    def append_revision(self, revision: RevisionRecord) -> None:
        seq = self.stamp[0]
        (position,) = self._store._run(self._db, "SELECT COUNT(*) FROM revisions WHERE run_seq = ?", (seq,)).fetchone()
        self._store._run(
            self._db, "INSERT INTO revisions (run_seq, position, from_step, schedule, reason, created_at, "
                      "plateau) VALUES (?, ?, ?, ?, ?, ?, ?)",
            (seq, position, *revision_to_row(revision)),
        )
        self._store._log_event(self._db, self._run_id)
        self.changed = True


def prefix_range(prefix: str) -> list[str]:
    """[low, high): in code-point order, the ids that start with `prefix` are exactly those from `prefix`
    up to (not including) `prefix` with its last character incremented. Run ids are ASCII, so the
    incremented character always exists."""
    return [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
