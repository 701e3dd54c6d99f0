"""The SQL both backends share. A backend supplies its schema, its transactions and its dialect's three
differences: the parameter placeholder, whether a run's row can be locked (`FOR UPDATE`), and how to
compare run ids byte by byte (`COLLATE "C"`)."""

from __future__ import annotations

import json
from abc import abstractmethod
from collections.abc import Callable
from contextlib import AbstractContextManager
from typing import Any, Protocol

from lrserve.store.base import ReportRecord, RevisionRecord, RunRecord, Stamp, Store, StoredRun
from lrserve.store.rows import (
    checked_seq,
    report_from_row,
    report_to_row,
    revision_from_row,
    revision_to_row,
    run_from_row,
)


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
    bytewise = ""
    """Makes a comparison of run_id follow code points (bytes of UTF-8), whatever the database's locale."""

    @abstractmethod
    def _transaction(self) -> AbstractContextManager[Connection]: ...

    def _run(self, db: Connection, query: str, params: tuple[Any, ...] = ()) -> Cursor:
        return db.execute(query.replace("?", self.placeholder), params)

    def create_run(self, run: RunRecord) -> bool:
        with self._transaction() as db:
            cursor = self._run(
                db, "INSERT INTO runs (run_id, spec, created_at) VALUES (?, ?, ?) ON CONFLICT (run_id) DO NOTHING",
                (run.run_id, json.dumps(run.spec), run.created_at),
            )
            return cursor.rowcount == 1

    def load(self, run_id: str) -> StoredRun | None:
        with self._transaction() as db:
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
                db, "SELECT from_step, schedule, reason, created_at FROM revisions WHERE run_seq = ? "
                    "ORDER BY position", (row[0],)
            ).fetchall()
        return StoredRun(
            run=run_from_row(*row),
            reports=[report_from_row(*r) for r in reports],
            revisions=[revision_from_row(*r) for r in revisions],
        )

    def list_runs(self, after_seq: int, limit: int, prefix: str | None = None) -> list[RunRecord]:
        # A prefix is a range of ids, not a LIKE pattern: no wildcard to escape ('_' is common in ids),
        # no case folding (SQLite's LIKE ignores case), and an index on run_id can serve it.
        where = "seq > ?"
        params: list[Any] = [after_seq]
        if prefix:
            where += f" AND run_id{self.bytewise} >= ? AND run_id{self.bytewise} < ?"
            params += prefix_range(prefix)
        with self._transaction() as db:
            rows = self._run(
                db, "SELECT seq, run_id, spec, created_at, version, "
                    "(SELECT MAX(step) FROM reports WHERE run_seq = runs.seq) "
                    f"FROM runs WHERE {where} ORDER BY seq LIMIT ?",
                (*params, limit),
            ).fetchall()
        return [run_from_row(*row) for row in rows]

    def delete_run(self, run_id: str) -> bool:
        with self._transaction() as db:
            return self._run(db, "DELETE FROM runs WHERE run_id = ?", (run_id,)).rowcount == 1

    def stamp(self, run_id: str) -> Stamp | None:
        with self._transaction() as db:
            row = self._run(db, "SELECT seq, version FROM runs WHERE run_id = ?", (run_id,)).fetchone()
        return None if row is None else (row[0], row[1])

    def append_report(self, run_id: str, report: ReportRecord, expected: Stamp | None = None) -> int:
        def insert(db: Connection, seq: int) -> None:
            self._run(
                db, "INSERT INTO reports (run_seq, step, metrics, reduced, next_lr, state, received_at) "
                    "VALUES (?, ?, ?, ?, ?, ?, ?)",
                (seq, *report_to_row(report)),
            )

        return self._write(run_id, expected, insert)

    def truncate_reports(self, run_id: str, after_step: int, expected: Stamp | None = None) -> int:
        def delete(db: Connection, seq: int) -> None:
            self._run(db, "DELETE FROM reports WHERE run_seq = ? AND step > ?", (seq, after_step))

        return self._write(run_id, expected, delete)

    def append_revision(self, run_id: str, revision: RevisionRecord, expected: Stamp | None = None) -> int:
        def insert(db: Connection, seq: int) -> None:
            (position,) = self._run(db, "SELECT COUNT(*) FROM revisions WHERE run_seq = ?", (seq,)).fetchone()
            self._run(
                db, "INSERT INTO revisions (run_seq, position, from_step, schedule, reason, created_at) "
                    "VALUES (?, ?, ?, ?, ?, ?)",
                (seq, position, *revision_to_row(revision)),
            )

        return self._write(run_id, expected, insert)

    def _write(self, run_id: str, expected: Stamp | None, change: Callable[[Connection, int], None]) -> int:
        """Check the run's stamp, make the change and bump the version, in one transaction; the new version."""
        with self._transaction() as db:
            row = self._run(db, f"SELECT seq, version FROM runs WHERE run_id = ?{self.lock_row}", (run_id,)).fetchone()
            seq = checked_seq(row, run_id, expected)
            change(db, seq)
            self._run(db, "UPDATE runs SET version = version + 1 WHERE seq = ?", (seq,))
            return self._run(db, "SELECT version FROM runs WHERE seq = ?", (seq,)).fetchone()[0]


def prefix_range(prefix: str) -> list[str]:
    """[low, high): in code-point order, the ids that start with `prefix` are exactly those from `prefix`
    up to (not including) `prefix` with its last character incremented. Run ids are ASCII, so the
    incremented character always exists."""
    return [prefix, prefix[:-1] + chr(ord(prefix[-1]) + 1)]
