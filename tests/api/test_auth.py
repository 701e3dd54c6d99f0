"""Auth: with LRSERVE_TOKEN set, every endpoint but /healthz and /readyz needs `Authorization: Bearer <token>`;
the /docs page and its assets under /docs/static/ are open (they hold no data; /openapi.json stays guarded).

LRSERVE_TOKEN may list several tokens (rotation), LRSERVE_READ_TOKEN tokens that may only read; surrounding
whitespace is ignored, and a variable set but empty makes the service refuse to start.
"""

from __future__ import annotations

import re
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from fastapi.routing import APIRoute
from starlette.routing import Route

from lrserve.api import create_app
from lrserve.settings import Settings

from support import HALVING_PLATEAU, Server, free_port, running_server

TOKEN = "s3cret-t0ken"
OLD_TOKEN = "0ld-t0ken"
READER = "read-0nly"
OPEN = {"/healthz", "/readyz", "/docs"}
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
    pytest.param("GET", f"/runs/{RUN}/lr-finder?monitor=val_loss", None, 200, id="lr-finder"),
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
    # As read from secret files: surrounding whitespace, a trailing newline; two tokens while rotating.
    env = {"LRSERVE_TOKEN": f" {OLD_TOKEN} ,{TOKEN}\n", "LRSERVE_READ_TOKEN": f"{READER}\n"}
    with running_server(database, env=env) as server:
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


def every_route() -> list[tuple[str, str]]:
    """(method, path) of every route the app serves, path parameters filled in: generated, so that a
    route added later is covered without anyone remembering to list it here."""
    app = create_app(Settings())
    routes: set[tuple[str, str]] = set()

    def walk(candidates: list) -> None:
        for route in candidates:
            included = getattr(route, "original_router", None)  # FastAPI's included routers
            if included is not None:
                walk(included.routes)
            elif isinstance(route, (APIRoute, Route)):
                routes.update((method, route.path.replace("{run_id}", RUN)) for method in route.methods or ())

    walk(app.routes)
    for path, operations in app.openapi()["paths"].items():  # and every operation the API documents
        routes.update((method.upper(), path.replace("{run_id}", RUN)) for method in operations)
    return sorted(routes)


def test_the_generated_route_list_covers_the_api() -> None:
    routes = every_route()
    assert len(routes) >= len(ENDPOINTS) + 4  # the API, the OpenAPI document and the docs pages
    assert ("POST", f"/runs/{RUN}/metrics") in routes and ("GET", "/openapi.json") in routes


@pytest.mark.parametrize(("method", "path"), every_route())
def test_every_route_but_the_probes_and_the_docs_page_needs_a_token(guarded: Server, method: str, path: str) -> None:
    response = send(guarded, method, path, None, {})

    assert response.status_code == (200 if path in OPEN else 401), response.text


@pytest.mark.parametrize(("method", "path"), every_route())
def test_a_read_token_reads_and_never_writes(guarded: Server, method: str, path: str) -> None:
    response = send(guarded, method, path, None, {"Authorization": f"Bearer {READER}"})

    if method in ("GET", "HEAD"):
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 403, response.text
        assert "may only read" in response.json()["detail"]


def test_every_token_of_a_rotation_opens_the_api(guarded: Server) -> None:
    for token in (OLD_TOKEN, TOKEN):
        headers = {"Authorization": f"Bearer {token}"}
        assert send(guarded, "PUT", f"/runs/{RUN}", HALVING_PLATEAU, headers).status_code == 200
    assert send(guarded, "GET", "/runs", None, {"Authorization": f"Bearer {OLD_TOKEN},{TOKEN}"}).status_code == 401


@pytest.mark.parametrize(("env", "message"), [
    pytest.param({"LRSERVE_TOKEN": ""}, "LRSERVE_TOKEN is set but empty", id="empty"),
    pytest.param({"LRSERVE_TOKEN": " \n"}, "LRSERVE_TOKEN is set but empty", id="whitespace"),
    pytest.param({"LRSERVE_TOKEN": "a,,b"}, "LRSERVE_TOKEN has an empty token", id="empty-entry"),
    pytest.param({"LRSERVE_TOKEN": "a", "LRSERVE_READ_TOKEN": ""}, "LRSERVE_READ_TOKEN is set but empty",
                 id="empty-read-token"),
    pytest.param({"LRSERVE_READ_TOKEN": "r"}, "LRSERVE_READ_TOKEN is set but LRSERVE_TOKEN is not",
                 id="read-token-alone"),
])
def test_a_token_variable_that_cannot_be_meant_refuses_to_start(
    tmp_path, env: dict[str, str], message: str,
) -> None:
    result = subprocess.run(
        [sys.executable, "-m", "lrserve", "serve", "--port", str(free_port()),
         "--database", f"sqlite:///{tmp_path / 'x.db'}"],
        env={**_clean_env(), **env}, capture_output=True, text=True, timeout=60,
    )
    assert result.returncode == 2
    assert message in result.stderr and len(result.stderr.strip().splitlines()) == 1, result.stderr


def test_serving_without_a_token_on_a_non_loopback_address_warns(tmp_path) -> None:
    """In a network namespace of its own (only a loopback device inside), so 0.0.0.0 reaches nobody."""
    port = free_port()
    process = subprocess.Popen(
        ["unshare", "--net", sys.executable, "-m", "lrserve", "serve", "--host", "0.0.0.0", "--port", str(port),
         "--database", f"sqlite:///{tmp_path / 'x.db'}"],
        env=_clean_env(), stderr=subprocess.PIPE, text=True,
    )
    try:
        lines = [process.stderr.readline() for _ in range(2)]  # type: ignore[union-attr]
    finally:
        process.kill()
        process.wait()
    assert "auth off" in lines[0]
    assert re.search(r"WARNING: serving on 0\.0\.0\.0 without a token.*set LRSERVE_TOKEN", lines[1]), lines


def _clean_env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if not k.startswith("LRSERVE_")}


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
