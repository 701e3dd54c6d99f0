"""Keras `LearningRateSchedule` classes, evaluated in float64."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from lrserve.schedules.base import ScheduleFn, ScheduleModel, StepCount, check_increasing

Rate = Annotated[float, Field(ge=0)]
PositiveSteps = Annotated[float, Field(gt=0)]


def _progress(step: np.ndarray, decay_steps: float, staircase: bool) -> np.ndarray:
    """`step / decay_steps`, floored when `staircase`: the exponent of the two Keras decays below."""
    p = step / decay_steps
    return np.floor(p) if staircase else p


class ExponentialDecay(ScheduleModel):
    """Keras `ExponentialDecay`, with optax `exponential_decay`'s `transition_begin` and `end_value`.

    `lr = initial * decay_rate ** (t / decay_steps)` (the exponent floored if staircase), where
    `t = step - transition_begin`; steps up to `transition_begin` hold `initial`. An `end_learning_rate`
    bounds the result: `max(lr, end)` when `decay_rate < 1`, else `min(lr, end)` (optax's clip, applied at
    every step). With the defaults it is exactly Keras's.
    """

    type: Literal["exponential_decay"]
    initial_learning_rate: Rate
    decay_steps: PositiveSteps
    decay_rate: Rate
    staircase: bool = False
    transition_begin: StepCount = 0
    end_learning_rate: Rate | None = None

    ADDITIONS = ("transition_begin", "end_learning_rate")

    @model_validator(mode="after")
    def _optax_decays(self) -> ExponentialDecay:
        if self.decay_rate == 0 and (self.transition_begin or self.end_learning_rate is not None):
            raise ValueError(
                "decay_rate must be > 0 with transition_begin or end_learning_rate: optax's exponential_decay "
                "ignores both and holds initial_learning_rate when decay_rate is 0, Keras's drops to 0 "
                f"(received decay_rate=0, transition_begin={self.transition_begin}, "
                f"end_learning_rate={self.end_learning_rate})"
            )
        return self

    def build(self) -> ScheduleFn:
        begin, end = self.transition_begin, self.end_learning_rate
        bound = np.maximum if self.decay_rate < 1 else np.minimum

        def fn(step: np.ndarray) -> np.ndarray:
            t = np.maximum(step - begin, 0.0)
            lr = self.initial_learning_rate * np.power(self.decay_rate, _progress(t, self.decay_steps, self.staircase))
            return lr if end is None else bound(lr, end)

        return fn


class InverseTimeDecay(ScheduleModel):
    """Keras `InverseTimeDecay`: `lr = initial / (1 + decay_rate * step / decay_steps)`.

    With `decay_steps=1` in batch units it is the legacy Keras `decay=` time-based decay.
    """

    type: Literal["inverse_time_decay"]
    initial_learning_rate: Rate
    decay_steps: PositiveSteps = 1.0
    decay_rate: Rate
    staircase: bool = False

    def build(self) -> ScheduleFn:
        def fn(step: np.ndarray) -> np.ndarray:
            p = _progress(step, self.decay_steps, self.staircase)
            return self.initial_learning_rate / (1.0 + self.decay_rate * p)

        return fn


class PolynomialDecay(ScheduleModel):
    """Keras `PolynomialDecay`; with `cycle` the horizon widens to `decay_steps * ceil(step / decay_steps)`.

    `lr = (initial - end) * (1 - min(step, decay_steps) / decay_steps) ** power + end`; with `cycle`,
    `lr = (initial - end) * (1 - step / H) ** power + end` with `H = decay_steps * max(1, ceil(step / decay_steps))`.
    """

    type: Literal["polynomial_decay"]
    initial_learning_rate: Rate
    decay_steps: PositiveSteps
    end_learning_rate: Rate = 0.0001
    power: Annotated[float, Field(ge=0)] = 1.0
    cycle: bool = False

    def build(self) -> ScheduleFn:
        def fn(step: np.ndarray) -> np.ndarray:
            if self.cycle:
                horizon = self.decay_steps * np.maximum(1.0, np.ceil(step / self.decay_steps))
                progress = step
            else:
                horizon = self.decay_steps
                progress = np.minimum(step, self.decay_steps)
            remaining = 1.0 - progress / horizon
            span = self.initial_learning_rate - self.end_learning_rate
            return span * np.power(remaining, self.power) + self.end_learning_rate

        return fn


class PiecewiseConstant(ScheduleModel):
    """Keras `PiecewiseConstantDecay`: `values[i]` for `boundaries[i-1] < step <= boundaries[i]`."""

    type: Literal["piecewise_constant"]
    boundaries: Annotated[list[StepCount], Field(min_length=1)]
    values: list[Rate]

    @field_validator("boundaries")
    @classmethod
    def _increasing(cls, boundaries: list[int]) -> list[int]:
        return check_increasing("boundaries", boundaries)

    @model_validator(mode="after")
    def _one_value_per_interval(self) -> PiecewiseConstant:
        if len(self.values) != len(self.boundaries) + 1:
            raise ValueError(
                f"values must have exactly one more entry than boundaries "
                f"({len(self.boundaries) + 1}); received {len(self.values)} values"
            )
        return self

    def build(self) -> ScheduleFn:
        boundaries = np.asarray(self.boundaries, dtype=np.float64)
        values = np.asarray(self.values, dtype=np.float64)
        return lambda step: values[np.searchsorted(boundaries, step, side="left")]


class CosineDecay(ScheduleModel):
    """Keras 3 `CosineDecay`, with the optional linear warmup from `initial_learning_rate` to `warmup_target`,
    and optax `cosine_decay_schedule`'s `exponent`.

    After the warmup, `lr = start * ((1 - alpha) * c**exponent + alpha)` with
    `c = 0.5 * (1 + cos(pi * min(t, decay_steps) / decay_steps))`, `t` the steps since the warmup and `start`
    the `warmup_target` (or `initial_learning_rate` without one). With `exponent=1` it is exactly Keras's.
    """

    type: Literal["cosine_decay"]
    initial_learning_rate: Rate
    decay_steps: PositiveSteps
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.0
    warmup_target: Rate | None = None
    warmup_steps: StepCount = 0
    exponent: Annotated[float, Field(gt=0)] = 1.0

    ADDITIONS = ("exponent",)

    def _decay(self, t: np.ndarray, start: float) -> np.ndarray:
        cosine = 0.5 * (1.0 + np.cos(math.pi * t / self.decay_steps))
        if self.exponent != 1.0:
            cosine = np.power(cosine, self.exponent)
        return start * ((1.0 - self.alpha) * cosine + self.alpha)

    def build(self) -> ScheduleFn:
        target = self.warmup_target
        if target is None:
            return lambda step: self._decay(np.minimum(step, self.decay_steps), self.initial_learning_rate)
        warmup = self.warmup_steps

        def fn(step: np.ndarray) -> np.ndarray:
            s = np.minimum(step, warmup + self.decay_steps)
            ramp = self.initial_learning_rate + (target - self.initial_learning_rate) * s / max(warmup, 1)
            return np.where(s < warmup, ramp, self._decay(s - warmup, target))

        return fn


class CosineDecayRestarts(ScheduleModel):
    """Keras `CosineDecayRestarts` (SGDR); a restart step gets the first lr of the new period.

    Period i starts at `first_decay_steps * (t_mul**i - 1) / (t_mul - 1)`. The period index is estimated with
    Keras' log formula and then corrected against those exact starts, because the log formula alone picks
    the old period at some restart steps. In period `i`, of length `first_decay_steps * t_mul ** i`, with
    `fraction` the part of it done: `lr = initial * ((1 - alpha) * m_mul ** i * (1 + cos(pi * fraction)) / 2
    + alpha)`.
    """

    type: Literal["cosine_decay_restarts"]
    initial_learning_rate: Rate
    first_decay_steps: PositiveSteps
    t_mul: Annotated[float, Field(ge=1)] = 2.0
    m_mul: Rate = 1.0
    alpha: Annotated[float, Field(ge=0, le=1)] = 0.0

    def _period_start(self, i: np.ndarray) -> np.ndarray:
        if self.t_mul == 1.0:
            return self.first_decay_steps * i
        return self.first_decay_steps * (np.power(self.t_mul, i) - 1.0) / (self.t_mul - 1.0)

    def _period_index(self, step: np.ndarray) -> np.ndarray:
        f = step / self.first_decay_steps
        if self.t_mul == 1.0:
            i = np.floor(f)
        else:
            i = np.floor(np.log1p(f * (self.t_mul - 1.0)) / math.log(self.t_mul))
        i = i + (self._period_start(i + 1) <= step)
        return i - (self._period_start(i) > step)

    def build(self) -> ScheduleFn:
        def fn(step: np.ndarray) -> np.ndarray:
            i = self._period_index(step)
            length = self.first_decay_steps * np.power(self.t_mul, i)
            fraction = (step - self._period_start(i)) / length
            cosine = 0.5 * np.power(self.m_mul, i) * (1.0 + np.cos(math.pi * fraction))
            return self.initial_learning_rate * ((1.0 - self.alpha) * cosine + self.alpha)

        return fn
