"""PostgreSQL storage: the same tables as SQLite, over a small psycopg connection pool."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

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
    seq BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL UNIQUE,
    spec TEXT NOT NULL,
    created_at TEXT NOT NULL,
    version BIGINT NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS reports (
    run_seq BIGINT NOT NULL REFERENCES runs(seq) ON DELETE CASCADE,
    step BIGINT NOT NULL,
    metrics TEXT NOT NULL,
    reduced BOOLEAN NOT NULL,
    next_lr DOUBLE PRECISION NOT NULL,
    state TEXT,
    received_at TEXT NOT NULL,
    PRIMARY KEY (run_seq, step)
);
CREATE TABLE IF NOT EXISTS revisions (
    run_seq BIGINT NOT NULL REFERENCES runs(seq) ON DELETE CASCADE,
    position INTEGER NOT NULL,
    from_step BIGINT NOT NULL,
    schedule TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (run_seq, position)
);
"""


class PostgresStore(Store):
    """Every method is one transaction on a pooled connection; driver failures become StorageUnavailable."""

    def __init__(self, url: str, pool_size: int = 8, timeout: float = 10.0) -> None:
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, timeout=timeout, open=False)
        try:
            self._pool.open(wait=True, timeout=timeout)
        except PoolTimeout as error:
            self._pool.close()
            raise StorageUnavailable(f"cannot connect to PostgreSQL within {timeout}s: {error}") from error
        with self._transaction() as db:
            db.execute("SELECT pg_advisory_xact_lock(7243)")  # two processes starting together
            db.execute(_SCHEMA)

    @contextmanager
    def _transaction(self) -> Iterator[psycopg.Connection]:
        try:
            with self._pool.connection() as connection, connection.transaction():
                yield connection
        except (psycopg.OperationalError, PoolTimeout) as error:
            raise StorageUnavailable(f"the database cannot be used right now: {error}") from error

    def create_run(self, run: RunRecord) -> bool:
        with self._transaction() as db:
            cursor = db.execute(
                "INSERT INTO runs (run_id, spec, created_at) VALUES (%s, %s, %s) ON CONFLICT (run_id) DO NOTHING",
                (run.run_id, json.dumps(run.spec), run.created_at),
            )
            return cursor.rowcount == 1

    def load(self, run_id: str) -> StoredRun | None:
        with self._transaction() as db:
            row = db.execute(
                "SELECT seq, run_id, spec, created_at, version FROM runs WHERE run_id = %s", (run_id,)
            ).fetchone()
            if row is None:
                return None
            reports = db.execute(
                "SELECT step, metrics, reduced, next_lr, state, received_at FROM reports "
                "WHERE run_seq = %s ORDER BY step", (row[0],)
            ).fetchall()
            revisions = db.execute(
                "SELECT from_step, schedule, reason, created_at FROM revisions WHERE run_seq = %s "
                "ORDER BY position", (row[0],)
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
                "FROM runs WHERE seq > %s ORDER BY seq LIMIT %s",
                (after_seq, limit),
            ).fetchall()
        return [run_from_row(*row) for row in rows]

    def delete_run(self, run_id: str) -> bool:
        with self._transaction() as db:
            return db.execute("DELETE FROM runs WHERE run_id = %s", (run_id,)).rowcount == 1

    def append_report(self, run_id: str, report: ReportRecord, expected: Stamp | None = None) -> int:
        with self._transaction() as db:
            seq = _locked_run(db, run_id, expected)
            db.execute(
                "INSERT INTO reports (run_seq, step, metrics, reduced, next_lr, state, received_at) "
                "VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (seq, *report_to_row(report)),
            )
            return _bump(db, seq)

    def truncate_reports(self, run_id: str, after_step: int, expected: Stamp | None = None) -> int:
        with self._transaction() as db:
            seq = _locked_run(db, run_id, expected)
            db.execute("DELETE FROM reports WHERE run_seq = %s AND step > %s", (seq, after_step))
            return _bump(db, seq)

    def append_revision(self, run_id: str, revision: RevisionRecord, expected: Stamp | None = None) -> int:
        with self._transaction() as db:
            seq = _locked_run(db, run_id, expected)
            (position,) = db.execute("SELECT COUNT(*) FROM revisions WHERE run_seq = %s", (seq,)).fetchone()
            db.execute(
                "INSERT INTO revisions (run_seq, position, from_step, schedule, reason, created_at) "
                "VALUES (%s, %s, %s, %s, %s, %s)",
                (seq, position, *revision_to_row(revision)),
            )
            return _bump(db, seq)

    def stamp(self, run_id: str) -> Stamp | None:
        with self._transaction() as db:
            row = db.execute("SELECT seq, version FROM runs WHERE run_id = %s", (run_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    def ping(self) -> None:
        with self._transaction() as db:
            db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        self._pool.close()


def _locked_run(db: psycopg.Connection, run_id: str, expected: Stamp | None) -> int:
    """The run's seq, its row locked until the transaction ends, so writes are serialized in the database."""
    row = db.execute("SELECT seq, version FROM runs WHERE run_id = %s FOR UPDATE", (run_id,)).fetchone()
    return checked_seq(row, run_id, expected)


def _bump(db: psycopg.Connection, seq: int) -> int:
    return db.execute("UPDATE runs SET version = version + 1 WHERE seq = %s RETURNING version", (seq,)).fetchone()[0]
