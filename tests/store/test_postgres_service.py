"""The service on PostgreSQL: `lrserve serve --database postgresql://...` keeps everything across a restart."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import httpx

from support import free_port, running_server, stop_process, wait_until_healthy
from lrserve import __version__

SPEC = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
        "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1}}


def test_a_run_on_postgresql_survives_a_restart(postgres_url: str) -> None:
    with running_server(postgres_url) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        assert api.put("/runs/pg", json=SPEC).status_code == 201
        for step in range(4):
            assert api.post("/runs/pg/metrics", json={"step": step, "metrics": {"val_loss": 1.0}}).status_code == 200
        before = api.get("/runs/pg/lr/range", params={"stop": 20}).json()["lr"]
        state = api.get("/runs/pg").json()["state"]
        assert api.get("/readyz").status_code == 200
    with running_server(postgres_url) as server, httpx.Client(base_url=server.url, timeout=30) as api:
        assert api.get("/runs/pg/lr/range", params={"stop": 20}).json()["lr"] == before
        assert api.get("/runs/pg").json()["state"] == state
        assert state["reductions"] == 3


def test_serve_refuses_an_unreachable_postgresql_with_a_clear_message() -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/test?connect_timeout=1"
    result = subprocess.run([sys.executable, "-m", "lrserve", "serve", "--port", str(free_port()), "--database", url],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "cannot open the database" in result.stderr


def test_serve_logs_the_postgresql_url_with_its_password_masked(postgres_url: str, tmp_path: Path) -> None:
    # The test server trusts every local user, so any password connects: it must never reach the log.
    with_password = postgres_url.replace("postgresql://postgres@", "postgresql://postgres:hunter2@")
    port, log = free_port(), tmp_path / "serve.log"
    with log.open("wb") as sink:
        process = subprocess.Popen([sys.executable, "-m", "lrserve", "serve", "--port", str(port),
                                    "--database", with_password], stdout=sink, stderr=subprocess.STDOUT)
    try:
        wait_until_healthy(f"http://127.0.0.1:{port}", process)
    finally:
        stop_process(process)
    text = log.read_text()
    assert "hunter2" not in text
    masked = with_password.replace(":hunter2@", ":***@")
    assert [line for line in text.splitlines() if line.startswith("lrserve ")] == [
        f"lrserve {__version__}: http://127.0.0.1:{port}, 1 worker, database {masked}, auth off, "
        f"shutdown timeout 10 s"
    ]
