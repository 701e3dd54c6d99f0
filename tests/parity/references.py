"""The real reference libraries, evaluated in float64, for every schedule type of the contract.

`reference_lrs(schedule, steps)` returns the learning rate the contract's reference gives for each
step: Keras 3 in float64 (floatx and type promotion), PyTorch and Hugging Face schedulers stepped
on a real SGD optimizer, optax with jax x64, and Keras `LearningRateScheduler` for expressions.
Nothing here re-implements a schedule's formula: every value comes out of the library's own code.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from fractions import Fraction
from typing import Any
from unittest import mock

os.environ.setdefault("KERAS_BACKEND", "torch")

import jax
import jax.numpy as jnp
import keras
import numpy as np
import optax
import torch
import transformers
from keras.src.backend.common import dtypes as keras_dtypes
from torch.optim import lr_scheduler

Schedule = dict[str, Any]
Reference = Callable[[Schedule, list[int]], list[float]]

# Torch schedulers are stepped one step at a time up to here (the way a training loop drives
# them); farther steps jump there with the library's own closed form or `last_epoch`.
SEQUENTIAL_STEPS = 5_000

# Python twins of expression strings, registered by `expression()` in cases.py: the real
# `keras.callbacks.LearningRateScheduler` runs these functions.
PYTHON_EQUIVALENTS: dict[str, Callable[..., float]] = {}


def reference_lrs(schedule: Schedule, steps: Sequence[int]) -> np.ndarray:
    """The reference library's float64 learning rate for each step of `schedule`."""
    unique = sorted(set(int(step) for step in steps))
    values = dict(zip(unique, REFERENCES[schedule["type"]](schedule, unique)))
    return np.array([values[int(step)] for step in steps], dtype=np.float64)


# --- Keras 3 LearningRateSchedule ------------------------------------------------------------


@contextmanager
def keras_float64() -> Iterator[None]:
    """Run Keras in float64, restoring the previous floatx for the other tests afterwards.

    floatx alone is not enough on the torch backend: Keras's JAX-style type promotion demotes
    float64 to float32 (and int64 to int32) on every backend but TensorFlow
    (`dtypes.BIT64_TO_BIT32_DTYPE`), so ops.floor, ops.ceil and ops.minimum return float32 even
    for float64 inputs. Staircase floors and restart periods then misround near boundaries at
    large steps. While a reference runs, the promotion keeps 64-bit types, as Keras does on its
    TensorFlow backend.
    """
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        keep_64_bits = {"float64": "float64", "int64": "int64"}
        with mock.patch.dict(keras_dtypes.BIT64_TO_BIT32_DTYPE, keep_64_bits):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)  # numpy 2 copy= notice in Keras
                yield
    finally:
        keras.config.set_floatx(previous)


def _keras_values(keras_schedule: Any, steps: Sequence[int | float]) -> list[float]:
    """Call a Keras schedule once per step, as the optimizer calls it with its step counter.

    Integer steps are passed as int64 (the TensorFlow optimizer's counter type): a 32-bit step
    would overflow a piecewise boundary beyond 2**31 - 1 when Keras casts it to the step's type.
    """
    values = []
    for step in steps:
        result = keras_schedule(np.int64(step) if isinstance(step, int) else step)
        values.append(float(keras.ops.convert_to_numpy(result)))
    return values


def _keras_vectorized(keras_schedule: Any, steps: Sequence[int]) -> list[float]:
    """Call a Keras schedule once on all steps (elementwise ops: per-step calls agree to 1 ulp)."""
    result = keras_schedule(np.asarray(steps, dtype=np.int64))
    return np.asarray(keras.ops.convert_to_numpy(result), dtype=np.float64).reshape(-1).tolist()


def _keras_schedule(name: str, schedule: Schedule) -> Any:
    """The Keras schedule class `name` built from the spec, whose names are Keras's own."""
    kwargs = {key: value for key, value in schedule.items() if key != "type"}
    return getattr(keras.optimizers.schedules, name)(**kwargs)


def exponential_decay(schedule: Schedule, steps: list[int]) -> list[float]:
    with keras_float64():
        return _keras_vectorized(_keras_schedule("ExponentialDecay", schedule), steps)


