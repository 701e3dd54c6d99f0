"""Helpers shared by the tests, imported as `from support import ...` (pytest puts tests/ on sys.path: see
`pythonpath` in pyproject.toml). Fixtures stay in the conftest.py files; this module holds the plain
functions and constants they and the tests use: real `lrserve serve` processes, throwaway PostgreSQL
schemas, HTTP shorthands of the API, request-counting transports of the client, and specs whose behaviour
is easy to compute by hand."""

from __future__ import annotations

import asyncio
import inspect
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import lrclient
import psycopg
import pytest

POSTGRES_ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/test"

# --- specs whose learning rates are easy to compute by hand ---------------------------------------------

# constant 0.1 with a Keras plateau that halves the lr on every non-improving val_loss report
# (patience 1: Keras reduces as soon as `wait >= 1`). factor 0.5 keeps every value exact.
HALVING_PLATEAU: dict[str, Any] = {
    "schedule": {"type": "constant", "learning_rate": 0.1},
    "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1},
}

# a boundary step keeps the earlier value: 0.3 for steps 0-2, 0.2 for 3-4, 0.1 from 5 on.
PIECEWISE: dict[str, Any] = {
    "schedule": {"type": "piecewise_constant", "boundaries": [2, 4], "values": [0.3, 0.2, 0.1]},
}

INITIAL_STATE: dict[str, Any] = {"best": None, "wait": 0, "cooldown_counter": 0, "reductions": 0}


# --- processes --------------------------------------------------------------------------------------------


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


def serve_on(port: int, database_url: str, env: Mapping[str, str] | None = None) -> AbstractContextManager[Server]:
    """`lrserve serve` on exactly `port` (unlike a free one), so a client can outlive one server."""
    return running_server(database_url, env=env, port=port)


@contextmanager
def in_memory_server(fallback: Path, name: str) -> Iterator[Server]:
    """A service of its own whose SQLite file is in memory (/dev/shm, else under `fallback`), for tests that
    create many runs: there a durable write costs no disk flush. The file is removed afterwards."""
    shm = Path("/dev/shm")
    database = (shm if shm.is_dir() else fallback) / f"lrserve-{name}-{os.getpid()}.db"
    try:
        with running_server(f"sqlite:///{database}") as server:
            yield server
    finally:
        for suffix in ("", "-wal", "-shm"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)


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


# --- the HTTP API in one call each --------------------------------------------------------------------------


def approx(expected: Any, peak: float = 1.0) -> Any:
    """The contract's tolerance: |lr - ref| <= 1e-6*|ref| + 1e-12*peak."""
    return pytest.approx(expected, rel=1e-6, abs=1e-12 * peak)


def far_from(got: list[float], expected: list[float], peak: float = 1.0) -> list[tuple[int, float, float]]:
    """(index, got, expected) wherever `got` misses the contract's tolerance; fast on long lists."""
    assert len(got) == len(expected)
    return [(i, g, e) for i, (g, e) in enumerate(zip(got, expected)) if not abs(g - e) <= 1e-6 * abs(e) + 1e-12 * peak]


def create_run(api: httpx.Client, run_id: str, spec: dict[str, Any]) -> dict[str, Any]:
    response = api.put(f"/runs/{run_id}", json=spec)
    assert response.status_code == 201, response.text
    return response.json()


def report(api: httpx.Client, run_id: str, step: int, metrics: dict[str, Any]) -> httpx.Response:
    return api.post(f"/runs/{run_id}/metrics", json={"step": step, "metrics": metrics})


def accepted(api: httpx.Client, run_id: str, step: int, metrics: dict[str, Any]) -> dict[str, Any]:
    """Report and insist on a 200; return the outcome."""
    response = report(api, run_id, step, metrics)
    assert response.status_code == 200, response.text
    return response.json()


def lr_at(api: httpx.Client, run_id: str, step: int) -> float:
    response = api.get(f"/runs/{run_id}/lr", params={"step": step})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["run_id"] == run_id and body["step"] == step
    return body["lr"]


def lr_range(api: httpx.Client, run_id: str, start: int, stop: int, every: int = 1) -> list[float]:
    response = api.get(f"/runs/{run_id}/lr/range", params={"start": start, "stop": stop, "every": every})
    assert response.status_code == 200, response.text
    return response.json()["lr"]


