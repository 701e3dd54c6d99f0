"""deploy/compose.yaml's topology with real processes: PostgreSQL, two `lrserve serve` replicas on one
database, and nginx in front with deploy/nginx.conf.

Everything goes through nginx, as a training job's requests would; the replicas are asked directly
only to check what they stored. With round-robin, the request after a write usually goes to the other
replica: the replicas run with the default settings, which are exact across processes.
"""

from __future__ import annotations

import re
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

import lrclient
from _nginx import nginx_in_front
from support import Server, running_server, throwaway_schema
from workloads import PLATEAU_SPEC, serial_replay, train_workers

TOKEN = "topology-token"
REPLICA_ENV = {"LRSERVE_TOKEN": TOKEN}
AUTH = {"Authorization": f"Bearer {TOKEN}"}
SPEC = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
        "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 2}}


@dataclass(frozen=True)
class Topology:
    url: str
    """nginx, in front of both replicas."""
    replicas: tuple[Server, Server]
    access_log: Path


@contextmanager
def topology(database_url: str, access_log: Path) -> Iterator[Topology]:
    with ExitStack() as stack:
        # Both replicas start at once (a start is mostly imports); the stack stops whichever started.
        with ThreadPoolExecutor(2) as pool:
            starting = [pool.submit(stack.enter_context, running_server(database_url, env=REPLICA_ENV))
                        for _ in range(2)]
        first, second = (future.result() for future in starting)
        url = stack.enter_context(nginx_in_front([first.url, second.url], access_log=access_log))
        yield Topology(url, (first, second), access_log)


@pytest.fixture(scope="module")
def deployed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Topology]:
    with throwaway_schema() as database_url:
        with topology(database_url, tmp_path_factory.mktemp("nginx") / "access.log") as deployment:
            yield deployment


@pytest.fixture
def nginx(deployed: Topology) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=deployed.url, headers=AUTH, timeout=30) as client:
        yield client


def loss(step: int) -> float:
    """Improves for 8 steps, then stalls: the tracker reduces the lr every `patience` reports."""
    return 1.0 / (1 + min(step, 8))


def answered_by(deployed: Topology, path: str, count: int) -> list[str]:
    """The replica (host:port) that answered each of the `count` requests nginx logged for `path`.

    nginx writes a request's log line just after sending its answer, so the last line may be an
    instant behind the client: wait (boundedly) for all `count` of them.
    """
    pattern = re.compile(rf'"\S+ {re.escape(path)}(?:\?\S*)? HTTP/[\d.]+" .* upstream=(\S+) ')
    deadline = time.monotonic() + 5
    while True:
        lines = deployed.access_log.read_text().splitlines() if deployed.access_log.exists() else []
        upstreams = [m.group(1) for m in map(pattern.search, lines) if m]
        if len(upstreams) >= count or time.monotonic() > deadline:
            return upstreams
        time.sleep(0.01)


def replica_address(server: Server) -> str:
    return server.url.removeprefix("http://")


# --- both replicas up ------------------------------------------------------------------------------


def test_a_run_written_through_nginx_is_one_history_on_both_replicas(
    nginx: httpx.Client, deployed: Topology, run_id: str,
) -> None:
    assert nginx.put(f"/runs/{run_id}", json=SPEC).status_code == 201
    assert nginx.put(f"/runs/{run_id}", json=SPEC).status_code == 200  # the other replica knows it
    outcomes = []
    for step in range(12):
        response = nginx.post(f"/runs/{run_id}/metrics", json={"step": step, "metrics": {"val_loss": loss(step)}})
        assert response.status_code == 200, response.text
        outcomes.append(response.json())
        lr = nginx.get(f"/runs/{run_id}/lr", params={"step": step + 1})
        assert lr.json()["lr"] == pytest.approx(outcomes[-1]["next_lr"], rel=1e-12), (step, lr.text)
    assert [o["reduced"] for o in outcomes].count(True) == 1, outcomes  # step 10: patience 2 after 8

    history = nginx.get(f"/runs/{run_id}/metrics").json()["reports"]
    assert [(r["step"], r["next_lr"], r["reduced"]) for r in history] == [
        (o["step"], o["next_lr"], o["reduced"]) for o in outcomes
    ]
    schedules = {
        server.url: httpx.get(f"{server.url}/runs/{run_id}/lr/range", params={"stop": 30}, headers=AUTH).json()["lr"]
        for server in deployed.replicas
    }
    first, second = schedules.values()
    assert first == second == nginx.get(f"/runs/{run_id}/lr/range", params={"stop": 30}).json()["lr"]


def test_nginx_alternates_between_the_replicas(nginx: httpx.Client, deployed: Topology, run_id: str) -> None:
    nginx.put(f"/runs/{run_id}", json=SPEC)
    for step in range(10):
        assert nginx.get(f"/runs/{run_id}/lr", params={"step": step}).status_code == 200
    counts = Counter(answered_by(deployed, f"/runs/{run_id}/lr", 10))
    assert set(counts) == {replica_address(r) for r in deployed.replicas}, counts
    assert abs(counts.most_common()[0][1] - counts.most_common()[-1][1]) <= 1, counts


def test_the_token_set_on_both_replicas_is_enforced_through_nginx(deployed: Topology) -> None:
    with httpx.Client(base_url=deployed.url, timeout=30) as anonymous:
        # Four requests: round-robin asks each replica twice.
        assert [anonymous.get("/runs").status_code for _ in range(4)] == [401] * 4
        wrong = {"Authorization": "Bearer not-the-token"}
        assert [anonymous.get("/runs", headers=wrong).status_code for _ in range(2)] == [401] * 2
        assert [anonymous.get("/runs", headers=AUTH).status_code for _ in range(2)] == [200] * 2
        assert anonymous.get("/healthz").status_code == 200
        assert anonymous.get("/readyz").status_code == 200


