"""Structured logs: one JSON object per line on stderr for every domain event and request error, each carrying
the request id that the response's X-Request-ID header also carries."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from itertools import count
from pathlib import Path
from typing import Any

import httpx
import pytest

from support import HALVING_PLATEAU, Server, create_run, running_server

TOKEN = "l0g-t0ken"
_ids = count()


def log_lines(path: Path) -> list[dict[str, Any]]:
    """The JSON lines of the log; uvicorn's own lines are plain text and left out. Every line of the service's
    own is written before the answer of its request is sent, so no waiting is needed."""
    return [json.loads(line) for line in path.read_text().splitlines() if line.startswith("{")]


def of_request(path: Path, request_id: str) -> list[dict[str, Any]]:
    return [line for line in log_lines(path) if line.get("request_id") == request_id]


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Server, Path]]:
    directory = tmp_path_factory.mktemp("logs")
    log = directory / "stderr.log"
    with running_server(f"sqlite:///{directory / 'lrserve.db'}", log=log) as server:
        yield server, log


@pytest.fixture
def api(logged: tuple[Server, Path]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=logged[0].url, timeout=30.0) as client:
        yield client


@pytest.fixture
def log(logged: tuple[Server, Path]) -> Path:
    return logged[1]


def send(api: httpx.Client, method: str, path: str, body: Any = None) -> tuple[httpx.Response, str]:
    """Send with a fresh X-Request-ID; the response and that id."""
    request_id = f"test-{next(_ids)}"
    response = api.request(method, path, json=body, headers={"X-Request-ID": request_id})
    assert response.headers["x-request-id"] == request_id
    return response, request_id


def events(path: Path, request_id: str) -> list[tuple[str, dict[str, Any]]]:
    """(event, fields without time and level) of one request's lines, in order."""
    return [(line["event"], {k: v for k, v in line.items() if k not in ("event", "time", "level", "request_id")})
            for line in of_request(path, request_id)]


def test_every_domain_event_is_one_line_with_its_outcome(api: httpx.Client, log: Path, run_id: str) -> None:
    other = f"{run_id}-other"
    said, answers = {}, {}
    for name, method, path, body in [
        ("create", "PUT", f"/runs/{run_id}", HALVING_PLATEAU),
        ("create other", "PUT", f"/runs/{other}", HALVING_PLATEAU),
        ("same spec", "PUT", f"/runs/{run_id}", HALVING_PLATEAU),
        ("report", "POST", f"/runs/{run_id}/metrics", {"step": 0, "metrics": {"val_loss": 1.0}}),
        ("reducing report", "POST", f"/runs/{run_id}/metrics", {"step": 1, "metrics": {"val_loss": 1.0}}),
        ("repeat", "POST", f"/runs/{run_id}/metrics", {"step": 1, "metrics": {"val_loss": 1.0}}),
        ("conflict", "POST", f"/runs/{run_id}/metrics", {"step": 1, "metrics": {"val_loss": 2.0}}),
        ("rewind", "POST", f"/runs/{run_id}/rewind", {"step": 0}),
        ("revision", "POST", f"/runs/{run_id}/revisions",
         {"from_step": 5, "schedule": {"type": "constant", "learning_rate": 0.01}, "reason": "shorter"}),
        ("delete", "DELETE", f"/runs/{other}", None),
        ("read", "GET", f"/runs/{run_id}/lr?step=0", None),
    ]:
        answers[name], request_id = send(api, method, path, body)
        said[name] = events(log, request_id)

    [(event, conflict)] = said.pop("conflict")
    assert said == {
        "create": [("run_created", {"run_id": run_id})],
        "create other": [("run_created", {"run_id": other})],
        "same spec": [("repeat", {"kind": "spec", "run_id": run_id})],
        "report": [("report_accepted", {"run_id": run_id, "step": 0, "reduced": False, "next_lr": 0.1})],
        "reducing report": [
            ("report_accepted", {"run_id": run_id, "step": 1, "reduced": True, "next_lr": 0.05}),
            ("reduction", {"run_id": run_id, "step": 1, "next_lr": 0.05, "reductions": 1}),
        ],
        "repeat": [("repeat", {"kind": "report", "run_id": run_id, "step": 1, "reduced": True, "next_lr": 0.05})],
        "rewind": [("rewind", {"run_id": run_id, "step": 0, "latest_step": 0, "reports": 1,
                               "version": answers["rewind"].json()["version"]})],
        "revision": [("revision", {"run_id": run_id, "from_step": 5, "reason": "shorter", "schedule": True,
                                       "plateau": None})],
        "delete": [("run_deleted", {"run_id": other})],
        "read": [],
    }
    assert event == "conflict"
    assert conflict == {"kind": "report", "run_id": run_id, "status": 409,
                        "detail": answers["conflict"].json()["detail"]}


