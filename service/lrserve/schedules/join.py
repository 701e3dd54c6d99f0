"""Compound schedules: `sequence` (optax `join_schedules`: from boundary b on, the next schedule sees `step - b`)
and `product` (the children multiplied, as PyTorch `ChainedScheduler` chains multiplicative schedulers)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lrserve.schedules.base import ScheduleFn


def join(fns: Sequence[ScheduleFn], boundaries: Sequence[int]) -> ScheduleFn:
    """Join schedules at absolute boundaries; each schedule is evaluated only on its own segment.

    `lr(step) = fns[i](step - starts[i])` for `starts[i] <= step < starts[i + 1]` (optax `join_schedules`).
    """
    # Only on its own segment, rather than every child at every step and a selection after: outside its
    # segment a child would see negative steps (before its boundary) or steps it never serves (after the
    # next one), where it may take a square root of a negative (inverse_sqrt), overflow to inf with numpy
    # warnings (a growing exponential) or, for a recursive expression, have to compute every step up to the
    # largest one asked for. None of that belongs in the answer, and the work would grow with the number of
    # children instead of the number of steps asked for.
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


def none_where_absent(fn: ScheduleFn | None) -> ScheduleFn:
    """A momentum function, or one of NaN (no momentum: the optimizer's own stays) for a schedule without one."""
    return fn if fn is not None else lambda step: np.full(np.shape(step), np.nan, dtype=np.float64)


def join_momentum(fns: Sequence[ScheduleFn | None], boundaries: Sequence[int]) -> ScheduleFn | None:
    """`join` for momentum: the segment in effect decides, NaN where its schedule has none; None if none has."""
    if all(fn is None for fn in fns):
        return None
    return join([none_where_absent(fn) for fn in fns], boundaries)


def product(fns: Sequence[ScheduleFn]) -> ScheduleFn:
    """`product`: the children's values multiplied, step by step, in order."""

    def fn(step: np.ndarray) -> np.ndarray:
        out = fns[0](step)
        for other in fns[1:]:
            out = out * other(step)
        return out

    return fn
