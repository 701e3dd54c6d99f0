"""What the Keras callback and the PyTorch scheduler share: who reports, how metrics are sent, run setup.

Framework-free (no keras, no torch import) so both adapters and their tests can use it.
"""

from __future__ import annotations

import json
import math
import os
import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any, Literal

from ._base import is_outage
from ._client import Client
from ._exceptions import Conflict, LrserveError, ServiceUnreachable
from ._rates import LearningRates

Report = bool | Literal["chief"]
OnError = Literal["raise", "last"]


def unreachable(client: Client, run_id: str, doing: str, error: Exception) -> ServiceUnreachable:
    """The clear message for an outage met outside `LearningRates` (which words its own)."""
    return ServiceUnreachable(
        f"lrserve at {client.base_url} could not be reached while {doing} for run '{run_id}': {error}",
        cause=error,
    )


def check_choices(report: object, on_error: object) -> None:
    if report not in (True, False, "chief") or isinstance(report, int) and not isinstance(report, bool):
        raise ValueError(f'report must be True, False or "chief". Received: report={report!r}')
    if on_error not in ("raise", "last"):
        raise ValueError(f'on_error must be "raise" or "last". Received: on_error={on_error!r}')


def chief_from_environment(environ: Mapping[str, str] = os.environ) -> bool:
    """True for the one process that reports: RANK 0, else the TF_CONFIG chief, else LOCAL_RANK 0.

    `RANK` is the global rank of torchrun, Horovod-style launchers and Keras/JAX multi-process jobs;
    `TF_CONFIG` names a `chief` task (or, without one, worker 0); `LOCAL_RANK` is only trusted when
    nothing else is set (a single node). A process with none of them is alone, hence the chief.
    """
    if environ.get("RANK", "").strip():
        return int(environ["RANK"]) == 0
    if environ.get("TF_CONFIG", "").strip():
        config = json.loads(environ["TF_CONFIG"])
        task = config.get("task", {})
        if "chief" in config.get("cluster", {}):
            return task.get("type") == "chief"
        return task.get("type") in ("worker", None) and int(task.get("index", 0)) == 0
    if environ.get("LOCAL_RANK", "").strip():
        return int(environ["LOCAL_RANK"]) == 0
    return True


def reports_here(report: Report, is_chief: Callable[[], bool] | None) -> bool:
    """Whether this process sends metric reports."""
    if report == "chief":
        return bool(is_chief()) if is_chief is not None else chief_from_environment()
    return bool(report)


def encode_metrics(logs: Mapping[str, Any] | None, skip: tuple[str, ...] = ("learning_rate",)) -> dict[str, Any]:
    """The numeric entries of `logs` as JSON values; NaN and infinities as the contract's strings.

    Scalars of any kind (Python, NumPy, 0-d or 1-element tensors) count; booleans, strings and
    larger arrays are left out. `learning_rate` is our own output, not a measurement.
    """
    metrics: dict[str, Any] = {}
    for name, value in (logs or {}).items():
        if name in skip or name.startswith("learning_rate_") or isinstance(value, (bool, str, bytes)):
            continue
        try:
            number = float(value)
        except (TypeError, ValueError, RuntimeError):  # not a scalar
            continue
        if math.isnan(number):
            metrics[name] = "NaN"
        elif math.isinf(number):
            metrics[name] = "Infinity" if number > 0 else "-Infinity"
        else:
            metrics[name] = int(value) if isinstance(value, int) else number
    return metrics


def monitor_metrics(metrics: float | Mapping[str, Any], plateau: Mapping[str, Any] | None) -> dict[str, Any]:
    """A dict of metrics, or a bare number meaning the plateau's monitored metric."""
    if isinstance(metrics, Mapping):
        return encode_metrics(metrics, skip=())
    if plateau is None:
        raise ValueError(
            "A bare number can only be reported for a run with a plateau tracker (it is the monitored "
            f"metric); this run has none, so pass a dict such as {{'val_loss': x}}. Received: metrics={metrics!r}"
        )
    return encode_metrics({plateau["monitor"]: metrics}, skip=())


