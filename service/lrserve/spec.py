"""The request bodies a user sends: the run spec, metric reports, rewinds and revisions."""

from __future__ import annotations

import math
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from lrserve.errors import InvalidInput
from lrserve.heavy import HEAVY_WORK
from lrserve.plateau import KerasPlateau, PlateauChange, PlateauSpec, TorchPlateau
from lrserve.schedules import Schedule, ScheduleModel
from lrserve.schedules.checks import LR_RULE, cost_problems, first_bad, what_went_wrong


MAX_STEP = 2**40
RUN_ID_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
_CHECKED_STEPS = np.arange(10_000, dtype=np.float64)

Step = Annotated[int, Field(ge=0, le=MAX_STEP)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    @model_validator(mode="before")
    @classmethod
    def _no_nul_characters(cls, data: Any) -> Any:
        """No string anywhere in a body (names and values alike) may hold a NUL character: PostgreSQL
        cannot store one, and no run id, metric name, reason or expression needs it."""
        where = _nul_in(data)
        if where is not None:
            raise ValueError(f"{where or 'body'}: must not contain the NUL character (\\u0000)")
        return data


def _nul_in(data: Any, path: str = "") -> str | None:
    """The path of the first string (or key) holding "\\x00", or None."""
    if isinstance(data, str):
        return path if "\x00" in data else None
    if isinstance(data, dict):
        for key, value in data.items():
            inner = f"{path}.{key}" if path else str(key)
            if isinstance(key, str) and "\x00" in key:
                return inner
            found = _nul_in(value, inner)
            if found is not None:
                return found
    if isinstance(data, list):
        for index, value in enumerate(data):
            found = _nul_in(value, f"{path}.{index}" if path else str(index))
            if found is not None:
                return found
    return None


MAX_SCHEDULES = 64
"""Schedules in one spec, nested ones included: validating a spec costs a few ms at most (it happens
before the request reaches the thread pool), however its 1 MiB are spent."""


def _count_schedules(raw: Any) -> int:
    """Schedule objects in a raw (unvalidated) schedule document, counted before anything is parsed."""
    if not isinstance(raw, dict):
        return 0
    children = raw.get("schedules")
    return 1 + (sum(_count_schedules(child) for child in children) if isinstance(children, list) else 0)


def _limit_schedules(data: Any) -> Any:
    if isinstance(data, dict) and _count_schedules(data.get("schedule")) > MAX_SCHEDULES:
        raise ValueError(f"schedule: at most {MAX_SCHEDULES} schedules in one spec, nested ones included; "
                         f"received {_count_schedules(data.get('schedule'))}")
    return data


def accepted_warnings(schedule: ScheduleModel, first_step: int = 0) -> list[str]:
    """Check a schedule where it is accepted (a run created with it, a revision to it, a preview), beyond
    its validation: refuse (422) one whose recursive expressions cost too much, then answer its
    `growth_warnings`. Not in validation, so a spec read back from storage is not checked again."""
    problems = cost_problems(schedule)
    if problems:
        raise InvalidInput("; ".join(problems))
    return growth_warnings(schedule, first_step)


def growth_warnings(schedule: ScheduleModel, first_step: int = 0) -> list[str]:
    """Refuse (422) a schedule whose lr at its own step 0 is not a finite number >= 0; warn about the first
    step among its first 10,000 where the lr stops being one (an exponential ramp overflows to inf).

    `first_step` is the run's step where the schedule starts (a revision's `from_step`), so the warning names
    the run's own steps. It evaluates 10,000 steps: callers run it in the thread pool. A request for a bad
    step, checked or not, is a 422 for that step, never a 5xx.
    """
    with HEAVY_WORK, np.errstate(all="ignore"):
        values = schedule.build()(_CHECKED_STEPS)
    first = first_bad(values)
    if first is None:
        return []
    what = what_went_wrong(float(values[first]))
    if first == 0:
        raise InvalidInput(
            f"schedule: the {schedule.type} schedule's learning rate at step {first_step:,}, its first, {what}; "
            f"a learning rate must be {LR_RULE}"
        )
    step = first_step + first
    bound = " or set end_learning_rate to bound it" if "end_learning_rate" in type(schedule).model_fields else ""
    return [f"schedule: the {schedule.type} schedule's learning rate {what} at step {step:,}; that step and any "
            f"later one whose learning rate is not {LR_RULE} are answered 422. Revise the schedule "
            f"before step {step:,}{bound}."]


class RunSpec(_Body):
    """`PUT /runs/{run_id}`: the schedule, an optional plateau tracker, and what a step counts."""

    schedule: Schedule
    plateau: PlateauSpec | None = None
    step_unit: Literal["epoch", "batch"] = "epoch"

    _schedule_count = model_validator(mode="before")(_limit_schedules)

    def canonical(self) -> dict[str, Any]:
        """The spec with every default filled in: two specs are the same when these are equal."""
        return self.model_dump(mode="json")


class Revision(_Body):
    """`POST /runs/{run_id}/revisions`: from `from_step` on, follow `schedule` at `step - from_step` and/or
    decide reports with the plateau settings `plateau` changes."""

    from_step: Step
    schedule: Schedule | None = None
    plateau: PlateauChange | None = None
    reason: Annotated[str, Field(max_length=2000)] = ""

    _schedule_count = model_validator(mode="before")(_limit_schedules)

    @model_validator(mode="after")
    def _changes_something(self) -> Revision:
        if self.schedule is None and self.plateau is None:
            raise ValueError("schedule, plateau: a revision needs a schedule, a plateau change, or both; "
                             "received neither")
        return self

    def canonical(self) -> tuple[int, dict[str, Any] | None, dict[str, Any] | None, str]:
        """Two revisions are the same when these are equal (defaults filled in, unchanged fields left out)."""
        return (self.from_step, self.schedule.model_dump(mode="json") if self.schedule is not None else None,
                self.plateau.changes() if self.plateau is not None else None, self.reason)


class Rewind(_Body):
    """`POST /runs/{run_id}/rewind`: forget every report after `step` (-1 forgets them all)."""

    step: Annotated[int, Field(ge=-1, le=MAX_STEP)]


MetricValue = float | Literal["NaN", "Infinity", "-Infinity"]
MAX_METRICS = 100
MAX_METRIC_NAME = 128
"""A report holds at most 100 metrics of names up to 128 characters: a page of 1,000 reports stays a few
MB, where 1,000 metrics of 200 characters made a single run's history hundreds of MB."""


class Report(_Body):
    """`POST /runs/{run_id}/metrics`: metrics measured at the end of `step`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=True)

    step: Step
    """At most MAX_STEP - 1: the answer carries `next_lr`, the lr of `step + 1`, and MAX_STEP is the last step."""
    metrics: Annotated[dict[Annotated[str, Field(min_length=1, max_length=MAX_METRIC_NAME)], MetricValue],
                       Field(max_length=MAX_METRICS)]

    @field_validator("step")
    @classmethod
    def _has_a_next_step(cls, step: int) -> int:
        if step >= MAX_STEP:
            raise ValueError(f"must be below {MAX_STEP}; received {step}")
        return step

    @field_validator("metrics")
    @classmethod
    def _json_numbers_are_finite(cls, metrics: dict[str, Any]) -> dict[str, Any]:
        for name, value in metrics.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name}: send non-finite values as the strings \"NaN\", \"Infinity\", \"-Infinity\"")
        return metrics

    def value(self, name: str) -> float | None:
        """The metric as a float (non-finite strings decoded), or None when it was not reported."""
        return metric_value(self.metrics.get(name))


def metric_value(raw: float | str | None) -> float | None:
    """A stored metric value as a float ("NaN", "Infinity", "-Infinity" decoded), None for a missing one."""
    return None if raw is None else float(raw.replace("Infinity", "inf")) if isinstance(raw, str) else float(raw)


__all__ = ["KerasPlateau", "TorchPlateau", "RunSpec", "Revision", "Rewind", "Report", "MAX_STEP", "metric_value"]
