"""Every schedule type serves, through the HTTP API, what its reference library computes in float64.

Each parameter set creates a run with PUT /runs/{id}, reads the learning rates back with
GET /runs/{id}/lr/range (ranges) and GET /runs/{id}/lr?step=N (single far steps), and compares
them value by value with the real library (see references.py) under the contract's tolerance
|lr - ref| <= 1e-6*|ref| + 1e-12*peak.
"""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import jax
import keras
import numpy as np
import pytest

from . import cases
from .references import one_cycle_scheduler, reference_lrs

CONTRACT_TYPES = (
    "constant", "exponential_decay", "inverse_time_decay", "polynomial_decay",
    "piecewise_constant", "cosine_decay", "cosine_decay_restarts", "step_decay",
    "multistep_decay", "linear", "one_cycle", "cyclic", "inverse_sqrt", "warmup_stable_decay",
    "sequence", "expression",
)

TABLES: dict[str, list[Any]] = {
    "constant": cases.CONSTANT,
    "exponential_decay": cases.EXPONENTIAL_DECAY,
    "inverse_time_decay": cases.INVERSE_TIME_DECAY,
    "polynomial_decay": cases.POLYNOMIAL_DECAY,
    "piecewise_constant": cases.PIECEWISE_CONSTANT,
    "cosine_decay": cases.COSINE_DECAY,
    "cosine_decay_restarts": cases.COSINE_DECAY_RESTARTS,
    "step_decay": cases.STEP_DECAY,
    "multistep_decay": cases.MULTISTEP_DECAY,
    "linear": cases.LINEAR,
    "one_cycle": cases.ONE_CYCLE,
    "cyclic": cases.CYCLIC,
    "inverse_sqrt": cases.INVERSE_SQRT,
    "warmup_stable_decay": cases.WARMUP_STABLE_DECAY,
    "sequence": cases.SEQUENCE,
    "expression": cases.EXPRESSION,
}

MINIMUM_PARAMETER_SETS = 20
SHOWN_MISMATCHES = 10


def served_lrs(
    api: httpx.Client, run_id: str, schedule: dict[str, Any], steps: Sequence[range | int]
) -> tuple[list[int], np.ndarray]:
    """Create a run for `schedule` and read its lr at `steps` through the HTTP API."""
    step_unit = "epoch" if schedule["type"] == "expression" else "batch"
    created = api.put(f"/runs/{run_id}", json={"schedule": schedule, "step_unit": step_unit})
    assert created.status_code == 201, f"PUT {schedule} -> {created.status_code}: {created.text}"

    served_steps: list[int] = []
    served: list[Any] = []
    for item in steps:
        if isinstance(item, range):
            response = api.get(
                f"/runs/{run_id}/lr/range",
                params={"start": item.start, "stop": item.stop, "every": item.step},
            )
            assert response.status_code == 200, f"{item} -> {response.status_code}: {response.text}"
            lrs = response.json()["lr"]
            assert len(lrs) == len(item), f"range {item} served {len(lrs)} values"
            served_steps.extend(item)
            served.extend(lrs)
        else:
            response = api.get(f"/runs/{run_id}/lr", params={"step": item})
            assert response.status_code == 200, f"{item} -> {response.status_code}: {response.text}"
            body = response.json()
            assert body["step"] == item
            served_steps.append(item)
            served.append(body["lr"])
    return served_steps, np.array([np.nan if lr is None else lr for lr in served], dtype=np.float64)


def assert_serves_reference(
    api: httpx.Client, run_id: str, schedule: dict[str, Any], steps: Sequence[range | int]
) -> None:
    """The service's lr equals the reference's at every step, within the contract's tolerance."""
    served_steps, served = served_lrs(api, run_id, schedule, steps)
    expected = reference_lrs(schedule, served_steps)
    # The schedule's peak is at least the largest reference value seen, so this is never looser
    # than the contract's tolerance.
    peak = float(np.max(np.abs(expected)))
    tolerance = 1e-6 * np.abs(expected) + 1e-12 * peak
    wrong = np.flatnonzero(~(np.abs(served - expected) <= tolerance))
    if wrong.size:
        lines = [
            f"  step {served_steps[i]}: served {served[i]!r}, reference {expected[i]!r}"
            for i in wrong[:SHOWN_MISMATCHES]
        ]
        pytest.fail(
            f"{wrong.size} of {len(served_steps)} steps differ from the reference for "
            f"{json.dumps(schedule)}:\n" + "\n".join(lines)
        )


# --- one test per schedule type ----------------------------------------------------------------

