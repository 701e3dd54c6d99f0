"""Mistakes where curl users trip get a `detail` that says how to fix them: the field as the user wrote
it, the allowed values, the nearest known name for a typo."""

from __future__ import annotations

import httpx
import pytest

TYPES = ("constant, exponential_decay, inverse_time_decay, polynomial_decay, piecewise_constant, cosine_decay, "
         "cosine_decay_restarts, step_decay, multistep_decay, linear, one_cycle, cyclic, inverse_sqrt, "
         "warmup_stable_decay, sequence, product, expression")
JSON = {"content-type": "application/json"}


def detail(response: httpx.Response, status: int = 422) -> str:
    assert response.status_code == status, response.text
    return response.json()["detail"]


def test_a_body_sent_without_a_content_type_is_told_to_send_one(api: httpx.Client, run_id: str) -> None:
    response = api.put(f"/runs/{run_id}", content=b'{"schedule": {"type": "constant", "learning_rate": 0.1}}')
    assert "send the header 'Content-Type: application/json'" in detail(response)


def test_a_body_that_is_not_json_is_named_with_an_example(api: httpx.Client, run_id: str) -> None:
    message = detail(api.put(f"/runs/{run_id}", content=b"{bad", headers=JSON))
    assert message.startswith("body: is not valid JSON (")
    assert 'e.g. {"schedule": {"type": "constant"' in message


def test_an_empty_body_is_named_as_such(api: httpx.Client, run_id: str) -> None:
    message = detail(api.post(f"/runs/{run_id}/metrics", content=b"", headers=JSON))
    assert message == 'body: is empty; send a JSON object, e.g. {"step": 0, "metrics": {"val_loss": 0.5}}'


def test_a_schedule_without_a_type_lists_the_types(api: httpx.Client, run_id: str) -> None:
    message = detail(api.put(f"/runs/{run_id}", json={"schedule": {"learning_rate": 0.1}}))
    assert message == f"schedule.type: is missing; say which schedule, one of: {TYPES}"


def test_a_misspelt_type_gets_the_nearest_one(api: httpx.Client, run_id: str) -> None:
    message = detail(api.put(f"/runs/{run_id}", json={"schedule": {"type": "cosine_decy", "initial_learning_rate": 1}}))
    assert message.startswith("schedule.type: unknown type 'cosine_decy' (did you mean 'cosine_decay'?); one of: ")


def test_a_misspelt_plateau_field_is_named_as_written_with_the_nearest_field(api: httpx.Client, run_id: str) -> None:
    spec = {"schedule": {"type": "constant", "learning_rate": 0.1},
            "plateau": {"monitor": "val_loss", "patiance": 3}}
    message = detail(api.put(f"/runs/{run_id}", json=spec))
    assert message.startswith("plateau.patiance: unknown field (did you mean 'patience'?); known fields here: ")
    assert "keras" not in message


def test_a_typo_deep_in_a_sequence_is_named_by_its_path(api: httpx.Client, run_id: str) -> None:
    spec = {"schedule": {"type": "sequence", "boundaries": [5], "schedules": [
        {"type": "constant", "learning_rate": 0.1}, {"type": "constant", "learnin_rate": 0.01}]}}
    message = detail(api.put(f"/runs/{run_id}", json=spec))
    assert message == ("schedule.schedules.1.learning_rate: is required; schedule.schedules.1.learnin_rate: "
                       "unknown field (did you mean 'learning_rate'?); known fields here: type, learning_rate")


def test_a_misspelt_top_level_field_lists_the_bodys_fields(api: httpx.Client, run_id: str) -> None:
    message = detail(api.post(f"/runs/{run_id}/rewind", json={"stpe": 3}))
    assert message == "step: is required; stpe: unknown field (did you mean 'step'?); known fields here: step"


def test_a_run_id_with_a_slash_is_told_what_a_run_id_may_hold(api: httpx.Client) -> None:
    message = detail(api.get("/runs/team/run-1/lr", params={"step": 0}), status=404)
    assert "run ids are 1 to 128 characters of A-Z a-z 0-9 . _ - (no '/')" in message
