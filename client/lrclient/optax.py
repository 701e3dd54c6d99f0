"""JAX / optax adapter: feed an lrserve run's lr into a jitted optax update, with no request per step.

Two ways. Outside `jit`, before each step, `opt_state = set_lr(opt_state, service.lr(step))` on an optimizer
built with `optax.inject_hyperparams`: simple, but a host-to-device copy per step. Or inside `jit`: the run's
lrs as a table the update reads by its own step count (`scale_by_learning_rate()`, optax's last
transformation; `scale_by_lr()` after an optimizer at lr 1; `schedule()` for `inject_hyperparams`), put by
`sync(opt_state, step)` once per epoch; with `compiled=True` the table is a constant of the compiled update
and the state one leaf, so a step costs what `optax.sgd(schedule)` costs. `lr(step)` and `sync` read a cache
filled for the whole training in one request; `report(step, metrics)` once per epoch is the only request of
an epoch (two after a report that reduced the lr).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import optax

from ._adapter import Metrics, OnError, Report
from ._client import Client
from ._follower import DEFAULT_CHIEF_TIMEOUT, RunFollower
from ._optax_host import LrTables, set_lr
from ._optax_table import LrConstantState, LrTable, LrTableState
from ._rates import LearningRates
from ._types import ReportOutcome

__all__ = ["LrConstantState", "LrTable", "LrTableState", "LrTables", "ServiceLR", "set_lr"]


class ServiceLR:
    """The learning rates of an lrserve run, for a hand-written JAX training loop::

        optimizer = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)
        with ServiceLR("my-run", spec=spec, steps=epochs * batches) as service:
            for step in ...:
                opt_state = set_lr(opt_state, service.lr(step))    # outside jit; no request
                params, opt_state = update(params, opt_state, batch)
                ...
            service.report(step, {"val_loss": float(val_loss)})    # at each epoch end

    or, with no host work per step, `optimizer = service.scale_by_learning_rate(compiled=True)` (optax.sgd; chain
    it after `optax.scale_by_adam()` for adam) and `opt_state = service.sync(opt_state, step)` before each epoch.

    The run is created (or loaded) at construction. Args as for `lrclient.torch.ServiceScheduler`, and:
        steps: the training's length in the run's steps, so one request fetches every lr (default
            1,000 epochs or 10,000 batches per request).
        start_step: the first step this job trains: `lrclient.ReportsAhead` is raised now, before training,
            if this process reports and the run already has reports at it or after it.
        metrics: what `report` sends: by default the monitored metric and the `val_*` metrics; "all", or names.
    """

    def __init__(self, run_id: str, base_url: str | None = None, spec: Mapping[str, Any] | None = None,
                 report: Report = True, on_error: OnError = "raise", token: str | None = None,
                 client: Client | None = None, *, is_chief: Callable[[], bool] | None = None,
                 chief_timeout: float = DEFAULT_CHIEF_TIMEOUT, metrics: Metrics = None, steps: int | None = None,
                 start_step: int = 0) -> None:
        self.follower = RunFollower(run_id, base_url=base_url, token=token, client=client, spec=spec, report=report,
                                    on_error=on_error, metrics=metrics, is_chief=is_chief,
                                    chief_timeout=chief_timeout, validation_prefix="val_", resume=_resume)
        self.follower.open(horizon=steps)
        self.follower.begin(start_step)
        length = max(2, min(steps or 10_000, 100_000))
        self.tables = LrTables(self.follower.lr, lambda: self.rates.version, self.step_unit == "epoch", length)

    @property
    def rates(self) -> LearningRates:
        """The learning-rate cache; `rates.requests` counts its requests."""
        return self.follower.rates

    @property
    def step_unit(self) -> str:
        return self.follower.step_unit

    def lr(self, step: int) -> float:
        """The learning rate of `step` (in the run's unit): from the cache, but for one request per prefetch."""
        return self.follower.lr(step)

    __call__ = lr

    def schedule(self) -> LrTable:
        """The run's lrs as an optax schedule for `inject_hyperparams`; see `LrTables.schedule`."""
        return self.tables.schedule()

    def scale_by_lr(self, compiled: bool = False) -> optax.GradientTransformation:
        """Updates times the run's lr, after an optimizer at lr 1; see `LrTables.scale_by_lr`."""
        return self.tables.scale_by_lr(compiled)

    def scale_by_learning_rate(self, compiled: bool = False) -> optax.GradientTransformation:
        """Updates times minus the run's lr, as optax's optimizers end; see `LrTables.scale_by_learning_rate`."""
        return self.tables.scale_by_learning_rate(compiled)

    def sync(self, opt_state: Any, step: int, name: str = "learning_rate") -> Any:
        """`opt_state` ready to train from `step` on, the table put again only if needed; see `LrTables.sync`."""
        return self.tables.sync(opt_state, step, name)

    def report(self, step: int, metrics: Mapping[str, Any]) -> ReportOutcome | None:
        """The metrics measured at the end of `step` (once per epoch): the service's answer, or None when nothing
        was sent; then the next `lr` sees any reduction, and what other workers wrote."""
        numbers = {k: float(v) if hasattr(v, "__float__") else v for k, v in metrics.items()}  # JAX scalars too
        outcome = self.follower.report(step, numbers)
        self.follower.boundary()
        return outcome

    def close(self) -> None:
        self.follower.close()

    def __enter__(self) -> ServiceLR:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _resume(step: int) -> str:
    return f"restore the checkpoint saved after step {step - 1} and pass ServiceLR(..., start_step={step})"
