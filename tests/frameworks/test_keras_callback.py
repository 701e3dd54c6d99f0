"""LearningRateCallback in real Keras `model.fit` runs against a real lrserve process."""

from __future__ import annotations

import json
import subprocess
import sys
import warnings
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import httpx
import keras
import lrclient
import numpy as np
import pytest
from support import CountingTransport, Server, running_server, stop_process, wait_until_healthy
from keras.optimizers import schedules
from lrclient._follower import DEFAULT_RETRY
from lrclient.keras import LearningRateCallback, schedule_spec

from ._keras_helpers import (
    DECAY,
    EPOCH_SPEC,
    PLATEAU,
    LrRecorder,
    ScheduleWithPlateau,
    fit,
    keras_schedule_values,
    regression_data,
    tiny_model,
)

# Keras's own fit on the torch backend emits this NumPy 2 notice many times per epoch.
pytestmark = pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword")

F32 = 1e-7  # an lr read back from Keras's float32 variable


def service_history(server: Server, run_id: str, stop: int) -> list[float]:
    response = httpx.get(f"{server.url}/runs/{run_id}/lr/range", params={"start": 0, "stop": stop})
    response.raise_for_status()
    return response.json()["lr"]


def reports(server: Server, run_id: str) -> list[dict[str, Any]]:
    response = httpx.get(f"{server.url}/runs/{run_id}/metrics")
    response.raise_for_status()
    return response.json()["reports"]


def run_body(server: Server, run_id: str) -> dict[str, Any]:
    response = httpx.get(f"{server.url}/runs/{run_id}")
    response.raise_for_status()
    return response.json()


def epochs_of(recorder: LrRecorder) -> list[float]:
    return [recorder.by_epoch[e] for e in sorted(recorder.by_epoch)]


def steps_of(recorder: LrRecorder) -> list[float]:
    return [recorder.by_step[s] for s in sorted(recorder.by_step)]


# --- epoch mode ------------------------------------------------------------------------------


def test_epoch_mode_trains_with_the_lr_of_in_process_keras_schedule_and_plateau(server: Server, run_id: str) -> None:
    service = LrRecorder()
    history = fit(tiny_model(), [LearningRateCallback(run_id, base_url=server.url, spec=EPOCH_SPEC), service],
                  epochs=10)

    keras_reference = ScheduleWithPlateau(
        schedules.ExponentialDecay(**DECAY),
        keras.callbacks.ReduceLROnPlateau(**PLATEAU),
    )
    in_process = LrRecorder()
    reference_history = fit(tiny_model(), [keras_reference, in_process], epochs=10)

    assert keras_reference.reductions == 3, "the data no longer exercises the plateau: retune PLATEAU"
    assert epochs_of(service) == pytest.approx(epochs_of(in_process), rel=F32)
    assert history.history["val_loss"] == pytest.approx(reference_history.history["val_loss"], rel=1e-6)
    served = service_history(server, run_id, 10)
    assert history.history["learning_rate"] == served
    assert epochs_of(service) == pytest.approx(served, rel=F32)
    assert run_body(server, run_id)["state"]["reductions"] == keras_reference.reductions


def with_mae(model: keras.Model) -> keras.Model:
    model.compile(model.optimizer, "mse", metrics=["mae"])  # logs: loss, mae, val_loss, val_mae
    return model


def test_each_epoch_end_reports_the_monitored_and_validation_metrics_at_the_epoch_index(
    server: Server, run_id: str
) -> None:
    spec = {**EPOCH_SPEC, "plateau": {**PLATEAU, "monitor": "mae", "mode": "min"}}
    history = fit(with_mae(tiny_model()), [LearningRateCallback(run_id, base_url=server.url, spec=spec)], epochs=3)

    sent = reports(server, run_id)
    assert [r["step"] for r in sent] == [0, 1, 2]
    assert [set(r["metrics"]) for r in sent] == [{"mae", "val_loss", "val_mae"}] * 3, "not each worker's own loss"
    assert [r["metrics"]["val_loss"] for r in sent] == history.history["val_loss"]
    assert [r["metrics"]["mae"] for r in sent] == history.history["mae"]


