"""Runs: create, read, list and delete; PUT is idempotent for the same spec."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from ._helpers import HALVING_PLATEAU, INITIAL_STATE, accepted, create_run, is_iso8601

EXPONENTIAL = {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 1000, "decay_rate": 0.96}


def test_put_creates_a_run_with_201_and_every_default_filled(api: httpx.Client, run_id: str) -> None:
    body = create_run(api, run_id, {"schedule": EXPONENTIAL})

    assert body["run_id"] == run_id
    assert body["spec"]["schedule"] == {**EXPONENTIAL, "staircase": False}
    assert body["spec"]["step_unit"] == "epoch"
    assert body["spec"]["plateau"] is None
    assert body["state"] is None
    assert body["latest_step"] is None
    assert body["reports"] == 0
    assert body["revisions"] == []
    assert is_iso8601(body["created_at"])
    assert isinstance(body["version"], int)


def test_a_plateau_gets_its_defaults_and_a_fresh_state(api: httpx.Client, run_id: str) -> None:
    body = create_run(api, run_id, {"schedule": EXPONENTIAL, "plateau": {"monitor": "val_loss"}})

    plateau = body["spec"]["plateau"]
    assert plateau["monitor"] == "val_loss"
    assert plateau["factor"] == 0.1
    assert plateau["patience"] == 10
    assert plateau["cooldown"] == 0
    assert plateau["min_lr"] == 0.0
    assert plateau["semantics"] == "keras"
    assert plateau["min_delta"] == 0.0001
    assert body["state"] == INITIAL_STATE


def test_get_returns_what_put_created(api: httpx.Client, run_id: str) -> None:
    created = create_run(api, run_id, {"schedule": EXPONENTIAL, "step_unit": "batch"})

    response = api.get(f"/runs/{run_id}")

    assert response.status_code == 200
    assert response.json() == created


def test_put_again_with_the_same_spec_returns_200_and_changes_nothing(api: httpx.Client, run_id: str) -> None:
    created = create_run(api, run_id, {"schedule": EXPONENTIAL})

    again = api.put(f"/runs/{run_id}", json={"schedule": EXPONENTIAL})

    assert again.status_code == 200
    assert again.json() == created
    assert api.get(f"/runs/{run_id}").json() == created


def test_put_again_after_reports_returns_200_with_the_current_run(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    accepted(api, run_id, 0, {"val_loss": 1.0})

    again = api.put(f"/runs/{run_id}", json=HALVING_PLATEAU)

    assert again.status_code == 200
    assert again.json()["latest_step"] == 0
    assert again.json()["reports"] == 1


SAME_SPECS = [
    pytest.param(
        {"schedule": EXPONENTIAL},
        {"schedule": {**EXPONENTIAL, "staircase": False}, "plateau": None, "step_unit": "epoch"},
        id="schedule-and-run-defaults",
    ),
    pytest.param(
        {"schedule": EXPONENTIAL, "plateau": {"monitor": "val_loss"}},
        {
            "schedule": EXPONENTIAL,
            "plateau": {
                "monitor": "val_loss", "mode": "auto", "factor": 0.1, "patience": 10, "cooldown": 0,
                "min_lr": 0.0, "semantics": "keras", "min_delta": 0.0001,
            },
        },
        id="keras-plateau-defaults",
    ),
    pytest.param(
        {"schedule": EXPONENTIAL, "plateau": {"monitor": "val_acc", "semantics": "torch"}},
        {
            "schedule": EXPONENTIAL,
            "plateau": {
                "monitor": "val_acc", "semantics": "torch", "threshold": 0.0001, "threshold_mode": "rel",
                "eps": 1e-8, "cooldown": 0,
            },
        },
        id="torch-plateau-defaults",
    ),
    pytest.param(
        {"schedule": {"type": "cyclic", "base_lr": 0.001, "max_lr": 0.01}},
        {"schedule": {"type": "cyclic", "base_lr": 0.001, "max_lr": 0.01, "step_size_up": 2000,
                      "step_size_down": None, "mode": "triangular", "gamma": 1.0}},
        id="cyclic-defaults-including-null",
    ),
    pytest.param(
        {"schedule": {"type": "constant", "learning_rate": 1}},
        {"schedule": {"type": "constant", "learning_rate": 1.0}},
        id="integer-and-float-spelling-of-one-number",
    ),
    pytest.param(
        {"step_unit": "batch", "schedule": {"decay_rate": 0.96, "decay_steps": 1000,
                                            "initial_learning_rate": 0.1, "type": "exponential_decay"}},
        {"schedule": EXPONENTIAL, "step_unit": "batch"},
        id="key-order",
    ),
]


@pytest.mark.parametrize(("first", "second"), SAME_SPECS)
def test_a_spec_spelling_out_defaults_is_the_same_as_one_omitting_them(
    api: httpx.Client, run_id: str, first: dict[str, Any], second: dict[str, Any]
) -> None:
    created = create_run(api, run_id, first)

    again = api.put(f"/runs/{run_id}", json=second)

    assert again.status_code == 200, again.text
    assert again.json()["spec"] == created["spec"]


DIFFERENT_SPECS = [
    pytest.param({"schedule": {**EXPONENTIAL, "staircase": True}}, id="non-default-flag"),
    pytest.param({"schedule": {**EXPONENTIAL, "decay_rate": 0.95}}, id="other-number"),
    pytest.param({"schedule": EXPONENTIAL, "step_unit": "batch"}, id="other-step-unit"),
    pytest.param({"schedule": EXPONENTIAL, "plateau": {"monitor": "val_loss"}}, id="added-plateau"),
]


@pytest.mark.parametrize("other", DIFFERENT_SPECS)
def test_put_with_a_different_spec_is_409_and_keeps_the_original(
    api: httpx.Client, run_id: str, other: dict[str, Any]
) -> None:
    created = create_run(api, run_id, {"schedule": EXPONENTIAL})

    conflict = api.put(f"/runs/{run_id}", json=other)

    assert conflict.status_code == 409
    assert isinstance(conflict.json()["detail"], str) and conflict.json()["detail"]
    assert api.get(f"/runs/{run_id}").json() == created


def test_get_of_an_unknown_run_is_404(api: httpx.Client, run_id: str) -> None:
    response = api.get(f"/runs/{run_id}")

    assert response.status_code == 404
    assert isinstance(response.json()["detail"], str)


def test_delete_removes_the_run_and_its_history(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    accepted(api, run_id, 0, {"val_loss": 1.0})
    accepted(api, run_id, 1, {"val_loss": 2.0})

    deleted = api.delete(f"/runs/{run_id}")

    assert deleted.status_code == 204
    assert deleted.content == b""
    assert api.get(f"/runs/{run_id}").status_code == 404
    assert api.get(f"/runs/{run_id}/lr", params={"step": 0}).status_code == 404
    assert api.get(f"/runs/{run_id}/metrics").status_code == 404
    assert api.delete(f"/runs/{run_id}").status_code == 404


def test_a_deleted_id_can_be_created_again_from_scratch(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    accepted(api, run_id, 0, {"val_loss": 1.0})
    api.delete(f"/runs/{run_id}")

    recreated = create_run(api, run_id, {"schedule": EXPONENTIAL})

    assert recreated["reports"] == 0 and recreated["latest_step"] is None
    assert api.get(f"/runs/{run_id}/metrics").json()["reports"] == []


def _all_runs(api: httpx.Client, limit: int) -> list[dict[str, Any]]:
    runs: list[dict[str, Any]] = []
    params: dict[str, Any] = {"limit": limit}
    for _ in range(10_000):
        response = api.get("/runs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["runs"]) <= limit
        runs += page["runs"]
        if page["next_cursor"] is None:
            return runs
        assert page["runs"], "a page with a next cursor must not be empty"
        params = {"limit": limit, "cursor": page["next_cursor"]}
    raise AssertionError("pagination never ended")


def test_list_runs_is_oldest_first_and_pages_cover_every_run_once(api: httpx.Client, run_id: str) -> None:
    mine = [f"{run_id}-{i}" for i in range(5)]
    for i, each in enumerate(mine):
        create_run(api, each, {"schedule": {"type": "constant", "learning_rate": 0.1 * (i + 1)}})
    api.delete(f"/runs/{mine[2]}")
    expected = [mine[0], mine[1], mine[3], mine[4]]

    everything = _all_runs(api, limit=1000)
    paged = _all_runs(api, limit=2)

    ids = [run["run_id"] for run in everything]
    assert [each for each in ids if each in mine] == expected
    assert len(ids) == len(set(ids))
    assert paged == everything
    listed = {run["run_id"]: run for run in everything}
    assert listed[mine[3]]["spec"]["schedule"] == {"type": "constant", "learning_rate": 0.4}
    assert set(listed[mine[0]]) >= {"run_id", "spec", "created_at", "latest_step", "version"}
    created = [run["created_at"] for run in everything]
    assert all(is_iso8601(each) for each in created)


def test_list_runs_with_limit_1_gives_one_run_and_a_cursor(api: httpx.Client, run_id: str) -> None:
    create_run(api, f"{run_id}-a", {"schedule": EXPONENTIAL})
    create_run(api, f"{run_id}-b", {"schedule": EXPONENTIAL})

    page = api.get("/runs", params={"limit": 1}).json()

    assert len(page["runs"]) == 1
    assert isinstance(page["next_cursor"], str)


def test_list_runs_defaults_to_pages_of_100(api: httpx.Client, run_id: str) -> None:
    existing = len(_all_runs(api, limit=1000))
    for i in range(101 - existing):
        create_run(api, f"{run_id}-{i}", {"schedule": EXPONENTIAL})

    page = api.get("/runs").json()

    assert len(page["runs"]) == 100
    assert page["next_cursor"] is not None


def test_list_shows_the_latest_step_of_each_run(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    accepted(api, run_id, 4, {"val_loss": 1.0})

    listed = {run["run_id"]: run for run in _all_runs(api, limit=1000)}

    assert listed[run_id]["latest_step"] == 4


def test_every_write_bumps_the_version_by_one(api: httpx.Client, run_id: str) -> None:
    version = create_run(api, run_id, HALVING_PLATEAU)["version"]

    accepted(api, run_id, 0, {"val_loss": 1.0})
    accepted(api, run_id, 1, {"val_loss": 1.0})

    assert api.get(f"/runs/{run_id}").json()["version"] == version + 2
