"""PostgreSQL storage: the same tables as SQLite, over a small psycopg connection pool."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg
from psycopg_pool import ConnectionPool, PoolTimeout

from lrserve.errors import StorageUnavailable
from lrserve.store.sql import SqlStore

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
    plateau TEXT,
    PRIMARY KEY (run_seq, position)
);
CREATE TABLE IF NOT EXISTS run_events (
    id BIGSERIAL PRIMARY KEY,
    run_id TEXT NOT NULL,
    at DOUBLE PRECISION NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_run_id_bytewise ON runs (run_id COLLATE "C");
-- Databases made before revisions could change the plateau: NULL in old rows is what they mean.
ALTER TABLE revisions ADD COLUMN IF NOT EXISTS plateau TEXT;
"""


class PostgresStore(SqlStore):
    """Every method is one transaction on a pooled connection; driver failures become StorageUnavailable.

    A write locks its run's row (`FOR UPDATE`), so writes from several processes are serialized per run.
    An event insert first locks the event table against other inserts (readers are not blocked), so
    BIGSERIAL ids are handed out in commit order.
    """

    placeholder = "%s"
    lock_row = " FOR UPDATE"
    lock_events = "LOCK TABLE run_events IN EXCLUSIVE MODE"
    bytewise = ' COLLATE "C"'  # a prefix range in the database's locale (en_US, ICU) would miss ids

    def __init__(self, url: str, pool_size: int = 8, timeout: float = 10.0) -> None:
        _probe(url, timeout)
        self._pool = ConnectionPool(url, min_size=1, max_size=pool_size, timeout=timeout, open=False)
        try:
            self._pool.open(wait=True, timeout=timeout)
        except PoolTimeout as error:
            self._pool.close()
            raise StorageUnavailable(f"cannot connect to PostgreSQL within {timeout}s: {error}") from error
        with self._transaction() as db:
            # 7243 is an arbitrary key of PostgreSQL's transaction-scoped advisory locks, used for nothing else
            # in lrserve: every process takes it while creating the tables, so two processes starting together
            # against one database create them one at a time (CREATE TABLE IF NOT EXISTS alone races). It is
            # released at the end of this transaction; a schema of its own per deployment shares the key
            # harmlessly (it only makes their first connections wait for one another).
            db.execute("SELECT pg_advisory_xact_lock(7243)")
            db.execute(_SCHEMA)

    @contextmanager
    def _transaction(self, write: bool = True) -> Iterator[psycopg.Connection]:
        try:
            with self._pool.connection() as connection, connection.transaction():
                yield connection
        except (psycopg.OperationalError, PoolTimeout) as error:
            raise StorageUnavailable(f"the database cannot be used right now: {error}") from error

    def ping(self) -> None:
        with self._transaction() as db:
            db.execute("SELECT 1").fetchone()

    def close(self) -> None:
        self._pool.close()



def _probe(url: str, timeout: float) -> None:
    """One direct connection first: the server's own reason, at once, instead of the pool retrying for
    `timeout` seconds with a warning per attempt; and a hint for the usual first-run mistake."""
    try:
        psycopg.connect(url, connect_timeout=max(1, int(timeout))).close()
    except psycopg.Error as error:
        reason = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        hint = ""
        if "does not exist" in reason and "database" in reason:
            info = psycopg.conninfo.conninfo_to_dict(url)
            options = " ".join(f"-{flag} {info[key]}" for flag, key in (("h", "host"), ("p", "port"), ("U", "user"))
                               if info.get(key))
            hint = f"; create it first: createdb {options} {info.get('dbname', '')}".replace("  ", " ")
        raise StorageUnavailable(f"cannot connect to PostgreSQL: {reason}{hint}") from error
