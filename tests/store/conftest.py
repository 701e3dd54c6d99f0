"""Fixtures for the storage contract: a fresh store of each backend, and PostgreSQL URLs in a throwaway schema."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from lrserve.store import Store, open_store

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database URL whose tables live in a new schema, dropped afterwards."""
    schema = f"lrserve_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{POSTGRES_ADMIN_URL}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


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
