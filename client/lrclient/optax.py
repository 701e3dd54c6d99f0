"""JAX / optax adapter: feed an lrserve run's lr into an optimizer built with `optax.inject_hyperparams`.

The lr is a hyperparameter in the optimizer's state, so it changes without recompiling the jitted
update: outside `jit`, before each step, `opt_state = set_lr(opt_state, service.lr(step))`. `lr(step)`
reads a cache filled for the whole training in one request, so a step costs no request; `report(step,
metrics)` once per epoch is the only request of an epoch (two after a report that reduced the lr).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
from optax import InjectStatefulHyperparamsState

from ._adapter import Metrics, OnError, Report
from ._client import Client
from ._follower import DEFAULT_CHIEF_TIMEOUT, RunFollower
from ._rates import LearningRates
from ._types import ReportOutcome

__all__ = ["ServiceLR", "set_lr"]


def set_lr(opt_state: Any, lr: float, name: str = "learning_rate") -> Any:
    """The state with the `inject_hyperparams` hyperparameter `name` set to `lr` (in its dtype), outside `jit`.

    `opt_state` is the state of `optax.inject_hyperparams(...)(learning_rate=<a number>)`, alone or inside
    the tuple of an `optax.chain`; every injected state holding `name` is set. A state is not changed in place.
    """
    found = False

    def visit(state: Any) -> Any:
        nonlocal found
        if isinstance(state, InjectStatefulHyperparamsState) and name in state.hyperparams:
            if name in state.hyperparams_states:
                raise TypeError(f"The optimizer computes {name!r} from its own schedule at every update, which would "
                                f"undo set_lr: build it with a number, inject_hyperparams(...)({name}=0.0).")
            found = True
            # A NumPy scalar, not a JAX array: the jitted update moves it to the device with its other
            # arguments, where `jnp.asarray` here would dispatch a transfer of its own (about 20 µs a step).
            # Its dtype, not the array itself: NumPy 2.4 deprecates reading a dtype from a JAX array.
            current = state.hyperparams[name]
            value = np.asarray(lr, dtype=np.result_type(getattr(current, "dtype", current)))
            return state._replace(hyperparams={**state.hyperparams, name: value})
        if isinstance(state, tuple) and not hasattr(state, "_fields"):  # optax.chain's tuple of states
            return tuple(visit(s) for s in state)
        return state

    new_state = visit(opt_state)
    if not found:
        raise TypeError(f"No optax.inject_hyperparams state with a {name!r} hyperparameter in this optimizer state: "
                        f"build the optimizer with optax.inject_hyperparams(optax.sgd)({name}=0.0). "
                        f"Received: {type(opt_state).__name__}")
    return new_state


class ServiceLR:
    """The learning rates of an lrserve run, for a hand-written JAX training loop::

        optimizer = optax.inject_hyperparams(optax.adam)(learning_rate=0.0)
        with ServiceLR("my-run", spec=spec, steps=epochs * batches) as service:
            for step in ...:
                opt_state = set_lr(opt_state, service.lr(step))    # outside jit; no request
                params, opt_state = update(params, opt_state, batch)
                ...
            service.report(step, {"val_loss": float(val_loss)})    # at each epoch end

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
