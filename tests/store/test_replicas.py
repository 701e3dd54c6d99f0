"""Two service processes on one database, every request to a random one, as behind a load balancer
without stickiness: once either process has acknowledged a write, every later request to either one
answers from a state that includes it. Runs on a real SQLite file and on the real PostgreSQL.

The two processes serve every test of the module, as replicas serve many jobs: each test works on run ids
that no other test here uses.
"""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass

import httpx
import pytest

from support import Server, running_server
from workloads import PLATEAU_SPEC, lr, serial_replay, train_workers

HALVING = {"schedule": {"type": "constant", "learning_rate": 0.1},
           "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1}}
WORKERS, EPOCHS = 32, 100


@dataclass
class Replicas:
    """Clients of each replica; `any()` picks one at random per request, like a round-robin balancer."""

    servers: list[Server]
    clients: list[httpx.Client]

    def any(self) -> httpx.Client:
        return random.choice(self.clients)


@pytest.fixture(scope="module")
def replicas(module_database_url: str) -> Iterator[Replicas]:
    """Two processes shared by the module's tests (each test its own run ids); the SIGKILL test starts its own."""
    with ExitStack() as stack:
        servers = [stack.enter_context(running_server(module_database_url)) for _ in range(2)]
        limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
        clients = [stack.enter_context(httpx.Client(base_url=s.url, timeout=60, limits=limits)) for s in servers]
        yield Replicas(servers, clients)


def report(api: httpx.Client, run_id: str, step: int, metrics: dict) -> httpx.Response:
    return api.post(f"/runs/{run_id}/metrics", json={"step": step, "metrics": metrics})


def in_threads(count: int, work: Callable[[int], object]) -> list:
    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(work, range(count)))


def test_32_workers_for_100_epochs_see_the_same_lrs_as_a_serial_replay(replicas: Replicas) -> None:
    assert replicas.any().put("/runs/shared", json=PLATEAU_SPEC).status_code == 201

    sequences = train_workers(replicas.any, "shared", WORKERS, EPOCHS)

    serial = replicas.clients[0]
    assert serial.put("/runs/serial", json=PLATEAU_SPEC).status_code == 201
    replay = serial_replay(serial, "serial", EPOCHS)
    disagreeing = [w for w, seen in enumerate(sequences) if seen != replay]
    assert not disagreeing, f"workers {disagreeing} trained with other lrs than the serial replay"
    assert serial.get("/runs/serial").json()["state"]["reductions"] >= 5  # the plateau really acted


def test_50_concurrent_puts_of_one_spec_create_it_once(replicas: Replicas) -> None:
    statuses = in_threads(50, lambda _: replicas.any().put("/runs/once", json=HALVING).status_code)
    assert sorted(statuses) == [200] * 49 + [201]


def test_conflicting_reports_for_one_step_one_wins_the_rest_are_409(replicas: Replicas) -> None:
    replicas.any().put("/runs/race", json=HALVING)
    statuses = in_threads(20, lambda i: report(replicas.any(), "race", 0, {"val_loss": 1.0 + i}).status_code)
    assert sorted(statuses) == [200] + [409] * 19
    winner = replicas.any().get("/runs/race/metrics").json()["reports"]
    assert len(winner) == 1


def test_a_rewind_through_one_replica_is_seen_by_every_read_that_starts_after_its_answer(
    replicas: Replicas,
) -> None:
    """Step 3 is settled (reported past), so replicas serve it from memory: the rewind must reach them."""
    a, b = replicas.clients
    a.put("/runs/rw", json=HALVING)
    for step in range(6):  # reductions at steps 1..5
        assert report(a, "rw", step, {"val_loss": 1.0}).status_code == 200
    assert lr(a, "rw", 3) == lr(b, "rw", 3) == pytest.approx(0.025)
    acknowledged = threading.Event()
    stop = threading.Event()

    def read(_: int) -> list[tuple[bool, float]]:
        seen = []
        while not stop.is_set():
            after_ack = acknowledged.is_set()
            seen.append((after_ack, lr(replicas.any(), "rw", 3)))
        return seen

    with ThreadPoolExecutor(8) as pool:
        readers = [pool.submit(read, i) for i in range(8)]
        time.sleep(0.2)  # let the readers hit the settled value a while: the rewind must interrupt them
        assert a.post("/runs/rw/rewind", json={"step": 0}).status_code == 200
        acknowledged.set()
        time.sleep(0.3)
        stop.set()
        seen = [value for reader in readers for value in reader.result()]
    after = [value for after_ack, value in seen if after_ack]
    assert after and all(value == pytest.approx(0.1) for value in after), sorted(set(after))
    assert any(value == pytest.approx(0.025) for after_ack, value in seen if not after_ack)


