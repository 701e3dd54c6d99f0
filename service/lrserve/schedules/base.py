"""What every schedule is: a validated parameter model that builds a pure, vectorized function of the step."""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any, ClassVar

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, SerializerFunctionWrapHandler, model_serializer

ScheduleFn = Callable[[np.ndarray], np.ndarray]
"""Maps an array of steps (float64, whole numbers >= 0) to the learning rates of those steps (float64)."""

MAX_STEP_COUNT = 2**53
"""The largest integer parameter (a count of steps, a boundary): schedules compute in float64, which holds every
integer up to 2**53 exactly, and no larger integer is a meaningful step (steps stop at 2**40)."""
StepCount = Annotated[int, Field(ge=0, le=MAX_STEP_COUNT)]
PositiveStepCount = Annotated[int, Field(ge=1, le=MAX_STEP_COUNT)]


class ScheduleModel(BaseModel):
    """Base of every schedule spec: strict types, no unknown fields, immutable once validated."""

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    type: str

    ADDITIONS: ClassVar[tuple[str, ...]] = ()
    """Parameters added after runs were first stored with this type. They are left out of the dump while they
    hold their default, so that a spec stored before they existed and the same body sent again are one spec
    (`RunSpec.canonical`), and an old stored spec reads back as it was stored."""

    @model_serializer(mode="wrap")
    def _without_default_additions(self, handler: SerializerFunctionWrapHandler) -> Any:
        data = handler(self)
        fields = type(self).model_fields
        for name in self.ADDITIONS:
            if getattr(self, name) == fields[name].default:
                data.pop(name, None)
        return data

    def build(self) -> ScheduleFn:
        raise NotImplementedError

    def momentum(self) -> ScheduleFn | None:
        """The momentum of each step (as PyTorch's cycling schedulers set it), or None: this schedule leaves the
        optimizer's momentum alone."""
        return None

    def depth(self) -> int:
        """How many compound schedules (`sequence`, `product`) nest here, this one included."""
        return 0

    def recursive_cost(self) -> float:
        """The work of computing this schedule's recursive expressions up to their last servable step, in
        `lrserve.schedules.compiler` cost units; 0 without one. Every other schedule costs the same at any step."""
        return 0.0


def check_increasing(name: str, values: list[int]) -> list[int]:
    """Raise a clear ValueError unless `values` is strictly increasing."""
    for earlier, later in zip(values, values[1:]):
        if later <= earlier:
            raise ValueError(f"{name} must be strictly increasing; received {values}")
    return values

