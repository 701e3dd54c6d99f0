"""Shared fixtures: every HTTP test talks to a real `lrserve serve` process on a free loopback port,
and PostgreSQL tests work in a throwaway schema of the local server. Their helpers live in support.py."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import collections
import itertools
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from support import Server, outgrown, running_server, throwaway_schema

_run_ids = itertools.count()

LONGEST_FIRST = (
    "tests/api/test_schemathesis.py", "tests/store/test_replicas.py", "tests/frameworks/test_keras_callback.py",
    "tests/client/test_client.py", "tests/cli/test_serve_paths.py", "tests/api/test_recursive_expressions.py",
    "tests/frameworks/test_two_workers.py", "tests/deploy/test_topology.py", "tests/parity/test_plateau_parity.py",
    "tests/ui/test_pages.py", "tests/frameworks/test_adapter_outages.py", "tests/parity/test_schedule_parity.py",
    "tests/parity/test_plateau_revision_parity.py", "tests/api/test_extreme_numbers.py", "tests/core/test_recursion.py",
)
"""The files that take longest (15 s to 3 min each on 2 cores), longest first. `make test` hands whole files
to its two workers in collection order (`--dist loadfile --no-loadscope-reorder`; xdist's own order is by number of
tests), so with these first neither worker is left running a long file alone at the end."""


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """The files of `LONGEST_FIRST` first, in its order; the others after them, in their own order."""
    root = Path(config.rootpath)
    missing = [path for path in LONGEST_FIRST if not (root / path).is_file()]
    if missing:
        raise pytest.UsageError(f"LONGEST_FIRST in tests/conftest.py names files that are gone: {missing}")
    rank = {path: i for i, path in enumerate(LONGEST_FIRST)}
    items.sort(key=lambda item: rank.get(item.nodeid.split("::")[0], len(rank)))


_file_seconds: collections.Counter[str] = collections.Counter()  # per test file: its tests' setup, call, teardown


def pytest_runtest_logreport(report: pytest.TestReport) -> None:
    _file_seconds[report.nodeid.split("::")[0]] += report.duration


def pytest_terminal_summary(terminalreporter: pytest.TerminalReporter, config: pytest.Config) -> None:
    """Say when `LONGEST_FIRST` has gone stale (`support.outgrown`), after a run of the whole suite."""
    selected = config.option.keyword or config.option.markexpr
    if hasattr(config, "workerinput") or selected or not all(path in _file_seconds for path in LONGEST_FIRST):
        return  # only a run of every listed file in whole can tell
    longer = outgrown(_file_seconds, LONGEST_FIRST)
    if longer:
        shortest = min((_file_seconds[path], path) for path in LONGEST_FIRST)
        terminalreporter.write_line(
            f"LONGEST_FIRST in tests/conftest.py is out of date: {', '.join(f'{p} ({s:.0f} s)' for s, p in longer)} "
            f"took half again as long as {shortest[1]} ({shortest[0]:.0f} s); the longest files of this run: "
            f"{', '.join(path for path, _ in _file_seconds.most_common(len(LONGEST_FIRST)))}", yellow=True)


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