def open_run(client: Client, run_id: str, spec: Mapping[str, Any] | None) -> Any:
    """Create the run from `spec` (the same spec again is fine) or load the existing one."""
    try:
        if spec is None:
            return client.get_run(run_id)
        return client.create_run(run_id, dict(spec))
    except Conflict as error:
        try:
            existing = client.get_run(run_id).spec
        except Exception:  # noqa: BLE001 - the conflict is the message; the stored spec is a bonus
            existing = "(could not be read)"
        raise ValueError(
            f"Run '{run_id}' already exists with a different spec. Use a new run_id, pass the stored "
            f"spec, or pass spec=None to follow the stored one. Stored: {existing}. Received: spec={dict(spec)}"
        ) from error
    except LrserveError as error:
        if not is_outage(error):
            raise
        raise unreachable(client, run_id, "reading the run" if spec is None else "creating the run", error) from error


def refresh(rates: LearningRates, on_error: OnError) -> None:
    """Revalidate the cache at an epoch boundary; in an outage with on_error="last" the lr lookups decide."""
    try:
        rates.refresh()
    except ServiceUnreachable:
        if on_error == "raise":
            raise


def waits_for_chief(report: Report, reporting: bool, plateau: Mapping[str, Any] | None) -> bool:
    """Whether this worker must wait for the chief's report at each epoch end.

    With a plateau tracker, lr(N + 1) depends on the report at step N. A worker of a `"chief"` job
    that does not report must not read it before the chief's report is accepted, or it would train
    with an lr that the report was about to change. Without a tracker, reports never change an lr.
    `report=False` promises no reporter, so it never waits (it sees others' reports at the next
    epoch boundary).
    """
    return report == "chief" and not reporting and plateau is not None


class ReportWaiter:
    """Polls the run until the chief's report for a step is in (see `waits_for_chief`)."""

    def __init__(self, client: Client, rates: LearningRates, run_id: str, timeout: float) -> None:
        self.client, self.rates, self.run_id, self.timeout = client, rates, run_id, timeout

    def wait_for(self, step: int) -> None:
        """Block until the run's latest report is at `step` or later, then revalidate the cache."""
        deadline = time.monotonic() + self.timeout
        delay = 0.005
        while True:
            try:
                latest = self.client.get_run(self.run_id).latest_step
            except LrserveError as error:
                if not is_outage(error):
                    raise
                raise unreachable(self.client, self.run_id, f"waiting for the chief's report at step {step}",
                                  error) from error
            if latest is not None and latest >= step:
                self.rates.refresh()
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"No report at step {step} reached run '{self.run_id}' within {self.timeout:g} s "
                    f"(latest reported step: {latest}). This worker does not report (report='chief' and it is "
                    "not the chief), so it waits for the chief's report before using the next learning rate: "
                    "is the chief running with report='chief' or report=True?"
                )
            time.sleep(delay)
            delay = min(delay * 2, 0.2)


class PendingReports:
    """Reports that failed during an outage (on_error="last"), resent in order when the service answers."""

    def __init__(self, run_id: str, retry_interval: float = 1.0) -> None:
        self.run_id = run_id
        self.retry_interval = retry_interval
        self.queue: list[tuple[int, dict[str, Any]]] = []
        self.warned = False
        self._failed_at = -math.inf

    def send(self, rates: LearningRates, step: int, metrics: dict[str, Any], on_error: OnError) -> Any:
        """Send the queued reports, then this one; its outcome, or None while the service is away."""
        self.queue.append((step, metrics))
        return self.flush(rates, on_error)

    def flush(self, rates: LearningRates, on_error: OnError, throttle: bool = False) -> Any:
        """Resend the queued reports in order; the last outcome, or None if some are still queued.

        Adapters call it before reading an lr while reports are queued, and read no new lr while
        any remain: an lr read without them could miss a reduction they would cause. `throttle`
        (per batch) skips the attempt within `retry_interval` of the last failure.
        """
        if throttle and time.monotonic() - self._failed_at < self.retry_interval:
            return None
        outcome = None
        while self.queue:
            step, metrics = self.queue[0]
            try:
                outcome = rates.report(step, metrics)
            except ServiceUnreachable:  # how LearningRates.report words an outage
                if on_error == "raise":
                    self.queue.clear()
                    raise
                self._failed_at = time.monotonic()
                if not self.warned:
                    warnings.warn(
                        f"lrserve could not be reached to report step {step} of run '{self.run_id}'; "
                        "training goes on with the last known learning rate and the report is resent when "
                        "the service answers again.",
                        RuntimeWarning,
                        stacklevel=4,
                    )
                    self.warned = True
                return None
            self.queue.pop(0)
        self.warned = False
        return outcome
