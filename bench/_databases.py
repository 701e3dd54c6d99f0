"""Throwaway databases for a benchmark: a temporary SQLite file, or a PostgreSQL schema dropped at the end.

    with database("postgresql") as url:   # or "sqlite"
        ...  # start `lrserve serve --database url`, as many processes as wanted

PostgreSQL is the development server at 127.0.0.1:5432 (user postgres, trust auth, database `test`),
the one the tests use; the benchmark's tables live in a schema of their own.
"""

from __future__ import annotations

import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"
KINDS = ("sqlite", "postgresql")


@contextmanager
def database(kind: str) -> Iterator[str]:
    """A database URL for `lrserve serve` that nothing else uses; removed on exit."""
    if kind == "sqlite":
        with tempfile.TemporaryDirectory(prefix="lrserve-bench-") as directory:
            yield f"sqlite:///{Path(directory) / 'bench.db'}"
    elif kind == "postgresql":
        import psycopg

        schema = f"lrserve_bench_{uuid.uuid4().hex[:12]}"
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"CREATE SCHEMA {schema}")
        try:
            yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
        finally:
            with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
                admin.execute(f"DROP SCHEMA {schema} CASCADE")
    else:
        raise ValueError(f"database kind: one of {', '.join(KINDS)}; received {kind!r}")
