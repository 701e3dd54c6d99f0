"""The rules a schedule is held to beyond its parameters' validation, each stated once.

- A learning rate is `LR_RULE`, a finite number >= 0 (`first_bad`, `what_went_wrong`): a schedule that grows past
  float64 (an exponential ramp) or below 0 is refused at its first step, warned about at a later one, and a
  request for such a step is a 422 for that step.
- Recursive expressions are bounded in work (`cost_problems`, `check_recursive_cost`): each computes its own
  steps one by one, so a schedule's (or a run's) together get the budget of one.

Validation of a schedule is cheap and the same wherever it happens; these checks are called explicitly
where a schedule is accepted (a run created, a revision, a preview), so a stored spec reads back without
them: limits added since it was accepted must not make its run unreadable.
"""

from __future__ import annotations

import math

import numpy as np

from lrserve.schedules.base import ScheduleModel
from lrserve.schedules.catalog import Product, Sequence
from lrserve.schedules.expression import MAX_RECURSIVE_COST, MAX_RECURSIVE_STEP, STEP_COST, Expression, per_step

LR_RULE = "a finite number >= 0"
"""What a learning rate must be, in every message that refuses one."""


def first_bad(values: np.ndarray) -> int | None:
    """The index of the first value that is not a finite number >= 0 (NaN, ±inf, negative), or None."""
    bad = ~np.isfinite(values) | (values < 0)
    return int(np.argmax(bad)) if bad.any() else None


def what_went_wrong(value: float) -> str:
    """How a value that is not an lr went wrong, as the end of a sentence about the lr."""
    if math.isnan(value):
        return "is not a number (NaN)"
    if math.isinf(value):
        return f"overflows to {value}"
    return f"becomes negative ({value!r})"


def cost_problems(schedule: ScheduleModel, where: str = "schedule") -> list[str]:
    """Why `schedule` (at `where`, e.g. "schedule.schedules.1") costs too much to compute, one message per
    problem; empty when it does not. A compound schedule is judged as a whole only when each child passes."""
    if isinstance(schedule, Expression):
        if schedule.recursive_cost() <= MAX_RECURSIVE_COST:
            return []
        return [f"{where}: expression is too costly to compute recursively up to step {MAX_RECURSIVE_STEP:,}: "
                f"{per_step(schedule.recursive_cost()):.1f} units a step, at most {per_step(MAX_RECURSIVE_COST):.0f} "
                "(each operation on a value that depends on lr costs 1 to 2, a function 4, ** 20; parts that "
                "depend on step alone are nearly free)"]
    if isinstance(schedule, (Sequence, Product)):
        problems = [problem for index, child in enumerate(schedule.schedules)
                    for problem in cost_problems(child, f"{where}.schedules.{index}")]
        if problems:
            return problems
        try:
            check_recursive_cost(schedule.schedules, f"schedules: the {schedule.type}'s")
        except ValueError as error:
            return [f"{where}: {error}"]
    return []


def check_recursive_cost(schedules: list[ScheduleModel], where: str) -> None:
    """Refuse schedules whose recursive expressions together would cost more than one may: each needs its
    own steps computed, so a request spanning them all could otherwise take their number times as long."""
    total = sum(s.recursive_cost() for s in schedules)
    if total > MAX_RECURSIVE_COST:
        raise ValueError(
            f"{where} recursive expressions together are too costly to compute up to step "
            f"{MAX_RECURSIVE_STEP:,} each: {per_step(total):.1f} units a step, at most "
            f"{per_step(MAX_RECURSIVE_COST):.0f} in all (a recursive expression costs at least {STEP_COST + 1})"
        )