def test_lines_have_a_time_a_level_and_an_event(api: httpx.Client, log: Path, run_id: str) -> None:
    _, request_id = send(api, "PUT", f"/runs/{run_id}", HALVING_PLATEAU)

    [line] = of_request(log, request_id)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", line["time"])
    assert (line["level"], line["event"]) == ("info", "run_created")


@pytest.mark.parametrize(("path", "status", "detail"), [
    pytest.param("/runs/no-such-run/lr?step=0", 404, "Run 'no-such-run' does not exist", id="404"),
    pytest.param("/runs/no-such-run/lr?step=-1", 422, "step", id="422"),
    pytest.param("/not/a/route", 404, "no endpoint at /not/a/route", id="unknown-path"),
])
def test_a_client_error_is_one_warning_line_with_its_detail(
    api: httpx.Client, log: Path, path: str, status: int, detail: str
) -> None:
    response, request_id = send(api, "GET", path)

    assert response.status_code == status
    [line] = of_request(log, request_id)
    assert (line["level"], line["event"], line["status"], line["method"]) == ("warning", "request_error", status, "GET")
    assert line["detail"] == response.json()["detail"]
    assert detail in line["detail"]


def test_a_request_without_an_id_gets_a_fresh_one_in_its_answer_and_its_lines(
    api: httpx.Client, log: Path, run_id: str
) -> None:
    first = api.put(f"/runs/{run_id}", json=HALVING_PLATEAU)
    second = api.put(f"/runs/{run_id}", json=HALVING_PLATEAU)

    ids = [first.headers["x-request-id"], second.headers["x-request-id"]]
    assert all(re.fullmatch(r"[0-9a-f]{32}", each) for each in ids) and ids[0] != ids[1]
    assert [line["event"] for line in of_request(log, ids[0])] == ["run_created"]
    assert [line["event"] for line in of_request(log, ids[1])] == ["repeat"]


@pytest.mark.parametrize("sent", [
    pytest.param("x" * 129, id="too-long"),
    pytest.param("tab\tinside", id="control-character"),
    pytest.param("caf\u00e9", id="not-ascii"),
])
def test_an_unacceptable_request_id_is_replaced(api: httpx.Client, log: Path, run_id: str, sent: str) -> None:
    response = api.put(f"/runs/{run_id}", json=HALVING_PLATEAU, headers={"X-Request-ID": sent.encode("latin-1")})

    replaced = response.headers["x-request-id"]
    assert re.fullmatch(r"[0-9a-f]{32}", replaced)
    assert [line["event"] for line in of_request(log, replaced)] == ["run_created"]
    assert not of_request(log, sent)


def test_a_request_id_of_128_printable_characters_is_kept(api: httpx.Client, log: Path, run_id: str) -> None:
    sent = "id:" + "a-Z.0_9 " * 15 + "x" * 5
    assert len(sent) == 128

    response = api.put(f"/runs/{run_id}", json=HALVING_PLATEAU, headers={"X-Request-ID": sent})

    assert response.headers["x-request-id"] == sent
    assert [line["event"] for line in of_request(log, sent)] == ["run_created"]


def test_the_start_up_line_says_the_version_the_database_and_auth(log: Path, api: httpx.Client) -> None:
    [started] = [line for line in log_lines(log) if line["event"] == "started"]

    assert started["version"] == api.get("/healthz").json()["version"]
    assert started["database"].startswith("sqlite:///") and started["database"].endswith("lrserve.db")
    assert started["auth"] == "off"
    assert "request_id" not in started


def test_the_access_log_is_off_by_default(api: httpx.Client, log: Path, run_id: str) -> None:
    api.get(f"/runs/{run_id}-nowhere")
    api.get("/healthz")

    assert not [line for line in log.read_text().splitlines() if '"GET /' in line and not line.startswith("{")]