def test_a_report_after_a_rewind_through_the_other_replica_is_stored_and_decided_after_the_rewind(
    replicas: Replicas,
) -> None:
    a, b = replicas.clients
    a.put("/runs/resume", json=HALVING)
    for step in range(8):
        report(b, "resume", step, {"val_loss": 1.0})
    assert lr(b, "resume", 7) == pytest.approx(0.1 * 0.5**6)  # b holds a view with 8 reports

    assert a.post("/runs/resume/rewind", json={"step": 5}).status_code == 200
    again = report(b, "resume", 6, {"val_loss": 1.0})  # what it sent before the rewind
    assert again.status_code == 200
    assert again.json()["reduced"] is True and again.json()["state"]["reductions"] == 6
    other = report(b, "resume", 7, {"val_loss": 0.5})  # a new value for a rewound step is no conflict
    assert other.status_code == 200 and other.json()["reduced"] is False
    for api in (a, b):
        steps = [r["step"] for r in api.get("/runs/resume/metrics").json()["reports"]]
        assert steps == list(range(8))


def test_a_plateau_revision_through_one_replica_decides_the_reports_the_other_accepts(replicas: Replicas) -> None:
    """b caches the run with patience 1 and factor 0.5; a revision through a makes it factor 0.1 and patience 3
    from step 2. b must decide with the revised plateau: three bad reports before a cut, and a cut to a tenth."""
    a, b = replicas.clients
    a.put("/runs/revised-plateau", json=HALVING)
    assert report(b, "revised-plateau", 0, {"val_loss": 1.0}).json()["state"]["best"] == 1.0
    assert lr(b, "revised-plateau", 5) == pytest.approx(0.1)  # b holds a view under the old plateau

    revision = {"from_step": 2, "plateau": {"factor": 0.1, "patience": 3}, "reason": "replica"}
    assert a.post("/runs/revised-plateau/revisions", json=revision).status_code == 201
    outcomes = [report(b, "revised-plateau", step, {"val_loss": 1.0}).json() for step in (1, 2, 3, 4)]

    # step 1 is still under patience 1: a cut by 0.5; from step 2 on wait counts to 3 under patience 3
    assert [o["reduced"] for o in outcomes] == [True, False, False, True]
    assert [o["next_lr"] for o in outcomes] == pytest.approx([0.05, 0.05, 0.05, 0.005])
    assert b.post("/runs/revised-plateau/revisions", json=revision).status_code == 200  # the same revision
    for api in (a, b):
        assert lr(api, "revised-plateau", 5) == pytest.approx(0.005)
        assert [r["plateau"] for r in api.get("/runs/revised-plateau").json()["revisions"]] == \
            [{"factor": 0.1, "patience": 3}]


def test_a_run_deleted_and_created_again_through_one_replica_takes_reports_through_the_other(
    replicas: Replicas,
) -> None:
    a, b = replicas.clients
    a.put("/runs/again", json=HALVING)
    for step in range(3):
        report(b, "again", step, {"val_loss": 1.0})
    assert a.delete("/runs/again").status_code == 204
    assert b.get("/runs/again/lr", params={"step": 1}).status_code == 404
    assert a.put("/runs/again", json=HALVING).status_code == 201

    first = report(b, "again", 0, {"val_loss": 2.0})  # a conflict with the deleted run's history
    assert first.status_code == 200, first.text
    assert [r["metrics"] for r in a.get("/runs/again/metrics").json()["reports"]] == [{"val_loss": 2.0}]
    assert lr(b, "again", 2) == lr(a, "again", 2) == pytest.approx(0.1)


