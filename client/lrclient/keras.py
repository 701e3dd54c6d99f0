"""Keras 3 adapter: `LearningRateCallback` takes the optimizer's learning rate from lrserve.

It replaces `LearningRateScheduler(fn)` + `ReduceLROnPlateau(...)`: the service holds the schedule
and the plateau tracker, every worker reads the same lr, and the plateau decision is taken once.
Works on every Keras 3 backend (it only sets `optimizer.learning_rate` and reads
`optimizer.iterations`). Where the run cycles momentum (`one_cycle`, `cyclic`), it also sets the optimizer's
`momentum` (SGD, RMSprop) or `beta_1` (Adam-style) per step, on the torch backend without `jit_compile`:
those are Python floats that a compiled train step (TensorFlow, JAX, jit) reads once, so there it warns once
and leaves them alone.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable, Mapping
from typing import Any

import keras
from keras.optimizers import schedules as keras_schedules

from ._adapter import Metrics, OnError, Report
from ._client import Client
from ._follower import DEFAULT_CHIEF_TIMEOUT, RunFollower
from ._range_test import Sweep
from ._rates import LearningRates
from ._types import LrFinderResult

__all__ = ["LearningRateCallback", "find_lr", "schedule_spec"]

# The six built-in Keras schedules and the fields of their get_config() that the contract names alike.
_KERAS_SCHEDULES: dict[type, tuple[str, tuple[str, ...]]] = {
    keras_schedules.ExponentialDecay: (
        "exponential_decay", ("initial_learning_rate", "decay_steps", "decay_rate", "staircase")),
    keras_schedules.InverseTimeDecay: (
        "inverse_time_decay", ("initial_learning_rate", "decay_steps", "decay_rate", "staircase")),
    keras_schedules.PolynomialDecay: (
        "polynomial_decay", ("initial_learning_rate", "decay_steps", "end_learning_rate", "power", "cycle")),
    keras_schedules.PiecewiseConstantDecay: ("piecewise_constant", ("boundaries", "values")),
    keras_schedules.CosineDecay: (
        "cosine_decay", ("initial_learning_rate", "decay_steps", "alpha", "warmup_target", "warmup_steps")),
    keras_schedules.CosineDecayRestarts: (
        "cosine_decay_restarts", ("initial_learning_rate", "first_decay_steps", "t_mul", "m_mul", "alpha")),
}

def _plain(value: Any) -> Any:
    """A config value as plain JSON: lists elementwise; NumPy and tensor scalars as Python scalars."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return keras.ops.convert_to_numpy(value).item()


def schedule_spec(schedule: keras_schedules.LearningRateSchedule) -> dict[str, Any]:
    """The contract's schedule for one of the six built-in Keras schedules, read from its `get_config()`.

    >>> schedule_spec(keras.optimizers.schedules.ExponentialDecay(0.1, 1000, 0.96))["type"]
    'exponential_decay'
    """
    kind = type(schedule)
    if kind not in _KERAS_SCHEDULES:  # subclasses too: they may compute something else
        names = ", ".join(k.__name__ for k in _KERAS_SCHEDULES)
        raise TypeError(
            f"Only the built-in Keras schedules ({names}) can be converted to a run spec; write other "
            f"schedules as a spec dict (e.g. {{'type': 'expression', ...}}). Received: {kind.__name__}"
        )
    name, fields = _KERAS_SCHEDULES[kind]
    config = schedule.get_config()
    spec = {"type": name, **{field: _plain(config[field]) for field in fields}}
    if name == "piecewise_constant":
        spec["values"] = [float(v) for v in spec["values"]]
    return spec


def run_spec(spec: Mapping[str, Any] | keras_schedules.LearningRateSchedule | None) -> dict[str, Any] | None:
    """A spec dict for the service; a Keras schedule object (alone or as "schedule") counts in batches."""
    if spec is None:
        return None
    if isinstance(spec, keras_schedules.LearningRateSchedule):
        return {"schedule": schedule_spec(spec), "step_unit": "batch"}
    if not isinstance(spec, Mapping):
        raise TypeError(
            "spec must be a run spec dict or a Keras LearningRateSchedule object. "
            f"Received: spec={spec!r} of type {type(spec).__name__}"
        )
    converted = dict(spec)
    if isinstance(converted.get("schedule"), keras_schedules.LearningRateSchedule):
        converted["schedule"] = schedule_spec(converted["schedule"])
        converted.setdefault("step_unit", "batch")  # the unit Keras evaluates its schedules in
    return converted