def test_a_guarded_service_logs_its_401_and_413_with_the_request_id(tmp_path: Path) -> None:
    log = tmp_path / "stderr.log"
    env = {"LRSERVE_TOKEN": TOKEN, "LRSERVE_MAX_BODY_BYTES": "100"}
    with running_server(f"sqlite:///{tmp_path / 'lrserve.db'}", env=env, log=log) as server:
        with httpx.Client(base_url=server.url, timeout=10.0) as api:
            unauthorized = api.get("/runs", headers={"X-Request-ID": "no-token"})
            too_large = api.put("/runs/big", content=b"{" + b" " * 200 + b"}",
                                headers={"X-Request-ID": "too-large", "Authorization": f"Bearer {TOKEN}",
                                         "Content-Type": "application/json"})

    assert (unauthorized.status_code, unauthorized.headers["x-request-id"]) == (401, "no-token")
    assert (too_large.status_code, too_large.headers["x-request-id"]) == (413, "too-large")
    [refused] = of_request(log, "no-token")
    assert (refused["event"], refused["status"], refused["route"]) == ("request_error", 401, "/runs")
    assert "token" in refused["detail"]
    [large] = of_request(log, "too-large")
    assert (large["event"], large["status"], large["route"]) == ("request_error", 413, "/runs/{run_id}")
    [started] = [line for line in log_lines(log) if line["event"] == "started"]
    assert started["auth"] == "on"
    assert TOKEN not in log.read_text()


def test_the_start_up_line_masks_the_database_password(tmp_path: Path) -> None:
    """PostgreSQL at 127.0.0.1 trusts the connection, so any password opens it: the one in the URL must not
    reach the log."""
    import psycopg

    schema = f"lrserve_logs_{next(_ids)}_{tmp_path.name[-8:]}".lower().replace("-", "_")
    admin = "postgresql://postgres@127.0.0.1:5432/test"
    with psycopg.connect(admin, autocommit=True) as connection:
        connection.execute(f"CREATE SCHEMA {schema}")
    log = tmp_path / "stderr.log"
    try:
        url = f"postgresql://postgres:hunter2-secret@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
        with running_server(url, log=log):
            pass
    finally:
        with psycopg.connect(admin, autocommit=True) as connection:
            connection.execute(f"DROP SCHEMA {schema} CASCADE")

    [started] = [line for line in log_lines(log) if line["event"] == "started"]
    assert started["database"] == f"postgresql://postgres:***@127.0.0.1:5432/test?options=-csearch_path%3D{schema}"
    assert "hunter2" not in log.read_text()


def test_an_unexpected_exception_is_a_json_500_whose_traceback_is_logged(tmp_path: Path) -> None:
    """No route of the service fails this way (a 5xx is always a bug), so one is added to a real application,
    served in this process."""
    import io
    import logging

    from starlette.testclient import TestClient

    from lrserve.api import create_app
    from lrserve.logs import LOGGER_NAME, JsonFormatter
    from lrserve.settings import Settings

    def broken() -> None:
        raise ZeroDivisionError("a bug")

    app = create_app(Settings(database_url=f"sqlite:///{tmp_path / 'lrserve.db'}"))
    app.add_api_route("/runs/{run_id}/broken", broken)
    captured = io.StringIO()
    handler = logging.StreamHandler(captured)
    handler.setFormatter(JsonFormatter())
    logging.getLogger(LOGGER_NAME).addHandler(handler)
    try:
        with TestClient(app, raise_server_exceptions=False) as client:
            response = client.get("/runs/r/broken", headers={"X-Request-ID": "the-bug"})
            metrics = client.get("/metrics").text
    finally:
        logging.getLogger(LOGGER_NAME).removeHandler(handler)

    assert (response.status_code, response.headers["x-request-id"]) == (500, "the-bug")
    assert "bug in lrserve" in response.json()["detail"]
    [line] = [json.loads(each) for each in captured.getvalue().splitlines() if '"the-bug"' in each]
    assert (line["level"], line["event"], line["status"], line["route"]) == \
        ("error", "request_failed", 500, "/runs/{run_id}/broken")
    assert "ZeroDivisionError: a bug" in line["traceback"]
    assert 'lrserve_http_requests_total{method="GET",route="/runs/{run_id}/broken",status="500"} 1.0' in metrics
