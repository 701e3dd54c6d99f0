"""RunFollower, the core under every framework adapter, driven as an adapter drives it (no framework needed)."""

from __future__ import annotations

import threading
import warnings
from collections.abc import Callable

import httpx
import lrclient
import pytest
from lrclient._follower import DEFAULT_CHIEF_TIMEOUT, DEFAULT_RETRY, RunFollower

from support import HALVING_PLATEAU, CountingTransport, Server

BATCH_HALVING = {**HALVING_PLATEAU, "step_unit": "batch"}


def follow(follower: RunFollower, epochs: int, steps: int, losses: list[float],
           after_epoch: Callable[[], None] = lambda: None) -> list[float]:
    """An adapter's life: open, begin, then per epoch an lr per step and a report, and boundaries between epochs."""
    follower.open(epochs=epochs, steps_per_epoch=steps)
    follower.begin(0)
    used = []
    for epoch in range(epochs):
        if epoch > 0:
            follower.boundary()
        used += [follower.lr(epoch * steps + batch) for batch in range(steps)]
        follower.report(epoch * steps + steps - 1, {"loss": 9.0, "val_loss": losses[epoch]})
        after_epoch()
    return used


def test_a_job_that_would_report_steps_the_run_has_fails_before_training_with_the_ways_out(
    client: lrclient.Client, run_id: str
) -> None:
    follow(RunFollower(run_id, client=client, spec=BATCH_HALVING), 2, 3, [1.0, 2.0])

    again = RunFollower(run_id, client=client, spec=BATCH_HALVING, resume=lambda step: f"RESUME AT {step}")
    again.open()
    with pytest.raises(lrclient.ReportsAhead) as caught:
        again.begin(0)

    message = str(caught.value)
    assert f"Run '{run_id}' already has reports up to step 5" in message and "starts at step 0" in message
    assert "new run_id" in message, "way out 1: a new run"
    assert "RESUME AT 6" in message, "way out 2: the adapter's own words for resuming after the last report"
    assert f".rewind('{run_id}', -1)" in message and client.base_url in message, "way out 3: a rewind"
    assert isinstance(caught.value, ValueError)
    again.begin(6)  # resuming after the last report is fine
    reader = RunFollower(run_id, client=client, report=False)
    reader.open()
    reader.begin(0)  # a process that only reads never reports: nothing to refuse


def test_after_the_first_epoch_the_report_is_the_only_request_until_one_reduces(
    server: Server, counting: CountingTransport, run_id: str
) -> None:
    losses = [1.0, 0.9, 0.8, 0.85, 0.7, 0.6]  # epoch 3 does not improve: its report halves the lr
    counts: list[int] = []
    with lrclient.Client(server.url, transport=counting) as client:
        follower = RunFollower(run_id, client=client, spec=BATCH_HALVING)
        used = follow(follower, 6, 4, losses, after_epoch=lambda: counts.append(len(counting.requests)))

    per_epoch = [counts[0]] + [b - a for a, b in zip(counts, counts[1:])]
    assert per_epoch == [3, 1, 1, 1, 2, 1], "PUT + lr/range + report; then the report; lr/range after a reduction"
    assert used == [0.1] * 16 + [0.05] * 8


def test_a_report_without_the_monitored_metric_warns_once(client: lrclient.Client, run_id: str) -> None:
    follower = RunFollower(run_id, client=client, spec=HALVING_PLATEAU, metrics=["loss"])
    follower.open()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        for step in range(3):
            follower.report(step, {"loss": 1.0, "val_loss": 1.0})

    (warning,) = [w for w in caught if issubclass(w.category, UserWarning)]
    assert "'val_loss', the metric the plateau monitors" in str(warning.message)
    assert "Metrics sent: 'loss'" in str(warning.message) and "metrics=[...]" in str(warning.message)


def test_the_default_metrics_are_the_monitored_one_and_the_validation_ones() -> None:
    from lrclient._adapter import select_metrics

    logs = {"loss": 1.0, "mae": 2.0, "val_loss": 3.0, "val_mae": float("nan"), "note": "text"}
    assert select_metrics(logs, None, "mae", "val_") == {"mae": 2.0, "val_loss": 3.0, "val_mae": "NaN"}
    assert select_metrics(logs, None, None, None) == {"loss": 1.0, "mae": 2.0, "val_loss": 3.0, "val_mae": "NaN"}
    assert select_metrics(logs, "all", "mae", "val_") == select_metrics(logs, None, None, None)
    assert select_metrics(logs, ["loss", "absent"], "mae", "val_") == {"loss": 1.0}
    with pytest.raises(ValueError, match="Received: metrics='val_loss'"):
        RunFollower("r", metrics="val_loss")  # type: ignore[arg-type]


