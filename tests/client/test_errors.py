"""Errors: one exception class per failure, carrying the service's `detail`; never a retry on a 4xx."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import lrclient
import pytest
from lrclient import _base

from support import HALVING_PLATEAU, PIECEWISE, CountingTransport, Server, running_server

TOKEN = "client-s3cret"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that wants `Authorization: Bearer TOKEN`."""
    database = f"sqlite:///{tmp_path_factory.mktemp('guarded') / 'lrserve.db'}"
    with running_server(database, env={"LRSERVE_TOKEN": TOKEN}) as server:
        yield server


def test_every_exception_is_an_lrserve_error_and_api_errors_carry_status_and_detail() -> None:
    for cls in (lrclient.Unauthorized, lrclient.NotFound, lrclient.Conflict, lrclient.PayloadTooLarge,
                lrclient.InvalidRequest, lrclient.ServiceUnavailable, lrclient.ServerError):
        assert issubclass(cls, lrclient.APIError) and issubclass(cls, lrclient.LrserveError)
    assert issubclass(lrclient.ServiceUnreachable, lrclient.TransportError)
    assert issubclass(lrclient.TransportError, lrclient.LrserveError)
    assert not issubclass(lrclient.TransportError, lrclient.APIError)


def test_invalid_spec_is_the_older_name_of_invalid_request() -> None:
    assert lrclient.InvalidSpec is lrclient.InvalidRequest
    assert "InvalidSpec" in lrclient.__all__ and "InvalidRequest" in lrclient.__all__


def test_an_unknown_run_is_not_found_with_the_services_detail(client: lrclient.Client, run_id: str,
                                                              counting: CountingTransport) -> None:
    with pytest.raises(lrclient.NotFound) as caught:
        client.lr(run_id, 0)
    assert caught.value.status == 404
    assert run_id in caught.value.detail and "PUT" in caught.value.detail, "the service says how to fix it"
    assert f"/runs/{run_id}/lr" in str(caught.value)
    assert len(counting.requests) == 1, "a 4xx is never retried"


def test_a_different_spec_under_the_same_id_is_a_conflict(client: lrclient.Client, run_id: str,
                                                         counting: CountingTransport) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    with pytest.raises(lrclient.Conflict) as caught:
        client.create_run(run_id, PIECEWISE)
    assert caught.value.status == 409 and "different spec" in caught.value.detail
    assert len(counting.requests) == 2, "a 4xx is never retried"


def test_reports_that_contradict_history_are_conflicts(client: lrclient.Client, run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    client.report(run_id, 3, {"val_loss": 1.0})
    with pytest.raises(lrclient.Conflict):
        client.report(run_id, 3, {"val_loss": 0.5})
    with pytest.raises(lrclient.Conflict):
        client.report(run_id, 2, {"val_loss": 0.5})
    with pytest.raises(lrclient.Conflict):
        client.revise(run_id, 3, {"type": "constant", "learning_rate": 0.2})


def test_an_invalid_spec_names_the_field(client: lrclient.Client, run_id: str, counting: CountingTransport) -> None:
    bad = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": -5,
                        "decay_rate": 0.5}}
    with pytest.raises(lrclient.InvalidRequest) as caught:
        client.create_run(run_id, bad)
    assert caught.value.status == 422 and "decay_steps" in caught.value.detail
    client.create_run(run_id, HALVING_PLATEAU)
    with pytest.raises(lrclient.InvalidRequest, match="step"):
        client.lr(run_id, -1)
    assert len(counting.requests) == 3, "a 4xx is never retried"


def test_a_body_over_the_limit_is_payload_too_large(client: lrclient.Client, run_id: str,
                                                    counting: CountingTransport) -> None:
    huge = {"val_loss": 1.0, **{f"metric_{i:07d}": 0.5 for i in range(60_000)}}  # about 1.3 MiB of JSON
    with pytest.raises(lrclient.PayloadTooLarge) as caught:
        client.report(run_id, 0, huge)
    assert caught.value.status == 413 and "larger than" in caught.value.detail
    assert len(counting.requests) == 1


