"""Reading learning rates: one step, or a range of steps; values computed by hand from the contract."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from support import approx, create_run, far_from, lr_at, lr_range

PIECEWISE = {"type": "piecewise_constant", "boundaries": [10, 20], "values": [1.0, 0.5, 0.1]}


def piecewise_by_hand(step: int) -> float:
    """Keras PiecewiseConstantDecay: a boundary step keeps the earlier value."""
    return 1.0 if step <= 10 else 0.5 if step <= 20 else 0.1


def test_lr_answers_run_id_step_and_lr(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": {"type": "constant", "learning_rate": 0.1}})

    response = api.get(f"/runs/{run_id}/lr", params={"step": 7})

    assert response.status_code == 200
    assert response.json() == {"run_id": run_id, "step": 7, "lr": approx(0.1)}  # no momentum: the run cycles none


@pytest.mark.parametrize("step", [0, 1, 12345, 2**40])
def test_a_constant_schedule_is_the_same_at_every_step(api: httpx.Client, run_id: str, step: int) -> None:
    create_run(api, run_id, {"schedule": {"type": "constant", "learning_rate": 0.1}})

    assert lr_at(api, run_id, step) == approx(0.1)


CASES: list[Any] = [
    pytest.param(PIECEWISE, {0: 1.0, 9: 1.0, 10: 1.0, 11: 0.5, 20: 0.5, 21: 0.1, 10**6: 0.1},
                 id="piecewise-constant-boundary-keeps-earlier-value"),
    pytest.param({"type": "step_decay", "initial_learning_rate": 0.1, "step_size": 3, "gamma": 0.5},
                 {0: 0.1, 2: 0.1, 3: 0.05, 5: 0.05, 6: 0.025, 9: 0.0125},
                 id="step-decay-changes-at-step-size"),
    pytest.param({"type": "multistep_decay", "initial_learning_rate": 1.0, "milestones": [2, 5]},
                 {0: 1.0, 1: 1.0, 2: 0.1, 4: 0.1, 5: 0.01, 100: 0.01},
                 id="multistep-already-reduced-at-milestone"),
    pytest.param({"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 10,
                  "decay_rate": 0.5, "staircase": True},
                 {0: 0.1, 9: 0.1, 10: 0.05, 25: 0.025},
                 id="exponential-decay-staircase"),
    pytest.param({"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5},
                 {0: 0.1, 5: 0.1 * 0.5**0.5, 10: 0.05, 30: 0.0125},
                 id="exponential-decay-smooth"),
    pytest.param({"type": "inverse_time_decay", "initial_learning_rate": 1.0, "decay_rate": 0.5},
                 {0: 1.0, 2: 0.5, 6: 0.25},
                 id="inverse-time-decay-default-decay-steps-1"),
    pytest.param({"type": "linear", "initial_learning_rate": 1.0, "end_learning_rate": 0.0,
                  "transition_steps": 10, "transition_begin": 5},
                 {0: 1.0, 5: 1.0, 10: 0.5, 15: 0.0, 99: 0.0},
                 id="linear-holds-then-ramps-then-holds"),
    pytest.param({"type": "sequence", "boundaries": [5],
                  "schedules": [{"type": "constant", "learning_rate": 2.0},
                                {"type": "linear", "initial_learning_rate": 1.0, "end_learning_rate": 0.0,
                                 "transition_steps": 10}]},
                 {0: 2.0, 4: 2.0, 5: 1.0, 10: 0.5, 15: 0.0, 50: 0.0},
                 id="sequence-next-schedule-sees-step-minus-boundary"),
    pytest.param({"type": "expression", "expression": "0.01 if epoch < 5 else 0.01 * exp(0.1 * (10 - epoch))"},
                 {0: 0.01, 4: 0.01, 5: 0.01 * math.exp(0.5), 10: 0.01, 20: 0.01 * math.exp(-1.0)},
                 id="expression-from-the-contract"),
    pytest.param({"type": "expression", "expression": "lr * 0.5", "recursive": True, "initial_learning_rate": 1.0},
                 {0: 0.5, 1: 0.25, 9: 0.5**10},
                 id="recursive-expression-calls-f-at-step-0-too"),
    pytest.param({"type": "expression", "expression": "max(0.001, 0.1 - step // 10 * 0.01) + abs(-0.0)"},
                 {0: 0.1, 9: 0.1, 10: 0.09, 95: 0.01, 200: 0.001},
                 id="expression-floor-division-and-functions"),
]


@pytest.mark.parametrize(("schedule", "expected"), CASES)
def test_lr_matches_the_schedule_computed_by_hand(
    api: httpx.Client, run_id: str, schedule: dict[str, Any], expected: dict[int, float]
) -> None:
    create_run(api, run_id, {"schedule": schedule})

    got = {step: lr_at(api, run_id, step) for step in expected}

    assert got == approx(expected, peak=max(expected.values()))


def test_a_range_serves_100000_values_in_one_call(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": PIECEWISE})

    response = api.get(f"/runs/{run_id}/lr/range", params={"start": 0, "stop": 100_000})

    assert response.status_code == 200
    body = response.json()
    assert (body["run_id"], body["start"], body["stop"], body["every"]) == (run_id, 0, 100_000, 1)
    assert len(body["lr"]) == 100_000
    assert far_from(body["lr"], [piecewise_by_hand(step) for step in range(100_000)]) == []


def test_a_range_with_every_skips_steps_and_stops_before_stop(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": PIECEWISE})

    values = lr_range(api, run_id, start=5, stop=30, every=3)

    steps = [5, 8, 11, 14, 17, 20, 23, 26, 29]
    assert values == approx([piecewise_by_hand(step) for step in steps])


def test_a_range_stops_before_stop_when_every_divides_it(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": {"type": "step_decay", "initial_learning_rate": 0.1, "step_size": 3,
                                          "gamma": 0.5}})

    values = lr_range(api, run_id, start=0, stop=12, every=3)

    assert values == approx([0.1, 0.05, 0.025, 0.0125])


def test_range_and_single_steps_give_the_same_values(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": {"type": "cosine_decay", "initial_learning_rate": 0.1, "decay_steps": 50}})
    steps = range(0, 60, 7)
    by_hand = [0.05 * (1 + math.cos(math.pi * min(step, 50) / 50)) for step in steps]

    values = lr_range(api, run_id, start=0, stop=60, every=7)

    assert values == approx(by_hand, peak=0.1)
    assert [lr_at(api, run_id, step) for step in steps] == approx(by_hand, peak=0.1)


def test_a_range_may_end_at_the_largest_step(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": PIECEWISE})

    values = lr_range(api, run_id, start=2**40 - 3, stop=2**40)

    assert values == approx([0.1] * 3)
