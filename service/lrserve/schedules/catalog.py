"""The union of every schedule type, discriminated on `type`, and `sequence`, which nests it."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, TypeAdapter, ValidationInfo, model_validator

from lrserve.schedules.base import ScheduleFn, ScheduleModel, StepCount, check_increasing, stored
from lrserve.schedules.expression import Expression, check_recursive_cost
from lrserve.schedules.hf_style import InverseSqrt, WarmupStableDecay
from lrserve.schedules.join import join
from lrserve.schedules.keras_style import (
    CosineDecay,
    CosineDecayRestarts,
    ExponentialDecay,
    InverseTimeDecay,
    PiecewiseConstant,
    PolynomialDecay,
)
from lrserve.schedules.optax_style import Constant, Linear
from lrserve.schedules.torch_style import Cyclic, MultiStepDecay, OneCycle, StepDecay

MAX_SEQUENCE_DEPTH = 8
MAX_SEQUENCE_LENGTH = 64


class Sequence(ScheduleModel):
    """optax `join_schedules`: `schedules[i]` runs from `boundaries[i-1]` on, seeing `step - boundaries[i-1]`."""

    type: Literal["sequence"]
    schedules: Annotated[list[Schedule], Field(min_length=1, max_length=MAX_SEQUENCE_LENGTH)]
    boundaries: list[StepCount]

    @model_validator(mode="after")
    def _shape(self, info: ValidationInfo) -> Sequence:
        check_increasing("boundaries", self.boundaries)
        if len(self.boundaries) != len(self.schedules) - 1:
            raise ValueError(
                f"boundaries must have exactly one entry fewer than schedules ({len(self.schedules) - 1}); "
                f"received {len(self.boundaries)}"
            )
        if self.depth() > MAX_SEQUENCE_DEPTH:
            raise ValueError(f"sequences may nest at most {MAX_SEQUENCE_DEPTH} levels deep")
        if not stored(info.context):
            check_recursive_cost(self.schedules, "schedules: the sequence's")
        return self

    def depth(self) -> int:
        return 1 + max((s.depth() for s in self.schedules if isinstance(s, Sequence)), default=0)

    def is_recursive(self) -> bool:
        return any(s.is_recursive() for s in self.schedules)

    def recursive_cost(self) -> float:
        return sum(s.recursive_cost() for s in self.schedules)

    def build(self) -> ScheduleFn:
        return join([s.build() for s in self.schedules], self.boundaries)


Schedule = Annotated[
    Union[
        Constant, ExponentialDecay, InverseTimeDecay, PolynomialDecay, PiecewiseConstant, CosineDecay,
        CosineDecayRestarts, StepDecay, MultiStepDecay, Linear, OneCycle, Cyclic, InverseSqrt,
        WarmupStableDecay, Sequence, Expression,
    ],
    Field(discriminator="type"),
]
Sequence.model_rebuild()
ScheduleAdapter: TypeAdapter[Schedule] = TypeAdapter(Schedule)
