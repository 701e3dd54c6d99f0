"""The learning-rate range test as a pure function: PyTorch Lightning's `lr_find` rule applied to a run's
(step, lr, loss) points, one per batch of an exponential ramp.

Reference: `lightning.pytorch.tuner.lr_finder` (`_LRCallback.on_train_batch_end`, `_LRFinder.suggestion`).

- Smoothing (float64, point i counted from 0): avg_i = beta*avg_{i-1} + (1-beta)*loss_i with avg_{-1} = 0, and
  smoothed_i = avg_i / (1 - beta**(i+2)). The exponent is i+2, not i+1: Lightning corrects with
  `trainer.global_step + 1`, and `global_step` is already 1 at the end of the first batch of a fresh `lr_find`.
- Divergence: point i >= 1 diverges when smoothed_i > early_stop_threshold * best, best being point 0's
  smoothed loss, then lowered by every later smaller one (a NaN best never changes and never diverges).
  Lightning keeps the diverging point and stops after it, so the points end there.
- Suggestion: the lr at the steepest descent of the *smoothed* losses (Lightning's `results["loss"]` holds
  the smoothed values) over the window [skip_begin:-skip_end] with non-finite losses dropped, where the
  gradient is `torch.gradient(losses, spacing=[lrs])` on float32 tensors. None when fewer than 2 points stay.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

BETA = 0.98
EARLY_STOP_THRESHOLD = 4.0
SKIP_BEGIN = 10
SKIP_END = 1


@dataclass(frozen=True)
class RangeTest:
    """The points the sweep kept (up to and including a diverging one), their smoothed losses, the suggested
    lr (None with too few points) and the index of the point where divergence stopped the sweep (or None)."""

    steps: tuple[int, ...]
    lrs: tuple[float, ...]
    losses: tuple[float, ...]
    smoothed: tuple[float, ...]
    suggestion: float | None
    diverged_at: int | None


def range_test(steps: Sequence[int], lrs: Sequence[float], losses: Sequence[float], *, beta: float = BETA,
               early_stop_threshold: float | None = EARLY_STOP_THRESHOLD, skip_begin: int = SKIP_BEGIN,
               skip_end: int = SKIP_END) -> RangeTest:
    """Lightning's `lr_find` verdict on the points (steps ascending, one lr and one loss each)."""
    smoothed, diverged = smooth_until_divergence(losses, beta, early_stop_threshold)
    kept = len(smoothed)
    kept_lrs = tuple(float(lr) for lr in lrs[:kept])
    index = steepest_descent(kept_lrs, smoothed, skip_begin, skip_end)
    return RangeTest(
        steps=tuple(int(s) for s in steps[:kept]), lrs=kept_lrs, losses=tuple(float(x) for x in losses[:kept]),
        smoothed=tuple(smoothed), suggestion=None if index is None else kept_lrs[index], diverged_at=diverged,
    )


def smooth_until_divergence(losses: Sequence[float], beta: float,
                            early_stop_threshold: float | None) -> tuple[list[float], int | None]:
    """The bias-corrected running average of the losses, up to and including the first diverging point, and
    that point's index (None when none diverges). Python floats in Lightning's order of operations, so that
    the values are bitwise Lightning's."""
    average, best = 0.0, 0.0
    smoothed: list[float] = []
    for index, loss in enumerate(losses):
        global_step = index + 1  # Lightning's trainer.global_step at the end of this batch
        average = beta * average + (1 - beta) * float(loss)
        value = average / (1 - beta ** (global_step + 1))
        diverged = early_stop_threshold is not None and global_step > 1 and value > early_stop_threshold * best
        if value < best or global_step == 1:
            best = value
        smoothed.append(value)
        if diverged:
            return smoothed, index
    return smoothed, None


def steepest_descent(lrs: Sequence[float], smoothed: Sequence[float], skip_begin: int, skip_end: int) -> int | None:
    """The index of the point with the most negative gradient of the smoothed loss over the lr, as Lightning's
    `suggestion(skip_begin, skip_end)` picks it; None when fewer than 2 finite points are in its window.

    Lightning's window is the slice [skip_begin:-skip_end], so skip_end=0 keeps nothing ([skip_begin:0]) and
    the answer is None; matched on purpose. Losses and lrs become float32 (`torch.tensor` of Python floats)
    before the finite filter, so a loss beyond float32's range counts as infinite.
    """
    window = slice(skip_begin, -skip_end)
    losses = np.asarray(smoothed[window], dtype=np.float32)
    coordinates = np.asarray(lrs[window], dtype=np.float32)
    finite = np.isfinite(losses)
    losses, coordinates = losses[finite], coordinates[finite]
    if len(losses) < 2:
        return None
    steepest = int(np.argmin(torch_style_gradient(losses, coordinates)))  # the first one on ties, and NaN wins
    return int(np.arange(len(smoothed))[window][finite][steepest])


def torch_style_gradient(values: np.ndarray, coordinates: np.ndarray) -> np.ndarray:
    """`torch.gradient(values, spacing=[coordinates])[0]` (edge_order 1) for 1-D arrays of at least 2 points,
    with the same operations in the same order and dtype, so that it rounds the same.

    Not `np.gradient`: it switches to the uniform-spacing formula when the spacings are all equal (a linear
    ramp), which rounds differently from torch's, which always uses the non-uniform one.
    """
    with np.errstate(all="ignore"):  # a repeated lr divides by 0, as torch does silently
        dx = np.diff(coordinates)
        dx1, dx2 = dx[:-1], dx[1:]
        a = -dx2 / (dx1 * (dx1 + dx2))
        b = (dx2 - dx1) / (dx1 * dx2)
        c = dx1 / (dx2 * (dx1 + dx2))
        center = a * values[:-2] + b * values[1:-1] + c * values[2:]
        first = (values[1:2] - values[0:1]) / dx[0]
        last = (values[-1:] - values[-2:-1]) / dx[-1]
    return np.concatenate([first, center, last])