@pytest.mark.parametrize(("metrics", "expected"), [("all", {"loss", "mae", "val_loss", "val_mae"}),
                                                    (["loss", "val_mae", "absent"], {"loss", "val_mae"})])
def test_metrics_chooses_what_is_reported(server: Server, run_id: str, metrics: Any, expected: set[str]) -> None:
    spec = {**EPOCH_SPEC, "plateau": None}
    fit(with_mae(tiny_model()), [LearningRateCallback(run_id, base_url=server.url, spec=spec, metrics=metrics)],
        epochs=2)

    assert [set(r["metrics"]) for r in reports(server, run_id)] == [expected] * 2


def test_without_a_plateau_or_validation_metrics_nothing_is_reported(server: Server, run_id: str) -> None:
    x, y, _, _ = regression_data()
    tiny_model().fit(x, y, epochs=2, verbose=0,
                     callbacks=[LearningRateCallback(run_id, base_url=server.url, spec={**EPOCH_SPEC, "plateau": None})])

    assert reports(server, run_id) == []


def test_non_finite_logs_are_reported_as_the_contract_strings(server: Server, run_id: str) -> None:
    model = tiny_model()
    x = np.full((8, 4), np.nan, dtype="float32")
    model.fit(x, np.zeros((8, 1), "float32"), epochs=1, verbose=0, validation_data=(x, np.zeros((8, 1), "float32")),
              callbacks=[LearningRateCallback(run_id, base_url=server.url, spec=EPOCH_SPEC, metrics="all")])

    assert reports(server, run_id)[0]["metrics"] == {"loss": "NaN", "val_loss": "NaN"}


# --- batch mode ------------------------------------------------------------------------------


def test_batch_mode_sets_every_batch_lr_with_one_request_per_epoch(server: Server, run_id: str) -> None:
    warmup_cosine = schedules.CosineDecay(0.0, decay_steps=30, warmup_target=0.05, warmup_steps=6, alpha=0.1)
    callback = LearningRateCallback(run_id, base_url=server.url, spec=warmup_cosine)
    requests_after_epoch: list[int] = []
    count = keras.callbacks.LambdaCallback(
        on_epoch_end=lambda epoch, logs: requests_after_epoch.append(callback.rates.requests))
    trained = LrRecorder()
    fit(tiny_model(), [callback, trained, count], epochs=4, batch_size=4)  # 12 batches per epoch

    assert sorted(trained.by_step) == list(range(48))
    served = service_history(server, run_id, 48)
    assert steps_of(trained) == pytest.approx(served, rel=F32)
    assert served == pytest.approx(keras_schedule_values(warmup_cosine, range(48)), rel=1e-6)
    assert len(set(steps_of(trained)[:12])) == 12, "batch mode must change the lr within an epoch"
    per_epoch = np.diff(requests_after_epoch).tolist()
    assert per_epoch == [1, 1, 1], f"requests in epochs 2-4 (the report): {per_epoch}"


def test_batch_mode_reports_at_the_step_of_each_epochs_last_batch(server: Server, run_id: str) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.04}, "plateau": PLATEAU, "step_unit": "batch"}
    trained = LrRecorder()
    history = fit(tiny_model(), [LearningRateCallback(run_id, base_url=server.url, spec=spec), trained],
                  epochs=8, batch_size=8)  # 6 batches per epoch

    assert [r["step"] for r in reports(server, run_id)] == [6 * e + 5 for e in range(8)]
    served = service_history(server, run_id, 48)
    assert run_body(server, run_id)["state"]["reductions"] >= 1
    assert steps_of(trained) == pytest.approx(served, rel=F32)
    assert history.history["learning_rate"] == [served[6 * e + 5] for e in range(8)]