def test_a_missing_or_wrong_token_is_unauthorized(guarded: Server, run_id: str) -> None:
    counting = CountingTransport()
    with lrclient.Client(guarded.url, transport=counting) as anonymous:
        with pytest.raises(lrclient.Unauthorized) as caught:
            anonymous.create_run(run_id, HALVING_PLATEAU)
        assert caught.value.status == 401 and "Authorization: Bearer" in caught.value.detail
        assert anonymous.health() is True, "/healthz needs no token"
    assert len(counting.requests) == 2, "a 401 is never retried"
    with lrclient.Client(guarded.url, token="not-" + TOKEN) as wrong, pytest.raises(lrclient.Unauthorized):
        wrong.list_runs()


def test_the_token_comes_from_the_argument(guarded: Server, run_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRSERVE_TOKEN", "not-" + TOKEN)
    with lrclient.Client(guarded.url, token=TOKEN) as client:
        assert client.create_run(run_id, HALVING_PLATEAU).created


def test_the_token_comes_from_lrserve_token(guarded: Server, run_id: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LRSERVE_TOKEN", TOKEN)
    with lrclient.Client(guarded.url) as client:
        assert client.create_run(run_id, HALVING_PLATEAU).created
    monkeypatch.setenv("LRSERVE_TOKEN", "")
    with lrclient.Client(guarded.url) as client, pytest.raises(lrclient.Unauthorized):
        client.get_run(run_id)


def test_the_token_is_not_shown_in_the_clients_repr(monkeypatch: pytest.MonkeyPatch) -> None:
    assert TOKEN not in repr(lrclient.Client(token=TOKEN))


def test_the_base_url_comes_from_the_argument_then_lrserve_url_then_the_default(
    server: Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LRSERVE_URL", server.url + "/")
    with lrclient.Client() as from_env:
        assert from_env.base_url == server.url and from_env.health()
    with lrclient.Client("http://127.0.0.1:9") as from_argument:
        assert from_argument.base_url == "http://127.0.0.1:9"
    monkeypatch.delenv("LRSERVE_URL")
    assert lrclient.Client().base_url == "http://127.0.0.1:8000"
    with pytest.raises(ValueError, match="base_url"):
        lrclient.Client("127.0.0.1:8000")


# The service has no way to produce a 503 on a run endpoint on demand, nor any 5xx (a 5xx is a bug),
# so the status mapping and the retries on 5xx are checked on canned answers.


def answer(status: int, detail: str = "canned") -> httpx.Response:
    return httpx.Response(status, json={"detail": detail}, request=httpx.Request("GET", "http://x/runs/r/lr"))


@pytest.mark.parametrize(("status", "cls"), [
    (400, lrclient.APIError), (401, lrclient.Unauthorized), (404, lrclient.NotFound), (409, lrclient.Conflict),
    (413, lrclient.PayloadTooLarge), (422, lrclient.InvalidRequest), (500, lrclient.ServerError),
    (502, lrclient.ServerError), (503, lrclient.ServiceUnavailable), (504, lrclient.ServerError),
])
def test_each_status_maps_to_its_exception_with_the_detail(status: int, cls: type[lrclient.APIError]) -> None:
    error = _base.error_for(answer(status, "what went wrong"))
    assert type(error) is cls
    assert (error.status, error.detail, error.method) == (status, "what went wrong", "GET")


def test_an_answer_without_a_json_detail_keeps_its_text() -> None:
    response = httpx.Response(502, text="<html>Bad Gateway</html>", request=httpx.Request("GET", "http://x/"))
    assert _base.error_for(response).detail == "<html>Bad Gateway</html>"


def test_a_503_is_retried_and_then_raised_as_service_unavailable() -> None:
    seen: list[str] = []

    def storage_down(request: httpx.Request) -> httpx.Response:
        seen.append(request.url.path)
        return httpx.Response(503, json={"detail": "the database cannot be reached"})

    with lrclient.Client("http://lrserve.test", transport=httpx.MockTransport(storage_down), retries=2,
                         backoff=0.001) as client, pytest.raises(lrclient.ServiceUnavailable) as caught:
        client.get_run("r")
    assert caught.value.detail == "the database cannot be reached"
    assert len(seen) == 3, "the first attempt and two retries"


def test_a_5xx_followed_by_an_answer_succeeds() -> None:
    statuses = iter([500, 503, 200])

    def flaky(request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        body = {"run_id": "r", "step": 1, "lr": 0.5} if status == 200 else {"detail": "hiccup"}
        return httpx.Response(status, json=body)

    with lrclient.Client("http://lrserve.test", transport=httpx.MockTransport(flaky), backoff=0.001) as client:
        assert client.lr("r", 1) == 0.5
