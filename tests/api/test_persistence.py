"""Persistence: a server restarted on the same SQLite file serves exactly what it stored."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from support import HALVING_PLATEAU, approx, running_server

PATIENT: dict[str, Any] = {
    "schedule": {"type": "constant", "learning_rate": 0.1},
    "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 3},
    "step_unit": "batch",
}
PIECEWISE = {"schedule": {"type": "piecewise_constant", "boundaries": [10, 20], "values": [1.0, 0.5, 0.1]}}
STEP_DECAY = {"type": "step_decay", "initial_learning_rate": 0.2, "step_size": 2, "gamma": 0.5}


def ok(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return response.json() if response.content else None


def everything(client: httpx.Client, run_ids: list[str]) -> dict[str, Any]:
    """All that a client can observe about the given runs."""
    listed = [run for run in ok(client.get("/runs", params={"limit": 1000}))["runs"] if run["run_id"] in run_ids]
    return {
        "listed": listed,
        "runs": {each: ok(client.get(f"/runs/{each}")) for each in run_ids},
        "metrics": {each: ok(client.get(f"/runs/{each}/metrics")) for each in run_ids},
        "lr": {each: ok(client.get(f"/runs/{each}/lr/range", params={"start": 0, "stop": 40}))["lr"]
               for each in run_ids},
    }


def test_a_restarted_server_serves_every_run_report_state_and_revision(tmp_path: Path, run_id: str) -> None:
    database = f"sqlite:///{tmp_path / 'lrserve.db'}"
    halving, patient, piecewise, deleted = (f"{run_id}-{name}" for name in ("halving", "patient", "pw", "gone"))
    with running_server(database) as server, httpx.Client(base_url=server.url) as client:
        ok(client.put(f"/runs/{halving}", json=HALVING_PLATEAU), 201)
        for step, value in enumerate([1.0, 1.0, 0.5, 0.6]):  # reductions at steps 1 and 3
            ok(client.post(f"/runs/{halving}/metrics", json={"step": step, "metrics": {"val_loss": value}}))
        ok(client.post(f"/runs/{halving}/revisions", json={"from_step": 5, "schedule": STEP_DECAY, "reason": "r"}), 201)
        ok(client.put(f"/runs/{patient}", json=PATIENT), 201)
        for step in range(3):  # best 1.0, then wait 1, wait 2
            ok(client.post(f"/runs/{patient}/metrics", json={"step": step, "metrics": {"val_loss": 1.0}}))
        ok(client.put(f"/runs/{piecewise}", json=PIECEWISE), 201)
        ok(client.put(f"/runs/{deleted}", json=PIECEWISE), 201)
        ok(client.delete(f"/runs/{deleted}"), 204)
        before = everything(client, [halving, patient, piecewise])

    with running_server(database) as server, httpx.Client(base_url=server.url) as client:
        after = everything(client, [halving, patient, piecewise])
        assert after == before
        assert [run["run_id"] for run in after["listed"]] == [halving, patient, piecewise]
        assert after["lr"][halving][:8] == approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.05, 0.05, 0.025])
        assert after["runs"][patient]["state"] == {"best": 1.0, "wait": 2, "cooldown_counter": 0, "reductions": 0}
        assert client.get(f"/runs/{deleted}").status_code == 404

        # the tracker carries on where it stopped: the third bad report in a row reduces
        third = ok(client.post(f"/runs/{patient}/metrics", json={"step": 3, "metrics": {"val_loss": 1.0}}))
        assert (third["reduced"], third["next_lr"]) == (True, approx(0.05))
        # report rules still hold against the stored history
        repeat = ok(client.post(f"/runs/{halving}/metrics", json={"step": 1, "metrics": {"val_loss": 1.0}}))
        listed = before["metrics"][halving]["reports"][1]
        assert repeat == {"run_id": halving, "warnings": []} | {key: listed[key] for key in
                                                                ("step", "next_lr", "reduced", "state")}
        assert repeat["reduced"] is True
        assert client.post(f"/runs/{halving}/metrics",
                           json={"step": 3, "metrics": {"val_loss": 0.7}}).status_code == 409
        assert client.put(f"/runs/{halving}", json=HALVING_PLATEAU).status_code == 200


def test_a_report_answered_200_survives_kill_9(tmp_path: Path, run_id: str) -> None:
    database = f"sqlite:///{tmp_path / 'lrserve.db'}"
    with running_server(database) as server, httpx.Client(base_url=server.url) as client:
        ok(client.put(f"/runs/{run_id}", json=HALVING_PLATEAU), 201)
        outcomes = [ok(client.post(f"/runs/{run_id}/metrics", json={"step": step, "metrics": {"val_loss": 1.0}}))
                    for step in range(5)]
        server.process.kill()
        server.process.wait()

    with running_server(database) as server, httpx.Client(base_url=server.url) as client:
        run = ok(client.get(f"/runs/{run_id}"))
        reports = ok(client.get(f"/runs/{run_id}/metrics"))["reports"]

        assert (run["latest_step"], run["reports"]) == (4, 5)
        assert [(r["step"], r["reduced"], r["next_lr"]) for r in reports] == [
            (o["step"], o["reduced"], o["next_lr"]) for o in outcomes
        ]
        assert run["state"] == outcomes[-1]["state"]
        assert ok(client.get(f"/runs/{run_id}/lr", params={"step": 5}))["lr"] == approx(0.1 * 0.5**4)