@pytest.mark.parametrize("unit", ["epoch", "batch"])
@pytest.mark.parametrize("plateau", [None, PLATEAU], ids=["no-plateau", "plateau"])
def test_after_the_first_epoch_an_epoch_costs_one_request_and_one_more_after_a_reduction(
    server: Server, run_id: str, unit: str, plateau: dict[str, Any] | None
) -> None:
    """Every HTTP request of the callback, counted at its transport: PUT, lr/range, POST /metrics, GET /runs."""
    spec = {"schedule": {"type": "exponential_decay", **DECAY}, "plateau": plateau, "step_unit": unit}
    counting = CountingTransport()
    counts: list[int] = []
    trained = LrRecorder()
    with lrclient.Client(server.url, transport=counting) as client:
        count = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: counts.append(len(counting.requests)))
        fit(tiny_model(), [LearningRateCallback(run_id, spec=spec, client=client), trained, count], epochs=10)

    reduced = [r["reduced"] for r in reports(server, run_id)]
    per_epoch = [counts[0]] + np.diff(counts).tolist()
    refetches = [int(unit == "batch" and r) for r in reduced[:-1]]  # epoch runs: the answer's next_lr is enough
    assert per_epoch == [3] + [1 + n for n in refetches], (per_epoch, reduced)
    if plateau is not None:
        assert any(reduced) and not all(reduced), "the data should reduce in some epochs and not in others"
    trained_lrs = steps_of(trained) if unit == "batch" else epochs_of(trained)
    assert trained_lrs == pytest.approx(service_history(server, run_id, len(trained_lrs)), rel=F32)


# --- specs -----------------------------------------------------------------------------------

BUILT_IN_SCHEDULES = [
    schedules.ExponentialDecay(0.1, decay_steps=7, decay_rate=0.5, staircase=True),
    schedules.InverseTimeDecay(0.1, decay_steps=3, decay_rate=0.7),
    schedules.PolynomialDecay(0.1, decay_steps=20, end_learning_rate=0.01, power=2.0, cycle=True),
    schedules.PiecewiseConstantDecay(boundaries=[10, 30], values=[0.1, 0.05, 0.01]),
    schedules.CosineDecay(0.01, decay_steps=40, alpha=0.1, warmup_target=0.1, warmup_steps=10),
    schedules.CosineDecayRestarts(0.1, first_decay_steps=10, t_mul=2.0, m_mul=0.8, alpha=0.05),
]


@pytest.mark.parametrize("keras_schedule", BUILT_IN_SCHEDULES, ids=lambda s: type(s).__name__)
def test_a_built_in_keras_schedule_becomes_the_same_schedule_in_the_service(
    server: Server, run_id: str, keras_schedule: schedules.LearningRateSchedule
) -> None:
    with lrclient.Client(server.url) as client:
        client.create_run(run_id, {"schedule": schedule_spec(keras_schedule), "step_unit": "batch"})
        served = client.lr_range(run_id, 0, 100).lr
    assert list(served) == pytest.approx(keras_schedule_values(keras_schedule, range(100)), rel=1e-6, abs=1e-13)


def test_other_schedules_cannot_be_converted() -> None:
    class Halving(schedules.ExponentialDecay):
        pass

    with pytest.raises(TypeError, match="Received: Halving"):
        schedule_spec(Halving(0.1, 10, 0.5))


def test_the_same_spec_again_is_fine_and_a_different_one_names_the_run(server: Server, run_id: str) -> None:
    fit(tiny_model(), [LearningRateCallback(run_id, base_url=server.url, spec=EPOCH_SPEC)], epochs=1)
    same = {**EPOCH_SPEC, "plateau": {**PLATEAU, "cooldown": 0}}  # spells out a default
    fit(tiny_model(), [LearningRateCallback(run_id, base_url=server.url, spec=same)], epochs=2, initial_epoch=1)

    different = {**EPOCH_SPEC, "plateau": {**PLATEAU, "factor": 0.2}}
    with pytest.raises(ValueError, match=f"Run '{run_id}' already exists with a different spec"):
        fit(tiny_model(), [LearningRateCallback(run_id, base_url=server.url, spec=different)], epochs=1)
    assert [r["step"] for r in reports(server, run_id)] == [0, 1]


def test_an_optimizer_built_with_a_schedule_object_is_a_type_error(server: Server, run_id: str) -> None:
    model = tiny_model(learning_rate=schedules.ExponentialDecay(0.1, 10, 0.5))
    with pytest.raises(TypeError, match="built with a LearningRateSchedule object"):
        fit(model, [LearningRateCallback(run_id, base_url=server.url, spec=EPOCH_SPEC)], epochs=1)


