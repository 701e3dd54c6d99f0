"""An `expression` means what the same text means to Python: the service serves, step for step, what Python's
own `eval` of the text gives with `step` (and `lr`) bound, e.g. `0.01 or 0.02` is 0.01, as in a Keras
`LearningRateScheduler(lambda epoch: 0.01 or 0.02)`."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from support import create_run, lr_range

STEPS = 12
MATH = {name: getattr(math, name) for name in ("exp", "log", "log2", "log10", "sqrt", "sin", "cos", "tan")}
NAMES: dict[str, Any] = {**MATH, "floor": math.floor, "ceil": math.ceil, "abs": abs, "min": min, "max": max,
                         "pi": math.pi, "e": math.e}


def python(text: str, step: int, lr: float | None = None) -> float:
    """Python's value of the expression: the reference."""
    names = {**NAMES, "step": float(step), "epoch": float(step), "lr": lr}
    return float(eval(text, {"__builtins__": {}}, names))


@pytest.mark.parametrize("text", [
    "0.01 or 0.02",
    "0.0 or 0.02",
    "0.01 and 0.02",
    "0 and 0.02 or 0.03",
    "-0.0 or 0.04",
    "step * 0.001 or 0.05",
    "0.05 and step * 0.001",
    "(step % 3) * 0.01 or 0.001",
    "(step % 3) * 0.01 and 0.1 or 0.002",
    "not step and 0.1 or 0.01",
    "0.01 if step and step % 2 else 0.02",
    "(step > 5) * 0.1 or 0.01",
    "not (step % 4) * 0.5 or 0.05",
    "0.1 if (1e999 - 1e999) else 0.2",  # nan is true, as in Python
    "min(0.5, 1e999 - 1e999)",  # Python's min keeps 0.5 (nan < 0.5 is false)
    "max(0.01, step * 0.01) or 1",
])
def test_an_expression_serves_what_python_evaluates(api: httpx.Client, run_id: str, text: str) -> None:
    create_run(api, run_id, {"schedule": {"type": "expression", "expression": text}})

    served = lr_range(api, run_id, 0, STEPS)
    single = [api.get(f"/runs/{run_id}/lr", params={"step": s}).json()["lr"] for s in (0, 1, 7)]

    assert served == [python(text, s) for s in range(STEPS)]
    assert single == [python(text, s) for s in (0, 1, 7)]


@pytest.mark.parametrize(("text", "initial"), [
    ("lr or 0.5", 0.0),
    ("lr * 0.5 or 0.1", 0.4),
    ("(lr > 0.05) and lr * 0.5 or 0.2", 0.4),
    ("lr and step * 0.001 or 0.3", 0.0),
    ("not lr and 0.1 or lr * 0.9", 0.0),
    ("lr * 0.9 if lr and step % 2 else 0.05", 0.1),
])
def test_a_recursive_expression_serves_pythons_recurrence(api: httpx.Client, run_id: str, text: str,
                                                          initial: float) -> None:
    create_run(api, run_id, {"schedule": {"type": "expression", "expression": text, "recursive": True,
                                          "initial_learning_rate": initial}})

    served = lr_range(api, run_id, 0, STEPS)

    expected, lr = [], initial
    for step in range(STEPS):
        lr = python(text, step, lr)
        expected.append(lr)
    assert served == expected
