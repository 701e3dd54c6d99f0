"""`sequence`: optax `join_schedules`. From boundary b on, the next schedule sees `step - b`."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lrserve.schedules.base import ScheduleFn


def join(fns: Sequence[ScheduleFn], boundaries: Sequence[int]) -> ScheduleFn:
    """Join schedules at absolute boundaries; each schedule is evaluated only on its own segment."""
    starts = np.asarray([0, *boundaries], dtype=np.float64)

    def fn(step: np.ndarray) -> np.ndarray:
        step = np.asarray(step, dtype=np.float64)
        segment = np.searchsorted(starts, step, side="right") - 1
        out = np.empty(step.shape, dtype=np.float64)
        for index in np.unique(segment):
            here = segment == index
            out[here] = fns[index](step[here] - starts[index])
        return out

    return fn
