"""Runs: create, read, list and delete; PUT is idempotent for the same spec."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support import HALVING_PLATEAU, INITIAL_STATE, accepted, create_run, is_iso8601

EXPONENTIAL = {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 1000, "decay_rate": 0.96}


def as_read(put_answer: dict[str, Any]) -> dict[str, Any]:
    """What GET answers for the run a PUT answered: the same, without the PUT's `warnings`."""
    assert put_answer["warnings"] == []
    return {name: value for name, value in put_answer.items() if name != "warnings"}


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
    assert body["warnings"] == []


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
    assert response.json() == as_read(created)


def test_put_again_with_the_same_spec_returns_200_and_changes_nothing(api: httpx.Client, run_id: str) -> None:
    created = create_run(api, run_id, {"schedule": EXPONENTIAL})

    again = api.put(f"/runs/{run_id}", json={"schedule": EXPONENTIAL})

    assert again.status_code == 200
    assert again.json() == created
    assert api.get(f"/runs/{run_id}").json() == as_read(created)


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
    assert api.get(f"/runs/{run_id}").json() == as_read(created)


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


def _pages(api: httpx.Client, limit: int, **query: str) -> list[list[dict[str, Any]]]:
    """Every page of GET /runs, following next_cursor."""
    pages: list[list[dict[str, Any]]] = []
    params: dict[str, Any] = {"limit": limit, **query}
    for _ in range(10_000):
        response = api.get("/runs", params=params)
        assert response.status_code == 200, response.text
        page = response.json()
        assert len(page["runs"]) <= limit
        pages.append(page["runs"])
        if page["next_cursor"] is None:
            return pages
        assert page["runs"], "a page with a next cursor must not be empty"
        params = {**params, "cursor": page["next_cursor"]}
    raise AssertionError("pagination never ended")


def _all_runs(api: httpx.Client, limit: int, **query: str) -> list[dict[str, Any]]:
    return [run for page in _pages(api, limit, **query) for run in page]


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


# Ids that share prefixes and hold every character an id may have besides letters and digits.
SUFFIXES = ["a_b", "ab", "a-b", "a.b", "A_b", "a_", "a", "a_b_c", "b_a", "az", "a.b-c_d"]


@pytest.mark.parametrize(("prefix", "expected"), [
    pytest.param("a_", ["a_b", "a_", "a_b_c"], id="underscore-is-no-wildcard"),
    pytest.param("a_b", ["a_b", "a_b_c"], id="a-whole-id-and-longer-ones"),
    pytest.param("a.", ["a.b", "a.b-c_d"], id="dot-is-no-wildcard"),
    pytest.param("a-", ["a-b"], id="dash"),
    pytest.param("A", ["A_b"], id="case-sensitive"),
    pytest.param("a", ["a_b", "ab", "a-b", "a.b", "a_", "a", "a_b_c", "az", "a.b-c_d"], id="one-letter"),
    pytest.param("a.b-c_d", ["a.b-c_d"], id="the-whole-of-one-id"),
    pytest.param("c", [], id="no-match"),
])
def test_prefix_lists_only_the_runs_whose_id_starts_with_it_oldest_first(
    api: httpx.Client, run_id: str, prefix: str, expected: list[str]
) -> None:
    for suffix in SUFFIXES:
        create_run(api, f"{run_id}.{suffix}", {"schedule": EXPONENTIAL})

    listed = _all_runs(api, limit=1000, prefix=f"{run_id}.{prefix}")

    assert [run["run_id"] for run in listed] == [f"{run_id}.{each}" for each in expected]


def test_pages_of_a_prefix_follow_the_cursor_to_the_end(api: httpx.Client, run_id: str) -> None:
    matching = [f"{run_id}_x{i}" for i in range(7)]
    for i, each in enumerate(matching):
        create_run(api, each, {"schedule": EXPONENTIAL})
        create_run(api, f"{run_id}-x{i}", {"schedule": EXPONENTIAL})  # between them, never listed

    pages = _pages(api, limit=3, prefix=f"{run_id}_")

    assert [[run["run_id"] for run in page] for page in pages] == [matching[:3], matching[3:6], matching[6:]]
    (listed,) = _pages(api, limit=1000, prefix=f"{run_id}_")
    assert listed == [run for page in pages for run in page]
    assert listed[0]["spec"]["schedule"] == {**EXPONENTIAL, "staircase": False}
    assert set(listed[0]) == {"run_id", "spec", "created_at", "latest_step", "version"}


@pytest.mark.parametrize("prefix", [
    pytest.param("", id="empty"),
    pytest.param("a%", id="percent"),
    pytest.param("a*", id="star"),
    pytest.param("a b", id="space"),
    pytest.param("a/b", id="slash"),
    pytest.param("é", id="non-ascii-letter"),
    pytest.param("x" * 129, id="129-characters"),
])
def test_a_prefix_that_no_run_id_could_start_with_is_422_naming_prefix(api: httpx.Client, prefix: str) -> None:
    response = api.get("/runs", params={"prefix": prefix})

    assert response.status_code == 422, response.text
    assert "prefix" in response.json()["detail"]


def test_a_prefix_of_128_characters_is_accepted(api: httpx.Client, run_id: str) -> None:
    full = run_id + "x" * (128 - len(run_id))
    create_run(api, full, {"schedule": EXPONENTIAL})

    listed = _all_runs(api, limit=1000, prefix=full)

    assert [run["run_id"] for run in listed] == [full]


@pytest.mark.parametrize("cursor", [
    pytest.param("99999999999999999999", id="beyond-64-bits"),
    pytest.param("9223372036854775808", id="just-beyond-64-bits"),
    pytest.param("9" * 5000, id="5000-digits"),
    pytest.param("²", id="superscript-two"),
    pytest.param("١٢", id="arabic-indic-digits"),
    pytest.param("-1", id="negative"),
    pytest.param("+1", id="plus-sign"),
    pytest.param(" 1", id="space"),
    pytest.param("1.0", id="decimal"),
    pytest.param("0x10", id="hex"),
    pytest.param("", id="empty"),
])
def test_a_cursor_this_api_never_returns_is_422_naming_cursor(api: httpx.Client, cursor: str) -> None:
    response = api.get("/runs", params={"cursor": cursor})

    assert response.status_code == 422, response.text
    assert "cursor" in response.json()["detail"]
    assert "next_cursor" in response.json()["detail"], "the detail says where a valid cursor comes from"


def test_the_largest_64_bit_cursor_is_past_every_run(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": EXPONENTIAL})

    response = api.get("/runs", params={"cursor": str(2**63 - 1)})

    assert response.status_code == 200, response.text
    assert response.json() == {"runs": [], "next_cursor": None}


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
