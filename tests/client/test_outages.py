"""Outages: on_error="raise" stops with a clear message; on_error="last" trains on, warns once, and resumes."""

from __future__ import annotations

import time
import warnings
from typing import Any

import httpx
import lrclient
import pytest
from lrclient import LearningRates

from support import HALVING_PLATEAU, CountingTransport, free_port, serve_on

RUN_BODY: dict[str, Any] = {
    "run_id": "r", "spec": {**HALVING_PLATEAU, "step_unit": "epoch"}, "state": None, "latest_step": None, "reports": 0,
    "revisions": [], "created_at": "2026-01-01T00:00:00Z", "version": 0,
}


def runtime_warnings(caught: list[warnings.WarningMessage]) -> list[str]:
    return [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]


def lr_once_back(rates: LearningRates, step: int, unlike: float, timeout: float = 30.0) -> float:
    """Ask until the answer is no longer the fallback `unlike` (the first request may meet a stale connection)."""
    deadline = time.monotonic() + timeout
    while (value := rates.lr(step)) == unlike:
        assert time.monotonic() < deadline, "the service came back but LearningRates did not resume"
        time.sleep(0.02)
    return value


def test_on_error_raise_stops_with_a_message_naming_the_service_and_the_run(database: str, run_id: str) -> None:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    with lrclient.Client(url, retries=1, backoff=0.01) as client:
        with serve_on(port, database):
            client.create_run(run_id, HALVING_PLATEAU)
            rates = LearningRates(client, run_id)
            assert rates.lr(0) == 0.1
        assert rates.lr(0) == 0.1, "a cached lr needs no service"
        with pytest.raises(lrclient.ServiceUnreachable) as caught:
            rates.lr(1)
        assert url in str(caught.value) and run_id in str(caught.value)
        assert 'on_error="last"' in str(caught.value), "the message says how to keep training"
        assert isinstance(caught.value, lrclient.TransportError)
        assert isinstance(caught.value.cause, lrclient.TransportError)
        with pytest.raises(lrclient.ServiceUnreachable):
            rates.refresh()
        with pytest.raises(lrclient.ServiceUnreachable):
            rates.report(0, {"val_loss": 1.0})


def test_on_error_last_trains_on_warns_once_and_resumes_when_the_service_returns(database: str, run_id: str) -> None:
    port = free_port()
    counting = CountingTransport()
    with lrclient.Client(f"http://127.0.0.1:{port}", retries=1, backoff=0.01, transport=counting) as client:
        with serve_on(port, database):
            client.create_run(run_id, HALVING_PLATEAU)
            rates = LearningRates(client, run_id, on_error="last")
            rates.report(0, {"val_loss": 1.0})
            rates.report(1, {"val_loss": 2.0})
            assert rates.lr(2) == 0.05

        rates.probe_interval = 3600.0  # during the outage: one attempt, then no more requests
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert rates.lr(3) == 0.05
            during = len(counting.requests)
            assert [rates.lr(step) for step in (4, 5, 6)] == [0.05] * 3
            rates.refresh()
            assert len(counting.requests) == during, "no request until the probe interval has passed"
        (message,) = runtime_warnings(caught)
        assert client.base_url in message and run_id in message and "0.05" in message
        with pytest.raises(lrclient.ServiceUnreachable):
            rates.report(2, {"val_loss": 3.0})  # never dropped silently: the adapter decides

        rates.probe_interval = 0.0
        with serve_on(port, database), lrclient.Client(f"http://127.0.0.1:{port}") as other:
            other.report(run_id, 2, {"val_loss": 3.0})  # the restarted service has the run, and a new report
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                assert lr_once_back(rates, 3, unlike=0.05) == 0.025
                rates.refresh()
                assert [rates.lr(step) for step in range(5)] == [0.1, 0.1, 0.05, 0.025, 0.025]
            assert runtime_warnings(caught) == [], "no warning once it answers again"

        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert rates.lr(9) == 0.025
            assert rates.lr(10) == 0.025
        assert len(runtime_warnings(caught)) == 1, "a new outage warns again, once"


def test_on_error_last_never_invents_a_learning_rate(run_id: str) -> None:
    with lrclient.Client(f"http://127.0.0.1:{free_port()}", retries=0) as client:
        rates = LearningRates(client, run_id, on_error="last")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            with pytest.raises(lrclient.ServiceUnreachable, match="no learning rate is known"):
                rates.lr(0)
        assert runtime_warnings(caught) == []


def test_a_storage_outage_after_retries_is_an_outage_too() -> None:
    def storage_down_for_rates(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/runs/r":
            return httpx.Response(200, json=RUN_BODY, headers={"ETag": '"0"', "X-Run-Version": "0"})
        return httpx.Response(503, json={"detail": "the database cannot be reached"})

    transport = httpx.MockTransport(storage_down_for_rates)
    with lrclient.Client("http://lrserve.test", transport=transport, retries=1, backoff=0.001) as client:
        with pytest.raises(lrclient.ServiceUnreachable) as caught:
            LearningRates(client, "r").lr(0)
        assert isinstance(caught.value.cause, lrclient.ServiceUnavailable)
        assert "the database cannot be reached" in str(caught.value)


def test_other_errors_are_never_hidden_by_on_error_last(client: lrclient.Client, run_id: str) -> None:
    rates = LearningRates(client, run_id, on_error="last")
    with pytest.raises(lrclient.NotFound):
        rates.lr(0)
    client.create_run(run_id, HALVING_PLATEAU)
    assert rates.lr(0) == 0.1
    with pytest.raises(lrclient.InvalidRequest):
        rates.lr(2**41)
