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

import hashlib
from collections.abc import Callable, Hashable, Mapping
from typing import Any

import numpy as np
import optax
from optax import InjectStatefulHyperparamsState

from ._adapter import Metrics, OnError, Report
from ._client import Client
from ._follower import DEFAULT_CHIEF_TIMEOUT, RunFollower
from ._optax_table import LrConstantState, LrTable, LrTableState, TableWindow, scale_by_constant, scale_by_table
from ._rates import LearningRates
from ._types import ReportOutcome

__all__ = ["LrConstantState", "LrTable", "LrTableState", "ServiceLR", "set_lr"]  # scale_by_lr()/schedule() + sync


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
        self._table_length = max(2, min(steps or 10_000, 100_000))
        self._table: LrTable | None = None
        self._synced: tuple[int | None, int] | None = None  # (run version, first step) of the table put last
        self._compiled = False  # a compiled=True transformation was built: sync gives it a key
        self._constant: tuple[int | None, int, Hashable] | None = None  # (run version, first step, key) of its table
        self._constants: dict[Hashable, np.ndarray] = {}  # key -> the lrs the update is traced with
        self._window = TableWindow(self._table_length)

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
        """The run's lrs as an optax stateful schedule, for `optax.inject_hyperparams(...)(learning_rate=...)`:
        no host work per step. Call `opt_state = service.sync(opt_state, step)` before each epoch."""
        self._table = LrTable(self._table_length)
        return self._table

    def scale_by_lr(self, compiled: bool = False) -> optax.GradientTransformation:
        """A gradient transformation that multiplies the updates by the run's lr of the step being trained, read
        from a table of the run's lrs (sync it once per epoch): chain it after an optimizer built with learning
        rate 1, `optax.chain(optax.adamw(1.0), service.scale_by_lr())`. No `inject_hyperparams`, no host work per
        step. `scale_by_learning_rate()` is the same with optax's sign, one transformation fewer.

        compiled: keep the table out of the optimizer state and compile it into the update as a constant: the
            state is then one leaf, the step index, as `optax.sgd(schedule)` has its count, and `jit` traces and
            compiles the update again whenever `sync` brings different lrs (a plateau reduction, a revision, a
            table moved along a training longer than it). Otherwise the table is a state leaf (nothing is
            compiled again, but the leaf is passed to and from every step: donate the state). In epoch runs the
            compiled table holds one lr per epoch and the index is the epoch's.
        """
        return self._scale(1, compiled)

    def scale_by_learning_rate(self, compiled: bool = False) -> optax.GradientTransformation:
        """The updates times minus the run's lr, as `optax.scale_by_learning_rate(schedule)`, which optax's
        optimizers end with: alone it is `optax.sgd` following the run, and
        `optax.chain(optax.scale_by_adam(), service.scale_by_learning_rate())` is `optax.adam`. `compiled` as for
        `scale_by_lr`; sync it once per epoch."""
        return self._scale(-1, compiled)

    def _scale(self, sign: int, compiled: bool) -> optax.GradientTransformation:
        if compiled:
            self._compiled = True
            # The optimizer counts batches; in epoch runs sync sets the epoch's index.
            return scale_by_constant(lambda key: self._constants.get(key), sign, advance=self.step_unit == "batch")
        self._table = LrTable(self._table_length)
        return scale_by_table(self._table, sign)

    def _constant_table(self, step: int) -> tuple[int, Hashable]:
        """The index of `step` and the key of the constant table to train it with. The key is the table's first
        step and a digest of its lrs, so a run's write that changed none of them (another report) keeps the key,
        and the compiled update with it."""
        version = self.rates.version
        if self._constant is not None and not self._window.moves(self._constant[1], step):
            if self._constant[0] == version:
                return step - self._constant[1], self._constant[2]
            first = self._constant[1]
        else:
            first = step
        lrs = np.array([self.follower.lr(s) for s in range(first, first + self._table_length)])
        key = (first, hashlib.blake2b(lrs.tobytes(), digest_size=16).hexdigest())
        self._constants = {key: lrs}
        self._constant = (self.rates.version, first, key)
        return step - first, key

    def sync(self, opt_state: Any, step: int, name: str = "learning_rate") -> Any:
        """`opt_state` ready to train from `step` on with the table of `schedule()` or `scale_by_lr()`: the table
        is put on the device again only when the run's lrs may have changed since (a report that reduced, another
        worker's write, a revision: the run's version moved) or when the next epoch, as long as the longest so
        far, might run past its end (then it starts at `step`); the step count is set to `step` (so a resumed loop
        starts where it should). In epoch runs the table holds the epoch's lr (the optimizer counts batches), so
        it is put every epoch. With `scale_by_lr(compiled=True)` the table gets a new key (and the update is
        compiled again) only when its lrs differ. Outside `jit`, once per epoch."""
        if self._table is None and not self._compiled:
            raise TypeError("sync needs an optimizer built with service.scale_by_learning_rate(), "
                            "service.scale_by_lr() or learning_rate=service.schedule()")
        self._window.synced(step)
        constant = self._constant_table(step) if self._compiled else None
        if self._table is None:
            refill, first, count = False, 0, 0
        elif self.step_unit == "epoch":  # the optimizer counts batches: the epoch's lr in every entry
            refill, first, count = True, 0, 0
            values = np.full(self._table_length, self.follower.lr(step))
        else:
            version = self.rates.version
            refill = self._synced is None or self._synced[0] != version or \
                self._window.moves(self._synced[1], step)
            first, count = (step if refill else self._synced[1]), step
            if refill:
                values = np.array([self.follower.lr(s) for s in range(step, step + self._table_length)])
                self._synced = (self.rates.version, step)
        found = False

        def put(table: LrTableState) -> LrTableState:
            lrs = np.asarray(values, dtype=np.result_type(table.lrs.dtype)) if refill else table.lrs
            return LrTableState(lrs=lrs, index=np.int32(count - first))

        def visit(state: Any) -> Any:
            nonlocal found
            if isinstance(state, LrConstantState) and constant is not None:  # scale_by_lr(compiled=True)'s
                found = True
                return LrConstantState(np.int32(constant[0]), constant[1])
            if isinstance(state, LrTableState):  # scale_by_lr's own state
                found = True
                return put(state)
            if isinstance(state, InjectStatefulHyperparamsState) and \
                    isinstance(state.hyperparams_states.get(name), LrTableState):
                found = True
                return state._replace(hyperparams_states={**state.hyperparams_states,
                                                          name: put(state.hyperparams_states[name])})
            if isinstance(state, tuple) and not hasattr(state, "_fields"):
                return tuple(visit(s) for s in state)
            return state

        new_state = visit(opt_state)
        if not found:
            raise TypeError(f"No state of service.scale_by_learning_rate() or service.scale_by_lr(), nor an "
                            f"optax.inject_hyperparams state whose {name!r} is service.schedule(), in this optimizer "
                            f"state: build it with service.scale_by_learning_rate(compiled=True), "
                            f"optax.chain(optax.sgd(1.0), service.scale_by_lr()) or "
                            f"inject_hyperparams(optax.sgd)({name}=service.schedule()). "
                            f"Received: {type(opt_state).__name__}")
        return new_state

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
