"""Inputs an attacker (or a buggy script) sends: each gets a 4xx that names the problem, never a 5xx,
and loses nothing already stored. Run on PostgreSQL, the stricter of the two stores."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from support import running_server, throwaway_schema

SPEC = {"schedule": {"type": "constant", "learning_rate": 0.1},
        "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1}}


@pytest.fixture(scope="module")
def pg_api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with throwaway_schema() as url, running_server(url) as server:
        with httpx.Client(base_url=server.url, timeout=30) as api:
            assert api.put("/runs/h", json=SPEC).status_code == 201
            assert api.post("/runs/h/metrics", json={"step": 0, "metrics": {"val_loss": 1.0}}).status_code == 200
            yield api


@pytest.mark.parametrize(("method", "path", "body", "where"), [
    pytest.param("POST", "/runs/h/revisions",
                 {"from_step": 10, "schedule": {"type": "constant", "learning_rate": 0.1}, "reason": "a\x00b"},
                 "reason", id="revision-reason"),
    pytest.param("POST", "/runs/h/metrics", {"step": 1, "metrics": {"val\x00loss": 1.0}}, "metrics.val", id="metric-name"),
    pytest.param("PUT", "/runs/h2", {**SPEC, "plateau": {"monitor": "val_loss\x00"}}, "plateau.monitor", id="monitor"),
    pytest.param("PUT", "/runs/h3", {"schedule": {"type": "expression", "expression": "0.1\x00"}},
                 "schedule.expression", id="expression"),
])
def test_a_nul_character_anywhere_is_422_naming_where(
    pg_api: httpx.Client, method: str, path: str, body: dict, where: str,
) -> None:
    response = pg_api.request(method, path, json=body)
    assert response.status_code == 422, response.text
    assert where in response.json()["detail"] and "NUL" in response.json()["detail"]
    assert [r["step"] for r in pg_api.get("/runs/h/metrics").json()["reports"]] == [0]
    assert pg_api.get("/runs/h").json()["revisions"] == []


def test_a_report_of_more_than_100_metrics_is_422(pg_api: httpx.Client) -> None:
    metrics = {f"m{i}": 1.0 for i in range(101)}
    response = pg_api.post("/runs/h/metrics", json={"step": 1, "metrics": metrics})
    assert response.status_code == 422 and "metrics" in response.json()["detail"]
    assert pg_api.post("/runs/h/metrics", json={"step": 1, "metrics": dict(list(metrics.items())[:100])}).status_code == 200


def test_a_metric_name_over_128_characters_is_422(pg_api: httpx.Client) -> None:
    response = pg_api.post("/runs/h/metrics", json={"step": 2, "metrics": {"x" * 129: 1.0}})
    assert response.status_code == 422, response.text
