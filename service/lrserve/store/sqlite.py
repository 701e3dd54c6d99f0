"""SQLite storage: one file, WAL journal, and a full fsync before a commit returns."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from lrserve.errors import StorageUnavailable
from lrserve.store.base import ReportRecord, RevisionRecord, RunRecord, Stamp, Store, StoredRun
from lrserve.store.rows import (
    checked_seq,
    report_from_row,
    report_to_row,
    revision_from_row,
    revision_to_row,
    run_from_row,
)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    seq INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL,
    version INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS reports (
    run_seq INTEGER NOT NULL REFERENCES runs(seq) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    metrics TEXT NOT NULL,
    reduced INTEGER NOT NULL,
    next_lr REAL NOT NULL,
    state TEXT,
    received_at TEXT NOT NULL,
    PRIMARY KEY (run_seq, step)
);
CREATE TABLE IF NOT EXISTS revisions (
    run_seq INTEGER NOT NULL REFERENCES runs(seq) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    from_step INTEGER NOT NULL,
    schedule TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_seq, position)
);
"""


class SqliteStore(Store):
    """A single connection shared by the service's threads behind a lock; SQLite serializes writes anyway."""

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE")
                yield self._db
                self._db.execute("COMMIT")
            except sqlite3.OperationalError as error:
                self._rollback()
                raise StorageUnavailable(f"the database cannot be used right now: {error}") from error
            except BaseException:
                self._rollback()
                raise

    def _rollback(self) -> None:
        if self._db.in_transaction:
            self._db.execute("ROLLBACK")

    def create_run(self, run: RunRecord) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT OR IGNORE INTO runs (run_id, spec, created_at) VALUES (?, ?, ?)",
                (run.run_id, json.dumps(run.spec), run.created_at),
            )
            return cursor.rowcount == 1

    def load(self, run_id: str) -> StoredRun | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT seq, run_id, spec, created_at, version FROM runs WHERE run_id = ?", (run_id,)
            ).fetchone()
            if row is None:
                return None
            seq = row[0]
            reports = db.execute(
                "SELECT step, metrics, reduced, next_lr, state, received_at FROM reports "
                "WHERE run_seq = ? ORDER BY step", (seq,)
            ).fetchall()
            revisions = db.execute(
                "SELECT from_step, schedule, reason, created_at FROM revisions WHERE run_seq = ? ORDER BY position",
                (seq,),
            ).fetchall()
        return StoredRun(
            run=run_from_row(*row),
            reports=[report_from_row(*r) for r in reports],
            revisions=[revision_from_row(*r) for r in revisions],
        )

    def list_runs(self, after_seq: int, limit: int) -> list[RunRecord]:
        with self._transaction() as db:
            rows = db.execute(
                "SELECT seq, run_id, spec, created_at, version, "
                "(SELECT MAX(step) FROM reports WHERE run_seq = runs.seq) "
                "FROM runs WHERE seq > ? ORDER BY seq LIMIT ?",
                (after_seq, limit),
            ).fetchall()
        return [run_from_row(*row) for row in rows]

    def delete_run(self, run_id: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount == 1

    def append_report(self, run_id: str, report: ReportRecord, expected: Stamp | None = None) -> int:
        with self._transaction() as db:
            seq = _locked_run(db, run_id, expected)
            db.execute(
                "INSERT INTO reports (run_seq, step, metrics, reduced, next_lr, state, received_at) "
                "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (seq, *report_to_row(report)),
            )
            return _bump(db, seq)

    def truncate_reports(self, run_id: str, after_step: int, expected: Stamp | None = None) -> int:
        with self._transaction() as db:
            seq = _locked_run(db, run_id, expected)
            db.execute("DELETE FROM reports WHERE run_seq = ? AND step > ?", (seq, after_step))
            return _bump(db, seq)

    def append_revision(self, run_id: str, revision: RevisionRecord, expected: Stamp | None = None) -> int:
        with self._transaction() as db:
            seq = _locked_run(db, run_id, expected)
            (position,) = db.execute(
                "SELECT COUNT(*) FROM revisions WHERE run_seq = ?", (seq,)
            ).fetchone()
            db.execute(
                "INSERT INTO revisions (run_seq, position, from_step, schedule, reason, created_at) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                (seq, position, *revision_to_row(revision)),
            )
            return _bump(db, seq)

    def stamp(self, run_id: str) -> Stamp | None:
        with self._transaction() as db:
            row = db.execute("SELECT seq, version FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    def ping(self) -> None:
        if not os.path.exists(self.path):
            raise StorageUnavailable(f"the database file {self.path} no longer exists")
        with self._transaction() as db:
            db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._db.close()


def _locked_run(db: sqlite3.Connection, run_id: str, expected: Stamp | None) -> int:
    """The run's seq; the IMMEDIATE transaction already holds SQLite's write lock."""
    row = db.execute("SELECT seq, version FROM runs WHERE run_id = ?", (run_id,)).fetchone()
    return checked_seq(row, run_id, expected)


def _bump(db: sqlite3.Connection, seq: int) -> int:
    db.execute("UPDATE runs SET version = version + 1 WHERE seq = ?", (seq,))
    return db.execute("SELECT version FROM runs WHERE seq = ?", (seq,)).fetchone()[0]
