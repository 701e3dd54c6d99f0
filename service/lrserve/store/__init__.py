"""Storage behind one small interface (`base`): the SQL both backends share (`sql`), SQLite (`sqlite`) and
PostgreSQL (`postgres`); `open_store(url)` picks the backend from the database URL."""

from __future__ import annotations

from lrserve.store.base import ListedRun, ReportRecord, RevisionRecord, RunRecord, RunWriter, Stamp, Store, StoredRun


def open_store(url: str) -> Store:
    """`sqlite:///relative.db`, `sqlite:////absolute.db` or `postgresql://user:pass@host:port/db`."""
    if url.startswith("sqlite:///"):
        from lrserve.store.sqlite import SqliteStore

        return SqliteStore(url.removeprefix("sqlite:///"))
    if url.startswith(("postgresql://", "postgres://")):
        from lrserve.store.postgres import PostgresStore

        return PostgresStore(url)
    raise ValueError(
        f"unsupported database URL {url!r}; use sqlite:///relative/path.db, sqlite:////absolute/path.db "
        "or postgresql://user:pass@host:port/db"
    )


__all__ = ["ListedRun", "ReportRecord", "RevisionRecord", "RunRecord", "RunWriter", "Stamp", "Store", "StoredRun", "open_store"]
