"""optax-style schedules: `constant_schedule` and `linear_schedule`."""

from __future__ import annotations

from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from lrserve.schedules.base import ScheduleFn, ScheduleModel, StepCount

Rate = Annotated[float, Field(ge=0)]


class Constant(ScheduleModel):
    """optax `constant_schedule` (in Keras and PyTorch, a plain float lr): `lr = learning_rate` at every step."""

    type: Literal["constant"]
    learning_rate: Rate

    def build(self) -> ScheduleFn:
        return lambda step: np.full(np.shape(step), self.learning_rate, dtype=np.float64)


class Linear(ScheduleModel):
    """optax `linear_schedule`: holds `initial` until `transition_begin`, reaches `end` after `transition_steps`.

    `lr = initial + (end - initial) * clip(step - transition_begin, 0, transition_steps) / transition_steps`;
    with `transition_steps = 0` it is `initial` at every step, as optax's.
    """

    type: Literal["linear"]
    initial_learning_rate: Rate
    end_learning_rate: Rate
    transition_steps: StepCount
    transition_begin: StepCount = 0

    def build(self) -> ScheduleFn:
        if self.transition_steps == 0:
            return Constant(type="constant", learning_rate=self.initial_learning_rate).build()
        span = self.initial_learning_rate - self.end_learning_rate

        def fn(step: np.ndarray) -> np.ndarray:
            done = np.clip(step - self.transition_begin, 0, self.transition_steps)
            return span * (1 - done / self.transition_steps) + self.end_learning_rate

        return fn
