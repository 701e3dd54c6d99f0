"""A recursive expression costs bounded work and memory, and never holds up the service: one too costly to
compute up to step 1,000,000 is refused at creation; the steps of an accepted one are computed outside the
event loop (so /healthz answers at once meanwhile), as float64, in one cache bounded in bytes for the process."""

from __future__ import annotations

import ast
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from lrserve.memo import DEFAULT_MAX_BYTES as MEMO_BYTES
from lrserve.schedules.recursion import MAX_CACHE_BYTES

from support import Server, create_run, running_server

LAST = 1_000_000
# About 300 syntax nodes, most of them of step alone: accepted, and about half a second of CPU to reach step
# 1,000,000 (the old evaluator took 16 s for it, on the event loop).
LARGE = "lr * 0.9999 + 0 * (" + " + ".join(["sin(step) * cos(step)"] * 20) + ")"
HEALTHZ_SECONDS = 0.2
"""/healthz must answer within this while a recursive expression computes: 9 times in 10 (the 2-core
machine's load from other work can delay any one request of any process; on the event loop, the computation
delayed every one of them by all of its 16 s)."""
RUNS = 60
OTHER_BYTES = 64 * 1024 * 1024
"""What 60 runs may take besides the two bounded caches: their views, the allocator's slack."""


def recursive(text: str, initial: float = 0.1) -> dict[str, object]:
    return {"schedule": {"type": "expression", "expression": text, "recursive": True,
                         "initial_learning_rate": initial}}


@pytest.fixture
def own_server(tmp_path: Path) -> Iterator[Server]:
    """A service of its own, so that its memory and its event loop hold only this test's runs."""
    with running_server(f"sqlite:///{tmp_path / 'lrserve.db'}") as server:
        yield server


