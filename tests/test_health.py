"""The service answers liveness and readiness probes."""

import httpx


def test_healthz_says_ok(api: httpx.Client) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_says_ok_when_the_database_answers(api: httpx.Client) -> None:
    assert api.get("/readyz").status_code == 200
