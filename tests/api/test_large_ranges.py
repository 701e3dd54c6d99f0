"""Large lr/range answers: exact, streamed, and bounded in memory however many clients ask at once,
read slowly or never. Each test runs its own server so that its memory is measured alone."""

from __future__ import annotations

import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from support import running_server

SPEC = {"schedule": {"type": "cosine_decay", "initial_learning_rate": 0.1, "decay_steps": 2_000_000,
                     "warmup_target": 0.5, "warmup_steps": 1000},
        "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 0}}
MB = 1 << 20


def memory_kib(pid: int, field: str) -> int:
    """VmRSS (now) or VmHWM (the peak since start) of a process, in KiB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(f"{field}:"):
            return int(line.split()[1])
    raise AssertionError(f"{field} not in /proc/{pid}/status")


@pytest.fixture
def lonely(tmp_path: Path):
    with running_server(f"sqlite:///{tmp_path / 'ranges.db'}") as server:
        with httpx.Client(base_url=server.url, timeout=120) as api:
            assert api.put("/runs/big", json=SPEC).status_code == 201
            for step in range(5):  # a reduction at steps 1..4 (patience 0, flat loss)
                assert api.post("/runs/big/metrics", json={"step": step, "metrics": {"val_loss": 1.0}}).status_code == 200
            yield server, api


def test_a_streamed_range_equals_the_same_steps_asked_in_small_ranges(lonely) -> None:
    _, api = lonely
    big = api.get("/runs/big/lr/range", params={"start": 3, "stop": 200_003, "every": 3})
    assert big.status_code == 200 and big.headers["x-run-version"] == "5"
    body = big.json()
    assert (body["run_id"], body["start"], body["stop"], body["every"]) == ("big", 3, 200_003, 3)
    pieces = []
    for start in range(3, 200_003, 3 * 9_000):
        stop = min(start + 3 * 9_000, 200_003)
        pieces += api.get("/runs/big/lr/range", params={"start": start, "stop": stop, "every": 3}).json()["lr"]
    assert body["lr"] == pieces and len(pieces) == 66_667


def test_a_range_reaching_a_bad_step_is_422_before_anything_is_sent(lonely) -> None:
    _, api = lonely
    api.put("/runs/ramp", json={"schedule": {"type": "expression", "expression": "0.1 if step < 150000 else -1"}})
    response = api.get("/runs/ramp/lr/range", params={"stop": 200_000})
    assert response.status_code == 422
    assert "step 150000" in response.json()["detail"]


def test_eight_concurrent_maximum_ranges_stay_within_a_bounded_memory(lonely) -> None:
    server, api = lonely
    api.get("/runs/big/lr/range", params={"stop": 1_000_000})  # warm: imports, memo, allocator
    before = memory_kib(server.process.pid, "VmRSS")

    def read(_: int) -> int:
        with httpx.Client(base_url=server.url, timeout=120) as client:
            response = client.get("/runs/big/lr/range", params={"stop": 1_000_000})
            return len(response.json()["lr"])

    with ThreadPoolExecutor(8) as pool:
        assert list(pool.map(read, range(8))) == [1_000_000] * 8
    peak = memory_kib(server.process.pid, "VmHWM")
    # At most 4 ranges in flight, each an 8 MB array plus small chunks: well under 100 MB above the start.
    assert (peak - before) * 1024 < 100 * MB, f"peak {peak} KiB vs {before} KiB before"


def test_clients_that_never_read_hold_no_json_and_stall_nobody(lonely) -> None:
    server, api = lonely
    before = memory_kib(server.process.pid, "VmRSS")
    host, port = server.url.removeprefix("http://").split(":")
    sockets = []
    for _ in range(30):
        sock = socket.create_connection((host, int(port)))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.sendall(b"GET /runs/big/lr/range?stop=1000000 HTTP/1.1\r\nHost: x\r\n\r\n")
        sockets.append(sock)
    try:
        started = time.monotonic()
        assert api.get("/healthz").status_code == 200
        assert api.get("/runs/big/lr", params={"step": 7}).status_code == 200
        assert time.monotonic() - started < 2.0
        time.sleep(0.5)  # let the server fill what it can into the silent connections
        during = memory_kib(server.process.pid, "VmRSS")
        # While they still hold their connections open, a maximum range is answered in full.
        started = time.monotonic()
        assert len(api.get("/runs/big/lr/range", params={"stop": 1_000_000}).json()["lr"]) == 1_000_000
        assert time.monotonic() - started < 10.0
    finally:
        for sock in sockets:
            sock.close()
    assert (during - before) * 1024 < 150 * MB, f"{during} KiB with 30 silent readers vs {before} KiB before"
