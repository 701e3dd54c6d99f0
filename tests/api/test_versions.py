"""Every run-scoped response says the run's version, so clients can tell when their cache is stale."""

from __future__ import annotations

import httpx

SPEC = {"schedule": {"type": "constant", "learning_rate": 0.1},
        "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1}}


def version(response: httpx.Response) -> int:
    return int(response.headers["X-Run-Version"])


def test_each_accepted_write_moves_the_version_and_reads_report_it(api: httpx.Client, run_id: str) -> None:
    assert version(api.put(f"/runs/{run_id}", json=SPEC)) == 0
    assert version(api.get(f"/runs/{run_id}/lr", params={"step": 3})) == 0
    assert version(api.post(f"/runs/{run_id}/metrics", json={"step": 0, "metrics": {"val_loss": 1.0}})) == 1
    assert version(api.get(f"/runs/{run_id}/lr/range", params={"stop": 5})) == 1
    repeat = api.post(f"/runs/{run_id}/metrics", json={"step": 0, "metrics": {"val_loss": 1.0}})
    assert version(repeat) == 1, "an exact repeat changes nothing, not even the version"
    assert version(api.post(f"/runs/{run_id}/revisions",
                            json={"from_step": 5, "schedule": {"type": "constant", "learning_rate": 0.2}})) == 2
    assert version(api.post(f"/runs/{run_id}/rewind", json={"step": -1})) == 3
    assert version(api.get(f"/runs/{run_id}/metrics")) == 3


def test_get_run_answers_304_while_the_etag_still_matches(api: httpx.Client, run_id: str) -> None:
    api.put(f"/runs/{run_id}", json=SPEC)
    etag = api.get(f"/runs/{run_id}").headers["ETag"]
    assert api.get(f"/runs/{run_id}", headers={"If-None-Match": etag}).status_code == 304
    api.post(f"/runs/{run_id}/metrics", json={"step": 0, "metrics": {"val_loss": 1.0}})
    fresh = api.get(f"/runs/{run_id}", headers={"If-None-Match": etag})
    assert fresh.status_code == 200
    assert fresh.headers["ETag"] != etag


def test_a_run_created_again_never_matches_the_etag_of_its_predecessor(api: httpx.Client, run_id: str) -> None:
    api.put(f"/runs/{run_id}", json=SPEC)
    etag = api.get(f"/runs/{run_id}").headers["ETag"]
    api.delete(f"/runs/{run_id}")
    api.put(f"/runs/{run_id}", json={"schedule": {"type": "constant", "learning_rate": 0.2}})
    again = api.get(f"/runs/{run_id}", headers={"If-None-Match": etag})
    assert again.status_code == 200
    assert again.json()["spec"]["schedule"]["learning_rate"] == 0.2
