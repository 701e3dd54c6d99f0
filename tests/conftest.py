"""Shared fixtures: every HTTP test talks to a real `lrserve serve` process on a free loopback port,
and PostgreSQL tests work in a throwaway schema of the local server."""

from __future__ import annotations

import os

os.environ.setdefault("KERAS_BACKEND", "torch")

import itertools
import shutil
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import psycopg
import pytest

_run_ids = itertools.count()

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"


def stop_process(process: subprocess.Popen) -> None:
    """Terminate, and kill if it does not stop within 10 s."""
    process.terminate()
    try:
        process.wait(timeout=10)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def installed_script(name: str) -> str:
    """A console script of the test environment: beside sys.executable, else on PATH; fail if missing."""
    beside_python = Path(sys.executable).parent / name
    if beside_python.is_file():
        return str(beside_python)
    found = shutil.which(name)
    if found is None:
        pytest.fail(f"`{name}` is not installed: install the project with its dev extra (make test does)")
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass(frozen=True)
class Server:
    url: str
    process: subprocess.Popen
    database_url: str


def wait_until_healthy(url: str, process: subprocess.Popen, timeout: float = 30.0) -> None:
    """Poll /healthz until it answers; fail fast if the process dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"lrserve exited with code {process.returncode} before serving")
        try:
            if httpx.get(f"{url}/healthz", timeout=1.0).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"lrserve did not become healthy at {url} within {timeout}s")


@contextmanager
def running_server(
    database_url: str, env: Mapping[str, str] | None = None, args: list[str] | None = None,
    port: int | None = None, log: Path | None = None,
) -> Iterator[Server]:
    """Start `lrserve serve` (on `port`, or a free one), yield it once healthy, stop it on exit.

    The process inherits no LRSERVE_* variable from the developer's environment, only `env`. With `log`, its
    stderr (the JSON log lines and uvicorn's own) is appended to that file.
    """
    port = port if port is not None else free_port()
    command = [sys.executable, "-m", "lrserve", "serve", "--host", "127.0.0.1",
               "--port", str(port), "--database", database_url, *(args or [])]
    inherited = {k: v for k, v in os.environ.items() if not k.startswith("LRSERVE_")}
    stderr = log.open("ab") if log is not None else None
    process = subprocess.Popen(command, env={**inherited, **(env or {})}, stderr=stderr)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_until_healthy(url, process)
        yield Server(url=url, process=process, database_url=database_url)
    finally:
        stop_process(process)
        if stderr is not None:
            stderr.close()


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


@contextmanager
def throwaway_schema(database_url: str = POSTGRES_ADMIN_URL) -> Iterator[str]:
    """A URL of `database_url` (the local server's `test` database by default) whose tables live in a
    new schema, dropped on exit."""
    schema = f"lrserve_test_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(database_url, autocommit=True) as admin:
        admin.execute(f"CREATE SCHEMA {schema}")
    try:
        yield f"{database_url}?options=-csearch_path%3D{schema}"
    finally:
        with psycopg.connect(database_url, autocommit=True) as admin:
            admin.execute(f"DROP SCHEMA {schema} CASCADE")


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A database URL whose tables live in a new schema, dropped afterwards."""
    with throwaway_schema() as url:
        yield url
