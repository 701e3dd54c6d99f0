"""The plateau's `start_step`, and revisions that change the plateau: traces worked out by hand.

Each TRACE row is (step, val_loss, reduced, next_lr, state after the report) or a revision
("revise", from_step, plateau change), on a `constant` 0.1 schedule, so next_lr is 0.1 times the factors
of the reductions so far, bounded below by the min_lr in effect at step + 1.
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support import accepted, approx, create_run, lr_range

CONSTANT = {"type": "constant", "learning_rate": 0.1}


def state(best: float | None, wait: int = 0, cooldown_counter: int = 0, reductions: int = 0) -> dict[str, Any]:
    return {"best": best, "wait": wait, "cooldown_counter": cooldown_counter, "reductions": reductions}


Row = tuple[Any, ...]

# Keras, patience 1, start_step 3: the rising losses of a warmup move nothing (without start_step the report
# at step 1 would reduce); the first report the tracker sees, at 3, is its best.
KERAS_START: list[Row] = [
    (0, 1.0, False, 0.1, state(None)),
    (1, 2.0, False, 0.1, state(None)),
    (2, 3.0, False, 0.1, state(None)),
    (3, 5.0, False, 0.1, state(5.0)),
    (4, 5.0, True, 0.05, state(5.0, reductions=1)),  # wait 1 >= patience 1
    (5, 4.0, False, 0.05, state(4.0, reductions=1)),
]

# torch, patience 1 (reduces when num_bad_epochs > 1), start_step 2: without it, steps 1 and 2 would be bad
# and step 2 would reduce.
TORCH_START: list[Row] = [
    (0, 1.0, False, 0.1, state(None)),
    (1, 2.0, False, 0.1, state(None)),
    (2, 3.0, False, 0.1, state(3.0)),
    (3, 3.0, False, 0.1, state(3.0, wait=1)),
    (4, 3.0, True, 0.05, state(3.0, reductions=1)),
    (5, 1.0, False, 0.05, state(1.0, reductions=1)),
]

# Keras, patience 3, factor 0.5. Counters carry on across a change: the wait of 2 built under patience 3
# meets patience 2 at step 3 (a reset counter would not), and that reduction divides by the new factor 10.
# From step 4 the factor is 0.5 again and min_lr 0.004: 0.01 -> 0.005 -> 0.004 (the bound), then Keras
# refuses to reduce an lr at min_lr, so wait keeps growing.
KERAS_REVISED: list[Row] = [
    (0, 1.0, False, 0.1, state(1.0)),
    (1, 1.0, False, 0.1, state(1.0, wait=1)),
    (2, 1.0, False, 0.1, state(1.0, wait=2)),
    ("revise", 3, {"patience": 2, "factor": 0.1}),
    (3, 1.0, True, 0.01, state(1.0, reductions=1)),
    ("revise", 4, {"factor": 0.5, "min_lr": 0.004}),
    (4, 1.0, False, 0.01, state(1.0, wait=1, reductions=1)),
    (5, 1.0, True, 0.005, state(1.0, reductions=2)),
    (6, 1.0, False, 0.005, state(1.0, wait=1, reductions=2)),
    (7, 1.0, True, 0.004, state(1.0, reductions=3)),
    (8, 1.0, False, 0.004, state(1.0, wait=1, reductions=3)),
    (9, 1.0, False, 0.004, state(1.0, wait=2, reductions=3)),
    (10, 1.0, False, 0.004, state(1.0, wait=3, reductions=3)),
]
KERAS_REVISED_LRS = [0.1] * 4 + [0.01] * 2 + [0.005] * 2 + [0.004] * 4

# torch, patience 0 (every bad report reduces), factor 0.5. From step 2, cooldown 2 and a relative threshold
# of 0.5 (an improvement must halve the best): 0.8 is no improvement on 1.0; the cooldown then swallows one
# bad report (torch blocks `cooldown` reports, counting the one that improves).
TORCH_REVISED: list[Row] = [
    (0, 1.0, False, 0.1, state(1.0)),
    (1, 1.0, True, 0.05, state(1.0, reductions=1)),
    ("revise", 2, {"cooldown": 2, "threshold": 0.5}),
    (2, 0.8, True, 0.025, state(1.0, cooldown_counter=2, reductions=2)),
    (3, 0.1, False, 0.025, state(0.1, cooldown_counter=1, reductions=2)),
    (4, 0.1, False, 0.025, state(0.1, reductions=2)),
    (5, 0.1, True, 0.0125, state(0.1, cooldown_counter=2, reductions=3)),
]
TORCH_REVISED_LRS = [0.1, 0.1, 0.05, 0.025, 0.025, 0.025, 0.0125]


def play(api: httpx.Client, run_id: str, plateau: dict[str, Any], trace: list[Row]) -> None:
    create_run(api, run_id, {"schedule": CONSTANT, "plateau": {"monitor": "val_loss", **plateau}})
    for row in trace:
        if row[0] == "revise":
            response = api.post(f"/runs/{run_id}/revisions", json={"from_step": row[1], "plateau": row[2]})
            assert response.status_code == 201, response.text
            continue
        step, loss, reduced, next_lr, after = row
        outcome = accepted(api, run_id, step, {"val_loss": loss})
        assert (outcome["reduced"], outcome["next_lr"], outcome["state"]) == (reduced, approx(next_lr), after), \
            f"report at step {step}"


@pytest.mark.parametrize(("plateau", "trace"), [
    pytest.param({"patience": 1, "factor": 0.5, "start_step": 3}, KERAS_START, id="keras"),
    pytest.param({"semantics": "torch", "patience": 1, "factor": 0.5, "start_step": 2}, TORCH_START, id="torch"),
])
def test_reports_below_start_step_are_recorded_but_do_not_move_the_tracker(
    api: httpx.Client, run_id: str, plateau: dict[str, Any], trace: list[Row]
) -> None:
    play(api, run_id, plateau, trace)

    reports = api.get(f"/runs/{run_id}/metrics").json()["reports"]
    assert [(r["step"], r["metrics"]["val_loss"]) for r in reports] == [(row[0], row[1]) for row in trace]
    assert api.get(f"/runs/{run_id}").json()["spec"]["plateau"]["start_step"] == plateau["start_step"]


def test_keras_decides_each_report_with_the_plateau_in_effect_at_its_step(api: httpx.Client, run_id: str) -> None:
    play(api, run_id, {"patience": 3, "factor": 0.5}, KERAS_REVISED)

    assert lr_range(api, run_id, 0, 12) == approx(KERAS_REVISED_LRS)


def test_torch_decides_each_report_with_the_plateau_in_effect_at_its_step(api: httpx.Client, run_id: str) -> None:
    play(api, run_id, {"semantics": "torch", "patience": 0, "factor": 0.5}, TORCH_REVISED)

    assert lr_range(api, run_id, 0, 7) == approx(TORCH_REVISED_LRS)


def test_a_revision_moves_start_step(api: httpx.Client, run_id: str) -> None:
    play(api, run_id, {"patience": 0, "factor": 0.5}, [(0, 1.0, False, 0.1, state(1.0))])
    assert api.post(f"/runs/{run_id}/revisions", json={"from_step": 1, "plateau": {"start_step": 5}}).status_code == 201

    outcome = accepted(api, run_id, 3, {"val_loss": 9.0})  # would reduce (patience 0), but 3 < 5

    assert (outcome["reduced"], outcome["state"]) == (False, state(1.0))
    assert accepted(api, run_id, 5, {"val_loss": 9.0})["reduced"] is True


def test_the_run_lists_plateau_revisions_with_what_they_changed(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": CONSTANT, "plateau": {"monitor": "val_loss"}})
    answer = api.post(f"/runs/{run_id}/revisions",
                      json={"from_step": 4, "plateau": {"factor": 0.5, "patience": 2}, "reason": "too slow"})

    assert answer.status_code == 201
    body = answer.json()
    assert (body["schedule"], body["plateau"], body["warnings"]) == (None, {"factor": 0.5, "patience": 2}, [])
    [listed] = api.get(f"/runs/{run_id}").json()["revisions"]
    assert listed == {"from_step": 4, "schedule": None, "plateau": {"factor": 0.5, "patience": 2},
                      "reason": "too slow", "created_at": body["created_at"]}
    assert api.get(f"/runs/{run_id}").json()["spec"]["plateau"]["factor"] == 0.1  # the spec stays the original


@pytest.mark.parametrize(("spec_plateau", "change", "field"), [
    pytest.param({"monitor": "val_loss"}, {"monitor": "loss"}, "monitor", id="monitor"),
    pytest.param({"monitor": "val_loss"}, {"mode": "max"}, "mode", id="mode"),
    pytest.param({"monitor": "val_loss"}, {"semantics": "torch"}, "semantics", id="semantics"),
    pytest.param({"monitor": "val_loss", "semantics": "torch"}, {"threshold_mode": "abs"}, "threshold_mode",
                 id="threshold_mode"),
    pytest.param({"monitor": "val_loss", "semantics": "torch"}, {"eps": 0.1}, "eps", id="eps"),
    pytest.param({"monitor": "val_loss"}, {"threshold": 0.1}, "threshold", id="threshold-on-keras"),
    pytest.param({"monitor": "val_loss", "semantics": "torch"}, {"min_delta": 0.1}, "min_delta",
                 id="min_delta-on-torch"),
    pytest.param({"monitor": "val_loss"}, {"factor": 1.0}, "factor", id="factor-1"),
    pytest.param({"monitor": "val_loss"}, {"patience": -1}, "patience", id="negative-patience"),
    pytest.param({"monitor": "val_loss"}, {"colldown": 1}, "colldown", id="typo"),
    pytest.param({"monitor": "val_loss"}, {}, "plateau", id="empty"),
    pytest.param(None, {"factor": 0.5}, "plateau", id="run-without-plateau"),
])
def test_a_plateau_change_it_cannot_make_is_422_naming_the_field(
    api: httpx.Client, run_id: str, spec_plateau: dict[str, Any] | None, change: dict[str, Any], field: str
) -> None:
    create_run(api, run_id, {"schedule": CONSTANT, "plateau": spec_plateau})

    response = api.post(f"/runs/{run_id}/revisions", json={"from_step": 0, "plateau": change})

    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]
    assert api.get(f"/runs/{run_id}").json()["revisions"] == []


def test_a_revision_with_neither_schedule_nor_plateau_is_422(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": CONSTANT})

    response = api.post(f"/runs/{run_id}/revisions", json={"from_step": 3, "reason": "nothing"})

    assert response.status_code == 422
    assert "schedule" in response.json()["detail"] and "plateau" in response.json()["detail"]


# -- idempotent revisions -------------------------------------------------------------------------

REVISION = {"from_step": 2, "schedule": {"type": "constant", "learning_rate": 0.05},
            "plateau": {"factor": 0.5}, "reason": "plateaued"}


def test_repeating_an_accepted_revision_answers_200_with_the_original_and_stores_nothing(
    api: httpx.Client, run_id: str
) -> None:
    create_run(api, run_id, {"schedule": CONSTANT, "plateau": {"monitor": "val_loss"}})
    first = api.post(f"/runs/{run_id}/revisions", json=REVISION)
    accepted(api, run_id, 5, {"val_loss": 1.0})  # later writes: a new revision at step 2 would now be a 409
    before = api.get(f"/runs/{run_id}").json()

    again = api.post(f"/runs/{run_id}/revisions", json=REVISION)

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json() == first.json()
    assert api.get(f"/runs/{run_id}").json() == before


def test_a_repeat_spelling_out_a_schedule_default_is_the_same_revision(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": CONSTANT})
    decay = {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 10, "decay_rate": 0.5}
    first = api.post(f"/runs/{run_id}/revisions", json={"from_step": 3, "schedule": decay})

    again = api.post(f"/runs/{run_id}/revisions", json={"from_step": 3, "schedule": {**decay, "staircase": False},
                                                         "reason": ""})

    assert (first.status_code, again.status_code) == (201, 200)
    assert again.json()["created_at"] == first.json()["created_at"]


@pytest.mark.parametrize("change", [
    {"reason": "another reason"},
    {"plateau": {"factor": 0.2}},
    {"schedule": {"type": "constant", "learning_rate": 0.06}},
], ids=["reason", "plateau", "schedule"])
def test_a_different_body_at_the_same_step_follows_the_usual_rules(api: httpx.Client, run_id: str,
                                                                  change: dict[str, Any]) -> None:
    create_run(api, run_id, {"schedule": CONSTANT, "plateau": {"monitor": "val_loss"}})
    assert api.post(f"/runs/{run_id}/revisions", json=REVISION).status_code == 201
    accepted(api, run_id, 5, {"val_loss": 1.0})

    assert api.post(f"/runs/{run_id}/revisions", json={**REVISION, **change}).status_code == 409
    assert len(api.get(f"/runs/{run_id}").json()["revisions"]) == 1
