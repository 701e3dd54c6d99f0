"""GET /metrics: Prometheus counts what the service did, by route template, in one process or summed over several."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from support import HALVING_PLATEAU, Server, accepted, create_run, lr_at, report, running_server

Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def scrape(api: httpx.Client) -> Samples:
    response = api.get("/metrics")
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


def total(samples: Samples, name: str, **labels: str) -> float:
    """The sum over every series of `name` whose labels include `labels`."""
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def delta(before: Samples, after: Samples, name: str, **labels: str) -> float:
    return value(after, name, **labels) - value(before, name, **labels)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running_server(f"sqlite:///{tmp_path_factory.mktemp('prometheus') / 'lrserve.db'}") as server:
        yield server


@pytest.fixture
def api(served: Server) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=served.url, timeout=30.0) as client:
        yield client


def play_a_training_story(api: httpx.Client, first: str, second: str) -> Counter[tuple[str, str, str]]:
    """2 runs, 5 new reports of which 2 reduce, 1 repeat, 1 conflict, 1 rewind, 1 revision, 1 delete, 3 lr reads;
    returns the (method, route template, status) of every request made."""
    made: Counter[tuple[str, str, str]] = Counter()
    create_run(api, first, HALVING_PLATEAU)
    create_run(api, second, HALVING_PLATEAU)
    made["PUT", "/runs/{run_id}", "201"] += 2
    reduced = [accepted(api, first, step, {"val_loss": loss})["reduced"]
               for step, loss in [(0, 1.0), (1, 1.0), (2, 0.5), (3, 0.9)]]  # patience 1: steps 1 and 3 reduce
    reduced.append(accepted(api, second, 0, {"val_loss": 1.0})["reduced"])
    assert reduced == [False, True, False, True, False]
    assert accepted(api, first, 3, {"val_loss": 0.9})["reduced"] is True  # the repeat: the original outcome
    made["POST", "/runs/{run_id}/metrics", "200"] += 6
    assert report(api, first, 3, {"val_loss": 0.8}).status_code == 409
    made["POST", "/runs/{run_id}/metrics", "409"] += 1
    for step in (0, 2, 5):
        lr_at(api, first, step)
    made["GET", "/runs/{run_id}/lr", "200"] += 3
    assert api.post(f"/runs/{first}/rewind", json={"step": 1}).status_code == 200
    made["POST", "/runs/{run_id}/rewind", "200"] += 1
    revision = {"from_step": 10, "schedule": {"type": "constant", "learning_rate": 0.01}, "reason": "story"}
    assert api.post(f"/runs/{second}/revisions", json=revision).status_code == 201
    made["POST", "/runs/{run_id}/revisions", "201"] += 1
    assert api.delete(f"/runs/{second}").status_code == 204
    made["DELETE", "/runs/{run_id}", "204"] += 1
    return made


def test_a_training_story_moves_every_counter_by_exactly_what_happened(api: httpx.Client, run_id: str) -> None:
    before = scrape(api)
    made = play_a_training_story(api, f"{run_id}-a", f"{run_id}-b")
    after = scrape(api)

    assert {
        "runs created": delta(before, after, "lrserve_runs_created_total"),
        "reports accepted": delta(before, after, "lrserve_reports_accepted_total"),
        "reductions": delta(before, after, "lrserve_reductions_total"),
        "report repeats": delta(before, after, "lrserve_repeats_total", kind="report"),
        "report conflicts": delta(before, after, "lrserve_conflicts_total", kind="report"),
        "rewinds": delta(before, after, "lrserve_rewinds_total"),
        "revisions": delta(before, after, "lrserve_revisions_total"),
        "runs deleted": delta(before, after, "lrserve_runs_deleted_total"),
    } == {
        "runs created": 1 + 1, "reports accepted": 5, "reductions": 2, "report repeats": 1, "report conflicts": 1,
        "rewinds": 1, "revisions": 1, "runs deleted": 1,
    }
    made["GET", "/metrics", "200"] += 1  # the first scrape; a scrape is counted once it has been answered
    for (method, route, status), count in made.items():
        assert delta(before, after, "lrserve_http_requests_total", method=method, route=route, status=status) \
            == count, (method, route, status)


def test_the_latency_histogram_counts_every_request_once(api: httpx.Client, run_id: str) -> None:
    before = scrape(api)
    made = play_a_training_story(api, f"{run_id}-a", f"{run_id}-b")
    after = scrape(api)

    requests = sum(made.values()) + 1  # and the first scrape
    count = "lrserve_http_request_duration_seconds_count"
    assert total(after, count) - total(before, count) == requests
    assert total(after, "lrserve_http_requests_total") - total(before, "lrserve_http_requests_total") == requests
    assert delta(before, after, count, method="GET", route="/runs/{run_id}/lr") == 3
    infinite = "lrserve_http_request_duration_seconds_bucket"
    assert delta(before, after, infinite, method="GET", route="/runs/{run_id}/lr", le="+Inf") == 3


def test_no_label_carries_a_run_id_or_a_raw_path(api: httpx.Client, run_id: str) -> None:
    play_a_training_story(api, f"{run_id}-a", f"{run_id}-b")
    assert api.get(f"/no/such/{run_id}").status_code == 404
    samples = scrape(api)

    labels = {(name, label): v for (name, found), _ in samples.items() for label, v in found}
    assert not [key for key, v in labels.items() if run_id in v]
    routes = {v for (name, label), v in labels.items() if label == "route"}
    assert routes <= {"/runs/{run_id}", "/runs/{run_id}/metrics", "/runs/{run_id}/lr", "/runs/{run_id}/rewind",
                      "/runs/{run_id}/revisions", "/runs/{run_id}/lr/range", "/runs", "/healthz", "/readyz",
                      "/metrics", "unmatched"}, routes
    assert value(samples, "lrserve_http_requests_total", method="GET", route="unmatched", status="404") >= 1


def test_conflicts_are_counted_by_kind(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    accepted(api, run_id, 5, {"val_loss": 1.0})
    before = scrape(api)

    assert api.put(f"/runs/{run_id}", json={"schedule": {"type": "constant", "learning_rate": 0.2}}).status_code == 409
    revision = {"from_step": 5, "schedule": {"type": "constant", "learning_rate": 0.01}, "reason": "too early"}
    assert api.post(f"/runs/{run_id}/revisions", json=revision).status_code == 409
    assert report(api, run_id, 4, {"val_loss": 1.0}).status_code == 409
    assert api.put(f"/runs/{run_id}", json=HALVING_PLATEAU).status_code == 200
    after = scrape(api)

    assert {kind: delta(before, after, "lrserve_conflicts_total", kind=kind) for kind in ("spec", "revision", "report")} \
        == {"spec": 1, "revision": 1, "report": 1}
    assert delta(before, after, "lrserve_repeats_total", kind="spec") == 1
    assert delta(before, after, "lrserve_runs_created_total") == 0


def test_simultaneous_identical_reports_count_one_accepted_and_the_rest_as_repeats(
    api: httpx.Client, served: Server, run_id: str
) -> None:
    """Every worker of a job sends the same all-reduced report at once: exactly one of them is new."""
    create_run(api, run_id, HALVING_PLATEAU)
    workers = 8
    barrier = threading.Barrier(workers)

    def worker(_: int) -> dict[str, object]:
        with httpx.Client(base_url=served.url, timeout=30.0) as own:
            barrier.wait()
            return accepted(own, run_id, 0, {"val_loss": 0.7})

    before = scrape(api)
    with ThreadPoolExecutor(workers) as pool:
        outcomes = list(pool.map(worker, range(workers)))
    after = scrape(api)

    assert all(outcome == outcomes[0] for outcome in outcomes)
    assert delta(before, after, "lrserve_reports_accepted_total") == 1
    assert delta(before, after, "lrserve_repeats_total", kind="report") == workers - 1


def test_settled_lr_reads_are_answered_from_memory_and_later_ones_ask_the_database(
    api: httpx.Client, run_id: str
) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    accepted(api, run_id, 10, {"val_loss": 1.0})
    lr_at(api, run_id, 11)
    start = scrape(api)
    for step in range(5):  # settled by the report at step 10
        lr_at(api, run_id, step)
    settled = scrape(api)
    for step in (11, 12, 13):  # a report could still change them
        lr_at(api, run_id, step)
    unsettled = scrape(api)

    lookups = "lrserve_view_cache_lookups_total"
    # memory answers settled reads while the process's event-log lease is fresh, which a loaded machine may
    # let lapse now and then: so most, but not necessarily all, of them are hits
    assert delta(start, settled, lookups, result="hit") + delta(start, settled, lookups, result="miss") == 5
    assert delta(start, settled, lookups, result="hit") >= 1
    assert delta(settled, unsettled, lookups, result="hit") == 0
    assert delta(settled, unsettled, lookups, result="miss") == 3
    assert value(unsettled, "lrserve_view_cache_runs") >= 1


def test_the_build_info_names_the_version_healthz_reports(api: httpx.Client) -> None:
    version = api.get("/healthz").json()["version"]
    samples = scrape(api)

    builds = [dict(found) for (name, found) in samples if name == "lrserve_build_info"]
    assert [b["version"] for b in builds] == [version]
    assert value(samples, "lrserve_build_info", **builds[0]) == 1


def test_with_a_multiprocess_directory_metrics_add_up_over_processes(tmp_path: Path) -> None:
    """Two processes on one database and one PROMETHEUS_MULTIPROC_DIR, as `serve --workers N` runs them:
    each one's /metrics counts the requests of both; a process that stops no longer counts in the gauges."""
    directory = tmp_path / "prometheus"
    directory.mkdir()
    database = f"sqlite:///{tmp_path / 'lrserve.db'}"
    env = {"PROMETHEUS_MULTIPROC_DIR": str(directory)}
    with running_server(database, env=env) as one:
        with httpx.Client(base_url=one.url, timeout=30.0) as first:
            with running_server(database, env=env) as two, httpx.Client(base_url=two.url, timeout=30.0) as second:
                create_run(first, "shared-a", HALVING_PLATEAU)
                create_run(second, "shared-b", HALVING_PLATEAU)
                accepted(second, "shared-a", 0, {"val_loss": 1.0})
                lr_at(first, "shared-b", 0)
                both = scrape(first)
                assert scrape(second)[("lrserve_runs_created_total", frozenset())] == 2

            alone = scrape(first)

    assert value(both, "lrserve_runs_created_total") == 2
    assert value(both, "lrserve_reports_accepted_total") == 1
    assert value(both, "lrserve_http_requests_total", method="PUT", route="/runs/{run_id}", status="201") == 2
    assert value(both, "lrserve_view_cache_runs") == 2 + 2  # each process holds both runs' views
    assert value(alone, "lrserve_runs_created_total") == 2  # counters outlive the process that counted
    assert value(alone, "lrserve_view_cache_runs") == 2  # gauges count live processes only