@pytest.mark.parametrize(("unit", "latest", "resume"), [("epoch", 2, "initial_epoch=3"),
                                                       ("batch", 8, "its optimizer.iterations is 9")])
def test_a_script_run_again_fails_before_training_with_the_three_ways_out(
    server: Server, run_id: str, unit: str, latest: int, resume: str
) -> None:
    spec = {**EPOCH_SPEC, "step_unit": unit}
    fit(tiny_model(), [LearningRateCallback(run_id, base_url=server.url, spec=spec)], epochs=3)
    trained = LrRecorder()

    with pytest.raises(lrclient.ReportsAhead) as caught:
        fit(tiny_model(), [LearningRateCallback(run_id, base_url=server.url, spec=spec), trained], epochs=3)

    assert trained.by_step == {}, "not one batch was trained"
    message = str(caught.value)
    assert f"Run '{run_id}' already has reports up to step {latest}, and this job starts at step 0" in message
    assert "new run_id" in message and resume in message and f".rewind('{run_id}', -1)" in message
    assert len(reports(server, run_id)) == 3


def test_a_report_without_the_monitored_metric_warns_once_as_reduce_lr_on_plateau_does(
    server: Server, run_id: str
) -> None:
    spec = {**EPOCH_SPEC, "plateau": {**PLATEAU, "monitor": "val_mae", "mode": "min"}}  # the model has no mae
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        fit(tiny_model(), [LearningRateCallback(run_id, base_url=server.url, spec=spec)], epochs=3)

    ours = [str(w.message) for w in caught if "lrserve run" in str(w.message)]
    assert len(ours) == 1, ours
    assert "'val_mae', the metric the plateau monitors" in ours[0] and "Metrics sent: 'val_loss'" in ours[0]
    assert len(reports(server, run_id)) == 3, "still reported every epoch"


# --- many workers ----------------------------------------------------------------------------

WORKERS_SCRIPT = Path(__file__).with_name("_fit_workers.py")


def test_eight_worker_processes_train_with_identical_learning_rates(
    server: Server, run_id: str, tmp_path: Path
) -> None:
    """Each worker measures its own val_loss on its own data; only the chief (RANK 0) reports."""
    epochs = 6
    subprocess.run([sys.executable, str(WORKERS_SCRIPT), server.url, run_id, str(tmp_path), "--workers", "8",
                    "--epochs", str(epochs), "--spec", json.dumps(EPOCH_SPEC)], check=True, timeout=120)

    workers = [json.loads((tmp_path / f"worker-{rank}.json").read_text()) for rank in range(8)]
    served = service_history(server, run_id, epochs)
    assert all(w["lr"] == pytest.approx(served, rel=F32) for w in workers)
    assert all(w["logged"] == served for w in workers)
    assert len({tuple(w["val_loss"]) for w in workers}) == 8, "workers should measure different losses"
    sent = reports(server, run_id)
    assert [r["metrics"]["val_loss"] for r in sent] == workers[0]["val_loss"]
    assert run_body(server, run_id)["state"]["reductions"] >= 1, "the chief's reports should reduce the lr"


def test_a_worker_that_is_not_the_chief_reads_without_reporting(server: Server, run_id: str) -> None:
    spec = {**EPOCH_SPEC, "plateau": None}
    trained = LrRecorder()
    fit(tiny_model(), [LearningRateCallback(run_id, base_url=server.url, spec=spec, report="chief",
                                            is_chief=lambda: False), trained], epochs=3)

    assert reports(server, run_id) == []
    assert epochs_of(trained) == pytest.approx(service_history(server, run_id, 3), rel=F32)


def test_a_worker_waiting_for_a_chief_that_never_reports_fails_clearly(server: Server, run_id: str) -> None:
    callback = LearningRateCallback(run_id, base_url=server.url, spec=EPOCH_SPEC, report="chief",
                                    is_chief=lambda: False, chief_timeout=0.3)
    with pytest.raises(TimeoutError, match=f"No report at step 0 reached run '{run_id}'"):
        fit(tiny_model(), [callback], epochs=2)


