"""Response bodies, declared for the OpenAPI document (hot paths serialize with orjson directly)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel


class Health(BaseModel):
    status: str
    version: str


class Ready(BaseModel):
    status: str


class TrackerStateOut(BaseModel):
    best: float | None
    wait: int
    cooldown_counter: int
    reductions: int


class RevisionOut(BaseModel):
    """A revision: `schedule` is null when it changed only the plateau, `plateau` the plateau settings it
    changed (null: none)."""

    from_step: int
    schedule: dict[str, Any] | None
    plateau: dict[str, Any] | None
    reason: str
    created_at: str


class RevisionCreated(RevisionOut):
    """The revision as recorded (the original for a repeat), and what its schedule warns about."""

    run_id: str
    warnings: list[str]


class RunOut(BaseModel):
    run_id: str
    spec: dict[str, Any]
    state: TrackerStateOut | None
    latest_step: int | None
    reports: int
    revisions: list[RevisionOut]
    created_at: str
    version: int


class RunCreated(RunOut):
    """The run as created (or found), and what its schedule warns about: the first of its first 10,000
    steps where the lr stops being a finite number >= 0, if any."""

    warnings: list[str]


class RunSummary(BaseModel):
    run_id: str
    spec: dict[str, Any]
    created_at: str
    latest_step: int | None
    version: int


class RunList(BaseModel):
    """One page of runs; `next_cursor` is the `cursor` of the next page, null on the last."""

    runs: list[RunSummary]
    next_cursor: str | None


class LrOut(BaseModel):
    """`momentum`: the step's momentum when the schedule in effect cycles it (`one_cycle`, `cyclic`), null at a step
    whose schedule does not; absent for a run none of whose schedules cycle it."""

    run_id: str
    step: int
    lr: float
    momentum: float | None = None


class LrRangeOut(BaseModel):
    run_id: str
    start: int
    stop: int
    every: int
    lr: list[float]
    momentum: list[float | None] | None = None
    """Present only for a run whose schedules cycle momentum: null where the schedule in effect does not."""


class ReportOutcome(BaseModel):
    run_id: str
    step: int
    next_lr: float
    reduced: bool
    state: TrackerStateOut | None
    warnings: list[str]


class ReportEntry(BaseModel):
    step: int
    metrics: dict[str, float | str]
    reduced: bool
    next_lr: float
    state: TrackerStateOut | None
    received_at: str


class ReportList(BaseModel):
    """One page of a run's reports; `next_after_step` is the `after_step` of the next page, null on the last."""

    run_id: str
    reports: list[ReportEntry]
    next_after_step: int | None


class ErrorOut(BaseModel):
    detail: str


class LrFinderPoint(BaseModel):
    """One batch of the sweep: its step, the lr it trained with, its loss and the smoothed loss (numbers, or
    "NaN", "Infinity", "-Infinity")."""

    step: int
    lr: float
    loss: float | str
    smoothed: float | str


class LrFinderOut(BaseModel):
    """The range test: the points up to where the sweep stopped, the suggested lr (null with too few points),
    and the step where the smoothed loss diverged (null if it never did)."""

    run_id: str
    monitor: str
    points: list[LrFinderPoint]
    suggestion: float | None
    diverged_at: int | None


class CurveOut(BaseModel):
    """An lr curve for display: `lr[i]` is the lr of step `steps[i]`; `reductions` are the first steps of plateau
    reductions, `revisions` the `from_step` of revisions, each within start <= step < stop."""

    start: int
    stop: int
    steps: list[int]
    lr: list[float]
    reductions: list[int]
    revisions: list[int]


class PreviewOut(CurveOut):
    """The curve of a spec not stored, and the warnings its `PUT` would answer (see `RunCreated`)."""

    warnings: list[str]


class RunCurveOut(CurveOut):
    run_id: str