@pytest.mark.parametrize(("schedule", "steps"), cases.CONSTANT)
def test_constant_serves_its_learning_rate_at_every_step(api, run_id, schedule, steps):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.EXPONENTIAL_DECAY)
def test_exponential_decay_matches_keras_exponential_decay(api, run_id, schedule, steps):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.INVERSE_TIME_DECAY)
def test_inverse_time_decay_matches_keras_inverse_time_decay(api, run_id, schedule, steps):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.POLYNOMIAL_DECAY)
def test_polynomial_decay_matches_keras_polynomial_decay(api, run_id, schedule, steps):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.PIECEWISE_CONSTANT)
def test_piecewise_constant_matches_keras_and_keeps_the_earlier_value_on_a_boundary(
    api, run_id, schedule, steps
):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.COSINE_DECAY)
def test_cosine_decay_matches_keras_cosine_decay(api, run_id, schedule, steps):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.COSINE_DECAY_RESTARTS)
def test_cosine_decay_restarts_matches_keras_and_restarts_at_the_new_period_start(
    api, run_id, schedule, steps
):
    # At an exact restart step the reference is the start of the new period, taken from Keras's
    # own right-hand limit where Keras's log/floor rounds into the old period (references.py).
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.STEP_DECAY)
def test_step_decay_matches_torch_step_lr(api, run_id, schedule, steps):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.MULTISTEP_DECAY)
def test_multistep_decay_matches_torch_multistep_lr(api, run_id, schedule, steps):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.LINEAR)
def test_linear_matches_optax_linear_schedule(api, run_id, schedule, steps):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.ONE_CYCLE)
def test_one_cycle_matches_torch_one_cycle_lr_and_holds_its_last_value(
    api, run_id, schedule, steps
):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize("schedule", cases.ONE_CYCLE_UNCONSTRUCTIBLE)
def test_one_cycle_that_torch_cannot_construct_is_rejected(api, run_id, schedule):
    with pytest.raises(ZeroDivisionError):
        one_cycle_scheduler(schedule)

    response = api.put(f"/runs/{run_id}", json={"schedule": schedule, "step_unit": "batch"})

    assert response.status_code == 422, response.text
    assert response.json()["detail"]
    assert api.get(f"/runs/{run_id}").status_code == 404


@pytest.mark.parametrize(("schedule", "steps"), cases.CYCLIC)
def test_cyclic_matches_torch_cyclic_lr(api, run_id, schedule, steps):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.INVERSE_SQRT)
def test_inverse_sqrt_matches_hugging_face_inverse_sqrt_schedule(api, run_id, schedule, steps):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.WARMUP_STABLE_DECAY)
def test_warmup_stable_decay_matches_hugging_face_wsd_schedule(api, run_id, schedule, steps):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.SEQUENCE)
def test_sequence_matches_optax_join_schedules(api, run_id, schedule, steps):
    assert_serves_reference(api, run_id, schedule, steps)


@pytest.mark.parametrize(("schedule", "steps"), cases.EXPRESSION)
def test_expression_matches_keras_learning_rate_scheduler(api, run_id, schedule, steps):
    assert_serves_reference(api, run_id, schedule, steps)


# --- the tables themselves ---------------------------------------------------------------------


def _contract_types() -> list[str] | None:
    """The `type` column of the contract's schedule table, if shared/ sits beside the repository."""
    repository = Path(__file__).resolve().parents[2]
    contract = repository.parent / "shared" / "CONTRACT.md"
    if not contract.is_file():
        return None
    section = contract.read_text().split("### Schedule types", 1)[1].split("\n### ", 1)[0]
    rows = re.findall(r"^\| `([a-z_]+)` \|", section, flags=re.MULTILINE)
    return [name for name in rows if name != "type"]  # the header row names the column


def test_every_contract_schedule_type_has_at_least_20_distinct_parameter_sets():
    listed = _contract_types()
    if listed is not None:
        assert sorted(listed) == sorted(CONTRACT_TYPES), "the contract's catalog changed"
    assert sorted(TABLES) == sorted(CONTRACT_TYPES)
    for type_, table in TABLES.items():
        schedules = [param.values[0] for param in table]
        assert all(schedule["type"] == type_ for schedule in schedules), type_
        distinct = {json.dumps(schedule, sort_keys=True) for schedule in schedules}
        assert len(distinct) >= MINIMUM_PARAMETER_SETS, (
            f"{type_} has {len(distinct)} distinct parameter sets"
        )


def test_reference_evaluation_leaves_keras_and_jax_precision_as_it_was():
    def precision() -> tuple[str, str, bool]:
        return (keras.config.floatx(), keras.backend.result_type("float64"),
                jax.config.jax_enable_x64)

    before = precision()
    for table in TABLES.values():
        schedule, _ = table[0].values
        reference_lrs(schedule, [0, 1])
    assert precision() == before
