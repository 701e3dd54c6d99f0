"""PyTorch `lr_scheduler` classes in closed form: `lr` for step N is the lr after N calls to `scheduler.step()`."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field, field_validator, model_validator

from lrserve.schedules.base import PositiveStepCount, ScheduleFn, ScheduleModel, StepCount, check_increasing

Rate = Annotated[float, Field(ge=0)]


class StepDecay(ScheduleModel):
    """PyTorch `StepLR`: `lr = initial * gamma ** (step // step_size)`."""

    type: Literal["step_decay"]
    initial_learning_rate: Rate
    step_size: PositiveStepCount
    gamma: Rate = 0.1

    def build(self) -> ScheduleFn:
        return lambda step: self.initial_learning_rate * np.power(self.gamma, np.floor(step / self.step_size))


class MultiStepDecay(ScheduleModel):
    """PyTorch `MultiStepLR`: multiplied by `gamma` at every milestone, already at step == milestone:
    `lr = initial * gamma ** (number of milestones <= step)`."""

    type: Literal["multistep_decay"]
    initial_learning_rate: Rate
    milestones: list[StepCount]
    gamma: Rate = 0.1

    @field_validator("milestones")
    @classmethod
    def _increasing(cls, milestones: list[int]) -> list[int]:
        return check_increasing("milestones", milestones)

    def build(self) -> ScheduleFn:
        milestones = np.asarray(self.milestones, dtype=np.float64)
        return lambda step: self.initial_learning_rate * np.power(
            self.gamma, np.searchsorted(milestones, step, side="right")
        )


Momentum = Annotated[float, Field(ge=0, le=1)]
MOMENTUM_ADDITIONS = ("cycle_momentum", "base_momentum", "max_momentum")


class OneCycle(ScheduleModel):
    """PyTorch `OneCycleLR`; steps >= `total_steps` hold the values of step `total_steps - 1`.

    Phases end at float steps (`pct_start * total_steps - 1`, ...) exactly as PyTorch walks them. In each, lr
    and momentum anneal (cos or linear in `pct`, the phase's fraction done) between the phase's endpoints:
    lr `max_lr/div_factor -> max_lr -> max_lr/div_factor/final_div_factor` (three-phase: back to
    `max_lr/div_factor` first), and, with `cycle_momentum`, momentum inversely `max_momentum -> base_momentum
    -> max_momentum` (three-phase: then held at `max_momentum`).

    With `s = min(step, total_steps - 1)` in the phase `[phase_start, phase_end]` (ends at
    `pct_start * total_steps - 1`, three-phase `2 * pct_start * total_steps - 2`, then `total_steps - 1`;
    each phase starts where the previous ended, the first at 0), `pct = (s - phase_start) / (phase_end -
    phase_start)` and, from `start` to `end` of the phase,
    cos: `end + (start - end) / 2 * (1 + cos(pi * pct))`; linear: `start + (end - start) * pct`.
    """

    type: Literal["one_cycle"]
    max_lr: Annotated[float, Field(gt=0)]
    total_steps: PositiveStepCount
    pct_start: Annotated[float, Field(ge=0, le=1)] = 0.3
    anneal_strategy: Literal["cos", "linear"] = "cos"
    div_factor: Annotated[float, Field(gt=0)] = 25.0
    final_div_factor: Annotated[float, Field(gt=0)] = 10000.0
    three_phase: bool = False
    cycle_momentum: bool = True
    base_momentum: Momentum = 0.85
    max_momentum: Momentum = 0.95

    ADDITIONS = MOMENTUM_ADDITIONS

    @model_validator(mode="after")
    def _constructible(self) -> OneCycle:
        if float(self.pct_start * self.total_steps) - 1 == 0:
            raise ValueError(
                "pct_start * total_steps must not equal 1: PyTorch OneCycleLR divides by zero there "
                f"(received pct_start={self.pct_start}, total_steps={self.total_steps})"
            )
        return self

    def _phases(self) -> list[tuple[float, tuple[float, float], tuple[float, float]]]:
        """(end step, (lr at phase start, at its end), (momentum at phase start, at its end)) for each phase."""
        initial = self.max_lr / self.div_factor
        minimum = initial / self.final_div_factor
        high, low = self.max_momentum, self.base_momentum
        warm_end = float(self.pct_start * self.total_steps) - 1
        last = float(self.total_steps - 1)
        if self.three_phase:
            back_end = float(2 * self.pct_start * self.total_steps) - 2
            return [(warm_end, (initial, self.max_lr), (high, low)), (back_end, (self.max_lr, initial), (low, high)),
                    (last, (initial, minimum), (high, high))]
        return [(warm_end, (initial, self.max_lr), (high, low)), (last, (self.max_lr, minimum), (low, high))]

    def _anneal(self, start: float, end: float, pct: np.ndarray) -> np.ndarray:
        if self.anneal_strategy == "cos":
            return end + (start - end) / 2.0 * (np.cos(math.pi * pct) + 1)
        return (end - start) * pct + start

    def _walk(self, which: int) -> ScheduleFn:
        """The phases' values of lr (`which` = 1) or momentum (2), annealed as PyTorch walks the phases."""
        phases = [(phase[0], *phase[which]) for phase in self._phases()]

        def fn(step: np.ndarray) -> np.ndarray:
            s = np.minimum(step, self.total_steps - 1)
            out = np.zeros_like(s)
            done = np.zeros(s.shape, dtype=bool)
            phase_start = 0.0
            for index, (end, start_value, end_value) in enumerate(phases):
                here = ~done & ((s <= end) | (index == len(phases) - 1))
                if here.any():
                    pct = (s[here] - phase_start) / (end - phase_start)
                    out[here] = self._anneal(start_value, end_value, pct)
                done |= here
                phase_start = end
            return out

        return fn

    def build(self) -> ScheduleFn:
        return self._walk(1)

    def momentum(self) -> ScheduleFn | None:
        return self._walk(2) if self.cycle_momentum else None


class Cyclic(ScheduleModel):
    """PyTorch `CyclicLR` (`exp_range` scales by `gamma ** step` on the global step).

    With `x` the position in the current cycle and `h` its height (`scale_factor` rising 0 -> 1 over
    `step_size_up`, falling back over `step_size_down`, times the mode's scale): `lr = base_lr +
    (max_lr - base_lr) * h`, and with `cycle_momentum`, `momentum = max_momentum - (max_momentum -
    base_momentum) * h`, inversely to the lr. In full, with `T = step_size_up + step_size_down` (down
    defaults to up) and `r = step_size_up / T`:
    `cycle = floor(1 + step / T)`, `x = 1 + step / T - cycle`,
    `scale_factor = x / r if x <= r else (x - 1) / (r - 1)`, and `h = scale_factor * scale` with `scale` 1
    (`triangular`), `1 / 2 ** (cycle - 1)` (`triangular2`) or `gamma ** step` (`exp_range`).
    """

    type: Literal["cyclic"]
    base_lr: Rate
    max_lr: Rate
    step_size_up: Annotated[float, Field(gt=0)] = 2000
    step_size_down: Annotated[float, Field(gt=0)] | None = None
    mode: Literal["triangular", "triangular2", "exp_range"] = "triangular"
    gamma: Annotated[float, Field(gt=0)] = 1.0
    cycle_momentum: bool = True
    base_momentum: Momentum = 0.8
    max_momentum: Momentum = 0.9

    ADDITIONS = MOMENTUM_ADDITIONS

    def _cycling(self, low: float, high: float) -> ScheduleFn:
        """`low + (high - low) * scale_factor * scale` at each step, in PyTorch's order of operations: `scale_factor`
        rises 0 -> 1 over `step_size_up` and falls back over `step_size_down`, `scale` is the mode's."""
        up = float(self.step_size_up)
        down = float(self.step_size_down) if self.step_size_down is not None else up
        total = up + down
        ratio = up / total

        def fn(step: np.ndarray) -> np.ndarray:
            cycle = np.floor(1 + step / total)
            x = 1.0 + step / total - cycle
            scale_factor = np.where(x <= ratio, x / ratio, (x - 1) / (ratio - 1))
            height = (high - low) * scale_factor
            if self.mode == "triangular2":
                height = height * (1 / np.power(2.0, cycle - 1))
            elif self.mode == "exp_range":
                height = height * np.power(self.gamma, step)
            return low + height

        return fn

    def build(self) -> ScheduleFn:
        return self._cycling(self.base_lr, self.max_lr)

    def momentum(self) -> ScheduleFn | None:
        # Inversely to the lr: PyTorch's `max_momentum - base_height * scale`, i.e. `low` = max_momentum.
        return self._cycling(self.max_momentum, self.base_momentum) if self.cycle_momentum else None
