"""Shared fixtures: every HTTP test talks to a real `lrserve serve` process on a free loopback port,
and PostgreSQL tests work in a throwaway schema of the local server. Their helpers live in support.py."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import Server, running_server, throwaway_schema

_run_ids = itertools.count()


@pytest.fixture(scope="session")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """One service per test session (per xdist worker), on its own SQLite file."""
    path: Path = tmp_path_factory.mktemp("lrserve") / "lrserve.db"
    with running_server(f"sqlite:///{path}") as srv:
        yield srv


@pytest.fixture
def api(server: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        yield client


@pytest.fixture
def run_id(request: pytest.FixtureRequest) -> str:
    """A run id unique within the session, readable in server logs."""
    name = "".join(c if c.isalnum() else "-" for c in request.node.name)[:90]
    return f"{name}-{os.getpid()}-{next(_run_ids)}"


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database URL whose tables live in a new schema, dropped afterwards."""
    with throwaway_schema() as url:
        yield url
