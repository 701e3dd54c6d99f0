"""`GET /runs/{id}/lr/curve` and `POST /preview`: curves downsampled for display, every point exact, every
reduction and revision kept, the extremes of each bucket kept."""

from __future__ import annotations

import time
from typing import Any

import httpx

from support import HALVING_PLATEAU, accepted, create_run

CYCLIC: dict[str, Any] = {"schedule": {"type": "cyclic", "base_lr": 0.001, "max_lr": 0.1, "step_size_up": 37,
                                       "mode": "triangular2"}, "step_unit": "batch"}


def curve(api: httpx.Client, run_id: str, **query: Any) -> dict[str, Any]:
    response = api.get(f"/runs/{run_id}/lr/curve", params=query)
    assert response.status_code == 200, response.text
    return response.json()


def test_every_point_is_the_lr_of_its_step_and_the_extremes_are_kept(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CYCLIC)

    body = curve(api, run_id, start=0, stop=20_000, points=400)

    every = api.get(f"/runs/{run_id}/lr/range", params={"start": 0, "stop": 20_000}).json()["lr"]
    assert len(body["steps"]) <= 402 and body["steps"] == sorted(set(body["steps"]))
    assert body["lr"] == [every[s] for s in body["steps"]]
    assert body["steps"][0] == 0 and body["steps"][-1] == 19_999
    buckets = 100  # points / 4, each of 200 steps
    for b in range(buckets):
        kept = [lr for s, lr in zip(body["steps"], body["lr"]) if 200 * b <= s < 200 * (b + 1)]
        assert min(kept) == min(every[200 * b:200 * (b + 1)]) and max(kept) == max(every[200 * b:200 * (b + 1)])


def test_reductions_and_revisions_are_kept_with_the_step_before(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    for step, loss in enumerate([1.0, 2.0, 3.0]):
        accepted(api, run_id, step, {"val_loss": loss})
    revised = api.post(f"/runs/{run_id}/revisions", json={
        "from_step": 5_003, "schedule": {"type": "constant", "learning_rate": 0.3}})
    assert revised.status_code == 201

    body = curve(api, run_id, points=16)

    assert body["reductions"] == [2, 3] and body["revisions"] == [5_003]
    assert {1, 2, 3, 5_002, 5_003} <= set(body["steps"])
    lr = dict(zip(body["steps"], body["lr"]))
    assert (lr[1], lr[2], lr[3], lr[5_002], lr[5_003]) == (0.1, 0.05, 0.025, 0.025, 0.075)


def test_the_default_extent_covers_the_schedule_and_the_latest_report(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": {"type": "cosine_decay", "initial_learning_rate": 0.1, "decay_steps": 700,
                                          "warmup_target": 0.2, "warmup_steps": 50}})
    assert curve(api, run_id)["stop"] == 750
    accepted(api, run_id, 2_000, {"loss": 1.0})
    assert curve(api, run_id)["stop"] == 2_002


def test_a_curve_of_a_million_steps_is_fast(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": {"type": "cosine_decay", "initial_learning_rate": 0.1,
                                          "decay_steps": 1_000_000}, "step_unit": "batch"})
    curve(api, run_id, points=2_000)  # the first request compiles and caches the run
    started = time.perf_counter()
    body = curve(api, run_id, points=2_000)
    elapsed = time.perf_counter() - started

    assert body["stop"] == 1_000_000 and len(body["steps"]) <= 2_002
    assert elapsed < 1.0, f"{elapsed * 1000:.0f} ms"


def test_a_stop_not_after_start_is_422(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, CYCLIC)
    response = api.get(f"/runs/{run_id}/lr/curve", params={"start": 10, "stop": 10})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("stop: must be greater than start (10)")


def test_an_unknown_run_has_no_curve(api: httpx.Client) -> None:
    assert api.get("/runs/never-made/lr/curve").status_code == 404


def test_a_preview_is_the_curve_of_the_run_it_would_create(api: httpx.Client, run_id: str) -> None:
    preview = api.post("/preview", json=CYCLIC, params={"stop": 5_000, "points": 100})
    assert preview.status_code == 200, preview.text

    created = api.put(f"/runs/{run_id}", json=CYCLIC)
    assert created.status_code == 201, created.text
    previewed = preview.json()
    assert previewed.pop("warnings") == created.json()["warnings"] == []
    assert previewed == {k: v for k, v in curve(api, run_id, stop=5_000, points=100).items() if k != "run_id"}


def test_a_preview_warns_as_the_put_would(api: httpx.Client, run_id: str) -> None:
    ramp = {"schedule": {"type": "exponential_decay", "initial_learning_rate": 1e-7, "decay_steps": 1,
                         "decay_rate": 1.1}, "step_unit": "batch"}
    preview = api.post("/preview", json=ramp, params={"stop": 1_000, "points": 100})
    created = api.put(f"/runs/{run_id}", json=ramp)

    assert preview.status_code == 200, preview.text
    assert preview.json()["warnings"] == created.json()["warnings"] != []


def test_a_preview_stores_nothing(api: httpx.Client) -> None:
    before = api.get("/runs", params={"limit": 1000}).json()["runs"]
    assert api.post("/preview", json=CYCLIC).status_code == 200
    assert api.get("/runs", params={"limit": 1000}).json()["runs"] == before


def test_a_preview_of_a_bad_spec_is_422_at_the_field(api: httpx.Client) -> None:
    response = api.post("/preview", json={"schedule": {"type": "step_decay", "initial_learning_rate": 0.1,
                                                       "step_size": 0}})
    assert response.status_code == 422
    assert response.json()["detail"].startswith("schedule.step_size: ")


def test_a_schedule_without_milestones_has_a_default_extent(api: httpx.Client) -> None:
    """Found by schemathesis: an empty `milestones` list once made the extent a 500."""
    spec = {"schedule": {"type": "multistep_decay", "initial_learning_rate": 0.0, "milestones": []}}
    response = api.post("/preview", json=spec)
    assert response.status_code == 200, response.text
    assert response.json()["stop"] == 100


def test_a_schedule_as_long_as_a_run_can_be_is_previewed_on_a_grid(api: httpx.Client) -> None:
    spec = {"schedule": {"type": "cosine_decay", "initial_learning_rate": 0.1, "decay_steps": 2**52}}
    response = api.post("/preview", json=spec, params={"points": 400})
    assert response.status_code == 200, response.text
    assert response.json()["stop"] == 2**40 + 1 and len(response.json()["steps"]) <= 402


def test_a_preview_refuses_a_recursive_expression_too_costly_as_the_put_does(api: httpx.Client, run_id: str) -> None:
    costly = {"schedule": {"type": "expression", "expression": " + ".join(["lr * lr"] * 20), "recursive": True,
                           "initial_learning_rate": 0.001}}
    preview = api.post("/preview", json=costly)
    created = api.put(f"/runs/{run_id}", json=costly)

    assert (preview.status_code, created.status_code) == (422, 422), (preview.text, created.text)
    assert preview.json()["detail"] == created.json()["detail"]
    assert preview.json()["detail"].startswith("schedule: expression is too costly")
