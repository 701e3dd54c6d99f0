"""Hugging Face `transformers` schedules: `lr = initial_learning_rate * lambda(step)`."""

from __future__ import annotations

import math
from typing import Annotated, Literal

import numpy as np
from pydantic import Field

from lrserve.schedules.base import PositiveStepCount, ScheduleFn, ScheduleModel, StepCount

Rate = Annotated[float, Field(ge=0)]
Steps = StepCount
Shape = Literal["linear", "cosine", "1-sqrt"]


class InverseSqrt(ScheduleModel):
    """HF `get_inverse_sqrt_schedule`: linear warmup from 0, then `1 / sqrt((step + timescale - W) / timescale)`.

    With `W = warmup_steps` and `timescale` defaulting to `W` (10,000 when `W` is 0):
    `lr = initial * step / max(1, W)` for `step < W`, else `initial / sqrt((step + timescale - W) / timescale)`.
    """

    type: Literal["inverse_sqrt"]
    initial_learning_rate: Rate
    warmup_steps: Steps = 0
    timescale: PositiveStepCount | None = None

    def build(self) -> ScheduleFn:
        warmup = self.warmup_steps
        timescale = self.timescale if self.timescale is not None else (warmup or 10_000)

        def fn(step: np.ndarray) -> np.ndarray:
            ramp = step / max(1, warmup)
            decay = 1.0 / np.sqrt(np.maximum(step + (timescale - warmup), 0) / timescale)
            return self.initial_learning_rate * np.where(step < warmup, ramp, decay)

        return fn


class WarmupStableDecay(ScheduleModel):
    """HF `get_wsd_schedule`: warm up from `min_lr_ratio`, hold, decay back to `min_lr_ratio`, then hold.

    `lr = initial * factor`, with `W, S, D` the warmup, stable and decay steps and `r = min_lr_ratio`:
    `factor = max(0, r + (1 - r) * w(step / max(1, W)))` for `step < W`; 1 for `step < W + S`;
    `max(0, r + (1 - r) * d((step - W - S) / max(1, D)))` for `step < W + S + D`; `r` after. The shapes:
    `w(p)` = `p` (linear), `(1 - cos(pi * p)) / 2` (cosine), `1 - sqrt(1 - p)` (1-sqrt);
    `d(p)` = `1 - p` (linear), `(1 + cos(2 * pi * num_cycles * p)) / 2` (cosine), `1 - sqrt(p)` (1-sqrt).
    """

    type: Literal["warmup_stable_decay"]
    initial_learning_rate: Rate
    warmup_steps: Steps
    stable_steps: Steps
    decay_steps: Steps
    min_lr_ratio: Annotated[float, Field(ge=0, le=1)] = 0.0
    warmup_type: Shape = "linear"
    decay_type: Shape = "cosine"
    num_cycles: float = 0.5

    def _warmup(self, p: np.ndarray) -> np.ndarray:
        if self.warmup_type == "linear":
            return p
        if self.warmup_type == "cosine":
            return 0.5 * (1.0 - np.cos(math.pi * p))
        return 1.0 - np.sqrt(np.clip(1.0 - p, 0, None))

    def _decay(self, p: np.ndarray) -> np.ndarray:
        if self.decay_type == "linear":
            return 1.0 - p
        if self.decay_type == "cosine":
            return 0.5 * (1.0 + np.cos(math.pi * float(self.num_cycles) * 2.0 * p))
        return 1.0 - np.sqrt(np.clip(p, 0, None))

    def build(self) -> ScheduleFn:
        w, s, d, r = self.warmup_steps, self.stable_steps, self.decay_steps, self.min_lr_ratio

        def fn(step: np.ndarray) -> np.ndarray:
            warm = np.maximum(0.0, self._warmup(step / max(1, w)) * (1.0 - r) + r)
            decay = np.maximum(0.0, self._decay((step - w - s) / max(1, d)) * (1.0 - r) + r)
            factor = np.select([step < w, step < w + s, step < w + s + d], [warm, 1.0, decay], default=r)
            return self.initial_learning_rate * factor

        return fn
