"""Two service processes on one database build one history, and agree at once (the default is exact). The
two processes serve every test of the module, each test on a run of its own."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import ExitStack

import httpx
import pytest

from support import running_server
from lrserve.runs import Runs
from lrserve.spec import Report, RunSpec
from lrserve.store import open_store

SPEC = {"schedule": {"type": "constant", "learning_rate": 0.1},
        "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1}}


Pair = tuple[httpx.Client, httpx.Client]  # a client of each process


@pytest.fixture(scope="module")
def two_services(module_database_url: str) -> Iterator[Pair]:
    """Two processes shared by the module's tests, each test on a run of its own (`run_id`)."""
    with ExitStack() as stack:
        clients = []
        for _ in range(2):
            server = stack.enter_context(running_server(module_database_url))
            clients.append(stack.enter_context(httpx.Client(base_url=server.url, timeout=30)))
        yield clients[0], clients[1]


def report(api: httpx.Client, run_id: str, step: int, loss: float) -> httpx.Response:
    return api.post(f"/runs/{run_id}/metrics", json={"step": step, "metrics": {"val_loss": loss}})


def test_reports_alternating_between_processes_build_one_history(two_services: Pair, run_id: str) -> None:
    a, b = two_services
    assert a.put(f"/runs/{run_id}", json=SPEC).status_code == 201
    assert b.put(f"/runs/{run_id}", json=SPEC).status_code == 200
    for step in range(6):
        writer = (a, b)[step % 2]
        response = report(writer, run_id, step, 1.0)
        assert response.status_code == 200, response.text
    expected = [0.1, 0.1] + [0.1 * 0.5 ** (s - 1) for s in range(2, 7)]  # each report after the first halves
    for api in (a, b):
        assert api.get(f"/runs/{run_id}/lr/range", params={"stop": 7}).json()["lr"] == pytest.approx(expected)
        assert api.get(f"/runs/{run_id}").json()["state"]["reductions"] == 5


def test_a_process_with_a_stale_view_answers_conflicts_and_repeats_correctly(
        two_services: Pair, run_id: str) -> None:
    a, b = two_services
    a.put(f"/runs/{run_id}", json=SPEC)
    b.get(f"/runs/{run_id}/lr", params={"step": 3})  # b now holds a view of the run with no reports
    assert report(a, run_id, 0, 1.0).status_code == 200
    assert report(a, run_id, 1, 1.0).json()["reduced"] is True

    repeat = report(b, run_id, 1, 1.0)
    assert repeat.status_code == 200 and repeat.json()["reduced"] is True
    assert report(b, run_id, 1, 2.0).status_code == 409
    assert report(b, run_id, 0, 0.5).status_code == 409
    assert b.get(f"/runs/{run_id}/lr", params={"step": 3}).json()["lr"] == pytest.approx(0.05)


def test_a_run_deleted_by_one_process_is_gone_for_the_other(two_services: Pair, run_id: str) -> None:
    a, b = two_services
    a.put(f"/runs/{run_id}", json=SPEC)
    assert b.get(f"/runs/{run_id}").status_code == 200
    assert a.delete(f"/runs/{run_id}").status_code == 204
    assert b.get(f"/runs/{run_id}/lr", params={"step": 0}).status_code == 404
    assert report(b, run_id, 0, 1.0).status_code == 404


def test_a_write_decided_on_a_stale_view_is_decided_again_on_current_data(database_url: str) -> None:
    """Two `Runs` over one database, as two processes would be, each trusting its cache for an hour."""
    first, second = (Runs(open_store(database_url), cache_seconds=3600.0) for _ in range(2))
    try:
        first.create("shared", RunSpec.model_validate(SPEC))
        second.view("shared")  # cached with no reports, and not checked again for an hour
        first.report("shared", Report(step=0, metrics={"val_loss": 1.0}))
        first.report("shared", Report(step=1, metrics={"val_loss": 1.0}))

        answer = second.report("shared", Report(step=2, metrics={"val_loss": 1.0}))
        outcome = answer.record

        assert (outcome.reduced, answer.version, answer.new) == (True, 3, True)
        assert outcome.next_lr == pytest.approx(0.025)  # the reductions at steps 1 and 2 both count
        assert [r.step for r in second.view("shared").reports] == [0, 1, 2]
    finally:
        first.store.close()
        second.store.close()


def test_a_read_waiting_for_a_report_is_answered_once_the_other_process_stores_it(
        two_services: Pair, run_id: str) -> None:
    a, b = two_services
    a.put(f"/runs/{run_id}", json=SPEC)
    held: dict[str, httpx.Response] = {}
    waiting = threading.Thread(target=lambda: held.update(
        answer=b.get(f"/runs/{run_id}", params={"wait_for_step": 0, "wait": 10})))
    started = time.monotonic()
    waiting.start()
    assert report(a, run_id, 0, 1.0).status_code == 200
    waiting.join()
    assert held["answer"].status_code == 200
    assert held["answer"].json()["latest_step"] == 0
    assert time.monotonic() - started < 5, "answered when the report came, not at the end of its wait"


def test_a_read_waiting_for_a_report_that_does_not_come_answers_the_run_as_it_is_after_the_wait(
        two_services: Pair, run_id: str) -> None:
    a, b = two_services
    a.put(f"/runs/{run_id}", json=SPEC)
    assert report(a, run_id, 0, 1.0).status_code == 200
    started = time.monotonic()
    answer = b.get(f"/runs/{run_id}", params={"wait_for_step": 1, "wait": 0.5})
    assert time.monotonic() - started >= 0.5
    assert answer.status_code == 200 and answer.json()["latest_step"] == 0
    for bad in ({"wait_for_step": -1}, {"wait_for_step": 1, "wait": 11}, {"wait_for_step": 1, "wait": 0}):
        refused = b.get(f"/runs/{run_id}", params=bad)
        assert refused.status_code == 422, refused.text
        assert "wait" in refused.json()["detail"]
