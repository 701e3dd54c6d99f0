"""Retries: bounded, jittered exponential backoff on connection errors and 5xx; never on a 4xx."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import httpx
import lrclient
import pytest
from lrclient import RetryPolicy

from support import HALVING_PLATEAU, AsyncCountingTransport, CountingTransport, Server, free_port, serve_on


def test_a_client_keeps_retrying_until_a_server_comes_up_on_its_port(database: str, run_id: str) -> None:
    port = free_port()
    counting = CountingTransport()
    client = lrclient.Client(f"http://127.0.0.1:{port}", transport=counting)
    client.retry = RetryPolicy(retries=200, backoff=0.02, max_backoff=0.2)  # up to ~40 s of patience
    with client, ThreadPoolExecutor(1) as pool:
        creating = pool.submit(client.create_run, run_id, HALVING_PLATEAU)
        assert counting.failed.wait(timeout=30), "the client met a refused connection first"
        assert not creating.done()
        with serve_on(port, database):
            run = creating.result(timeout=60)
    assert run.created and run.run_id == run_id
    assert counting.failures >= 1
    assert len(counting.requests) == counting.failures + 1, "retried until the first answer, then stopped"


def test_a_client_gives_up_after_its_retries_with_a_transport_error() -> None:
    counting = CountingTransport()
    url = f"http://127.0.0.1:{free_port()}"
    client = lrclient.Client(url, transport=counting, retries=2, backoff=0.001)
    with client, pytest.raises(lrclient.TransportError) as caught:
        client.lr("run", 0)
    assert len(counting.requests) == 3
    assert isinstance(caught.value.cause, httpx.ConnectError)
    assert url in str(caught.value) and "3 attempts" in str(caught.value)


def test_retries_zero_means_one_attempt() -> None:
    counting = CountingTransport()
    client = lrclient.Client(f"http://127.0.0.1:{free_port()}", transport=counting, retries=0)
    with client, pytest.raises(lrclient.TransportError):
        client.get_run("run")
    assert len(counting.requests) == 1


def test_the_async_client_retries_a_refused_connection_and_never_a_4xx(server: Server, run_id: str) -> None:
    async def scenario() -> tuple[int, int]:
        dead = AsyncCountingTransport()
        async with lrclient.AsyncClient(f"http://127.0.0.1:{free_port()}", transport=dead, retries=2,
                                        backoff=0.001) as client:
            with pytest.raises(lrclient.TransportError):
                await client.lr(run_id, 0)
        live = AsyncCountingTransport()
        async with lrclient.AsyncClient(server.url, transport=live, retries=5, backoff=0.001) as client:
            with pytest.raises(lrclient.NotFound):
                await client.lr(run_id, 0)
        return len(dead.requests), len(live.requests)

    assert asyncio.run(scenario()) == (3, 1)


def test_the_async_client_retries_a_503_then_succeeds() -> None:
    statuses = iter([503, 503, 200])

    def flaky(request: httpx.Request) -> httpx.Response:
        status = next(statuses)
        return httpx.Response(status, json={"run_id": "r", "step": 0, "lr": 0.25} if status == 200 else {"detail": "x"})

    async def scenario() -> float:
        async with lrclient.AsyncClient("http://lrserve.test", transport=httpx.MockTransport(flaky),
                                        backoff=0.001) as client:
            return await client.lr("r", 0)

    assert asyncio.run(scenario()) == 0.25


def test_the_delay_doubles_from_backoff_up_to_max_backoff() -> None:
    policy = RetryPolicy(retries=10, backoff=0.2, max_backoff=1.0, jitter=0.25, random=lambda: 0.0)
    assert [policy.delay(a) for a in range(5)] == [0.2, 0.4, 0.8, 1.0, 1.0]


def test_jitter_removes_at_most_its_share_of_the_delay() -> None:
    longest = RetryPolicy(backoff=0.2, jitter=0.25, random=lambda: 0.0)
    shortest = RetryPolicy(backoff=0.2, jitter=0.25, random=lambda: 0.999999)
    assert longest.delay(1) == pytest.approx(0.4)
    assert shortest.delay(1) == pytest.approx(0.3, rel=1e-5)
    delays = {RetryPolicy(backoff=0.2).delay(1) for _ in range(50)}
    assert len(delays) > 1 and all(0.3 <= d <= 0.4 for d in delays), "workers do not retry in lockstep"


def test_only_connection_trouble_and_5xx_are_retryable() -> None:
    assert all(RetryPolicy.retryable(status=s) for s in (500, 502, 503, 504, 599))
    assert not any(RetryPolicy.retryable(status=s) for s in (200, 304, 400, 401, 404, 409, 413, 422, 429))
    request = httpx.Request("GET", "http://x/")
    for error in (httpx.ConnectError("refused", request=request), httpx.ReadTimeout("slow", request=request),
                  httpx.RemoteProtocolError("closed", request=request)):
        assert RetryPolicy.retryable(error=error)
    assert not RetryPolicy.retryable(error=httpx.UnsupportedProtocol("ftp", request=request))


def test_the_number_of_retries_is_bounded() -> None:
    policy = RetryPolicy(retries=2)
    assert policy.next_delay(0, status=503) is not None
    assert policy.next_delay(1, status=503) is not None
    assert policy.next_delay(2, status=503) is None
    assert policy.next_delay(0, status=404) is None


@pytest.mark.parametrize("arguments", [{"retries": -1}, {"retries": 1.5}, {"backoff": -0.1}, {"jitter": 2.0}])
def test_a_nonsensical_policy_is_refused(arguments: dict[str, float]) -> None:
    with pytest.raises(ValueError, match="Received"):
        RetryPolicy(**arguments)  # type: ignore[arg-type]


def test_the_window_sums_the_delays_with_and_without_the_largest_jitter() -> None:
    policy = RetryPolicy(retries=4, backoff=0.5, max_backoff=2.0, jitter=0.25)
    assert policy.window() == (pytest.approx(0.75 * (0.5 + 1.0 + 2.0 + 2.0)), pytest.approx(5.5))
    assert RetryPolicy(retries=0).window() == (0.0, 0.0)
