"""Growing schedules: a schedule whose lr stops being finite after step 0 is served, with a warning.

The canonical case is a learning-rate range test: an exponential ramp from 1e-7 by 1.1 per batch, which
overflows float64 after a few thousand steps. The expected overflow step comes from the schedule's reference
definition (Keras `ExponentialDecay`: initial_learning_rate * decay_rate ** step), evaluated here in float64.
"""

from __future__ import annotations

from typing import Any

import httpx
import numpy as np
import pytest

from support import accepted, create_run, lr_at, report

RAMP = {"type": "exponential_decay", "initial_learning_rate": 1e-7, "decay_steps": 1, "decay_rate": 1.1}
RANGE_TEST = {"schedule": RAMP, "step_unit": "batch"}


def first_overflow() -> int:
    with np.errstate(over="ignore"):
        values = 1e-7 * np.power(1.1, np.arange(10_000, dtype=np.float64))
    return int(np.argmin(np.isfinite(values)))


OVERFLOW = first_overflow()


def test_the_ramp_overflows_within_the_checked_steps() -> None:
    assert 1000 < OVERFLOW < 10_000


def test_a_ramp_that_overflows_is_created_with_a_warning_naming_the_step(api: httpx.Client, run_id: str) -> None:
    body = create_run(api, run_id, RANGE_TEST)

    [warning] = body["warnings"]
    assert f"step {OVERFLOW:,}" in warning
    assert "exponential_decay" in warning and "inf" in warning and "422" in warning


def test_the_same_spec_again_is_200_with_the_same_warning(api: httpx.Client, run_id: str) -> None:
    created = create_run(api, run_id, RANGE_TEST)

    again = api.put(f"/runs/{run_id}", json=RANGE_TEST)

    assert again.status_code == 200
    assert again.json()["warnings"] == created["warnings"]


def test_a_schedule_that_stays_finite_warns_about_nothing(api: httpx.Client, run_id: str) -> None:
    assert create_run(api, run_id, {"schedule": {**RAMP, "decay_rate": 0.9}})["warnings"] == []


def test_steps_are_served_up_to_the_overflow_and_answered_422_from_there(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, RANGE_TEST)

    assert lr_at(api, run_id, OVERFLOW - 1) > 1e300
    for step in (OVERFLOW, OVERFLOW + 1, OVERFLOW + 5000):
        response = api.get(f"/runs/{run_id}/lr", params={"step": step})
        assert response.status_code == 422
        assert f"step {step}" in response.json()["detail"]
    ranged = api.get(f"/runs/{run_id}/lr/range", params={"start": OVERFLOW - 10, "stop": OVERFLOW + 10})
    assert ranged.status_code == 422
    assert f"step {OVERFLOW}" in ranged.json()["detail"]
    below = api.get(f"/runs/{run_id}/lr/range", params={"start": 0, "stop": OVERFLOW})
    assert below.status_code == 200 and len(below.json()["lr"]) == OVERFLOW


@pytest.mark.parametrize("plateau", [None, {"monitor": "loss", "factor": 0.5, "patience": 0}], ids=["bare", "plateau"])
def test_a_report_whose_next_lr_overflows_is_422_and_stores_nothing(
    api: httpx.Client, run_id: str, plateau: dict[str, Any] | None
) -> None:
    create_run(api, run_id, {**RANGE_TEST, "plateau": plateau})
    accepted(api, run_id, OVERFLOW - 2, {"loss": 1.0})
    before = api.get(f"/runs/{run_id}").json()

    response = report(api, run_id, OVERFLOW - 1, {"loss": 2.0})

    assert response.status_code == 422
    assert f"step {OVERFLOW}" in response.json()["detail"]
    assert api.get(f"/runs/{run_id}").json() == before
    assert [r["step"] for r in api.get(f"/runs/{run_id}/metrics").json()["reports"]] == [OVERFLOW - 2]


def test_a_learning_rate_that_turns_negative_is_warned_about(api: httpx.Client, run_id: str) -> None:
    body = create_run(api, run_id, {"schedule": {"type": "expression", "expression": "0.5 - 0.25 * step"}})

    [warning] = body["warnings"]
    assert "negative" in warning and "step 3" in warning
    assert lr_at(api, run_id, 2) == 0.0
    assert api.get(f"/runs/{run_id}/lr", params={"step": 3}).status_code == 422


@pytest.mark.parametrize("expression", ["-0.1", "1 / step", "log(step)"])
def test_a_learning_rate_that_is_bad_at_step_0_is_still_refused(api: httpx.Client, run_id: str,
                                                                 expression: str) -> None:
    response = api.put(f"/runs/{run_id}", json={"schedule": {"type": "expression", "expression": expression}})

    assert response.status_code == 422, response.text
    assert "step 0" in response.json()["detail"]
    assert api.get(f"/runs/{run_id}").status_code == 404


def test_a_revision_warns_in_the_runs_own_steps(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": {"type": "constant", "learning_rate": 0.1}, "step_unit": "batch"})

    response = api.post(f"/runs/{run_id}/revisions", json={"from_step": 100, "schedule": RAMP})

    assert response.status_code == 201
    [warning] = response.json()["warnings"]
    assert f"step {100 + OVERFLOW:,}" in warning
    assert api.get(f"/runs/{run_id}/lr", params={"step": 100 + OVERFLOW - 1}).status_code == 200
    assert api.get(f"/runs/{run_id}/lr", params={"step": 100 + OVERFLOW}).status_code == 422


def test_a_revision_bad_at_its_own_first_step_is_422_naming_it(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": {"type": "constant", "learning_rate": 0.1}})

    response = api.post(f"/runs/{run_id}/revisions",
                        json={"from_step": 100, "schedule": {"type": "expression", "expression": "1 / step"}})

    assert response.status_code == 422
    assert "step 100" in response.json()["detail"]
    assert api.get(f"/runs/{run_id}").json()["revisions"] == []
