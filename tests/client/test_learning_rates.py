"""LearningRates: few requests, and never a learning rate the service would not give at the last revalidation."""

from __future__ import annotations

import random
from typing import Any

import httpx
import lrclient
import pytest
from lrclient import LearningRates

from support import HALVING_PLATEAU, PIECEWISE, CountingTransport

BATCHES = {**PIECEWISE, "step_unit": "batch"}


def service_lr(api: httpx.Client, run_id: str, step: int) -> float:
    response = api.get(f"/runs/{run_id}/lr", params={"step": step})
    assert response.status_code == 200, response.text
    return response.json()["lr"]


def test_lookups_within_the_horizon_cost_one_request(client: lrclient.Client, counting: CountingTransport,
                                                     run_id: str) -> None:
    client.create_run(run_id, BATCHES)
    rates = LearningRates(client, run_id, horizon=100)
    assert rates.step_unit == "batch"
    before = len(counting.requests)
    values = [rates.lr(step) for step in range(100)]
    assert values == [0.3] * 3 + [0.2] * 2 + [0.1] * 95
    assert len(counting.requests) - before == 1 and counting.paths("/lr/range") == 1
    rates.lr(100)
    assert counting.paths("/lr/range") == 2, "the next horizon is one more request"


def test_settled_steps_are_never_fetched_again(client: lrclient.Client, counting: CountingTransport,
                                               other: lrclient.Client, run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    rates = LearningRates(client, run_id, horizon=5)
    first = [rates.lr(step) for step in range(5)]
    rates.report(4, {"val_loss": 1.0})
    other.report(run_id, 5, {"val_loss": 2.0})  # another worker goes on, and reduces the lr after step 5
    other.revise(run_id, 20, {"type": "constant", "learning_rate": 0.01})
    rates.refresh()
    settled_requests = len(counting.requests)
    assert [rates.lr(step) for step in range(5)] == first == [0.1] * 5
    assert len(counting.requests) == settled_requests, "steps 0-4 are settled: served from memory"
    assert rates.lr(6) == 0.05


def test_a_report_settles_its_step_and_caches_the_next_lr(client: lrclient.Client, counting: CountingTransport,
                                                          run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    rates = LearningRates(client, run_id)
    assert rates.lr(0) == 0.1
    rates.report(0, {"val_loss": 1.0})
    outcome = rates.report(1, {"val_loss": 2.0})
    before = len(counting.requests)
    assert rates.lr(2) == outcome.next_lr == 0.05
    rates.refresh()
    assert rates.lr(2) == 0.05
    assert counting.requests[before:] == [("GET", f"/runs/{run_id}")], "a 304 revalidation, nothing else"
    assert rates.version == 2


def test_a_report_drops_the_provisional_values_it_may_have_reduced(client: lrclient.Client, api: httpx.Client,
                                                                   run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    rates = LearningRates(client, run_id, horizon=10)
    assert [rates.lr(step) for step in range(10)] == [0.1] * 10
    rates.report(0, {"val_loss": 1.0})
    rates.report(1, {"val_loss": 2.0})
    assert [rates.lr(step) for step in range(10)] == [0.1, 0.1] + [0.05] * 8
    assert [rates.lr(step) for step in range(10)] == [service_lr(api, run_id, s) for s in range(10)]


def test_a_report_by_another_client_is_seen_after_refresh(client: lrclient.Client, counting: CountingTransport,
                                                          other: lrclient.Client, run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    rates = LearningRates(client, run_id, horizon=10)
    assert rates.lr(3) == 0.1
    other.report(run_id, 0, {"val_loss": 1.0})
    other.report(run_id, 1, {"val_loss": 2.0})
    before = len(counting.requests)
    rates.lr(4)
    assert len(counting.requests) == before, "between revalidations the cache answers"
    rates.refresh()
    assert [rates.lr(step) for step in range(1, 5)] == [0.1, 0.05, 0.05, 0.05]


def test_a_rewind_by_another_client_is_seen_after_refresh(client: lrclient.Client, other: lrclient.Client,
                                                          api: httpx.Client, run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    rates = LearningRates(client, run_id, horizon=6)
    for step, loss in enumerate([1.0, 2.0, 3.0, 4.0]):  # every report after the first halves the lr
        rates.report(step, {"val_loss": loss})
    before = [rates.lr(step) for step in range(6)]
    assert before == [0.1, 0.1, 0.05, 0.025, 0.0125, 0.0125]
    # Another worker resumes from a checkpoint at step 1 and reports steps 2 and 3 again, differently:
    # same latest step and same number of reports as before, yet lr(3) and later have changed.
    other.rewind(run_id, 1)
    other.report(run_id, 2, {"val_loss": 0.5})
    other.report(run_id, 3, {"val_loss": 0.25})
    rates.refresh()
    after = [rates.lr(step) for step in range(6)]
    assert after == [service_lr(api, run_id, step) for step in range(6)] == [0.1, 0.1, 0.05, 0.05, 0.05, 0.05]


def test_a_rewind_below_the_settled_steps_is_seen_after_refresh(client: lrclient.Client, other: lrclient.Client,
                                                                run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    rates = LearningRates(client, run_id, horizon=4)
    for step, loss in enumerate([1.0, 2.0, 3.0]):
        rates.report(step, {"val_loss": loss})
    assert rates.lr(3) == 0.025
    other.rewind(run_id, -1)
    rates.refresh()
    assert [rates.lr(step) for step in range(4)] == [0.1] * 4


def test_a_run_deleted_and_created_again_is_seen_after_refresh(client: lrclient.Client, other: lrclient.Client,
                                                               run_id: str) -> None:
    client.create_run(run_id, PIECEWISE)
    rates = LearningRates(client, run_id, horizon=10)
    assert rates.lr(0) == 0.3
    other.delete_run(run_id)
    other.create_run(run_id, HALVING_PLATEAU)
    rates.refresh()
    assert rates.lr(0) == 0.1 and rates.plateau is not None


def test_a_run_without_a_tracker_costs_at_most_three_requests_an_epoch(
    client: lrclient.Client, counting: CountingTransport, run_id: str
) -> None:
    client.create_run(run_id, BATCHES)
    steps_per_epoch = 50
    rates = LearningRates(client, run_id, horizon=steps_per_epoch)
    per_epoch = []
    for epoch in range(4):
        before = len(counting.requests)
        rates.refresh()
        for batch in range(steps_per_epoch):
            rates.lr(epoch * steps_per_epoch + batch)
        rates.report((epoch + 1) * steps_per_epoch - 1, {"loss": 1.0 / (epoch + 1)})
        per_epoch.append(len(counting.requests) - before)
    assert max(per_epoch[1:]) <= 3, per_epoch
    assert rates.lr(2) == 0.3 and rates.lr(150) == 0.1


def test_a_revision_by_another_client_is_seen_after_refresh(client: lrclient.Client, other: lrclient.Client,
                                                            run_id: str) -> None:
    client.create_run(run_id, BATCHES)
    rates = LearningRates(client, run_id, horizon=100)
    rates.report(9, {"loss": 1.0})
    assert rates.lr(50) == 0.1
    other.revise(run_id, 40, {"type": "constant", "learning_rate": 0.7})
    rates.refresh()
    assert (rates.lr(39), rates.lr(40), rates.lr(50), rates.lr(2)) == (0.1, 0.7, 0.7, 0.3)


def test_another_workers_write_between_sync_and_report_is_not_mistaken_for_ours(
    client: lrclient.Client, other: lrclient.Client, api: httpx.Client, run_id: str
) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    rates = LearningRates(client, run_id, horizon=10)
    assert rates.lr(5) == 0.1  # steps 5-14 cached while nothing is reported
    other.revise(run_id, 3, {"type": "constant", "learning_rate": 0.4})
    rates.report(6, {"val_loss": 1.0})
    steps = [6, 5, 7, 4, 3]  # the cached ones first
    assert [rates.lr(step) for step in steps] == [service_lr(api, run_id, s) for s in steps] == [0.4] * 5


def test_a_repeated_report_changes_nothing(client: lrclient.Client, counting: CountingTransport,
                                           run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    rates = LearningRates(client, run_id, horizon=10)
    rates.report(0, {"val_loss": 1.0})
    first = rates.report(1, {"val_loss": 2.0})
    assert rates.report(1, {"val_loss": 2.0}) == first
    before = len(counting.requests)
    assert rates.lr(2) == 0.05
    assert len(counting.requests) == before


def test_a_random_mix_of_workers_never_leaves_a_wrong_lr_after_refresh(
    client: lrclient.Client, other: lrclient.Client, api: httpx.Client, run_id: str
) -> None:
    """Two workers report, rewind and revise at random; after each refresh every lr matches the service."""
    spec = {"schedule": {"type": "step_decay", "initial_learning_rate": 1.0, "step_size": 4, "gamma": 0.5},
            "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1}, "step_unit": "batch"}
    client.create_run(run_id, spec)
    rng = random.Random(4)
    rates = LearningRates(client, run_id, horizon=7)
    latest, revised_from = -1, 0
    for _ in range(60):
        action = rng.choice(["ours", "ours", "theirs", "theirs", "rewind", "revise", "read"])
        step = latest + rng.randint(1, 3)
        metrics: dict[str, Any] = {"val_loss": rng.choice([1.0, 0.5, 2.0, 0.25])}
        if action == "ours":
            rates.report(step, metrics)
            latest = step
        elif action == "theirs":
            other.report(run_id, step, metrics)
            latest = step
        elif action == "rewind" and latest >= 0:
            latest = rng.randint(-1, latest)
            other.rewind(run_id, latest)
        elif action == "revise":
            revised_from = max(latest + 1, revised_from) + rng.randint(0, 3)
            other.revise(run_id, revised_from, {"type": "constant", "learning_rate": rng.choice([0.3, 0.6])})
        for probe in sorted({rng.randrange(0, latest + 12) for _ in range(4)}):
            rates.lr(probe)  # fill the cache at random places between revalidations
        rates.refresh()
        expected = api.get(f"/runs/{run_id}/lr/range", params={"start": 0, "stop": latest + 12}).json()["lr"]
        assert [rates.lr(s) for s in range(latest + 12)] == expected, (action, latest)


def test_a_non_positive_horizon_or_unknown_policy_is_refused(client: lrclient.Client) -> None:
    with pytest.raises(ValueError, match="horizon"):
        LearningRates(client, "run", horizon=0)
    with pytest.raises(ValueError, match="on_error"):
        LearningRates(client, "run", on_error="ignore")  # type: ignore[arg-type]


def test_a_horizon_reaching_past_what_the_run_can_serve_falls_back_to_the_one_step() -> None:
    """E.g. a recursive expression serves steps up to 1,000,000: a range beyond is 422, the step itself is not."""
    run = {"run_id": "r", "spec": {**PIECEWISE, "plateau": None, "step_unit": "batch"}, "state": None,
           "latest_step": None, "reports": 0, "revisions": [], "created_at": "2026-01-01T00:00:00Z", "version": 0}

    def service(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/lr/range"):
            return httpx.Response(422, json={"detail": "stop: beyond the last step this run can serve"})
        if request.url.path.endswith("/lr"):
            return httpx.Response(200, json={"run_id": "r", "step": 999_999, "lr": 0.125})
        return httpx.Response(200, json=run, headers={"X-Run-Version": "0"})

    with lrclient.Client("http://lrserve.test", transport=httpx.MockTransport(service)) as client:
        assert LearningRates(client, "r", horizon=100).lr(999_999) == 0.125
        with pytest.raises(lrclient.InvalidRequest, match="beyond"):
            LearningRates(client, "r", horizon=1).lr(999_999)


def test_a_report_that_reduces_nothing_keeps_the_values_fetched_ahead(
    client: lrclient.Client, counting: CountingTransport, api: httpx.Client, run_id: str
) -> None:
    client.create_run(run_id, {**HALVING_PLATEAU, "step_unit": "batch"})
    rates = LearningRates(client, run_id, horizon=20)
    assert [rates.lr(step) for step in range(5)] == [0.1] * 5
    rates.report(4, {"val_loss": 1.0})  # improves: no reduction
    before = len(counting.requests)
    assert [rates.lr(step) for step in range(5, 20)] == [0.1] * 15
    assert len(counting.requests) == before, "the answer said nothing changed: the prefetch still holds"
    assert rates.report(9, {"val_loss": 2.0}).reduced
    assert [rates.lr(step) for step in range(20)] == [service_lr(api, run_id, s) for s in range(20)]
    assert rates.lr(10) == 0.05


def test_a_refresh_that_sees_only_reports_that_reduced_nothing_keeps_the_cache(
    client: lrclient.Client, counting: CountingTransport, other: lrclient.Client, api: httpx.Client, run_id: str
) -> None:
    client.create_run(run_id, {**HALVING_PLATEAU, "step_unit": "batch"})
    rates = LearningRates(client, run_id, horizon=20)
    assert rates.lr(0) == 0.1
    other.report(run_id, 3, {"val_loss": 1.0})
    other.report(run_id, 6, {"val_loss": 0.5})  # both improve
    rates.refresh()
    before = len(counting.requests)
    assert [rates.lr(step) for step in range(20)] == [0.1] * 20
    assert len(counting.requests) == before
    other.report(run_id, 9, {"val_loss": 0.9})  # reduces from step 10 on
    rates.refresh()
    assert [rates.lr(step) for step in range(20)] == [service_lr(api, run_id, s) for s in range(20)]
    assert rates.lr(10) == 0.05


def test_a_run_body_the_caller_holds_saves_the_first_request(client: lrclient.Client, counting: CountingTransport,
                                                             run_id: str) -> None:
    run = client.create_run(run_id, BATCHES)
    before = len(counting.requests)
    rates = LearningRates(client, run_id, horizon=10, run=run)
    assert rates.step_unit == "batch" and rates.lr(3) == 0.2
    assert counting.requests[before:] == [("GET", f"/runs/{run_id}/lr/range")]
