"""The request bodies a user sends: the run spec, metric reports, rewinds and revisions."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from lrserve.plateau import KerasPlateau, PlateauSpec, TorchPlateau
from lrserve.schedules import Schedule, ScheduleModel
from lrserve.schedules.base import STORED, stored

MAX_STEP = 2**40
RUN_ID_PATTERN = r"^[A-Za-z0-9._-]{1,128}$"
_RUN_ID = re.compile(RUN_ID_PATTERN)
_CHECKED_STEPS = np.arange(10_000, dtype=np.float64)

Step = Annotated[int, Field(ge=0, le=MAX_STEP)]


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)


def check_finite(schedule: ScheduleModel) -> None:
    """Refuse a schedule whose lr is not a finite number >= 0 somewhere in its first 10,000 steps.

    Later steps are checked when they are asked for (a 422 for that step, never a 5xx).
    """
    with np.errstate(all="ignore"):
        values = schedule.build()(_CHECKED_STEPS)
    bad = ~np.isfinite(values) | (values < 0)
    if bad.any():
        first = int(np.argmax(bad))
        raise ValueError(
            f"schedule: the {schedule.type} schedule's learning rate at step {first} would be {values[first]}; "
            "a learning rate must be a finite number >= 0"
        )


class RunSpec(_Body):
    """`PUT /runs/{run_id}`: the schedule, an optional plateau tracker, and what a step counts."""

    schedule: Schedule
    plateau: PlateauSpec | None = None
    step_unit: Literal["epoch", "batch"] = "epoch"

    @model_validator(mode="after")
    def _schedule_is_finite(self, info: ValidationInfo) -> RunSpec:
        if not stored(info.context):
            check_finite(self.schedule)
        return self

    def canonical(self) -> dict[str, Any]:
        """The spec with every default filled in: two specs are the same when these are equal."""
        return self.model_dump(mode="json")


class Revision(_Body):
    """`POST /runs/{run_id}/revisions`: from `from_step` on, follow `schedule` at `step - from_step`."""

    from_step: Step
    schedule: Schedule
    reason: Annotated[str, Field(max_length=2000)] = ""

    @model_validator(mode="after")
    def _schedule_is_finite(self) -> Revision:
        check_finite(self.schedule)
        return self


class Rewind(_Body):
    """`POST /runs/{run_id}/rewind`: forget every report after `step` (-1 forgets them all)."""

    step: Annotated[int, Field(ge=-1, le=MAX_STEP)]


MetricValue = float | Literal["NaN", "Infinity", "-Infinity"]


class Report(_Body):
    """`POST /runs/{run_id}/metrics`: metrics measured at the end of `step`."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=True)

    step: Step
    metrics: Annotated[dict[Annotated[str, Field(min_length=1, max_length=200)], MetricValue],
                       Field(max_length=1000)]

    @field_validator("metrics")
    @classmethod
    def _json_numbers_are_finite(cls, metrics: dict[str, Any]) -> dict[str, Any]:
        for name, value in metrics.items():
            if isinstance(value, float) and not math.isfinite(value):
                raise ValueError(f"{name}: send non-finite values as the strings \"NaN\", \"Infinity\", \"-Infinity\"")
        return metrics

    def value(self, name: str) -> float | None:
        """The metric as a float (non-finite strings decoded), or None when it was not reported."""
        raw = self.metrics.get(name)
        return None if raw is None else float(raw.replace("Infinity", "inf")) if isinstance(raw, str) else float(raw)


def valid_run_id(run_id: str) -> bool:
    return bool(_RUN_ID.match(run_id))


__all__ = ["KerasPlateau", "TorchPlateau", "RunSpec", "Revision", "Rewind", "Report", "MAX_STEP", "valid_run_id"]