def _optimizers(optimizer: Any) -> list[Any]:
    return list(getattr(optimizer, "optimizers", None) or [optimizer])


def _check_settable(optimizer: Any) -> None:
    for opt in _optimizers(optimizer):
        schedule = getattr(opt, "_learning_rate", None)
        if isinstance(schedule, keras_schedules.LearningRateSchedule):
            raise TypeError(
                "LearningRateCallback sets the optimizer's learning rate, but this optimizer was built with "
                f"a LearningRateSchedule object ({type(schedule).__name__}), whose learning rate cannot be set. "
                "Build the optimizer with a float learning_rate and give the schedule to the callback: "
                f"LearningRateCallback(run_id, spec=schedule). Received: learning_rate={schedule!r}"
            )


def _momentum_attribute(optimizer: Any) -> str | None:
    """The optimizer's attribute that PyTorch's `momentum` / `betas[0]` corresponds to, if it has one."""
    for name in ("beta_1", "momentum"):
        if isinstance(getattr(optimizer, name, None), (int, float)) and not isinstance(getattr(optimizer, name), bool):
            return name
    return None


def _why_momentum_is_fixed(model: Any) -> str | None:
    """Why the run's momentum cannot be applied to this model's optimizers per step, or None when it can."""
    if keras.backend.backend() != "torch" or getattr(model, "jit_compile", False):
        jit = " with jit_compile" if getattr(model, "jit_compile", False) else ""
        return (f"on the {keras.backend.backend()} backend{jit} the "
                "compiled train step reads the optimizer's momentum once, so setting it per step has no effect "
                "(use the torch backend without jit_compile to cycle it)")
    for optimizer in _optimizers(model.optimizer):
        name = _momentum_attribute(optimizer)
        if name is None:
            return f"{type(optimizer).__name__} has neither `momentum` nor `beta_1`"
        if name == "momentum" and getattr(optimizer, name) == 0:
            return (f"{type(optimizer).__name__} was built with momentum=0, so it keeps no velocity; give it a "
                    "momentum > 0 (e.g. SGD(learning_rate, momentum=0.9)) to let the run cycle it")
    return None


def _closing_on_error(hook: Callable[..., None]) -> Callable[..., None]:
    """A training event that closes the callback's own client when it stops training."""

    @functools.wraps(hook)
    def wrapper(self: LearningRateCallback, *args: Any, **kwargs: Any) -> None:
        try:
            hook(self, *args, **kwargs)
        except BaseException:
            self.on_train_end()  # Keras skips on_train_end when fit raises
            raise

    return wrapper


