"""SQLite storage: one file, WAL journal, and a full fsync before a commit returns."""

from __future__ import annotations

import os
import sqlite3
import threading
from collections.abc import Iterator
from contextlib import contextmanager

from lrserve.errors import StorageUnavailable
from lrserve.store.sql import SqlStore

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
    plateau TEXT,
    PRIMARY KEY (run_seq, position)
);
CREATE TABLE IF NOT EXISTS run_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    run_id TEXT NOT NULL,
    at REAL NOT NULL
);
"""


class SqliteStore(SqlStore):
    """A single connection shared by the service's threads behind a lock; SQLite serializes writes anyway.

    Write transactions are `BEGIN IMMEDIATE`: they take SQLite's write lock up front, which is what
    serializes writes from several processes (so no row lock is needed, and event ids follow commit
    order). Read transactions are plain `BEGIN`: in WAL mode they never wait for a writer.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self._lock = threading.Lock()
        self._db = sqlite3.connect(path, check_same_thread=False, isolation_level=None, timeout=60.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute("PRAGMA foreign_keys=ON")
        self._db.executescript(_SCHEMA)
        self._add_revision_plateaus()

    def _add_revision_plateaus(self) -> None:
        """Databases made before revisions could change the plateau lack `revisions.plateau`: add it (NULL
        in old rows, which is what they mean). Two processes may race to it; the loser finds it there."""
        columns = {row[1] for row in self._db.execute("PRAGMA table_info(revisions)")}
        if "plateau" in columns:
            return
        try:
            self._db.execute("ALTER TABLE revisions ADD COLUMN plateau TEXT")
        except sqlite3.OperationalError as error:
            if "duplicate column" not in str(error):
                raise

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[sqlite3.Connection]:
        with self._lock:
            try:
                self._db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
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

    def ping(self) -> None:
        if not os.path.exists(self.path):
            raise StorageUnavailable(f"the database file {self.path} no longer exists")
        with self._transaction(write=False) as db:
            db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        with self._lock:
            self._db.close()