def test_a_delete_while_others_report_leaves_nothing_behind_and_no_5xx(replicas: Replicas) -> None:
    replicas.any().put("/runs/gone", json=HALVING)
    deleted = threading.Event()

    def report_on(worker: int) -> list[tuple[bool, int]]:
        outcomes = []
        for step in range(40):
            after_delete = deleted.is_set()
            outcomes.append((after_delete, report(replicas.any(), "gone", step, {"val_loss": 1.0}).status_code))
        return outcomes

    with ThreadPoolExecutor(8) as pool:
        reporters = [pool.submit(report_on, i) for i in range(8)]
        time.sleep(0.1)
        assert replicas.clients[0].delete("/runs/gone").status_code == 204
        deleted.set()
        outcomes = [outcome for reporter in reporters for outcome in reporter.result()]
    assert {status for _, status in outcomes} <= {200, 404}
    assert all(status == 404 for after, status in outcomes if after)
    for api in replicas.clients:
        assert api.get("/runs/gone").status_code == 404


def test_32_clients_rewinding_and_reporting_one_run_get_no_5xx_and_leave_one_ordered_history(
    replicas: Replicas,
) -> None:
    replicas.any().put("/runs/busy", json=HALVING)

    def resume_and_train(client: int) -> list[int]:
        rng = random.Random(client)
        statuses = []
        for _ in range(3):
            checkpoint = rng.randint(-1, 4)
            statuses.append(replicas.any().post("/runs/busy/rewind", json={"step": checkpoint}).status_code)
            for step in range(checkpoint + 1, checkpoint + 4):
                statuses.append(report(replicas.any(), "busy", step, {"val_loss": 1.0 / (step + 1)}).status_code)
        return statuses

    statuses = [status for client in in_threads(32, resume_and_train) for status in client]
    assert set(statuses) <= {200, 409}, sorted(set(statuses))
    reports = replicas.any().get("/runs/busy/metrics").json()["reports"]
    steps = [r["step"] for r in reports]
    assert steps == sorted(set(steps))
    assert all(r["metrics"] == {"val_loss": 1.0 / (r["step"] + 1)} for r in reports)


def test_sigkill_of_one_replica_under_load_loses_nothing_acknowledged(database_url: str) -> None:
    """Reports to many runs through a random replica, retried on the other when one is down (as a
    balancer would); one replica is killed mid-stream and restarted on its port."""
    with ExitStack() as stack:
        survivor = stack.enter_context(running_server(database_url))
        victim_stack = ExitStack()
        victim = victim_stack.enter_context(running_server(database_url))
        urls = [survivor.url, victim.url]
        clients = [stack.enter_context(httpx.Client(base_url=url, timeout=30)) for url in urls]
        for run in range(8):
            clients[0].put(f"/runs/load-{run}", json=HALVING)
        acknowledged: list[tuple[int, int]] = []
        killed = threading.Event()

        def send(run: int) -> None:
            rng = random.Random(run)
            for step in range(60):
                order = rng.sample(clients, 2)
                for api in order:  # the chosen replica, else the other one
                    try:
                        response = report(api, f"load-{run}", step, {"val_loss": 1.0})
                    except httpx.TransportError:
                        continue
                    assert response.status_code == 200, response.text
                    acknowledged.append((run, step))
                    break
                if step == 20 and run == 0:
                    victim.process.kill()
                    killed.set()

        with ThreadPoolExecutor(8) as pool:
            list(pool.map(send, range(8)))
        assert killed.is_set() and victim.process.wait(timeout=10) == -9
        victim_stack.close()
        port = int(victim.url.rsplit(":", 1)[1])
        restarted = stack.enter_context(running_server(database_url, port=port))
        with httpx.Client(base_url=restarted.url, timeout=30) as api:
            for run in range(8):
                stored = {r["step"] for r in api.get(f"/runs/load-{run}/metrics").json()["reports"]}
                assert {step for r, step in acknowledged if r == run} <= stored
                assert stored == set(range(60))