class LearningRateCallback(keras.callbacks.Callback):
    """Set the optimizer's learning rate from an lrserve run, before every epoch or every batch.

    The run's `step_unit` decides: `"epoch"` sets the lr of epoch N (the `epoch` Keras passes,
    so `initial_epoch` resumes correctly) in `on_epoch_begin`; `"batch"` sets the lr of the global
    step (`optimizer.iterations` at the epoch's start plus the batch index, so a restored optimizer
    resumes correctly) in `on_train_batch_begin`, from a cache filled for the whole `fit` at once.
    At each epoch end the chosen logs are reported (at the epoch index, or in batch units at the
    step of the epoch's last batch) and `logs["learning_rate"]` is the lr used last. After the first
    epoch, an epoch costs one request (the report), two when the report before it reduced the lr.

    Args:
        run_id: the run's id.
        base_url: the service; default `$LRSERVE_URL`, else `http://127.0.0.1:8000`.
        spec: create the run at train begin (the same spec again is fine; a different one is an
            error). A spec dict, or a built-in Keras `LearningRateSchedule` (counted in batches).
        report: `True` (report every epoch), `False`, or `"chief"`: only the chief process reports
            (`RANK`/`TF_CONFIG`/`LOCAL_RANK` or `is_chief()`), the others wait for its report when
            the run has a plateau tracker. Use `"chief"` when workers do not all-reduce their metrics.
        on_error: `"raise"` stops training when the service cannot be reached (a client the callback
            creates retries for 12 s or more first, so a restarted service goes unnoticed); `"last"`
            keeps the last known lr, warns once, and resends missed reports when the service answers.
        verbose: 1 prints each lr change made at an epoch boundary and each plateau reduction.
        token: bearer token; default `$LRSERVE_TOKEN`.
        client: an `lrclient.Client` to use instead of creating one.
        is_chief: decides "chief" instead of the environment.
        chief_timeout: seconds a non-reporting worker waits for the chief's report (then `TimeoutError`).
        metrics: the logs to report: by default the plateau's monitored metric and the validation
            metrics (`val_*`), not each worker's own training loss; `"all"`, or a list of names.

    Raises `lrclient.ReportsAhead` before the first batch when the run already has reports at the
    step training starts from (a script run again, or a resume without `initial_epoch` or a rewind).
    """

    def __init__(
        self,
        run_id: str,
        base_url: str | None = None,
        spec: Mapping[str, Any] | keras_schedules.LearningRateSchedule | None = None,
        report: Report = True,
        on_error: OnError = "raise",
        verbose: int = 0,
        token: str | None = None,
        client: Client | None = None,
        *,
        is_chief: Callable[[], bool] | None = None,
        chief_timeout: float = DEFAULT_CHIEF_TIMEOUT,
        metrics: Metrics = None,
    ) -> None:
        super().__init__()
        self.follower = RunFollower(run_id, base_url=base_url, token=token, client=client, spec=run_spec(spec),
                                    report=report, on_error=on_error, metrics=metrics, is_chief=is_chief,
                                    chief_timeout=chief_timeout, validation_prefix="val_", resume=self._resume)
        self.verbose = verbose
        self.learning_rate: float | None = None  # the lr set last
        self.momentum: float | None = None  # the momentum set last (None: the optimizer's own)
        self._started = False
        self._momentum_fixed: str | None = None

    @property
    def run_id(self) -> str:
        return self.follower.run_id

    @property
    def client(self) -> Client | None:
        return self.follower.client

    @property
    def rates(self) -> LearningRates | None:
        """The learning-rate cache of the current (or last) `fit`; `rates.requests` counts its requests."""
        return self.follower.rates

    @property
    def step_unit(self) -> str | None:
        return None if self.follower.rates is None else self.follower.step_unit

    # -- training events -------------------------------------------------------------------------

    @_closing_on_error
    def on_train_begin(self, logs: dict | None = None) -> None:
        _check_settable(self.model.optimizer)
        params = self.params or {}
        # (opening closes a previous fit's client, which never reached on_train_end if that fit raised)
        self.follower.open(epochs=params.get("epochs"), steps_per_epoch=params.get("steps"))
        self.learning_rate = self.momentum = None
        self._started = False
        self._momentum_fixed = _why_momentum_is_fixed(self.model)
        self._warned_momentum = False

    @_closing_on_error
    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        if self.step_unit == "batch":
            # Read once per epoch: on JAX the optimizer's variables are only synced between epochs.
            self._epoch_start = self._iterations()
        if self._started:
            self.follower.boundary()
        else:  # the first epoch of this fit: the run was just opened
            self.follower.begin(epoch if self.step_unit == "epoch" else self._epoch_start)
            self._started = True
        if self.step_unit == "epoch":
            self._set(self.follower.lr(epoch), epoch)
            self._set_momentum(self.follower.momentum(epoch))

    @_closing_on_error
    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        if self.step_unit == "batch":
            step = self._epoch_start + batch
            self._set(self.follower.lr(step), None)
            self._set_momentum(self.follower.momentum(step))

    @_closing_on_error
    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        step = epoch if self.step_unit == "epoch" else self._iterations() - 1
        if step >= 0:
            measured = {k: v for k, v in (logs or {}).items() if not k.startswith("learning_rate")}  # ours
            outcome = self.follower.report(step, measured)
            if outcome is not None and outcome.reduced and self.verbose > 0:
                print(f"\nEpoch {epoch + 1}: lrserve reduced the learning rate to {outcome.next_lr:.6g} "
                      f"from step {step + 1} on (run '{self.run_id}').")
        if logs is not None and self.learning_rate is not None:
            logs["learning_rate"] = self.learning_rate

    def on_train_end(self, logs: dict | None = None) -> None:
        self.follower.close()

    # -- helpers ---------------------------------------------------------------------------------

    def _iterations(self) -> int:
        return int(self.model.optimizer.iterations)

    def _resume(self, step: int) -> str:
        if self.step_unit == "epoch":
            return f"model.fit(..., initial_epoch={step}) from the checkpoint saved after epoch {step - 1}"
        return (f"restore the checkpoint saved after step {step - 1} (its optimizer.iterations is {step}) and "
                "pass its epoch count as model.fit(..., initial_epoch=...)")

    def _set(self, lr: float, epoch: int | None) -> None:
        # Only a change touches the model: on JAX `self.model` syncs the training state back into
        # the variables, so that the assignment takes effect from the next batch on.
        if lr == self.learning_rate:
            return
        for optimizer in _optimizers(self.model.optimizer):
            optimizer.learning_rate = lr
        self.learning_rate = lr
        if epoch is not None and self.verbose > 0:
            print(f"\nEpoch {epoch + 1}: LearningRateCallback setting learning rate to {lr:.6g}.")

    def _set_momentum(self, momentum: float | None) -> None:
        """Set the run's momentum (as PyTorch's OneCycleLR/CyclicLR set it) where it can, else warn once."""
        if momentum is None or momentum == self.momentum:
            return
        if self._momentum_fixed is not None:
            if not self._warned_momentum:
                self._warned_momentum = True
                warnings.warn(f"lrserve run '{self.run_id}' cycles momentum, but LearningRateCallback cannot set it: "
                              f"{self._momentum_fixed}. Training goes on with the optimizer's own momentum.",
                              UserWarning, stacklevel=3)
            return
        for optimizer in _optimizers(self.model.optimizer):
            setattr(optimizer, _momentum_attribute(optimizer), momentum)
        self.momentum = momentum

