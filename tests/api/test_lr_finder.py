"""`GET /runs/{id}/lr-finder`: which reports become points, the lr of each, and the query's validation.

Parity of the numbers with Lightning is in tests/parity/test_lr_finder_parity.py.
"""

from __future__ import annotations

import httpx
import pytest

from support import HALVING_PLATEAU, accepted, create_run, lr_at


def finder(api: httpx.Client, run_id: str, **params: object) -> httpx.Response:
    return api.get(f"/runs/{run_id}/lr-finder", params=params)


def test_points_are_the_reports_of_the_monitor_with_the_lr_their_step_trained_with(api: httpx.Client,
                                                                                    run_id: str) -> None:
    create_run(api, run_id, {**HALVING_PLATEAU, "step_unit": "batch"})
    accepted(api, run_id, 0, {"val_loss": 1.0, "loss": 2.0})
    accepted(api, run_id, 1, {"val_loss": 2.0})  # no "loss": left out; and the plateau halves the lr from step 2
    accepted(api, run_id, 2, {"val_loss": 3.0, "loss": "NaN"})
    accepted(api, run_id, 3, {"loss": "Infinity"})

    body = finder(api, run_id, early_stop_threshold="null").json()

    assert body["run_id"] == run_id and body["monitor"] == "loss"
    assert [(p["step"], p["lr"], p["loss"]) for p in body["points"]] == [
        (0, lr_at(api, run_id, 0), 2.0), (2, lr_at(api, run_id, 2), "NaN"), (3, lr_at(api, run_id, 3), "Infinity")]
    assert lr_at(api, run_id, 0) != lr_at(api, run_id, 2)
    assert [p["smoothed"] for p in body["points"]][1:] == ["NaN", "NaN"]  # a NaN stays in the running average
    assert body["suggestion"] is None and body["diverged_at"] is None


def test_another_monitor_and_a_divergence(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": {"type": "constant", "learning_rate": 0.1}, "step_unit": "batch"})
    for step, value in enumerate([1.0, 1.0, 1.0, 500.0, 1.0]):
        accepted(api, run_id, step, {"val_loss": value})

    body = finder(api, run_id, monitor="val_loss", beta=0.0).json()

    assert [p["step"] for p in body["points"]] == [0, 1, 2, 3]  # the diverging point is kept, then the sweep stops
    assert body["diverged_at"] == 3
    assert finder(api, run_id, monitor="loss").json()["points"] == []


def test_an_unknown_run_is_404(api: httpx.Client) -> None:
    response = finder(api, "no-such-run-for-lr-finder")

    assert response.status_code == 404 and "PUT /runs/" in response.json()["detail"]


@pytest.mark.parametrize(("params", "words"), [
    ({"beta": 1}, ["beta", "less than 1"]),
    ({"beta": -0.1}, ["beta", "greater than or equal to 0"]),
    ({"beta": "nan"}, ["beta"]),
    ({"skip_begin": -1}, ["skip_begin", "greater than or equal to 0"]),
    ({"skip_end": 1.5}, ["skip_end", "integer"]),
    ({"early_stop_threshold": 1}, ["early_stop_threshold", "> 1", "null"]),
    ({"early_stop_threshold": "inf"}, ["early_stop_threshold", "finite"]),
    ({"early_stop_threshold": "four"}, ["early_stop_threshold", "'four'"]),
    ({"monitor": ""}, ["monitor"]),
])
def test_bad_parameters_are_422_naming_the_field(api: httpx.Client, run_id: str, params: dict[str, object],
                                                 words: list[str]) -> None:
    create_run(api, run_id, {"schedule": {"type": "constant", "learning_rate": 0.1}})

    response = finder(api, run_id, **params)

    assert response.status_code == 422, response.text
    for word in words:
        assert word in response.json()["detail"]
