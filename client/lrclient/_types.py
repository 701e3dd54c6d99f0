"""What the service answers, as frozen dataclasses. Times are the service's ISO 8601 strings (UTC)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "LrFinderPoint",
    "LrFinderResult",
    "LrRange",
    "ReportEntry",
    "ReportOutcome",
    "ReportPage",
    "Revision",
    "Run",
    "RunPage",
    "RunSummary",
    "TrackerState",
]


@dataclass(frozen=True)
class TrackerState:
    """The plateau tracker after a report: `wait` is Keras `wait` / PyTorch `num_bad_epochs`."""

    best: float | None
    wait: int
    cooldown_counter: int
    reductions: int


@dataclass(frozen=True)
class Revision:
    """A change from `from_step` on: the run follows `schedule` at `step - from_step` (None: the schedule
    carries on) and decides reports with the plateau settings `plateau` changes (None: none).

    `created` is True only when `revise` recorded it (False: a repeat answered with the original);
    `warnings` (only on `revise` answers) names a later step where the schedule's lr stops being finite.
    """

    run_id: str
    from_step: int
    schedule: Mapping[str, Any] | None
    reason: str
    created_at: str
    plateau: Mapping[str, Any] | None = None
    created: bool = False
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class Run:
    """A run: its normalized spec, plateau state and history summary.

    `latest_step` is the step of the latest accepted report (None before the first); `version`
    grows by one with each accepted write. `created` is True only when `create_run` made it;
    `warnings` (only on `create_run` answers) names a later step where the schedule's lr stops being
    finite; `etag` is the service's ETag for conditional GETs (only `get_run` answers carry one).
    """

    run_id: str
    spec: Mapping[str, Any]
    state: TrackerState | None
    latest_step: int | None
    reports: int
    revisions: tuple[Revision, ...]
    created_at: str
    version: int
    created: bool = False
    warnings: tuple[str, ...] = ()
    etag: str | None = field(default=None, compare=False, repr=False)

    @property
    def step_unit(self) -> str:
        """Either "epoch" or "batch"."""
        return str(self.spec["step_unit"])

    @property
    def plateau(self) -> Mapping[str, Any] | None:
        """The plateau tracker's settings, or None for a run without one."""
        return self.spec.get("plateau")


@dataclass(frozen=True)
class RunSummary:
    """One entry of `list_runs`."""

    run_id: str
    spec: Mapping[str, Any]
    created_at: str
    latest_step: int | None
    version: int


@dataclass(frozen=True)
class RunPage:
    """One page of runs, oldest first; pass `next_cursor` back for the next page (None: last page)."""

    runs: tuple[RunSummary, ...]
    next_cursor: str | None


@dataclass(frozen=True)
class ReportOutcome:
    """The answer to a report: `next_lr` is the lr of `step + 1`; `reduced` when a reduction took effect;
    `warnings` says why a report did not move the tracker (it lacks the monitored metric)."""

    run_id: str
    step: int
    next_lr: float
    reduced: bool
    state: TrackerState | None
    version: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class ReportEntry:
    """An accepted report and its outcome. Non-finite metrics come back as float NaN or infinities."""

    step: int
    metrics: Mapping[str, float]
    reduced: bool
    next_lr: float
    state: TrackerState | None
    received_at: str


@dataclass(frozen=True)
class ReportPage:
    """One page of a run's reports, oldest first, as of run version `version`; pass `next_after_step`
    back as `after_step` for the next page (None: this page ends with the run's latest report)."""

    run_id: str
    reports: tuple[ReportEntry, ...]
    next_after_step: int | None
    version: int


@dataclass(frozen=True)
class LrRange:
    """Learning rates of steps start, start+every, ... < stop, as of run version `version`."""

    run_id: str
    start: int
    stop: int
    every: int
    lr: tuple[float, ...]
    version: int
    momentum: tuple[float | None, ...] | None = None
    """The same steps' momentum (None where the schedule in effect sets none), or None when no schedule of the
    run cycles momentum."""

    @property
    def steps(self) -> range:
        """The steps the values belong to, in order."""
        return range(self.start, self.stop, self.every)


@dataclass(frozen=True)
class LrFinderPoint:
    """One batch of a range test: the lr its step trained with, its loss and the smoothed loss (floats; NaN
    and infinities as floats)."""

    step: int
    lr: float
    loss: float
    smoothed: float


@dataclass(frozen=True)
class LrFinderResult:
    """A range test (PyTorch Lightning's `lr_find` rule): the points up to where the sweep stopped, the
    suggested lr (None with too few points) and the step where the smoothed loss diverged (None if never)."""

    run_id: str
    monitor: str
    points: tuple[LrFinderPoint, ...]
    suggestion: float | None
    diverged_at: int | None
    version: int

    @property
    def lrs(self) -> tuple[float, ...]:
        return tuple(point.lr for point in self.points)

    @property
    def losses(self) -> tuple[float, ...]:
        """The smoothed losses, the curve the suggestion is read from."""
        return tuple(point.smoothed for point in self.points)
