"""The service answers liveness and readiness probes, by GET and by a load balancer's HEAD."""

import httpx
import pytest

from lrserve import __version__


def test_healthz_says_ok_and_the_version(api: httpx.Client) -> None:
    response = api.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok", "version": __version__}


def test_readyz_says_ok_when_the_database_answers(api: httpx.Client) -> None:
    response = api.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


@pytest.mark.parametrize("path", ["/healthz", "/readyz"])
def test_head_answers_like_get_without_a_body(api: httpx.Client, path: str) -> None:
    got = api.get(path)

    head = api.head(path)

    assert head.status_code == 200
    assert head.content == b""
    assert head.headers["content-type"] == got.headers["content-type"]
    assert head.headers["content-length"] == str(len(got.content))
