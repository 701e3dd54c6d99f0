"""Storage behind one small interface; `open_store(url)` picks the backend from the database URL."""

from lrserve.store.base import ListedRun, ReportRecord, RevisionRecord, RunRecord, RunWriter, Stamp, Store, StoredRun
from lrserve.store.factory import open_store

__all__ = ["ListedRun", "ReportRecord", "RevisionRecord", "RunRecord", "RunWriter", "Stamp", "Store", "StoredRun", "open_store"]
