"""Small helpers shared by the HTTP API tests: specs whose behaviour is easy to compute by hand."""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest

try:
    from conftest import Server, free_port, running_server, wait_until_healthy
except ImportError:  # tests/ turned into a package
    from tests.conftest import Server, free_port, running_server, wait_until_healthy

__all__ = [
    "HALVING_PLATEAU",
    "INITIAL_STATE",
    "Server",
    "accepted",
    "approx",
    "create_run",
    "far_from",
    "free_port",
    "in_memory_server",
    "is_iso8601",
    "lr_at",
    "lr_range",
    "report",
    "running_server",
    "wait_until_healthy",
]

# constant 0.1 with a Keras plateau that halves the lr on every non-improving val_loss report
# (patience 1: Keras reduces as soon as `wait >= 1`). factor 0.5 keeps every value exact.
HALVING_PLATEAU: dict[str, Any] = {
    "schedule": {"type": "constant", "learning_rate": 0.1},
    "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1},
}

INITIAL_STATE: dict[str, Any] = {"best": None, "wait": 0, "cooldown_counter": 0, "reductions": 0}


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