def rss_bytes(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError("no VmRSS")


def assert_answered_at_once(latencies: list[float]) -> None:
    slow = [round(seconds, 3) for seconds in latencies if seconds >= HEALTHZ_SECONDS]
    assert len(slow) <= len(latencies) // 10, f"/healthz took {slow} s, {len(slow)} times in {len(latencies)}"
    assert len(latencies) >= 5, "the far step was computed too fast to measure anything"


def test_the_large_expression_has_about_300_nodes() -> None:
    assert 280 <= len(list(ast.walk(ast.parse(LARGE, mode="eval")))) <= 300


def test_healthz_answers_at_once_while_step_1000000_of_a_recursive_expression_is_computed(
    own_server: Server,
) -> None:
    with httpx.Client(base_url=own_server.url, timeout=60.0) as api:
        create_run(api, "large", recursive(LARGE))
        api.get("/healthz")
        latencies: list[float] = []
        answer: list[httpx.Response] = []

        def read_far_step() -> None:
            with httpx.Client(base_url=own_server.url, timeout=60.0) as other:
                answer.append(other.get("/runs/large/lr", params={"step": LAST}))

        reader = threading.Thread(target=read_far_step)
        reader.start()
        while reader.is_alive():
            started = time.perf_counter()
            assert api.get("/healthz").status_code == 200
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
        reader.join()

    assert answer[0].status_code == 200, answer[0].text
    assert_answered_at_once(latencies)


def test_a_far_range_of_a_recursive_expression_is_computed_off_the_event_loop_too(own_server: Server) -> None:
    with httpx.Client(base_url=own_server.url, timeout=60.0) as api:
        create_run(api, "large", recursive(LARGE))
        answer: list[httpx.Response] = []
        reader = threading.Thread(target=lambda: answer.append(
            httpx.get(f"{own_server.url}/runs/large/lr/range", params={"start": LAST - 5, "stop": LAST + 1},
                      timeout=60.0)))
        reader.start()
        latencies = []
        while reader.is_alive():
            started = time.perf_counter()
            api.get("/healthz")
            latencies.append(time.perf_counter() - started)
            time.sleep(0.02)
        reader.join()

    assert answer[0].status_code == 200 and len(answer[0].json()["lr"]) == 6
    assert_answered_at_once(latencies)


def test_60_recursive_runs_read_at_step_1000000_keep_memory_bounded(own_server: Server) -> None:
    """Unbounded, each run would keep 1,000,001 values (34 MB as a Python list, 8 MB as float64): 60 of them,
    0.5 to 2 GB. Bounded, the process grows by at most the recursive cache's bound, the lr memo's bound,
    and a little for the runs themselves."""
    pid = own_server.process.pid
    with httpx.Client(base_url=own_server.url, timeout=60.0) as api:
        create_run(api, "warm-up", recursive("lr * 0.999"))
        api.get("/runs/warm-up/lr", params={"step": 5})
        before = rss_bytes(pid)
        for k in range(RUNS):
            create_run(api, f"run-{k}", recursive(f"lr * 0.999999 + {k} * 1e-12"))
            response = api.get(f"/runs/run-{k}/lr", params={"step": LAST})
            assert response.status_code == 200, response.text
        grown = rss_bytes(pid) - before
    print(f"RSS grew by {grown / 2**20:.0f} MiB")

    assert grown <= MAX_CACHE_BYTES + MEMO_BYTES + OTHER_BYTES, f"grew by {grown / 2**20:.0f} MiB"


@pytest.mark.parametrize("text", [
    " + ".join(["lr * lr"] * 20),
    "lr * lr * lr * lr * lr * lr * lr * lr * lr * lr * lr * lr * lr * lr * lr * lr * lr * lr * lr * lr * 0.5",
    "max(" + ", ".join(f"lr * {k}" for k in range(1, 30)) + ")",
])
def test_a_recursive_expression_too_costly_to_reach_step_1000000_is_refused_at_creation(
    api: httpx.Client, run_id: str, text: str
) -> None:
    started = time.perf_counter()
    response = api.put(f"/runs/{run_id}", json=recursive(text, initial=0.001))
    elapsed = time.perf_counter() - started

    assert response.status_code == 422, response.text
    assert "too costly" in response.json()["detail"] and "1,000,000" in response.json()["detail"]
    assert elapsed < 0.5


def test_step_1000000_of_a_recursive_expression_is_the_recurrence_computed_in_python(
    api: httpx.Client, run_id: str
) -> None:
    create_run(api, run_id, recursive("lr * 0.99999 if epoch % 2 else lr * 1.00001"))

    lr, expected = 0.1, []
    for epoch in range(LAST + 1):
        lr = lr * 0.99999 if epoch % 2 else lr * 1.00001
        if epoch >= LAST - 2:
            expected.append(lr)

    assert api.get(f"/runs/{run_id}/lr", params={"step": LAST}).json()["lr"] == expected[-1]
    assert api.get(f"/runs/{run_id}/lr/range", params={"start": LAST - 2, "stop": LAST + 1}).json()["lr"] == expected
    assert api.get(f"/runs/{run_id}/lr", params={"step": LAST + 1}).status_code == 422


def test_a_sequence_of_recursive_expressions_too_costly_together_is_refused_at_creation(
    api: httpx.Client, run_id: str
) -> None:
    """20 segments of 1,000,001 steps (a spec holds at most 64 schedules): one range of 20 values, one step
    near the end of each, would compute 20 million steps."""
    segment = recursive("lr * 0.99999")["schedule"]
    spec = {"schedule": {"type": "sequence", "boundaries": [1_000_001 * k for k in range(1, 20)],
                         "schedules": [segment] * 20}}

    response = api.put(f"/runs/{run_id}", json=spec)

    assert response.status_code == 422, response.text
    assert "together are too costly" in response.json()["detail"]


def test_revisions_whose_recursive_expressions_together_cost_too_much_are_refused(
    api: httpx.Client, run_id: str
) -> None:
    """`lr * 0.99` costs 5 units a step; a run may hold 30 in all, its spec's and its revisions'."""
    create_run(api, run_id, recursive("lr * 0.99"))
    for k in range(1, 6):
        response = api.post(f"/runs/{run_id}/revisions", json={"from_step": 1000 * k, **recursive("lr * 0.99")})
        assert response.status_code == 201, response.text

    refused = api.post(f"/runs/{run_id}/revisions", json={"from_step": 6000, **recursive("lr * 0.99")})
    constant = api.post(f"/runs/{run_id}/revisions",
                        json={"from_step": 6000, "schedule": {"type": "constant", "learning_rate": 0.1}})

    assert refused.status_code == 422, refused.text
    assert "together are too costly" in refused.json()["detail"]
    assert constant.status_code == 201, constant.text