# --- failures --------------------------------------------------------------------------------


class StopServer(keras.callbacks.Callback):
    def __init__(self, server: Server, after_epoch: int) -> None:
        super().__init__()
        self.server, self.after_epoch = server, after_epoch

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.after_epoch:
            stop_process(self.server.process)


@pytest.fixture
def quick_client() -> Iterator[Callable[[str], lrclient.Client]]:
    """Clients that give up fast, so an outage costs milliseconds, not seconds."""
    clients: list[lrclient.Client] = []

    def make(url: str) -> lrclient.Client:
        clients.append(lrclient.Client(url, retries=1, backoff=0.01))
        return clients[-1]

    yield make
    for client in clients:
        client.close()


def test_a_stopped_service_stops_training_with_a_clear_message(
    tmp_path: Path, run_id: str, quick_client: Callable[[str], lrclient.Client]
) -> None:
    with running_server(f"sqlite:///{tmp_path / 'lr.db'}") as server:
        callback = LearningRateCallback(run_id, spec=EPOCH_SPEC, client=quick_client(server.url))
        with pytest.raises(lrclient.ServiceUnreachable) as failure:
            fit(tiny_model(), [callback, StopServer(server, after_epoch=1)], epochs=5)

    assert server.url in str(failure.value) and run_id in str(failure.value)


class RestartServer(keras.callbacks.Callback):
    """Start the stopped service again, on the same port and database."""

    def __init__(self, server: Server, after_epoch: int) -> None:
        super().__init__()
        self.server, self.after_epoch = server, after_epoch
        self.restarted: subprocess.Popen | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.after_epoch:
            port = self.server.url.rsplit(":", 1)[1]
            self.restarted = subprocess.Popen([sys.executable, "-m", "lrserve", "serve", "--host", "127.0.0.1",
                                               "--port", port, "--database", self.server.database_url])
            wait_until_healthy(self.server.url, self.restarted)


def test_on_error_last_trains_through_an_outage_and_resends_the_missed_reports(
    tmp_path: Path, run_id: str, quick_client: Callable[[str], lrclient.Client]
) -> None:
    """The service is down after epoch 1 and back after epoch 3; the reports of epochs 2 and 3 each reduce."""
    spec = {"schedule": {"type": "constant", "learning_rate": 0.04},
            "plateau": {"monitor": "probe", "mode": "min", "patience": 0, "factor": 0.5}}
    probe_values = [1.0, 0.5, 0.9, 0.9, 0.9, 0.9]
    probe = keras.callbacks.LambdaCallback(on_epoch_end=lambda epoch, logs: logs.update(probe=probe_values[epoch]))
    with running_server(f"sqlite:///{tmp_path / 'lr.db'}") as server:
        trained = LrRecorder()
        restart = RestartServer(server, after_epoch=3)
        callback = LearningRateCallback(run_id, spec=spec, on_error="last", client=quick_client(server.url))
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit(tiny_model(), [probe, callback, trained, StopServer(server, after_epoch=1), restart], epochs=6)
            served = service_history(server, run_id, 6)
            sent = reports(server, run_id)
        finally:
            if restart.restarted is not None:
                stop_process(restart.restarted)

    lrs = epochs_of(trained)
    assert [r["step"] for r in sent] == [0, 1, 2, 3, 4, 5], "the reports missed in the outage are resent in order"
    assert [r["reduced"] for r in sent][2:4] == [True, True]
    assert lrs[3] == lrs[2], "epoch 3 runs in the outage: the last known lr"
    assert lrs[3] != pytest.approx(served[3], rel=F32)
    assert lrs[:3] == pytest.approx(served[:3], rel=F32), "lr(2) was known before the outage began"
    assert lrs[4:] == pytest.approx(served[4:], rel=F32), "after the outage: the lr of all reports, resent first"
    outage_warnings = [str(w.message) for w in caught if issubclass(w.category, RuntimeWarning)]
    assert len([m for m in outage_warnings if "to report step" in m]) == 1, outage_warnings
    assert len(outage_warnings) <= 2, outage_warnings


