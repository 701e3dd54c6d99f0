"""Fixtures for the storage contract: a fresh store of each backend.

`postgres_url` (a throwaway schema on the local PostgreSQL) lives in tests/conftest.py, shared with
the deployment tests.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from support import POSTGRES_ADMIN_URL, throwaway_schema
from lrserve.store import Store, open_store


@pytest.fixture(scope="session")
def linguistic_postgres() -> Iterator[str]:
    """A PostgreSQL database that sorts text by ICU's en-US rules ('-' < '_' < 'a' < 'A' < 'b'), as databases
    created in an en_US locale do, rather than by code point as the `test` database does."""
    name = f"lrserve_icu_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
        admin.execute(f"CREATE DATABASE {name} TEMPLATE template0 LOCALE_PROVIDER icu ICU_LOCALE 'en-US' "
                      "LOCALE 'C.UTF-8'")
    try:
        yield POSTGRES_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    finally:
        with psycopg.connect(POSTGRES_ADMIN_URL, autocommit=True) as admin:
            admin.execute(f"DROP DATABASE {name} WITH (FORCE)")


@pytest.fixture
def linguistic_store(linguistic_postgres: str) -> Iterator[Store]:
    """A fresh PostgreSQL store in a database with a linguistic collation."""
    with throwaway_schema(linguistic_postgres) as url:
        opened = open_store(url)
        try:
            yield opened
        finally:
            opened.close()


@pytest.fixture
def sqlite_url(tmp_path: Path) -> str:
    return f"sqlite:///{tmp_path / 'lrserve.db'}"


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    return request.getfixturevalue(f"{request.param.removesuffix('ql')}_url")


@pytest.fixture(scope="module", params=["sqlite", "postgresql"])
def module_database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A database of each backend shared by one module's tests, for service processes that outlive a test (a
    start and stop of two costs about 3 s): each test works on run ids that no other test of the module uses."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path_factory.mktemp('lrserve') / 'lrserve.db'}"
    else:
        with throwaway_schema() as url:
            yield url


@pytest.fixture
def store(database_url: str) -> Iterator[Store]:
    opened = open_store(database_url)
    try:
        yield opened
    finally:
        opened.close()