def is_iso8601(value: Any) -> bool:
    try:
        datetime.fromisoformat(value)
    except (TypeError, ValueError):
        return False
    return True


# --- transports that count what the client sends -------------------------------------------------------


@dataclass
class CountingTransport(httpx.BaseTransport):
    """The real HTTP transport, recording every request it is handed and every connection failure."""

    inner: httpx.BaseTransport = field(default_factory=httpx.HTTPTransport)
    requests: list[tuple[str, str]] = field(default_factory=list)
    local_ports: list[int] = field(default_factory=list)
    failures: int = 0
    failed: threading.Event = field(default_factory=threading.Event)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        try:
            response = self.inner.handle_request(request)
        except httpx.TransportError:
            self.failures += 1
            self.failed.set()
            raise
        stream = response.extensions.get("network_stream")
        if stream is not None:
            self.local_ports.append(stream.get_extra_info("client_addr")[1])
        return response

    def paths(self, suffix: str) -> int:
        """How many requests went to a path ending with `suffix`."""
        return sum(path.endswith(suffix) for _, path in self.requests)

    def close(self) -> None:
        self.inner.close()


@dataclass
class AsyncCountingTransport(httpx.AsyncBaseTransport):
    """The real async HTTP transport, recording every request it is handed."""

    inner: httpx.AsyncBaseTransport = field(default_factory=httpx.AsyncHTTPTransport)
    requests: list[tuple[str, str]] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    def paths(self, suffix: str) -> int:
        """How many requests went to a path ending with `suffix`."""
        return sum(path.endswith(suffix) for _, path in self.requests)

    async def aclose(self) -> None:
        await self.inner.aclose()


# --- the client's twins behind one interface ----------------------------------------------------------------


class AwaitedClient:
    """An `lrclient.AsyncClient` with the method names of `lrclient.Client`, each call awaited on an event
    loop of its own, so one test body checks both twins method by method (as httpx tests its twins).

    A coroutine is run to its result; an async iterator becomes a lazy iterator whose every `next` awaits
    one item. Closing closes the client, not the loop, so a call after `close` meets the client's own
    error; `finish` closes the loop."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        self._runner = asyncio.Runner()
        self.wrapped = lrclient.AsyncClient(*args, **kwargs)

    def __getattr__(self, name: str) -> Any:
        method = getattr(self.wrapped, name)
        if not callable(method):
            return method

        def awaited(*args: Any, **kwargs: Any) -> Any:
            result = method(*args, **kwargs)
            if inspect.iscoroutine(result):
                return self._runner.run(result)
            if isinstance(result, AsyncIterator):
                return self._iterate(result)
            return result

        return awaited

    def _iterate(self, items: AsyncIterator[Any]) -> Iterator[Any]:
        async def one() -> Any:
            return await anext(items)

        while True:
            try:
                yield self._runner.run(one())
            except StopAsyncIteration:
                return

    def close(self) -> None:
        self._runner.run(self.wrapped.close())

    def finish(self) -> None:
        self._runner.close()

    def __enter__(self) -> AwaitedClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@contextmanager
def client_twin(kind: str, *args: Any, **kwargs: Any) -> Iterator[Any]:
    """`lrclient.Client(*args, **kwargs)` if `kind` is "Client", else the same `AsyncClient` behind an
    `AwaitedClient`; closed on exit (the loop stays open until the block ends, for calls after a close)."""
    if kind == "Client":
        with lrclient.Client(*args, **kwargs) as client:
            yield client
        return
    client = AwaitedClient(*args, **kwargs)
    try:
        with client:
            yield client
    finally:
        client.finish()


# --- the order of the suite's files -------------------------------------------------------------------------


def outgrown(file_seconds: Mapping[str, float], longest_first: Sequence[str]) -> list[tuple[float, str]]:
    """(seconds, path) of the files outside `longest_first` that took half again as long as the shortest file in it,
    longest first (closer than that, the order of two files hardly matters, and run-to-run noise reorders them)."""
    shortest = min(file_seconds[path] for path in longest_first)
    return sorted(((seconds, path) for path, seconds in file_seconds.items()
                   if path not in longest_first and seconds > 1.5 * shortest), reverse=True)
