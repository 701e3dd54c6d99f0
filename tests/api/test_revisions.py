"""Revisions: change the schedule mid-run without touching history."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support import HALVING_PLATEAU, accepted, approx, create_run, is_iso8601, lr_at, lr_range

CONSTANT = {"schedule": {"type": "constant", "learning_rate": 0.1}}
STEP_DECAY = {"type": "step_decay", "initial_learning_rate": 0.2, "step_size": 2, "gamma": 0.5}


def revise(api: httpx.Client, run_id: str, from_step: int, schedule: dict[str, Any],
           reason: str = "test") -> httpx.Response:
    return api.post(f"/runs/{run_id}/revisions", json={"from_step": from_step, "schedule": schedule, "reason": reason})


def test_a_revision_answers_201_with_what_was_recorded(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CONSTANT)

    response = revise(api, run_id, 10, STEP_DECAY, reason="loss spiked")

    assert response.status_code == 201
    body = response.json()
    assert (body["run_id"], body["from_step"], body["reason"]) == (run_id, 10, "loss spiked")
    assert body["schedule"] == STEP_DECAY
    assert is_iso8601(body["created_at"])


def test_the_new_schedule_sees_step_minus_from_step(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CONSTANT)

    assert revise(api, run_id, 10, STEP_DECAY).status_code == 201

    assert lr_range(api, run_id, 8, 16) == approx([0.1, 0.1, 0.2, 0.2, 0.1, 0.1, 0.05, 0.05])
    assert lr_at(api, run_id, 10) == approx(0.2)


def test_a_report_just_before_from_step_answers_the_revised_next_lr(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CONSTANT)
    revise(api, run_id, 10, STEP_DECAY)

    assert accepted(api, run_id, 9, {"val_loss": 1.0})["next_lr"] == approx(0.2)


@pytest.mark.parametrize("from_step", [5, 3, 0])
def test_from_step_at_or_before_the_latest_report_is_409(api: httpx.Client, run_id: str, from_step: int) -> None:
    create_run(api, run_id, CONSTANT)
    accepted(api, run_id, 5, {"val_loss": 1.0})

    response = revise(api, run_id, from_step, STEP_DECAY)

    assert response.status_code == 409
    assert "from_step" in response.json()["detail"]
    assert api.get(f"/runs/{run_id}").json()["revisions"] == []
    assert lr_at(api, run_id, 6) == approx(0.1)


def test_from_step_right_after_the_latest_report_is_accepted(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CONSTANT)
    accepted(api, run_id, 5, {"val_loss": 1.0})

    assert revise(api, run_id, 6, STEP_DECAY).status_code == 201
    assert lr_range(api, run_id, 5, 9) == approx([0.1, 0.2, 0.2, 0.1])


def test_without_reports_a_revision_may_start_at_step_0(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CONSTANT)

    assert revise(api, run_id, 0, STEP_DECAY).status_code == 201
    assert lr_range(api, run_id, 0, 3) == approx([0.2, 0.2, 0.1])


def test_from_step_below_an_earlier_revision_is_409(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CONSTANT)
    accepted(api, run_id, 5, {"val_loss": 1.0})
    revise(api, run_id, 10, STEP_DECAY)

    response = revise(api, run_id, 8, {"type": "constant", "learning_rate": 0.3})

    assert response.status_code == 409
    assert len(api.get(f"/runs/{run_id}").json()["revisions"]) == 1
    assert lr_range(api, run_id, 8, 11) == approx([0.1, 0.1, 0.2])


def test_a_later_revision_from_the_same_step_replaces_the_earlier_from_there(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CONSTANT)
    revise(api, run_id, 10, STEP_DECAY)

    assert revise(api, run_id, 10, {"type": "constant", "learning_rate": 0.3}).status_code == 201
    assert lr_range(api, run_id, 9, 12) == approx([0.1, 0.3, 0.3])


def test_a_later_revision_takes_over_from_its_own_step(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CONSTANT)
    revise(api, run_id, 10, STEP_DECAY)
    accepted(api, run_id, 12, {"val_loss": 1.0})

    assert revise(api, run_id, 14, {"type": "constant", "learning_rate": 0.3}).status_code == 201
    assert lr_range(api, run_id, 9, 16) == approx([0.1, 0.2, 0.2, 0.1, 0.1, 0.3, 0.3])


def test_the_plateau_multiplier_carries_on_into_the_new_schedule(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    accepted(api, run_id, 0, {"val_loss": 1.0})
    assert accepted(api, run_id, 1, {"val_loss": 1.0})["reduced"] is True

    assert revise(api, run_id, 2, {"type": "constant", "learning_rate": 1.0}).status_code == 201
    assert lr_range(api, run_id, 0, 4) == approx([0.1, 0.1, 0.5, 0.5])

    outcome = accepted(api, run_id, 2, {"val_loss": 1.0})
    assert (outcome["reduced"], outcome["next_lr"]) == (True, approx(0.25))
    assert lr_range(api, run_id, 0, 4) == approx([0.1, 0.1, 0.5, 0.25])


def test_revisions_are_listed_on_the_run_with_reason_and_time(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CONSTANT)
    first = revise(api, run_id, 10, STEP_DECAY, reason="warmup done").json()
    second = revise(api, run_id, 20, {"type": "constant", "learning_rate": 0.01}, reason="fine-tune").json()

    revisions = api.get(f"/runs/{run_id}").json()["revisions"]

    assert [(r["from_step"], r["reason"]) for r in revisions] == [(10, "warmup done"), (20, "fine-tune")]
    assert revisions[0]["schedule"] == STEP_DECAY
    assert revisions[1]["schedule"] == {"type": "constant", "learning_rate": 0.01}
    assert [r["created_at"] for r in revisions] == [first["created_at"], second["created_at"]]
    assert all(is_iso8601(r["created_at"]) for r in revisions)


def test_a_revised_schedule_gets_its_defaults_filled(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CONSTANT)

    body = revise(api, run_id, 0, {"type": "exponential_decay", "initial_learning_rate": 0.1,
                                   "decay_steps": 10, "decay_rate": 0.5}).json()

    assert body["schedule"]["staircase"] is False


def test_put_still_compares_against_the_original_spec(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CONSTANT)
    revise(api, run_id, 0, STEP_DECAY)

    same = api.put(f"/runs/{run_id}", json=CONSTANT)
    revised = api.put(f"/runs/{run_id}", json={"schedule": STEP_DECAY})

    assert same.status_code == 200
    assert same.json()["spec"]["schedule"] == CONSTANT["schedule"]
    assert len(same.json()["revisions"]) == 1
    assert revised.status_code == 409


def test_an_invalid_revised_schedule_is_422_and_changes_nothing(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CONSTANT)

    response = revise(api, run_id, 10, {"type": "step_decay", "initial_learning_rate": 0.2})

    assert response.status_code == 422
    assert "step_size" in response.json()["detail"]
    assert api.get(f"/runs/{run_id}").json()["revisions"] == []