class RestartInBackground(keras.callbacks.Callback):
    """Stop the service at an epoch's end and start it again on the same port and database without waiting for
    it: training goes on at once, and its next request meets the outage."""

    def __init__(self, server: Server, after_epoch: int) -> None:
        super().__init__()
        self.server, self.after_epoch = server, after_epoch
        self.restarted: subprocess.Popen | None = None

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        if epoch == self.after_epoch:
            stop_process(self.server.process)
            port = self.server.url.rsplit(":", 1)[1]
            self.restarted = subprocess.Popen([sys.executable, "-m", "lrserve", "serve", "--host", "127.0.0.1",
                                               "--port", port, "--database", self.server.database_url])


def test_a_service_restart_shorter_than_the_retry_window_goes_unnoticed(tmp_path: Path, run_id: str) -> None:
    """The default window (12 s or more, tested in tests/client) halved, against a restart of a few seconds."""
    counting = CountingTransport()
    halved = replace(DEFAULT_RETRY, backoff=DEFAULT_RETRY.backoff / 2, max_backoff=DEFAULT_RETRY.max_backoff / 2)
    with running_server(f"sqlite:///{tmp_path / 'lr.db'}") as server, \
            lrclient.Client(server.url, transport=counting) as client:
        client.retry = halved
        restart = RestartInBackground(server, after_epoch=1)
        trained = LrRecorder()
        try:
            fit(tiny_model(), [LearningRateCallback(run_id, spec=EPOCH_SPEC, client=client), trained, restart],
                epochs=4)
            served = service_history(server, run_id, 4)
            sent = reports(server, run_id)
        finally:
            if restart.restarted is not None:
                stop_process(restart.restarted)

    assert counting.failures >= 1, "a request met the stopped service"
    assert [r["step"] for r in sent] == [0, 1, 2, 3]
    assert epochs_of(trained) == pytest.approx(served, rel=F32)


# --- resuming --------------------------------------------------------------------------------


def test_rewind_and_initial_epoch_resume_exactly_where_the_checkpoint_was(
    server: Server, run_id: str, tmp_path: Path
) -> None:
    """Batch units with a plateau: the resumed run must equal one that never crashed, lr for lr."""
    spec = {"schedule": {"type": "exponential_decay", **DECAY}, "plateau": PLATEAU, "step_unit": "batch"}
    steps_per_epoch, epochs, checkpoint_epoch = 3, 8, 3

    uninterrupted = LrRecorder()
    fit(tiny_model(), [LearningRateCallback(f"{run_id}-whole", base_url=server.url, spec=spec), uninterrupted],
        epochs=epochs)

    model = tiny_model()
    fit(model, [LearningRateCallback(run_id, base_url=server.url, spec=spec)], epochs=checkpoint_epoch)
    model.save(tmp_path / "checkpoint.keras")
    # The job goes on past the checkpoint with other data (another shuffle), then crashes.
    fit(model, [LearningRateCallback(run_id, base_url=server.url)], epochs=checkpoint_epoch + 2,
        initial_epoch=checkpoint_epoch, seed=1)

    restored = keras.models.load_model(tmp_path / "checkpoint.keras")
    last_step = int(restored.optimizer.iterations) - 1
    with lrclient.Client(server.url) as client:
        client.rewind(run_id, last_step)
    resumed = LrRecorder()
    fit(restored, [LearningRateCallback(run_id, base_url=server.url), resumed], epochs=epochs,
        initial_epoch=checkpoint_epoch)

    assert last_step == checkpoint_epoch * steps_per_epoch - 1
    assert sorted(resumed.by_step) == list(range(checkpoint_epoch * steps_per_epoch, epochs * steps_per_epoch))
    assert resumed.by_step == {s: uninterrupted.by_step[s] for s in resumed.by_step}
    total = epochs * steps_per_epoch
    assert service_history(server, run_id, total) == service_history(server, f"{run_id}-whole", total)
    assert run_body(server, run_id)["state"] == run_body(server, f"{run_id}-whole")["state"]
    assert run_body(server, run_id)["state"]["reductions"] >= 1