def inverse_time_decay(schedule: Schedule, steps: list[int]) -> list[float]:
    # decay_steps=1 is the service's own default (Keras has none).
    with keras_float64():
        keras_schedule = _keras_schedule("InverseTimeDecay", {"decay_steps": 1, **schedule})
        return _keras_vectorized(keras_schedule, steps)


def polynomial_decay(schedule: Schedule, steps: list[int]) -> list[float]:
    with keras_float64():
        return _keras_vectorized(_keras_schedule("PolynomialDecay", schedule), steps)


def piecewise_constant(schedule: Schedule, steps: list[int]) -> list[float]:
    # Keras takes its result dtype from values[0]; the contract's values are floats, so integer
    # JSON values are given to Keras as floats (the service coerces them the same way).
    with keras_float64():
        keras_schedule = keras.optimizers.schedules.PiecewiseConstantDecay(
            boundaries=list(schedule["boundaries"]), values=[float(v) for v in schedule["values"]]
        )
        # Its running sum starts from a 0-d tensor, so it takes one step at a time.
        return _keras_values(keras_schedule, steps)


def cosine_decay(schedule: Schedule, steps: list[int]) -> list[float]:
    with keras_float64():
        keras_schedule = _keras_schedule("CosineDecay", schedule)
        if schedule.get("warmup_target") is None:
            return _keras_vectorized(keras_schedule, steps)
        # With a warmup target Keras branches with ops.cond, which takes one step at a time.
        return _keras_values(keras_schedule, steps)


def _new_period_length(schedule: Schedule, step: int) -> Fraction | None:
    """The length of the period that starts exactly at `step`, or None if no period starts there.

    Exact rational arithmetic: this only says where the restarts are, never what the lr is.
    """
    length = Fraction(schedule["first_decay_steps"])
    t_mul = Fraction(schedule.get("t_mul", 2.0))
    if step <= 0:
        return None
    if t_mul == 1:
        return length if step % length == 0 else None
    start = Fraction(0)
    while start < step:
        start, length = start + length, length * t_mul
    return length if start == step else None


def cosine_decay_restarts(schedule: Schedule, steps: list[int]) -> list[float]:
    """Keras CosineDecayRestarts, with the contract's rule at an exact restart step.

    Keras finds the period with floor(log(1 - f*(1 - t_mul)) / log(t_mul)). At an exact restart
    step float64 log can land just below the integer, so Keras returns the old period's last
    value (about alpha) instead of the new period's start (e.g. t_mul=1.5, first_decay_steps=64
    at step 844, or t_mul=3, first_decay_steps=1 at step 121). The contract serves the start of
    the new period there. So at a restart step where Keras(step) differs from Keras's own
    right-hand limit -- Keras at step + 1e-7 of the new period's length, which is the period's
    start to within about 1e-14 -- the reference is that right-hand limit, computed by Keras.
    """
    with keras_float64():
        keras_schedule = _keras_schedule("CosineDecayRestarts", schedule)
        values = _keras_vectorized(keras_schedule, steps)
        for index, step in enumerate(steps):
            length = _new_period_length(schedule, step)
            if length is not None:
                (right,) = _keras_values(keras_schedule, [step + float(length) * 1e-7])
                if not math.isclose(values[index], right, rel_tol=1e-9):
                    values[index] = right
        return values


# --- PyTorch and Hugging Face schedulers --------------------------------------------------------


def _sgd(lr: float, momentum: float = 0.0) -> torch.optim.SGD:
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr, momentum=momentum)


def _current_lr(scheduler: lr_scheduler.LRScheduler) -> float:
    return float(scheduler.optimizer.param_groups[0]["lr"])


def _torch_values(
    scheduler: lr_scheduler.LRScheduler,
    steps: list[int],
    jump: Callable[[lr_scheduler.LRScheduler, int], float],
) -> list[float]:
    """Step `scheduler` one call at a time through the small steps; `jump` reaches the far ones.

    `steps` is sorted. After construction the group lr is the lr of step 0; after N calls to
    `.step()` it is the lr of step N.
    """
    values: list[float] = []
    with warnings.catch_warnings():
        # Stepping a scheduler without optimizer.step() only warns; nothing is being trained.
        warnings.simplefilter("ignore")
        for step in steps:
            if step <= SEQUENTIAL_STEPS and step >= scheduler.last_epoch:
                while scheduler.last_epoch < step:
                    scheduler.step()
                values.append(_current_lr(scheduler))
            else:
                values.append(jump(scheduler, step))
    return values


