"""Rewind: resume from a checkpoint by forgetting every report after a step."""

from __future__ import annotations

from typing import Any

import httpx

from support import HALVING_PLATEAU, INITIAL_STATE, accepted, approx, create_run, lr_range

# constant 0.1, Keras plateau with patience 3, so `wait` matters after a rewind
PATIENT: dict[str, Any] = {
    "schedule": {"type": "constant", "learning_rate": 0.1},
    "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 3},
}


def rewind(api: httpx.Client, run_id: str, step: int) -> dict[str, Any]:
    response = api.post(f"/runs/{run_id}/rewind", json={"step": step})
    assert response.status_code == 200, response.text
    return response.json()


def halving_trace(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    """Reports 1.0, 1.0, 0.5, 0.6 at steps 0-3: reductions at steps 1 and 3."""
    create_run(api, run_id, HALVING_PLATEAU)
    return [accepted(api, run_id, step, {"val_loss": value}) for step, value in enumerate([1.0, 1.0, 0.5, 0.6])]


def test_rewind_forgets_the_reports_after_the_step(api: httpx.Client, run_id: str) -> None:
    outcomes = halving_trace(api, run_id)

    body = rewind(api, run_id, 1)

    assert body["run_id"] == run_id
    assert body["latest_step"] == 1
    assert body["reports"] == 2
    assert body["state"] == outcomes[1]["state"]
    assert body == api.get(f"/runs/{run_id}").json()
    assert [r["step"] for r in api.get(f"/runs/{run_id}/metrics").json()["reports"]] == [0, 1]


def test_after_a_rewind_the_lr_is_what_it_was_after_that_step(api: httpx.Client, run_id: str) -> None:
    halving_trace(api, run_id)

    rewind(api, run_id, 1)

    assert lr_range(api, run_id, 0, 6) == approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.05])


def test_after_a_rewind_later_steps_can_be_reported_again_with_other_metrics(api: httpx.Client, run_id: str) -> None:
    halving_trace(api, run_id)
    rewind(api, run_id, 1)

    worse = accepted(api, run_id, 2, {"val_loss": 2.0})
    better = accepted(api, run_id, 3, {"val_loss": 0.1})

    assert (worse["reduced"], worse["next_lr"]) == (True, approx(0.025))
    assert (better["reduced"], better["next_lr"], better["state"]["best"]) == (False, approx(0.025), 0.1)
    assert lr_range(api, run_id, 0, 5) == approx([0.1, 0.1, 0.05, 0.025, 0.025])


def test_rewind_restores_the_patience_count(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, PATIENT)
    outcomes = [accepted(api, run_id, step, {"val_loss": 1.0}) for step in range(5)]
    assert [o["reduced"] for o in outcomes] == [False, False, False, True, False]

    body = rewind(api, run_id, 2)

    assert body["state"] == {"best": 1.0, "wait": 2, "cooldown_counter": 0, "reductions": 0}
    again = accepted(api, run_id, 3, {"val_loss": 1.0})  # the third bad report in a row
    assert again["reduced"] is True and again["next_lr"] == approx(0.05)


def test_rewind_between_two_reports_keeps_the_earlier_one(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    accepted(api, run_id, 0, {"val_loss": 1.0})
    accepted(api, run_id, 5, {"val_loss": 2.0})
    accepted(api, run_id, 10, {"val_loss": 3.0})

    body = rewind(api, run_id, 7)

    assert (body["latest_step"], body["reports"]) == (5, 2)
    assert lr_range(api, run_id, 4, 12) == approx([0.1, 0.1, 0.05, 0.05, 0.05, 0.05, 0.05, 0.05])
    assert accepted(api, run_id, 6, {"val_loss": 2.0})["reduced"] is True


def test_rewind_to_minus_one_forgets_every_report(api: httpx.Client, run_id: str) -> None:
    halving_trace(api, run_id)

    body = rewind(api, run_id, -1)

    assert body["latest_step"] is None
    assert body["reports"] == 0
    assert body["state"] == INITIAL_STATE
    assert api.get(f"/runs/{run_id}/metrics").json()["reports"] == []
    assert lr_range(api, run_id, 0, 6) == approx([0.1] * 6)
    assert accepted(api, run_id, 0, {"val_loss": 7.0})["state"]["best"] == 7.0


def test_rewind_to_the_latest_step_forgets_nothing(api: httpx.Client, run_id: str) -> None:
    outcomes = halving_trace(api, run_id)
    metrics = api.get(f"/runs/{run_id}/metrics").json()

    body = rewind(api, run_id, 3)

    assert (body["latest_step"], body["reports"], body["state"]) == (3, 4, outcomes[-1]["state"])
    assert api.get(f"/runs/{run_id}/metrics").json() == metrics


def test_a_rewind_is_a_write_that_bumps_the_version(api: httpx.Client, run_id: str) -> None:
    halving_trace(api, run_id)
    before = api.get(f"/runs/{run_id}").json()["version"]

    assert rewind(api, run_id, 0)["version"] == before + 1


def test_a_rewind_keeps_the_revisions(api: httpx.Client, run_id: str) -> None:
    halving_trace(api, run_id)
    revision = {"from_step": 5, "schedule": {"type": "constant", "learning_rate": 1.0}, "reason": "bigger lr"}
    assert api.post(f"/runs/{run_id}/revisions", json=revision).status_code == 201
    revisions = api.get(f"/runs/{run_id}").json()["revisions"]

    body = rewind(api, run_id, -1)

    assert body["revisions"] == revisions
    assert [(r["from_step"], r["reason"]) for r in revisions] == [(5, "bigger lr")]
    assert lr_range(api, run_id, 3, 7) == approx([0.1, 0.1, 1.0, 1.0])
