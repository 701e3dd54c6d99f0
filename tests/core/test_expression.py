"""The `expression` language: what it computes, and what it refuses quickly."""

from __future__ import annotations

import math
import time

import numpy as np
import pytest
from pydantic import ValidationError

from lrserve.schedules.expression import MAX_RECURSIVE_STEP, Expression, ExpressionError


def values(text: str, steps: list[int]) -> list[float]:
    return list(Expression(type="expression", expression=text).build()(np.asarray(steps, dtype=np.float64)))


def test_the_contract_example_matches_the_python_function_it_stands_for() -> None:
    text = "0.01 if epoch < 5 else 0.01 * exp(0.1 * (10 - epoch))"
    steps = list(range(20))
    expected = [0.01 if e < 5 else 0.01 * math.exp(0.1 * (10 - e)) for e in steps]
    assert values(text, steps) == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize(
    ("text", "python"),
    [
        ("step // 3 % 2", lambda s: s // 3 % 2),
        ("2 ** -(step / 4)", lambda s: 2 ** -(s / 4)),
        ("1 if 2 < step <= 5 else 0", lambda s: 1 if 2 < s <= 5 else 0),
        ("step > 2 and step < 5 or not step", lambda s: float(bool(s > 2 and s < 5 or not s))),
        ("max(0.1, 1 / (step + 1), 0.05) + min(step, 2)", lambda s: max(0.1, 1 / (s + 1), 0.05) + min(s, 2)),
        ("floor(sqrt(step)) + ceil(log2(step + 1)) + abs(-e) * pi", lambda s: math.floor(math.sqrt(s))
         + math.ceil(math.log2(s + 1)) + abs(-math.e) * math.pi),
    ],
)
def test_operators_follow_python_semantics(text: str, python) -> None:  # type: ignore[no-untyped-def]
    steps = list(range(12))
    assert values(text, steps) == pytest.approx([float(python(s)) for s in steps], rel=1e-12)


def test_a_recursive_expression_feeds_back_its_own_previous_value() -> None:
    spec = Expression(type="expression", expression="lr * 0.5 if epoch % 2 else lr",
                      recursive=True, initial_learning_rate=1.0)
    lr, expected = 1.0, []
    for epoch in range(8):
        lr = lr * 0.5 if epoch % 2 else lr
        expected.append(lr)
    assert list(spec.build()(np.arange(8.0))) == expected


def test_a_recursive_expression_is_bounded_in_steps() -> None:
    fn = Expression(type="expression", expression="lr", recursive=True, initial_learning_rate=0.1).build()
    with pytest.raises(ExpressionError, match=str(MAX_RECURSIVE_STEP)):
        fn(np.array([MAX_RECURSIVE_STEP + 1.0]))


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("__import__('os').system('true')", "not an allowed function"),
        ("step.real", "Attribute is not allowed"),
        ("lr * 2", "recursive"),
        ("[1, 2][0]", "not allowed"),
        ("x + 1", "unknown name 'x'"),
        ("exp(1, 2)", "exactly 1 argument"),
        ("'a' * 3", "not a number"),
        ("-(" * 60 + "1" + ")" * 60, "nested"),
        ("1 +" * 400 + "1", "characters long"),
        ("lambda: 1", "Lambda is not allowed"),
    ],
)
def test_anything_outside_the_language_is_refused_with_a_reason(text: str, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Expression(type="expression", expression=text)


def test_a_tower_of_powers_is_evaluated_in_float_at_once() -> None:
    started = time.perf_counter()
    result = values("9**9**9**9", [0])
    assert time.perf_counter() - started < 0.5
    assert math.isinf(result[0])


def test_two_specs_of_the_same_expression_are_equal() -> None:
    assert Expression(type="expression", expression="lr * 0.5", recursive=True, initial_learning_rate=0.1) == \
        Expression(type="expression", expression="lr * 0.5", recursive=True, initial_learning_rate=0.1)
