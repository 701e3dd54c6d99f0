"""PyTorch adapter: `ServiceScheduler`, a learning-rate scheduler whose schedule lives in lrserve.

It is used like any `torch.optim.lr_scheduler` scheduler, and like `ReduceLROnPlateau` for the
reports: construction sets the lr of step 0, `step()` moves to the next step, `step(metrics)` first
reports the metrics measured at the end of the current step. Its `state_dict()` is only the run id
and the position: the plateau state lives in the service, so a resumed job needs nothing else.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from torch import Tensor
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ._adapter import (
    OnError,
    PendingReports,
    Report,
    ReportWaiter,
    check_choices,
    refresh,
    monitor_metrics,
    open_run,
    reports_here,
    waits_for_chief,
)
from ._client import Client
from ._exceptions import ServiceUnreachable
from ._rates import LearningRates

__all__ = ["ServiceScheduler"]

# Batch runs prefetch this many steps per lr/range call unless told the epoch length.
_DEFAULT_BATCH_HORIZON = 1000


class ServiceScheduler(LRScheduler):
    """Set every param group's lr from an lrserve run, one step at a time.

    Epoch runs (`step_unit: "epoch"`)::

        scheduler = ServiceScheduler(optimizer, "my-run", spec=spec)   # lr of epoch 0 is set
        for epoch in range(epochs):
            train_one_epoch()
            scheduler.step(validation_loss)    # report at this epoch, then move to the next

    Batch runs (`step_unit: "batch"`): call `step()` after every `optimizer.step()`, and at the end
    of each epoch `report(metrics)`, which reports at the step of the epoch's last batch and
    re-reads the lr of the next one (the report may have reduced it).

    Args:
        optimizer: the wrapped optimizer; every param group gets the run's lr.
        run_id, base_url, spec, report, on_error, token, client, is_chief, chief_timeout: as for
            `lrclient.keras.LearningRateCallback`.
        horizon: steps fetched per lr/range call in batch runs (pass the epoch length).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        run_id: str,
        base_url: str | None = None,
        spec: Mapping[str, Any] | None = None,
        report: Report = True,
        on_error: OnError = "raise",
        token: str | None = None,
        client: Client | None = None,
        *,
        is_chief: Callable[[], bool] | None = None,
        chief_timeout: float = 600.0,
        horizon: int | None = None,
    ) -> None:
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        check_choices(report, on_error)
        self.optimizer = optimizer
        self.run_id = run_id
        self.on_error: OnError = on_error
        self._owns_client = client is None
        self.client = client or Client(base_url=base_url, token=token)
        run = open_run(self.client, run_id, spec)
        self.step_unit: str = run.spec["step_unit"]
        self.plateau: dict[str, Any] | None = run.spec.get("plateau")
        if self.step_unit == "batch":
            horizon = horizon or _DEFAULT_BATCH_HORIZON
        self.rates = LearningRates(self.client, run_id, horizon=horizon, on_error=on_error)
        self._reporting = reports_here(report, is_chief)
        waits = waits_for_chief(report, self._reporting, self.plateau)
        self._waiter = ReportWaiter(self.client, self.rates, run_id, chief_timeout) if waits else None
        self._pending = PendingReports(run_id)
        self.base_lrs = [_as_float(group["lr"]) for group in optimizer.param_groups]
        self._step_count = 1
        self.last_epoch = 0  # the step whose lr is set, as torch schedulers count
        self._apply()

    # -- the scheduler interface -----------------------------------------------------------------

    def step(self, metrics: float | Mapping[str, Any] | None = None) -> None:  # type: ignore[override]
        """Move to the next step; with `metrics`, first report them at the current step.

        `metrics` is a number (the plateau's monitored metric) or a dict of metrics.
        """
        if metrics is not None:
            self._report(self.last_epoch, metrics)
        elif self.step_unit == "epoch" and not self._reporting:
            self._refresh()  # an epoch boundary: see what other workers reported
        self._step_count += 1
        self.last_epoch += 1
        self._apply()

    def report(self, metrics: float | Mapping[str, Any]) -> None:
        """Report metrics for the last finished step (batch runs: at epoch end, after the last `step()`)."""
        if self.last_epoch < 1:
            raise ValueError("report() reports the step before the current one; no step has finished yet. "
                             "Call step() after each optimizer.step(), or step(metrics) in epoch runs.")
        self._report(self.last_epoch - 1, metrics)
        self._apply()

    def get_lr(self) -> list[float]:
        return [self.rates.lr(self.last_epoch)] * len(self.optimizer.param_groups)

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Only the run id and the position: the schedule and plateau state live in the service."""
        return {"run_id": self.run_id, "last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Move to the saved position (of the same run) and set its lr.

        To resume after a crash, rewind the run to the checkpoint's last reported step first
        (`lrclient.Client().rewind(run_id, step)`), so that reports made after the checkpoint are forgotten.
        """
        if state_dict.get("run_id") != self.run_id:
            raise ValueError(
                f"This state belongs to run '{state_dict.get('run_id')}', not to run '{self.run_id}'. "
                f"Received: state_dict={dict(state_dict)}"
            )
        self.last_epoch = int(state_dict["last_epoch"])
        self._refresh()
        self._apply()

    def close(self) -> None:
        """Close the HTTP client if this scheduler created it."""
        if self._owns_client:
            self.client.close()

    # -- helpers ---------------------------------------------------------------------------------

    def _apply(self) -> None:
        if self._pending.queue:  # reports missed in an outage go first, once the service is back
            self._pending.flush(self.rates, self.on_error, throttle=self.step_unit == "batch")
            if self._pending.queue:
                return  # still away: keep the last lr
        lr = self.rates.lr(self.last_epoch)
        for group in self.optimizer.param_groups:
            if isinstance(group["lr"], Tensor):
                group["lr"].fill_(lr)
            else:
                group["lr"] = lr
        self._last_lr = [lr] * len(self.optimizer.param_groups)

    def _report(self, step: int, metrics: float | Mapping[str, Any]) -> None:
        encoded = monitor_metrics(metrics, self.plateau)
        if self._reporting:
            self._pending.send(self.rates, step, encoded, self.on_error)
        elif self._waiter is not None:
            try:
                self._waiter.wait_for(step)
            except ServiceUnreachable:
                if self.on_error == "raise":
                    raise
        else:
            self._refresh()  # someone else reports: see it

    def _refresh(self) -> None:
        refresh(self.rates, self.on_error)


def _as_float(value: float | Tensor) -> float:
    return float(value.item()) if isinstance(value, Tensor) else float(value)
