"""Fixtures for the storage contract: a fresh store of each backend.

`postgres_url` (a throwaway schema on the local PostgreSQL) lives in tests/conftest.py, shared with
the deployment tests.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from lrserve.store import Store, open_store


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lrserve.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param.removesuffix('ql')}_url")


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    try:
        yield opened
    finally:
        opened.close()
