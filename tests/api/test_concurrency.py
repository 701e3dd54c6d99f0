"""Many workers at once against one run: one decision, the same answer for everyone."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import httpx

from support import HALVING_PLATEAU

WORKERS = 16


def post_from_many_workers(url: str, path: str, bodies: list[dict]) -> list[httpx.Response]:
    def post(body: dict) -> httpx.Response:
        with httpx.Client(base_url=url, timeout=30.0) as client:
            return client.post(path, json=body)

    with ThreadPoolExecutor(max_workers=len(bodies)) as pool:
        return list(pool.map(post, bodies))


def test_the_same_report_from_every_worker_is_accepted_once(server, api: httpx.Client, run_id: str) -> None:
    api.put(f"/runs/{run_id}", json=HALVING_PLATEAU).raise_for_status()
    for step, loss in enumerate([1.0, 1.0, 1.0]):
        body = {"step": step, "metrics": {"val_loss": loss}}
        responses = post_from_many_workers(server.url, f"/runs/{run_id}/metrics", [body] * WORKERS)
        assert {r.status_code for r in responses} == {200}
        assert len({r.text for r in responses}) == 1, "every worker must get the one original outcome"
    reports = api.get(f"/runs/{run_id}/metrics").json()["reports"]
    assert [r["step"] for r in reports] == [0, 1, 2]
    assert api.get(f"/runs/{run_id}").json()["state"]["reductions"] == 2


def test_different_values_for_one_step_are_one_acceptance_and_conflicts(server, api: httpx.Client,
                                                                        run_id: str) -> None:
    api.put(f"/runs/{run_id}", json=HALVING_PLATEAU).raise_for_status()
    bodies = [{"step": 0, "metrics": {"val_loss": 1.0 + worker}} for worker in range(WORKERS)]
    responses = post_from_many_workers(server.url, f"/runs/{run_id}/metrics", bodies)
    statuses = sorted(r.status_code for r in responses)
    assert statuses == [200] + [409] * (WORKERS - 1)
    accepted = next(b for b, r in zip(bodies, responses) if r.status_code == 200)
    assert api.get(f"/runs/{run_id}/metrics").json()["reports"][0]["metrics"] == accepted["metrics"]


def test_readers_during_reports_see_a_history_that_never_changes(server, api: httpx.Client, run_id: str) -> None:
    api.put(f"/runs/{run_id}", json=HALVING_PLATEAU).raise_for_status()
    seen: dict[int, set[float]] = {}

    def read(_: int) -> None:
        with httpx.Client(base_url=server.url, timeout=30.0) as client:
            for step in range(6):
                latest = client.get(f"/runs/{run_id}").json()["latest_step"]
                lr = client.get(f"/runs/{run_id}/lr", params={"step": step}).json()["lr"]
                if latest is not None and step <= latest:  # settled before we read it
                    seen.setdefault(step, set()).add(lr)

    with ThreadPoolExecutor(max_workers=8) as pool:
        readers = [pool.submit(read, i) for i in range(6)]
        for step in range(6):
            api.post(f"/runs/{run_id}/metrics", json={"step": step, "metrics": {"val_loss": 1.0}}).raise_for_status()
        for reader in readers:
            reader.result()
    final = api.get(f"/runs/{run_id}/lr/range", params={"stop": 6}).json()["lr"]
    for step, values in seen.items():
        assert values == {final[step]}, f"step {step} was served {values}, finally {final[step]}"
