"""Auth: with LRSERVE_TOKEN set, every endpoint but /healthz and /readyz needs `Authorization: Bearer <token>`."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from ._helpers import HALVING_PLATEAU, Server, running_server

TOKEN = "s3cret-t0ken"
RUN = "guarded-run"
DOOMED = "guarded-doomed"
GOOD = {"Authorization": f"Bearer {TOKEN}"}

# (method, path, json body, status with the right token)
ENDPOINTS = [
    pytest.param("GET", "/runs", None, 200, id="list-runs"),
    pytest.param("PUT", f"/runs/{RUN}", HALVING_PLATEAU, 200, id="put-run"),
    pytest.param("PUT", "/runs/guarded-new", HALVING_PLATEAU, 201, id="put-new-run"),
    pytest.param("GET", f"/runs/{RUN}", None, 200, id="get-run"),
    pytest.param("GET", "/runs/guarded-unknown", None, 404, id="get-unknown-run"),
    pytest.param("DELETE", f"/runs/{DOOMED}", None, 204, id="delete-run"),
    pytest.param("GET", f"/runs/{RUN}/lr?step=3", None, 200, id="lr"),
    pytest.param("GET", f"/runs/{RUN}/lr/range?start=0&stop=5", None, 200, id="lr-range"),
    pytest.param("POST", f"/runs/{RUN}/metrics", {"step": 0, "metrics": {"val_loss": 1.0}}, 200, id="report"),
    pytest.param("GET", f"/runs/{RUN}/metrics", None, 200, id="list-reports"),
    pytest.param("POST", f"/runs/{RUN}/rewind", {"step": 0}, 200, id="rewind"),
    pytest.param("POST", f"/runs/{RUN}/revisions",
                 {"from_step": 100, "schedule": {"type": "constant", "learning_rate": 0.2}, "reason": "auth"}, 201,
                 id="revision"),
    pytest.param("GET", "/metrics", None, 200, id="prometheus-metrics"),
]
WRONG = [
    pytest.param({"Authorization": "Bearer not-the-token"}, id="wrong-token"),
    pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="token-with-suffix"),
    pytest.param({"Authorization": f"Bearer {TOKEN[:-1]}"}, id="token-prefix"),
    pytest.param({"Authorization": TOKEN}, id="no-bearer-scheme"),
    pytest.param({"Authorization": f"Basic {TOKEN}"}, id="basic-scheme"),
    pytest.param({"Authorization": "Bearer"}, id="scheme-without-token"),
    pytest.param({"X-Token": TOKEN}, id="other-header"),
]


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database = f"sqlite:///{tmp_path_factory.mktemp('auth') / 'lrserve.db'}"
    with running_server(database, env={"LRSERVE_TOKEN": TOKEN}) as server:
        with httpx.Client(base_url=server.url, headers=GOOD) as client:
            for each in (RUN, DOOMED):
                assert client.put(f"/runs/{each}", json=HALVING_PLATEAU).status_code == 201
            reported = client.post(f"/runs/{RUN}/metrics", json={"step": 0, "metrics": {"val_loss": 1.0}})
            assert reported.status_code == 200
        yield server


def send(server: Server, method: str, path: str, body: Any, headers: dict[str, str]) -> httpx.Response:
    return httpx.request(method, server.url + path, json=body, headers=headers, timeout=10.0)


@pytest.mark.parametrize(("method", "path", "body", "status"), ENDPOINTS)
def test_without_a_token_every_endpoint_is_401(
    guarded: Server, method: str, path: str, body: Any, status: int
) -> None:
    response = send(guarded, method, path, body, {})

    assert response.status_code == 401
    assert isinstance(response.json()["detail"], str)


@pytest.mark.parametrize("headers", WRONG)
@pytest.mark.parametrize(("method", "path", "body", "status"), ENDPOINTS)
def test_a_wrong_token_is_401_on_every_endpoint(
    guarded: Server, method: str, path: str, body: Any, status: int, headers: dict[str, str]
) -> None:
    assert send(guarded, method, path, body, headers).status_code == 401


@pytest.mark.parametrize(("method", "path", "body", "status"), ENDPOINTS)
def test_the_right_token_opens_every_endpoint(
    guarded: Server, method: str, path: str, body: Any, status: int
) -> None:
    response = send(guarded, method, path, body, GOOD)

    assert response.status_code == status, response.text


def test_nothing_was_changed_by_the_rejected_requests(guarded: Server) -> None:
    with httpx.Client(base_url=guarded.url, headers=GOOD) as client:
        listed = [run["run_id"] for run in client.get("/runs").json()["runs"]]
        reports = client.get(f"/runs/{RUN}/metrics").json()["reports"]

    assert "guarded-unknown" not in listed
    assert [r["step"] for r in reports] == [0]


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
@pytest.mark.parametrize("headers", [pytest.param({}, id="no-token"), *WRONG[:1]])
def test_health_and_readiness_need_no_token(guarded: Server, path: str, headers: dict[str, str]) -> None:
    assert send(guarded, "GET", path, None, headers).status_code == 200


@pytest.mark.parametrize("method", ["GET", "HEAD"])
@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_load_balancer_probes_need_no_token(guarded: Server, path: str, method: str) -> None:
    assert send(guarded, method, path, None, {}).status_code == 200


def test_a_refused_request_is_counted_under_its_route_template(guarded: Server) -> None:
    def refused(text: str) -> float:
        line = f'lrserve_http_requests_total{{method="GET",route="/runs/{{run_id}}/lr",status="401"}} '
        return float(next((row[len(line):] for row in text.splitlines() if row.startswith(line)), 0.0))

    before = send(guarded, "GET", "/metrics", None, GOOD).text
    assert send(guarded, "GET", f"/runs/{RUN}/lr?step=1", None, {}).status_code == 401
    after = send(guarded, "GET", "/metrics", None, GOOD).text

    assert refused(after) - refused(before) == 1
    assert RUN not in after