def test_the_default_retry_window_outlasts_a_ten_second_restart(server: Server, run_id: str) -> None:
    shortest, longest = DEFAULT_RETRY.window()
    assert 10.0 <= shortest <= longest <= 30.0
    follower = RunFollower(run_id, base_url=server.url, spec=HALVING_PLATEAU)
    follower.open()
    try:
        assert follower.client.retry == DEFAULT_RETRY, "a client the follower creates waits that long"
    finally:
        follower.close()


def test_a_worker_waits_for_the_chief_a_bounded_time_by_default() -> None:
    assert 30.0 <= DEFAULT_CHIEF_TIMEOUT <= 300.0
    assert RunFollower("r").chief_timeout == DEFAULT_CHIEF_TIMEOUT
    with pytest.raises(ValueError, match="chief_timeout"):
        RunFollower("r", chief_timeout=0)


def test_a_worker_that_only_reads_sees_another_workers_reduction_at_the_next_boundary(
    client: lrclient.Client, other: lrclient.Client, run_id: str
) -> None:
    reader = RunFollower(run_id, client=client, spec=HALVING_PLATEAU, report=False)
    reader.open()
    reader.begin(0)
    assert reader.lr(0) == 0.1
    other.report(run_id, 0, {"val_loss": "NaN"})  # never an improvement, even as the first report: halves lr(1)
    assert reader.report(0, {"val_loss": 7.0}) is None  # a reader sends nothing

    reader.boundary()

    assert reader.lr(1) == 0.05
    assert len(client.reports(run_id)) == 1


def test_a_worker_waiting_for_a_chief_that_is_ahead_polls_once_an_epoch_and_refetches_after_a_reduction(
    server: Server, counting: CountingTransport, other: lrclient.Client, run_id: str
) -> None:
    losses = [1.0, 0.9, 0.8, 0.85, 0.7, 0.6]  # the report at epoch 3 halves the lr
    chief = RunFollower(run_id, client=other, spec=HALVING_PLATEAU, report="chief", is_chief=lambda: True)
    counts: list[int] = []
    with lrclient.Client(server.url, transport=counting) as client:
        worker = RunFollower(run_id, client=client, spec=HALVING_PLATEAU, report="chief", is_chief=lambda: False)
        chief.open(epochs=6)
        worker.open(epochs=6)
        used = []
        for epoch, loss in enumerate(losses):
            if epoch > 0:
                chief.boundary()
                worker.boundary()
            chief.lr(epoch)
            used.append(worker.lr(epoch))
            chief.report(epoch, {"val_loss": loss})
            worker.report(epoch, {"val_loss": loss + 1.0})  # its own loss: never sent, it waits for the chief's
            counts.append(len(counting.requests))

    per_epoch = [counts[0]] + [b - a for a, b in zip(counts, counts[1:])]
    assert per_epoch == [3, 1, 1, 1, 2, 1], "PUT + lr/range + poll; then the poll; lr/range after a reduction"
    assert used == [0.1] * 4 + [0.05] * 2


class SignalsHeldRequests(CountingTransport):
    """Sets `held` when a request asking the service to wait for a report is handed over (before it is sent)."""

    def __init__(self) -> None:
        super().__init__()
        self.held = threading.Event()

    def handle_request(self, request: httpx.Request):  # type: ignore[no-untyped-def]
        if "wait_for_step" in request.url.params:
            self.held.set()
        return super().handle_request(request)


def test_a_worker_waiting_for_a_chief_that_is_behind_sends_one_request_an_epoch_however_long_the_chief_takes(
    server: Server, other: lrclient.Client, run_id: str
) -> None:
    losses = [1.0, 0.9, 1.2, 0.8]  # the report at epoch 2 halves the lr (patience 1)
    chief = RunFollower(run_id, client=other, spec=HALVING_PLATEAU, report="chief", is_chief=lambda: True)
    chief.open(epochs=4)
    transport = SignalsHeldRequests()
    with lrclient.Client(server.url, transport=transport) as client:
        worker = RunFollower(run_id, client=client, spec=HALVING_PLATEAU, report="chief", is_chief=lambda: False)
        worker.open(epochs=4)
        used, waits = [], []
        for epoch, loss in enumerate(losses):
            if epoch > 0:
                chief.boundary()
                worker.boundary()
            chief.lr(epoch)
            used.append(worker.lr(epoch))

            def chief_validates_slowly() -> None:  # the chief reports only once the worker is already waiting
                transport.held.wait(timeout=2)
                chief.report(epoch, {"val_loss": loss})

            transport.held.clear()
            slow_chief = threading.Thread(target=chief_validates_slowly)
            slow_chief.start()
            before = len(transport.requests)
            worker.report(epoch, {"val_loss": loss + 1.0})
            waits.append(len(transport.requests) - before)
            slow_chief.join()
            assert worker.run.latest_step == epoch

    assert waits == [1, 1, 1, 1], "one held GET per epoch, not a poll every few milliseconds"
    assert used == [0.1, 0.1, 0.1, 0.05]