def _closed_form_jump(scheduler: lr_scheduler.LRScheduler, step: int) -> float:
    """StepLR and MultiStepLR are chainable; the library's own closed form gives a far step."""
    scheduler.last_epoch = step
    return float(scheduler._get_closed_form_lr()[0])


def _last_epoch_jump(scheduler: lr_scheduler.LRScheduler, step: int) -> float:
    """Schedulers whose get_lr is a function of last_epoch: set the step before it and step once."""
    scheduler.last_epoch = step - 1
    scheduler.step()
    return _current_lr(scheduler)


def step_decay(schedule: Schedule, steps: list[int]) -> list[float]:
    kwargs = {key: schedule[key] for key in ("step_size", "gamma") if key in schedule}
    scheduler = lr_scheduler.StepLR(_sgd(schedule["initial_learning_rate"]), **kwargs)
    return _torch_values(scheduler, steps, _closed_form_jump)


def multistep_decay(schedule: Schedule, steps: list[int]) -> list[float]:
    kwargs = {key: schedule[key] for key in ("milestones", "gamma") if key in schedule}
    scheduler = lr_scheduler.MultiStepLR(_sgd(schedule["initial_learning_rate"]), **kwargs)
    return _torch_values(scheduler, steps, _closed_form_jump)


ONE_CYCLE_OPTIONS = (
    "pct_start", "anneal_strategy", "div_factor", "final_div_factor", "three_phase",
)


def one_cycle_scheduler(schedule: Schedule) -> lr_scheduler.OneCycleLR:
    """The real OneCycleLR for a one_cycle spec (raises where PyTorch cannot construct it)."""
    kwargs = {key: schedule[key] for key in ONE_CYCLE_OPTIONS if key in schedule}
    if "pct_start" in kwargs:
        kwargs["pct_start"] = float(kwargs["pct_start"])  # torch insists on a Python float
    return lr_scheduler.OneCycleLR(
        _sgd(1.0, momentum=0.9), max_lr=schedule["max_lr"], total_steps=schedule["total_steps"],
        **kwargs,
    )


def one_cycle(schedule: Schedule, steps: list[int]) -> list[float]:
    """OneCycleLR for steps < total_steps; the contract holds the lr of step total_steps-1 after."""
    last = schedule["total_steps"] - 1
    inside = sorted(set(min(step, last) for step in steps))
    scheduler = one_cycle_scheduler(schedule)
    values = dict(zip(inside, _torch_values(scheduler, inside, _last_epoch_jump)))
    return [values[min(step, last)] for step in steps]


def cyclic(schedule: Schedule, steps: list[int]) -> list[float]:
    kwargs = {
        key: schedule[key]
        for key in ("step_size_up", "step_size_down", "mode", "gamma")
        if key in schedule
    }
    scheduler = lr_scheduler.CyclicLR(
        _sgd(schedule["base_lr"]), base_lr=schedule["base_lr"], max_lr=schedule["max_lr"],
        cycle_momentum=False, **kwargs,
    )
    return _torch_values(scheduler, steps, _last_epoch_jump)


def inverse_sqrt(schedule: Schedule, steps: list[int]) -> list[float]:
    # warmup_steps=0 is the service's own default (Hugging Face has none).
    scheduler = transformers.get_inverse_sqrt_schedule(
        _sgd(schedule["initial_learning_rate"]),
        num_warmup_steps=schedule.get("warmup_steps", 0),
        timescale=schedule.get("timescale"),
    )
    return _torch_values(scheduler, steps, _last_epoch_jump)


WSD_OPTIONS = ("min_lr_ratio", "warmup_type", "decay_type", "num_cycles")


def warmup_stable_decay(schedule: Schedule, steps: list[int]) -> list[float]:
    scheduler = transformers.get_wsd_schedule(
        _sgd(schedule["initial_learning_rate"]),
        num_warmup_steps=schedule["warmup_steps"],
        num_stable_steps=schedule["stable_steps"],
        num_decay_steps=schedule["decay_steps"],
        **{key: schedule[key] for key in WSD_OPTIONS if key in schedule},
    )
    return _torch_values(scheduler, steps, _last_epoch_jump)


