"""The framework-free parts `RunFollower` is made of: who reports, which metrics and how they are sent,
creating or loading the run. No keras or torch import, so every adapter and its tests can use them.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

from ._base import is_outage
from ._client import Client
from ._exceptions import Conflict, LrserveError, ServiceUnreachable
from ._types import Run

Report = bool | Literal["chief"]
OnError = Literal["raise", "last"]
Metrics = Sequence[str] | Literal["all"] | None


def unreachable(client: Client, run_id: str, doing: str, error: Exception) -> ServiceUnreachable:
    """The clear message for an outage met outside `LearningRates` (which words its own)."""
    return ServiceUnreachable(
        f"lrserve at {client.base_url} could not be reached while {doing} for run '{run_id}': {error}",
        cause=error,
    )


MOMENTUM_CYCLING = ("one_cycle", "cyclic")


def cycles_momentum(run: Run) -> bool:
    """Whether a schedule of the run (its spec's or a revision's, nested ones included) cycles momentum:
    a `one_cycle` or `cyclic` without `cycle_momentum: false`."""
    def cycles(schedule: Any) -> bool:
        if not isinstance(schedule, Mapping):
            return False
        if schedule.get("type") in MOMENTUM_CYCLING and schedule.get("cycle_momentum", True):
            return True
        return any(cycles(child) for child in schedule.get("schedules") or ())

    return cycles(run.spec.get("schedule")) or any(cycles(r.schedule) for r in run.revisions)


def check_choices(report: object, on_error: object, metrics: object = None) -> None:
    if report not in (True, False, "chief") or isinstance(report, int) and not isinstance(report, bool):
        raise ValueError(f'report must be True, False or "chief". Received: report={report!r}')
    if on_error not in ("raise", "last"):
        raise ValueError(f'on_error must be "raise" or "last". Received: on_error={on_error!r}')
    if not (metrics is None or metrics == "all" or (isinstance(metrics, Sequence) and not isinstance(metrics, str)
                                                     and all(isinstance(name, str) for name in metrics))):
        raise ValueError(f'metrics must be None (the default choice), "all" or a list of metric names. '
                         f"Received: metrics={metrics!r}")


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


def numeric_metrics(logs: Mapping[str, Any]) -> dict[str, Any]:
    """The numeric entries of a framework's `logs` as JSON values; NaN and infinities as the contract's strings.

    Scalars of any kind (Python, NumPy, 0-d or 1-element tensors) count; booleans, strings and
    larger arrays are left out, ints stay ints. Not `lrclient._base.encode_metrics`, the rule of
    `Client.report`: a caller names its metrics there, so anything that is not a number is a TypeError, and
    a string passes through for the service to judge; an adapter reports whatever the framework logged.
    """
    metrics: dict[str, Any] = {}
    for name, value in logs.items():
        if isinstance(value, (bool, str, bytes)):
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


def select_metrics(logs: Mapping[str, Any], metrics: Metrics, monitor: str | None,
                   validation_prefix: str | None) -> dict[str, Any]:
    """The entries of `logs` to report, encoded.

    `metrics` names them, or is "all"; None is the adapter's default: the plateau's monitored metric and
    the validation metrics (names starting with `validation_prefix`, e.g. Keras' `val_`), not the
    training loss each worker measures on its own shard; with no prefix (the caller chose), everything.
    """
    if metrics == "all" or (metrics is None and validation_prefix is None):
        chosen = dict(logs)
    elif metrics is not None:
        chosen = {name: logs[name] for name in metrics if name in logs}
    else:
        chosen = {name: value for name, value in logs.items()
                  if name == monitor or name.startswith(validation_prefix)}  # type: ignore[arg-type]
    return numeric_metrics(chosen)


def named_metrics(metrics: float | Mapping[str, Any], plateau: Mapping[str, Any] | None) -> Mapping[str, Any]:
    """A dict of metrics, or a bare number meaning the plateau's monitored metric."""
    if isinstance(metrics, Mapping):
        return metrics
    if plateau is None:
        raise ValueError(
            "A bare number can only be reported for a run with a plateau tracker (it is the monitored "
            f"metric); this run has none, so pass a dict such as {{'val_loss': x}}. Received: metrics={metrics!r}"
        )
    return {plateau["monitor"]: metrics}


def open_run(client: Client, run_id: str, spec: Mapping[str, Any] | None) -> Run:
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


def waits_for_chief(report: Report, reporting: bool, plateau: Mapping[str, Any] | None) -> bool:
    """Whether this worker must wait for the chief's report at each epoch end.

    With a plateau tracker, lr(N + 1) depends on the report at step N. A worker of a `"chief"` job
    that does not report must not read it before the chief's report is accepted, or it would train
    with an lr that the report was about to change. Without a tracker, reports never change an lr.
    `report=False` promises no reporter, so it never waits (it sees others' reports at the next
    epoch boundary).
    """
    return report == "chief" and not reporting and plateau is not None
