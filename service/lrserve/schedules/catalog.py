"""The union of every schedule type, discriminated on `type`, and `sequence` and `product`, which nest it."""

from __future__ import annotations

from typing import Annotated, Literal, Union

from pydantic import Field, TypeAdapter, model_validator

from lrserve.schedules.base import ScheduleFn, ScheduleModel, StepCount, check_increasing
from lrserve.schedules.expression import Expression
from lrserve.schedules.hf_style import InverseSqrt, WarmupStableDecay
from lrserve.schedules.join import join, join_momentum, product
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
"""How deep `sequence` and `product` schedules may nest in one another."""
MAX_SEQUENCE_LENGTH = 64
"""The most children of one `sequence` or `product`."""


class _Compound(ScheduleModel):
    """What `sequence` and `product` share: child `schedules`, a nesting depth they count together, and the
    recursive-expression cost of all their children."""

    schedules: list[Schedule]

    def depth(self) -> int:
        return 1 + max(s.depth() for s in self.schedules)

    def recursive_cost(self) -> float:
        return sum(s.recursive_cost() for s in self.schedules)

    def _check_depth(self) -> None:
        if self.depth() > MAX_SEQUENCE_DEPTH:
            raise ValueError(f"sequence and product schedules may nest at most {MAX_SEQUENCE_DEPTH} levels deep")


class Sequence(_Compound):
    """optax `join_schedules`: `schedules[i]` runs from `boundaries[i-1]` on, seeing `step - boundaries[i-1]`."""

    type: Literal["sequence"]
    schedules: Annotated[list[Schedule], Field(min_length=1, max_length=MAX_SEQUENCE_LENGTH)]
    boundaries: list[StepCount]

    @model_validator(mode="after")
    def _shape(self) -> Sequence:
        check_increasing("boundaries", self.boundaries)
        if len(self.boundaries) != len(self.schedules) - 1:
            raise ValueError(
                f"boundaries must have exactly one entry fewer than schedules ({len(self.schedules) - 1}); "
                f"received {len(self.boundaries)}"
            )
        self._check_depth()
        return self

    def build(self) -> ScheduleFn:
        return join([s.build() for s in self.schedules], self.boundaries)

    def momentum(self) -> ScheduleFn | None:
        """The momentum of the segment in effect; NaN (none) in segments whose schedule does not cycle it."""
        return join_momentum([s.momentum() for s in self.schedules], self.boundaries)


class Product(_Compound):
    """PyTorch `ChainedScheduler` of multiplicative schedulers: `lr(N) = schedules[0](N) * schedules[1](N) * ...`.

    The first child usually carries the absolute lr and the others are factors starting at 1.0 (e.g. a
    `linear` warmup factor from 0.1 to 1 times an `exponential_decay` with `decay_steps=1`). Momentum, which
    PyTorch's cycling schedulers set rather than scale, is that of the last child that cycles it (the last
    scheduler a `ChainedScheduler` steps sets it last).
    """

    type: Literal["product"]
    schedules: Annotated[list[Schedule], Field(min_length=2, max_length=MAX_SEQUENCE_LENGTH)]

    @model_validator(mode="after")
    def _shape(self) -> Product:
        self._check_depth()
        return self

    def build(self) -> ScheduleFn:
        return product([s.build() for s in self.schedules])

    def momentum(self) -> ScheduleFn | None:
        cycling = [fn for fn in (s.momentum() for s in self.schedules) if fn is not None]
        return cycling[-1] if cycling else None


Schedule = Annotated[
    Union[
        Constant, ExponentialDecay, InverseTimeDecay, PolynomialDecay, PiecewiseConstant, CosineDecay,
        CosineDecayRestarts, StepDecay, MultiStepDecay, Linear, OneCycle, Cyclic, InverseSqrt,
        WarmupStableDecay, Sequence, Product, Expression,
    ],
    Field(discriminator="type"),
]
_Compound.model_rebuild()
Sequence.model_rebuild()
Product.model_rebuild()
ScheduleAdapter: TypeAdapter[Schedule] = TypeAdapter(Schedule)
