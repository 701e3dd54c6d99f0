"""Recursive expressions are bounded: in work (refused when too costly), in memory (one cache, bounded in bytes),
and in where they compute (never inside `cached_only()`, i.e. never on the event loop)."""

from __future__ import annotations

import ast
import time
from collections.abc import Callable, Iterator

import numpy as np
import pytest
from pydantic import ValidationError

from lrserve.run_view import view_of
from lrserve.schedules import NotCached, Sequence, cached_only, recursion
from lrserve.schedules.base import ScheduleModel
from lrserve.schedules.checks import cost_problems
from lrserve.schedules.expression import MAX_RECURSIVE_STEP, Expression
from lrserve.schedules.recursion import CHUNK
from lrserve.spec import RunSpec
from lrserve.store import RevisionRecord, RunRecord, StoredRun

LAST = MAX_RECURSIVE_STEP
BUDGET = 80
"""What reaching step 1,000,000 may cost at most, in units of `reference_cpu()`: the CPU of a plain Python loop of
1,000,000 multiply-adds on the same machine, so that the bound holds on a slow machine as on a fast one. The
costliest accepted expressions take 20 to 50 units (about 1 s of CPU on the development machine, 1 to 3 s on a
machine three times slower); one allowed twice the cost would exceed the budget."""


@pytest.fixture(scope="module")
def reference_cpu() -> float:
    def loop() -> float:
        started = time.thread_time()
        x = 0.5
        for _ in range(1_000_000):
            x = x * 0.9999999 + 0.0
        return time.thread_time() - started
    return min(loop() for _ in range(3))


def recursive(text: str, initial: float = 0.1) -> Expression:
    return Expression(type="expression", expression=text, recursive=True, initial_learning_rate=initial)


def refusal(schedule: ScheduleModel) -> str:
    """Why the schedule is refused where it is accepted (a run created, a revision), or ""."""
    return "; ".join(cost_problems(schedule))


@pytest.fixture(autouse=True)
def empty_cache() -> Iterator[None]:
    recursion.CACHE.clear()
    yield
    recursion.CACHE.clear()


def largest(shape: Callable[[int], str]) -> str:
    """`shape(n)` for the largest n that is still accepted: the costliest expression of that shape."""
    n = 1
    while accepted(shape(n + 1)):
        n += 1
    assert accepted(shape(n))
    return shape(n)


def accepted(text: str) -> bool:
    try:
        return not refusal(recursive(text))
    except ValidationError:
        return False


# The costliest accepted expression of each shape: every kind of operation on lr's value.
WORST = {
    "additions": largest(lambda n: " + ".join(["lr"] * n)),
    "multiplications by constants": largest(lambda n: "lr" + " * 0.9999999" * n),
    "multiplications by columns of step": largest(lambda n: "lr" + " * (step + 1) / (step + 1)" * n),
    "columns of step": largest(lambda n: "lr" + " + 0 * sin(step) * cos(step)" * n),
    "functions": largest(lambda n: "abs(" * n + "lr" + ")" * n),
    "powers": largest(lambda n: "lr" + " ** 0.99999" * n),
    "floor division and modulo": largest(lambda n: "(lr + 1)" + " % 7 // 1" * n),
    "comparison chains": largest(lambda n: "lr" + " * (0.5 < lr < 2 <= 3)" * n),
    "conditionals": largest(lambda n: "lr" + " * (1 if lr < 3 else 0.999)" * n),
    "and-or": largest(lambda n: "lr" + " * (lr and 1 or 0.5)" * n),
    "min-max": largest(lambda n: f"min({', '.join(['lr'] * (n + 1))})"),
}


@pytest.mark.parametrize("text", WORST.values(), ids=WORST.keys())
def test_the_costliest_accepted_expressions_reach_step_1000000_within_the_cpu_budget(text: str,
                                                                                   reference_cpu: float) -> None:
    fn = recursive(text, initial=0.5).build()

    started = time.thread_time()
    fn(np.array([float(LAST)]))
    elapsed = time.thread_time() - started

    assert elapsed < BUDGET * reference_cpu, \
        f"{elapsed:.2f} s of CPU for {text!r}: {elapsed / reference_cpu:.0f} times the reference loop's {reference_cpu:.3f} s"


@pytest.mark.parametrize("text", [
    " + ".join(["lr * lr"] * 20),
    "exp(" * 15 + "lr" + ")" * 15,
    "lr ** 0.5 ** lr",
    "max(" + ", ".join(["lr"] * 40) + ")",
])
def test_a_recursive_expression_too_costly_to_reach_step_1000000_is_refused_at_once(text: str) -> None:
    started = time.perf_counter()
    assert "too costly to compute recursively" in refusal(recursive(text))
    assert time.perf_counter() - started < 0.5


def test_the_same_expression_without_recursion_is_not_limited_by_that_cost() -> None:
    assert not refusal(Expression(type="expression", expression=" + ".join(["step * step"] * 20)))