def find_lr(
    model: keras.Model,
    x: Any,
    y: Any = None,
    *,
    run_id: str,
    base_url: str | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    batch_size: int = 32,
    monitor: str = "loss",
    report: Report = True,
    skip_begin: int = 10,
    skip_end: int = 1,
    beta: float = 0.98,
    early_stop_threshold: float | None = 4.0,
    token: str | None = None,
    client: Client | None = None,
) -> LrFinderResult:
    """The learning-rate range test (PyTorch Lightning's `lr_find` rule, computed by the service) on a
    compiled model.

    Creates run `run_id` with the exponential ramp from `start_lr` to `end_lr` over `num_steps` batches, trains
    batch i (rows `i*batch_size ...` of `x` and `y`, numpy arrays, wrapping around) with `train_on_batch` at the
    ramp's lr of step i, reports that batch's loss as `monitor`, stops early once the service sees the smoothed
    loss diverge (checked every 10 batches) or the loss is not finite, then puts the weights and the optimizer's
    variables back exactly as they were (an optimizer not built before is left built, with every variable
    zero, as a fresh one starts) and returns the service's verdict: `result.suggestion` (None with too few
    points), `result.points`, `result.diverged_at`.

    Many workers can share one sweep: every process calling `find_lr` with the same `run_id` and ramp shares
    the run. With `report=True` each reports its batch losses, which must then be the same (all-reduced)
    values; with `report="chief"` only the chief (RANK 0, TF_CONFIG's chief, LOCAL_RANK 0) reports, and the
    others wait for its reports of the steps they trained before reading the verdict.
    """
    optimizer = model.optimizer
    if optimizer is None:
        raise ValueError("find_lr needs a compiled model: call model.compile(optimizer=..., loss=...) first")
    weights = [w.numpy().copy() for w in model.weights]
    built = bool(optimizer.built)
    optimizer_values = [v.numpy().copy() for v in optimizer.variables] if built else None
    initial_lr = float(optimizer.learning_rate)
    owned = client is None
    client = Client(base_url, token=token) if client is None else client
    try:
        sweep = Sweep(client, run_id, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps, monitor=monitor,
                      report=report, finder_options={"skip_begin": skip_begin, "skip_end": skip_end, "beta": beta,
                                                     "early_stop_threshold": early_stop_threshold})
        rows = len(x)
        for step in range(num_steps):
            index = [(step * batch_size + i) % rows for i in range(batch_size)]
            optimizer.learning_rate.assign(sweep.lrs[step])
            loss = model.train_on_batch(x[index], None if y is None else y[index], return_dict=True)["loss"]
            if not sweep.trained_step(step, float(loss)):
                break
        return sweep.final_result()
    finally:
        for variable, value in zip(model.weights, weights):
            variable.assign(value)
        if optimizer_values is not None:
            for variable, value in zip(optimizer.variables, optimizer_values):
                variable.assign(value)
        elif optimizer.built:
            for variable in optimizer.variables:
                variable.assign(keras.ops.zeros_like(variable))
        optimizer.learning_rate.assign(initial_lr)
        if owned:
            client.close()
