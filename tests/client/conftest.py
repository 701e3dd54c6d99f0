"""Fixtures of the client tests: clients of the session's real server, with their requests counted."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import lrclient
import pytest

from support import CountingTransport, Server


@pytest.fixture
def counting() -> CountingTransport:
    return CountingTransport()


@pytest.fixture
def client(server: Server, counting: CountingTransport) -> Iterator[lrclient.Client]:
    """A Client of the session's server whose requests `counting` records; quick retries."""
    with lrclient.Client(server.url, transport=counting, backoff=0.01) as each:
        yield each


@pytest.fixture
def other(server: Server) -> Iterator[lrclient.Client]:
    """A second, independent client of the same server: another worker of the job."""
    with lrclient.Client(server.url) as each:
        yield each


@pytest.fixture
def database(tmp_path: Path) -> str:
    """A fresh SQLite URL for a server of the test's own."""
    return f"sqlite:///{tmp_path / 'lrserve.db'}"
