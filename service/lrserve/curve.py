"""A run's lr curve for display: a few thousand points whose plot is the plot of every step.

A chart a few thousand pixels wide cannot show a million steps, and sending them costs megabytes. So the
span is cut into buckets of consecutive steps, and each bucket keeps its first, lowest, highest and last
step (the M4 reduction: a line through those points covers the same pixels as one through every step).
Every plateau reduction (the first step with the lower lr) and every revision (its `from_step`) is kept
with the step before it, so each drop is drawn where it happens. The values are then computed for the
kept steps by the run's own `lrs`, so each plotted point is exactly what `GET /lr` answers for its step.

Spans up to `EXACT_SPAN` steps are scanned step by step, in chunks (numpy's temporaries stay small);
longer ones are scanned every `ceil(span / EXACT_SPAN)` steps, so the kept points are extremes of that
grid (the reductions and revisions are still exact).

The run's extent, when the caller names no `stop`: past the latest report (the next step is shown), past
the last revision's start, and far enough for the schedule's own horizon (its decay, cycle or warmup
lengths, `horizon`), at least `MIN_EXTENT` steps.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from lrserve.errors import InvalidInput
from lrserve.run_view import RunView
from lrserve.spec import MAX_STEP

EXACT_SPAN = 1_000_000
CHUNK = 65_536
MIN_EXTENT = 100
DEFAULT_POINTS = 2_000
MIN_POINTS, MAX_POINTS = 16, 20_000

# The parameters that count steps of a schedule's shape; a schedule's horizon is where its last one ends.
_LENGTHS = ("decay_steps", "first_decay_steps", "total_steps", "transition_steps", "step_size",
            "warmup_steps", "stable_steps")
_OFFSETS = ("transition_begin",)


def horizon(schedule: dict[str, Any]) -> int:
    """Steps it takes `schedule` (a canonical schedule document) to show its shape: the sum of its phase
    lengths (warmup, stable, decay...) and offsets, the last boundary or milestone plus what follows it,
    a cyclic schedule's first two cycles."""
    kind = schedule.get("type")
    last = lambda name: int(max(schedule.get(name) or [0]))  # noqa: E731  (lists may be empty)
    if kind == "sequence":
        return last("boundaries") + horizon(schedule["schedules"][-1])
    if kind == "product":
        return max(horizon(child) for child in schedule["schedules"])
    if kind == "piecewise_constant":
        return 2 * last("boundaries")
    if kind == "multistep_decay":
        return 2 * last("milestones")
    if kind == "cyclic":
        down = schedule.get("step_size_down") or schedule["step_size_up"]
        return 2 * int(schedule["step_size_up"] + down)
    if kind in ("step_decay", "cosine_decay_restarts"):
        return 4 * int(schedule.get("step_size") or schedule["first_decay_steps"])
    return sum(int(schedule.get(name) or 0) for name in (*_LENGTHS, *_OFFSETS))


def extent(view: RunView) -> int:
    """The default `stop` of the run's curve (see the module's docstring), at most the last servable step's."""
    stop = max(MIN_EXTENT, horizon(view.record.spec_json["schedule"]))
    if view.latest_step is not None:
        stop = max(stop, view.latest_step + 2)
    for revision in view.revisions:
        stop = max(stop, revision.from_step + max(MIN_EXTENT, horizon(revision.schedule)))
    return min(stop, MAX_STEP + 1)


def reduction_starts(view: RunView) -> list[int]:
    """The first step of each plateau reduction: the step after the report that made it."""
    return [int(step) + 1 for step in view.reduction_steps]


def revision_starts(view: RunView) -> list[int]:
    return [revision.from_step for revision in view.revisions]


def curve(view: RunView, start: int, stop: int | None, points: int = DEFAULT_POINTS) -> dict[str, Any]:
    """`{"start", "stop", "steps", "lr", "reductions", "revisions"}` for steps start <= s < stop, at most
    about `points` + 2 per reduction and revision; 422 where a step's lr is not finite."""
    stop = extent(view) if stop is None else stop
    if stop <= start:
        raise InvalidInput(f"stop: must be greater than start ({start}); received {stop}")
    reductions, revisions = reduction_starts(view), revision_starts(view)
    steps = display_steps(view, start, stop, points, [*reductions, *revisions])
    inside = lambda marks: [s for s in marks if start <= s < stop]  # noqa: E731
    return {"start": start, "stop": stop, "steps": steps.astype(np.int64), "lr": view.lrs(steps),
            "reductions": inside(reductions), "revisions": inside(revisions)}


def display_steps(view: RunView, start: int, stop: int, points: int, marks: list[int]) -> np.ndarray:
    """The steps worth drawing (float64, sorted, unique): all of them when they are few, else each bucket's
    first, lowest, highest and last, plus every mark and the step before it."""
    span = stop - start
    kept = [np.array([start, stop - 1], dtype=np.float64)]
    if span <= points:
        kept.append(np.arange(start, stop, dtype=np.float64))
    else:
        kept.append(_bucket_extremes(view, start, stop, max(1, points // 4)))
    wanted = np.array([m for mark in marks for m in (mark - 1, mark)], dtype=np.float64)
    kept.append(wanted[(wanted >= start) & (wanted < stop)])
    return np.unique(np.concatenate(kept))


def _bucket_extremes(view: RunView, start: int, stop: int, buckets: int) -> np.ndarray:
    every = -(-(stop - start) // EXACT_SPAN)
    count = -(-(stop - start) // every)  # grid points start, start+every, ... < stop
    size = -(-count // buckets)  # grid points per bucket
    per_chunk = size * max(1, CHUNK // size)
    kept = []
    for first in range(0, count, per_chunk):
        n = min(per_chunk, count - first)
        values = view.lrs(start + every * np.arange(first, first + n, dtype=np.float64))
        rows = -(-n // size)
        padded = np.pad(values, (0, rows * size - n), mode="edge").reshape(rows, size)
        base = first + size * np.arange(rows)
        last = np.minimum(base + size - 1, first + n - 1)
        kept += [base, base + np.argmin(padded, axis=1), base + np.argmax(padded, axis=1), last]
    return start + every * np.concatenate(kept).astype(np.float64)