def test_nginx_returns_the_callers_request_id_or_makes_one(nginx: httpx.Client) -> None:
    assert nginx.get("/healthz", headers={"X-Request-ID": "job-7-step-3"}).headers["x-request-id"] == "job-7-step-3"
    made = [nginx.get("/healthz").headers["x-request-id"] for _ in range(2)]
    assert all(re.fullmatch(r"[0-9a-f]{32}", m) for m in made) and made[0] != made[1], made


def test_a_body_of_1_mib_passes_nginx_and_a_larger_one_gets_a_json_413(
    nginx: httpx.Client, run_id: str,
) -> None:
    nginx.put(f"/runs/{run_id}", json=SPEC)
    report = b'{"step": 0, "metrics": {"val_loss": 0.5}'
    limit = 1024 * 1024
    padded = report + b" " * (limit - len(report) - 1) + b"}"
    assert len(padded) == limit
    headers = {"Content-Type": "application/json"}
    accepted = nginx.post(f"/runs/{run_id}/metrics", content=padded, headers=headers)
    assert accepted.status_code == 200, accepted.text
    refused = nginx.post(f"/runs/{run_id}/metrics", content=padded + b" ", headers=headers)
    assert refused.status_code == 413
    assert refused.headers["content-type"] == "application/json"
    assert "1 MiB" in refused.json()["detail"]


# --- one replica killed ----------------------------------------------------------------------------


def test_with_one_replica_killed_nginx_serves_from_the_other_and_no_acknowledged_report_is_lost(
    tmp_path: Path, run_id: str,
) -> None:
    steps = 40
    with throwaway_schema() as database_url, topology(database_url, tmp_path / "access.log") as deployed, \
            lrclient.Client(base_url=deployed.url, token=TOKEN, retries=5, backoff=0.05) as client, \
            httpx.Client(base_url=deployed.url, headers=AUTH, timeout=30) as nginx:
        victim, survivor = deployed.replicas
        client.create_run(run_id, SPEC)
        acknowledged: dict[int, lrclient.ReportOutcome] = {}
        ten_acknowledged, killed = threading.Event(), threading.Event()

        def report_every_step() -> None:
            try:
                for step in range(steps):
                    if step == 10:
                        ten_acknowledged.set()  # steps 10 to 24 race with the kill ...
                    if step == 25:
                        killed.wait(timeout=60)  # ... and the last 15 come after it, for certain
                    # A report in flight to the victim as it dies gets a 502 (nginx does not resend a
                    # POST); the client sends it again, which is safe: a repeat gets the original outcome.
                    acknowledged[step] = client.report(run_id, step, {"val_loss": loss(step)})
            finally:
                ten_acknowledged.set()

        with ThreadPoolExecutor(1) as pool:
            reporter = pool.submit(report_every_step)
            ten_acknowledged.wait(timeout=60)
            victim.process.kill()
            victim.process.wait(timeout=10)
            killed.set()
            reads = []
            while not reporter.done() or len(reads) < 20:
                reads.append(nginx.get(f"/runs/{run_id}/lr", params={"step": 5}))
            reporter.result()
        assert [r.status_code for r in reads] == [200] * len(reads), [r.text for r in reads if r.status_code != 200]
        assert len({r.json()["lr"] for r in reads}) == 1  # step 5's lr is settled: reported before the kill

        stored = httpx.get(f"{survivor.url}/runs/{run_id}/metrics", headers=AUTH).json()["reports"]
        assert [r["step"] for r in stored] == list(range(steps))
        for entry in stored:
            outcome = acknowledged[entry["step"]]
            assert (entry["next_lr"], entry["reduced"]) == (outcome.next_lr, outcome.reduced), entry

        expected = httpx.get(f"{survivor.url}/runs/{run_id}/lr/range", params={"stop": steps + 5}, headers=AUTH).json()
        with running_server(database_url, env=REPLICA_ENV, port=int(victim.url.rsplit(":", 1)[1])) as restarted:
            again = httpx.get(f"{restarted.url}/runs/{run_id}/lr/range", params={"stop": steps + 5}, headers=AUTH)
            assert again.json() == expected
            assert httpx.get(f"{restarted.url}/runs/{run_id}/metrics", headers=AUTH).json()["reports"] == stored
            assert [nginx.get(f"/runs/{run_id}/lr/range", params={"stop": steps + 5}).json() for _ in range(4)] \
                == [expected] * 4


def test_32_workers_through_nginx_see_the_same_lrs_as_a_serial_replay(
    deployed: Topology, run_id: str,
) -> None:
    """The scale-out promise behind a balancer without stickiness: 32 workers x 100 epochs, every
    request to whichever replica nginx picks."""
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    with httpx.Client(base_url=deployed.url, headers=AUTH, timeout=60, limits=limits) as client:
        assert client.put(f"/runs/{run_id}", json=PLATEAU_SPEC).status_code == 201
        sequences = train_workers(lambda: client, run_id, workers=32, epochs=100)
        assert client.put(f"/runs/{run_id}-serial", json=PLATEAU_SPEC).status_code == 201
        replay = serial_replay(client, f"{run_id}-serial", epochs=100)
        reductions = client.get(f"/runs/{run_id}").json()["state"]["reductions"]
    disagreeing = [w for w, seen in enumerate(sequences) if seen != replay]
    assert not disagreeing, f"workers {disagreeing} trained with other lrs than the serial replay"
    assert reductions >= 5  # the plateau really acted
