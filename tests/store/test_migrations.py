"""Databases written by earlier versions still load: the store adds what is new and reads old rows as they
meant. Each test builds the earlier tables by hand (their DDL as it was), writes rows the way the earlier
version did, then opens the database with today's store."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import psycopg
import pytest

from lrserve.run_view import view_of
from lrserve.store import RevisionRecord, open_store

# The tables as they were before revisions could change the plateau (no revisions.plateau column).
BEFORE_PLATEAU_REVISIONS = """
CREATE TABLE runs (seq {serial} PRIMARY KEY, run_id TEXT NOT NULL UNIQUE, spec TEXT NOT NULL,
                   created_at TEXT NOT NULL, version {bigint} NOT NULL DEFAULT 0);
CREATE TABLE revisions (run_seq {bigint} NOT NULL REFERENCES runs(seq) ON DELETE CASCADE,
                        position INTEGER NOT NULL, from_step {bigint} NOT NULL, schedule TEXT NOT NULL,
                        reason TEXT NOT NULL, created_at TEXT NOT NULL, PRIMARY KEY (run_seq, position));
"""
SPEC = {"schedule": {"type": "constant", "learning_rate": 0.1},
        "plateau": {"monitor": "val_loss", "mode": "auto", "factor": 0.5, "patience": 1, "cooldown": 0,
                    "min_lr": 0.0, "semantics": "keras", "min_delta": 0.0001},
        "step_unit": "epoch"}
OLD_SCHEDULE = {"type": "constant", "learning_rate": 0.3}
OLD_ROWS = [
    "INSERT INTO runs (run_id, spec, created_at, version) VALUES ('old', '{spec}', 't0', 1)",
    "INSERT INTO revisions VALUES (1, 0, 5, '{schedule}', 'before', 't1')",
]


def old_sqlite(path: Path) -> str:
    with sqlite3.connect(path) as db:
        db.executescript(BEFORE_PLATEAU_REVISIONS.format(serial="INTEGER", bigint="INTEGER").replace(
            "INTEGER PRIMARY KEY,", "INTEGER PRIMARY KEY AUTOINCREMENT,"))
        for row in OLD_ROWS:
            db.execute(row.format(spec=json.dumps(SPEC), schedule=json.dumps(OLD_SCHEDULE)))
    return f"sqlite:///{path}"


def old_postgres(url: str) -> str:
    with psycopg.connect(url, autocommit=True) as db:
        db.execute(BEFORE_PLATEAU_REVISIONS.format(serial="BIGSERIAL", bigint="BIGINT"))
        for row in OLD_ROWS:
            db.execute(row.format(spec=json.dumps(SPEC), schedule=json.dumps(OLD_SCHEDULE)))
    return url


@pytest.fixture(params=["sqlite", "postgresql"])
def old_database(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return old_sqlite(tmp_path / "old.db")
    return old_postgres(request.getfixturevalue("postgres_url"))


def test_an_old_database_loads_its_revisions_and_takes_plateau_revisions(old_database: str) -> None:
    for opening in range(2):  # the second opening finds the column already added
        store = open_store(old_database)
        try:
            stored = store.load("old")
            assert stored is not None
            assert stored.revisions[0] == RevisionRecord(5, OLD_SCHEDULE, "before", "t1", plateau=None)
            if opening == 0:
                with store.writing("old") as writer:
                    writer.append_revision(RevisionRecord(7, None, "plateau only", "t2", plateau={"factor": 0.1}))
            else:
                assert stored.revisions[1] == RevisionRecord(7, None, "plateau only", "t2", plateau={"factor": 0.1})
                view = view_of(stored)
                assert [view.lr(step) for step in (4, 5, 7)] == [0.1, 0.3, 0.3]
                assert view.plateau_at(7).factor == 0.1 and view.plateau_at(6).factor == 0.5
        finally:
            store.close()