# --- optax --------------------------------------------------------------------------------------


# jax compiles each operation once per array shape (about a second each here), so steps are
# evaluated in blocks of one fixed size, the last one padded with step 0.
OPTAX_BLOCK = 1024


def _optax_values(optax_schedule: Callable[[Any], Any], steps: list[int]) -> list[float]:
    padded = np.zeros(-(-len(steps) // OPTAX_BLOCK) * OPTAX_BLOCK, dtype=np.int64)
    padded[: len(steps)] = steps
    values = []
    with jax.enable_x64(True):
        for block in padded.reshape(-1, OPTAX_BLOCK):
            result = optax_schedule(jnp.asarray(block, dtype=jnp.int64))
            values.append(np.broadcast_to(np.asarray(result, dtype=np.float64), block.shape))
    return np.concatenate(values)[: len(steps)].tolist()


def linear(schedule: Schedule, steps: list[int]) -> list[float]:
    with jax.enable_x64(True):
        optax_schedule = optax.linear_schedule(
            init_value=schedule["initial_learning_rate"],
            end_value=schedule["end_learning_rate"],
            transition_steps=schedule["transition_steps"],
            transition_begin=schedule.get("transition_begin", 0),
        )
    return _optax_values(optax_schedule, steps)


def _as_optax_schedule(child: Schedule) -> Callable[[Any], Any]:
    """A child schedule as an optax schedule of the local count, evaluated by its own reference.

    join_schedules also evaluates the later children at negative counts and then discards those
    values with jnp.where; those counts are clamped to 0 so that the references only see steps.
    """

    def schedule(count: Any) -> Any:
        local = np.asarray(count, dtype=np.int64)
        values = reference_lrs(child, np.maximum(local, 0).reshape(-1).tolist())
        return jnp.asarray(values.reshape(local.shape), dtype=jnp.float64)

    return schedule


def sequence(schedule: Schedule, steps: list[int]) -> list[float]:
    joined = optax.join_schedules(
        [_as_optax_schedule(child) for child in schedule["schedules"]], list(schedule["boundaries"])
    )
    return _optax_values(joined, steps)


# --- Keras LearningRateScheduler ----------------------------------------------------------------


def expression(schedule: Schedule, steps: list[int]) -> list[float]:
    """Drive the real Keras LearningRateScheduler(fn) epoch by epoch on a tiny compiled model.

    fn is the Python twin of the expression string. Recursive schedules must visit every epoch
    from 0 (each call gets the lr the previous one set); the others are called at the steps only.
    """
    fn = PYTHON_EQUIVALENTS[schedule["expression"]]
    recursive = schedule.get("recursive", False)
    with keras_float64():
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1)])
        initial = schedule.get("initial_learning_rate", 0.0)
        model.compile(optimizer=keras.optimizers.SGD(learning_rate=initial), loss="mse")
        callback = keras.callbacks.LearningRateScheduler(fn)
        callback.set_model(model)
        epochs = range(max(steps) + 1) if recursive else steps
        wanted = set(steps)
        values = []
        for epoch in epochs:
            callback.on_epoch_begin(epoch)
            if epoch in wanted:
                values.append(float(keras.ops.convert_to_numpy(model.optimizer.learning_rate)))
        return values


def constant(schedule: Schedule, steps: list[int]) -> list[float]:
    return [float(schedule["learning_rate"])] * len(steps)


REFERENCES: dict[str, Reference] = {
    "constant": constant,
    "exponential_decay": exponential_decay,
    "inverse_time_decay": inverse_time_decay,
    "polynomial_decay": polynomial_decay,
    "piecewise_constant": piecewise_constant,
    "cosine_decay": cosine_decay,
    "cosine_decay_restarts": cosine_decay_restarts,
    "step_decay": step_decay,
    "multistep_decay": multistep_decay,
    "linear": linear,
    "one_cycle": one_cycle,
    "cyclic": cyclic,
    "inverse_sqrt": inverse_sqrt,
    "warmup_stable_decay": warmup_stable_decay,
    "sequence": sequence,
    "expression": expression,
}