def test_parts_of_step_alone_are_computed_with_numpy_so_a_large_expression_with_a_small_lr_part_is_accepted(
) -> None:
    text = "lr * 0.9999 + 0 * (" + " + ".join(["sin(step) * cos(step)"] * 20) + ")"

    assert len(list(ast.walk(ast.parse(text, mode="eval")))) > 250
    assert not refusal(recursive(text))


def test_steps_are_computed_only_up_to_the_highest_step_asked() -> None:
    fn = recursive("lr * 0.999").build()

    fn(np.array([5.0]))
    assert recursion.CACHE.nbytes <= 2 * 6 * 8  # room for 6 values, at most doubled
    fn(np.array([3.0 * CHUNK]))
    assert recursion.CACHE.nbytes <= 2 * (3 * CHUNK + 1) * 8


def test_values_survive_eviction_and_come_back_the_same(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(recursion.CACHE, "max_bytes", 3 * 21 * CHUNK * 8)  # room for 3 of the 8
    fns = [recursive(f"lr * 0.999 + {k} * 1e-9").build() for k in range(8)]
    steps = np.array([0.0, 17.0, 20.0 * CHUNK])
    first = [fn(steps) for fn in fns]

    assert recursion.CACHE.nbytes <= recursion.CACHE.max_bytes
    again = [fn(steps) for fn in fns]
    assert recursion.CACHE.nbytes <= recursion.CACHE.max_bytes
    assert all(np.array_equal(a, b) for a, b in zip(first, again))


def test_the_cache_keeps_float64_values_8_bytes_a_step() -> None:
    recursive("lr * 0.999999").build()(np.array([float(LAST)]))

    assert recursion.CACHE.nbytes <= (LAST + 1) * 8


def test_runs_with_the_same_expression_and_initial_lr_share_one_sequence() -> None:
    recursive("lr * 0.999").build()(np.array([float(LAST)]))
    used = recursion.CACHE.nbytes

    with cached_only():
        values = recursive("lr * 0.999").build()(np.array([float(LAST)]))

    assert recursion.CACHE.nbytes == used
    assert values[0] == pytest.approx(0.1 * 0.999 ** (LAST + 1), rel=1e-9)


def test_runs_whose_initial_lr_differs_only_in_the_sign_of_zero_do_not_share_a_sequence() -> None:
    text = "0.1 if 1 / lr > 0 else 0.2"  # 1 / 0.0 is inf, 1 / -0.0 is -inf

    positive = recursive(text, initial=0.0).build()(np.array([0.0]))
    negative = recursive(text, initial=-0.0).build()(np.array([0.0]))

    assert (positive[0], negative[0]) == (0.1, 0.2)


def test_inside_cached_only_a_step_not_computed_yet_raises_not_cached() -> None:
    fn = recursive("lr * 0.999").build()

    with cached_only(), pytest.raises(NotCached):
        fn(np.array([10.0]))
    fn(np.array([10.0]))
    with cached_only():
        assert fn(np.array([10.0]))[0] == pytest.approx(0.1 * 0.999 ** 11, rel=1e-12)
        with pytest.raises(NotCached):
            fn(np.array([float(LAST)]))


def sequence(*schedules: dict[str, object]) -> dict[str, object]:
    return {"type": "sequence", "boundaries": [1_000_001 * k for k in range(1, len(schedules))],
            "schedules": list(schedules)}


def test_a_sequence_whose_recursive_expressions_together_cost_too_much_is_refused() -> None:
    leaf = {"type": "expression", "expression": "lr", "recursive": True, "initial_learning_rate": 0.1}
    assert not refusal(Sequence.model_validate(sequence(*[leaf] * 10)))  # 3 units a step each: 30, the most

    assert "recursive expressions together are too costly" in refusal(Sequence.model_validate(sequence(*[leaf] * 11)))
    assert "recursive expressions together are too costly" in refusal(
        Sequence.model_validate(sequence(sequence(*[leaf] * 6), sequence(*[leaf] * 6))))


def test_a_stored_run_accepted_before_the_cost_limits_still_loads_and_serves() -> None:
    """Limits added since a spec was accepted must not make its run unreadable."""
    costly = {"type": "expression", "expression": " + ".join(["lr * lr"] * 20), "recursive": True,
              "initial_learning_rate": 0.01}
    leaf = {"type": "expression", "expression": "lr", "recursive": True, "initial_learning_rate": 0.1}
    for schedule in (costly, sequence(*[leaf] * 11)):
        assert "too costly" in refusal(RunSpec.model_validate({"schedule": schedule}).schedule)
        record = RunRecord(run_id="old", spec_json={"schedule": schedule, "plateau": None, "step_unit": "epoch"},
                           created_at="2026-01-01T00:00:00Z")
        revision = RevisionRecord(from_step=5, schedule=costly, reason="", created_at="2026-01-01T00:00:00Z")

        view = view_of(StoredRun(record, revisions=[revision]))

        assert np.isfinite(view.lrs(np.arange(10.0))).all()
