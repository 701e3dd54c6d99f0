"""Client and AsyncClient, the twins: every method against a real lrserve process, with values computed by
hand from simple specs. Each test runs once per twin (the async one behind `support.AwaitedClient`, every
call awaited), so their parity is checked method by method."""

from __future__ import annotations

import math
from collections.abc import Iterator
from pathlib import Path

import httpx
import lrclient
import numpy as np
import pytest

from support import (HALVING_PLATEAU, PIECEWISE, AsyncCountingTransport, CountingTransport, Server, client_twin,
                     free_port, running_server)

TWINS = ["Client", "AsyncClient"]


@pytest.fixture(params=TWINS)
def twin(request: pytest.FixtureRequest) -> str:
    """Which twin the test drives: "Client" or "AsyncClient"."""
    return request.param


@pytest.fixture
def counting(twin: str) -> CountingTransport | AsyncCountingTransport:
    """The real transport of the twin, recording every request (overrides the sync-only conftest one)."""
    return CountingTransport() if twin == "Client" else AsyncCountingTransport()


@pytest.fixture
def client(twin: str, server: Server, counting: CountingTransport) -> Iterator[lrclient.Client]:
    """The twin, of the session's server, whose requests `counting` records; quick retries."""
    with client_twin(twin, server.url, transport=counting, backoff=0.01) as each:
        yield each


def test_every_method_works_in_one_run_from_creation_to_deletion(twin: str, server: Server, run_id: str) -> None:
    with client_twin(twin, server.url) as client:
        assert client.health() is True
        assert client.ready() is True

        created = client.create_run(run_id, HALVING_PLATEAU)
        assert created.created and created.spec["plateau"]["factor"] == 0.5
        assert client.create_run(run_id, HALVING_PLATEAU).created is False
        seen = client.get_run(run_id)
        assert seen.version == 0 and seen.etag is not None
        assert client.get_run_if_changed(run_id, seen.etag) is None

        assert client.lr(run_id, 7) == 0.1
        assert client.lr_range(run_id, 0, 3).lr == (0.1, 0.1, 0.1)

        assert client.report(run_id, 0, {"val_loss": 1.0}).next_lr == 0.1
        worse = client.report(run_id, 1, {"val_loss": math.nan})
        assert (worse.next_lr, worse.reduced, worse.version) == (0.05, True, 2)
        entries = client.reports(run_id)
        assert [e.step for e in entries] == [0, 1] and math.isnan(entries[1].metrics["val_loss"])
        changed = client.get_run_if_changed(run_id, seen.etag)
        assert changed is not None and changed.latest_step == 1

        revision = client.revise(run_id, 10, {"type": "constant", "learning_rate": 0.01}, "tail")
        assert (revision.from_step, revision.reason, revision.created) == (10, "tail", True)
        assert created.warnings == () and revision.warnings == ()
        plateau = client.revise(run_id, 10, plateau={"patience": 2})
        assert (plateau.schedule, plateau.plateau, plateau.created) == (None, {"patience": 2}, True)
        assert client.revise(run_id, 10, plateau={"patience": 2}).created is False
        assert client.lr_range(run_id, 9, 11).lr == (0.05, 0.005), "the plateau factor carries on"
        rewound = client.rewind(run_id, 0)
        assert (rewound.latest_step, rewound.reports, len(rewound.revisions)) == (0, 1, 2)
        assert client.lr(run_id, 5) == 0.1

        others = [f"{run_id}-{i}" for i in range(3)]
        for each in others:
            client.create_run(each, PIECEWISE)
        page = client.list_runs(limit=1)
        assert len(page.runs) == 1 and page.next_cursor is not None
        listed = [r.run_id for r in client.iter_runs(page_size=2) if r.run_id.startswith(run_id)]
        assert listed == [run_id, *others]

        client.delete_run(run_id)
        with pytest.raises(lrclient.NotFound):
            client.get_run(run_id)
        with pytest.raises(lrclient.Conflict):
            client.create_run(others[0], HALVING_PLATEAU)
        with pytest.raises(lrclient.InvalidRequest):
            client.lr(others[0], -1)


def test_create_run_says_whether_it_created_the_run_and_returns_the_normalized_spec(
    client: lrclient.Client, run_id: str
) -> None:
    first = client.create_run(run_id, HALVING_PLATEAU)
    again = client.create_run(run_id, HALVING_PLATEAU)
    assert (first.created, again.created) == (True, False)
    assert first.run_id == run_id
    assert first.spec["step_unit"] == "epoch", "defaults are filled in"
    assert first.spec["plateau"]["patience"] == 1 and first.spec["plateau"]["mode"] == "auto"
    assert (first.latest_step, first.reports, first.revisions, first.version) == (None, 0, (), 0)
    assert first.state == lrclient.TrackerState(best=None, wait=0, cooldown_counter=0, reductions=0)
    assert first.step_unit == "epoch" and first.plateau == first.spec["plateau"]


def test_get_run_reflects_reports_revisions_and_versions(client: lrclient.Client, run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    client.report(run_id, 0, {"val_loss": 1.0})
    client.revise(run_id, 5, {"type": "constant", "learning_rate": 0.2}, reason="longer run")
    run = client.get_run(run_id)
    assert (run.latest_step, run.reports, run.version, run.created) == (0, 1, 2, False)
    assert run.state is not None and run.state.best == 1.0
    (revision,) = run.revisions
    assert (revision.run_id, revision.from_step, revision.reason) == (run_id, 5, "longer run")
    assert revision.schedule["learning_rate"] == 0.2


def test_get_run_if_changed_is_none_until_the_run_changes(client: lrclient.Client, run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    seen = client.get_run(run_id)
    assert seen.etag is not None
    assert client.get_run_if_changed(run_id, seen.etag) is None
    client.report(run_id, 0, {"val_loss": 1.0})
    changed = client.get_run_if_changed(run_id, seen.etag)
    assert changed is not None and changed.version == seen.version + 1 and changed.latest_step == 0
    assert changed.etag not in (None, seen.etag)


def test_delete_run_removes_it(client: lrclient.Client, run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    assert client.delete_run(run_id) is None
    with pytest.raises(lrclient.NotFound):
        client.get_run(run_id)


def test_list_runs_pages_oldest_first_and_iter_runs_walks_every_page(client: lrclient.Client, run_id: str) -> None:
    mine = [f"{run_id}-{i}" for i in range(3)]
    for each in mine:
        client.create_run(each, PIECEWISE)
    page = client.list_runs(limit=2)
    assert len(page.runs) == 2 and page.next_cursor is not None
    rest = client.list_runs(limit=1000, cursor=page.next_cursor)
    assert not {r.run_id for r in page.runs} & {r.run_id for r in rest.runs}, "pages do not overlap"
    listed = [r for r in client.iter_runs(page_size=2) if r.run_id in mine]
    assert [r.run_id for r in listed] == mine
    assert all(isinstance(r, lrclient.RunSummary) and r.version == 0 and r.latest_step is None for r in listed)
    assert listed[0].spec["schedule"]["values"] == [0.3, 0.2, 0.1]


def test_list_runs_and_iter_runs_keep_only_ids_starting_with_a_literal_prefix(
    client: lrclient.Client, counting: CountingTransport, run_id: str
) -> None:
    mine = [f"{run_id}_{i}" for i in range(5)]
    for i, each in enumerate(mine):
        client.create_run(each, PIECEWISE)
        client.create_run(f"{run_id}-{i}", PIECEWISE)  # "_" is no wildcard: never listed
    first = client.list_runs(limit=2, prefix=f"{run_id}_")
    rest = client.list_runs(limit=1000, cursor=first.next_cursor, prefix=f"{run_id}_")
    assert [r.run_id for r in first.runs] == mine[:2] and first.next_cursor is not None
    assert [r.run_id for r in rest.runs] == mine[2:] and rest.next_cursor is None
    before = counting.paths("/runs")
    assert [r.run_id for r in client.iter_runs(page_size=2, prefix=f"{run_id}_")] == mine
    assert counting.paths("/runs") - before == 3, "pages of 2, 2 and 1"


@pytest.mark.parametrize(("arguments", "named"), [
    ({"prefix": "a%"}, "prefix"),
    ({"prefix": ""}, "prefix"),
    ({"cursor": "\u00b2"}, "cursor"),
    ({"cursor": "99999999999999999999"}, "cursor"),
])
def test_a_prefix_or_cursor_the_service_refuses_raises_invalid_spec_naming_it(
    client: lrclient.Client, arguments: dict[str, str], named: str
) -> None:
    with pytest.raises(lrclient.InvalidRequest) as raised:
        client.list_runs(**arguments)
    assert raised.value.status == 422 and named in raised.value.detail


def report_losses(client: lrclient.Client, run_id: str, steps: range) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    for step in steps:
        client.report(run_id, step, {"val_loss": float(step)})


def test_report_page_gives_one_page_and_the_after_step_of_the_next(client: lrclient.Client, run_id: str) -> None:
    report_losses(client, run_id, range(7))
    first = client.report_page(run_id, limit=3)
    assert isinstance(first, lrclient.ReportPage)
    assert (first.run_id, [e.step for e in first.reports], first.next_after_step, first.version) == (
        run_id, [0, 1, 2], 2, 7)
    assert first.reports[2].metrics == {"val_loss": 2.0} and first.reports[1].reduced is True
    second = client.report_page(run_id, after_step=first.next_after_step, limit=3)
    last = client.report_page(run_id, after_step=second.next_after_step, limit=3)
    assert [e.step for e in second.reports + last.reports] == [3, 4, 5, 6]
    assert last.next_after_step is None
    whole = client.report_page(run_id)
    assert [e.step for e in whole.reports] == list(range(7)) and whole.next_after_step is None
    with pytest.raises(lrclient.InvalidRequest):
        client.report_page(run_id, limit=10_001)


def test_iter_reports_walks_every_page_lazily(
    client: lrclient.Client, counting: CountingTransport, run_id: str
) -> None:
    report_losses(client, run_id, range(7))
    before = counting.paths("/metrics")
    assert [e.step for e in client.iter_reports(run_id, page_size=3)] == list(range(7))
    assert counting.paths("/metrics") - before == 3, "pages of 3, 3 and 1"
    assert [e.step for e in client.iter_reports(run_id, after_step=4, page_size=3)] == [5, 6]
    before = counting.paths("/metrics")
    walk = client.iter_reports(run_id, page_size=2)
    assert counting.paths("/metrics") == before, "nothing is fetched before the first report is asked for"
    assert [next(walk).step, next(walk).step] == [0, 1]
    assert counting.paths("/metrics") - before == 1


def test_reports_returns_every_report_whatever_the_number_of_pages(
    client: lrclient.Client, counting: CountingTransport, run_id: str
) -> None:
    report_losses(client, run_id, range(1001))  # one more than a page of the service
    before = counting.paths("/metrics")
    everything = client.reports(run_id)
    assert [e.step for e in everything] == list(range(1001))
    assert counting.paths("/metrics") - before == 2
    assert everything[1000].metrics == {"val_loss": 1000.0}
    assert [e.step for e in client.reports(run_id, after_step=997)] == [998, 999, 1000]
    assert [e.step for e in client.reports(run_id, after_step=10, limit=3)] == [11, 12, 13]
    assert [e.step for e in client.reports(run_id, after_step=995, limit=3000)] == [996, 997, 998, 999, 1000]
    assert client.reports(run_id, after_step=1000) == []


@pytest.mark.parametrize("arguments", [{"limit": 0}, {"limit": -1}, {"limit": True}, {"page_size": 0},
                                       {"page_size": 10_001}, {"page_size": 2.5}])
def test_a_walk_with_a_senseless_limit_or_page_size_raises_before_sending(
    client: lrclient.Client, counting: CountingTransport, run_id: str, arguments: dict[str, float]
) -> None:
    method = client.reports if "limit" in arguments else client.iter_reports
    with pytest.raises(ValueError, match=next(iter(arguments))):
        method(run_id, **arguments)
    assert counting.requests == []


def test_lr_and_lr_range_serve_the_schedule(client: lrclient.Client, run_id: str) -> None:
    client.create_run(run_id, PIECEWISE)
    assert [client.lr(run_id, step) for step in (0, 2, 3, 4, 5, 1000)] == [0.3, 0.3, 0.2, 0.2, 0.1, 0.1]
    every_other = client.lr_range(run_id, 0, 7, every=2)
    assert every_other.lr == (0.3, 0.3, 0.2, 0.1)
    assert list(every_other.steps) == [0, 2, 4, 6]
    assert (every_other.run_id, every_other.start, every_other.stop, every_other.every, every_other.version) == (
        run_id, 0, 7, 2, 0)


def test_report_returns_the_next_lr_and_whether_it_reduced(client: lrclient.Client, run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    first = client.report(run_id, 0, {"val_loss": 1.0})
    worse = client.report(run_id, 1, {"val_loss": 2.0})
    assert (first.step, first.next_lr, first.reduced, first.version) == (0, 0.1, False, 1)
    assert (worse.step, worse.next_lr, worse.reduced, worse.version) == (1, 0.05, True, 2)
    assert worse.state == lrclient.TrackerState(best=1.0, wait=0, cooldown_counter=0, reductions=1)
    assert client.report(run_id, 1, {"val_loss": 2.0}) == worse, "an exact repeat returns the original outcome"


def test_reports_lists_each_accepted_report_with_its_outcome(client: lrclient.Client, run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    client.report(run_id, 0, {"val_loss": 1.0, "accuracy": 0.5})
    client.report(run_id, 3, {"val_loss": 2.0})
    entries = client.reports(run_id)
    assert [(e.step, dict(e.metrics), e.reduced, e.next_lr) for e in entries] == [
        (0, {"val_loss": 1.0, "accuracy": 0.5}, False, 0.1),
        (3, {"val_loss": 2.0}, True, 0.05),
    ]
    assert entries[1].state is not None and entries[1].state.reductions == 1
    assert all(e.received_at.endswith("Z") or "+" in e.received_at for e in entries)


def test_rewind_forgets_later_reports_and_returns_the_run(client: lrclient.Client, run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    for step, loss in enumerate([1.0, 2.0, 3.0]):
        client.report(run_id, step, {"val_loss": loss})
    run = client.rewind(run_id, 0)
    assert (run.latest_step, run.reports, run.version) == (0, 1, 4)
    assert client.lr(run_id, 1) == 0.1, "the reductions after step 0 are forgotten"
    assert client.rewind(run_id, -1).latest_step is None


def test_revise_changes_the_schedule_from_a_future_step(client: lrclient.Client, run_id: str) -> None:
    client.create_run(run_id, PIECEWISE)
    revision = client.revise(run_id, 10, {"type": "constant", "learning_rate": 0.01}, reason="fine-tune")
    assert isinstance(revision, lrclient.Revision)
    assert (revision.run_id, revision.from_step, revision.reason) == (run_id, 10, "fine-tune")
    assert client.lr_range(run_id, 8, 12).lr == (0.1, 0.1, 0.01, 0.01)


RAMP = {"type": "exponential_decay", "initial_learning_rate": 1e-7, "decay_steps": 1, "decay_rate": 1.1}


def test_create_run_and_revise_carry_the_services_warnings(client: lrclient.Client, run_id: str) -> None:
    created = client.create_run(run_id, {"schedule": RAMP, "step_unit": "batch"})
    assert len(created.warnings) == 1 and "overflows to inf" in created.warnings[0]
    assert client.get_run(run_id).warnings == ()  # only the PUT answer warns

    revision = client.revise(run_id, 50, RAMP, reason="again")
    assert revision.created and len(revision.warnings) == 1 and "overflows" in revision.warnings[0]
    assert client.create_run(f"{run_id}-flat", PIECEWISE).warnings == ()


def test_revise_may_change_only_the_plateau_and_a_repeat_is_the_original(client: lrclient.Client,
                                                                         run_id: str) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    first = client.revise(run_id, 3, plateau={"factor": 0.1}, reason="deeper cuts")
    again = client.revise(run_id, 3, plateau={"factor": 0.1}, reason="deeper cuts")

    assert (first.created, again.created) == (True, False)
    assert (first.schedule, first.plateau, first.warnings) == (None, {"factor": 0.1}, ())
    assert again.created_at == first.created_at
    (listed,) = client.get_run(run_id).revisions
    assert (listed.schedule, listed.plateau) == (None, {"factor": 0.1})


def test_health_and_ready_are_true_for_a_running_server(client: lrclient.Client) -> None:
    assert client.health() is True
    assert client.ready() is True


def test_ready_is_false_when_the_storage_is_gone_and_health_stays_true(twin: str, tmp_path: Path) -> None:
    path = tmp_path / "doomed.db"
    with running_server(f"sqlite:///{path}") as server, client_twin(twin, server.url) as client:
        assert client.ready() is True
        path.unlink()
        assert client.ready() is False
        assert client.health() is True


def test_health_and_ready_make_one_attempt_and_say_false_when_nothing_listens(
    twin: str, counting: CountingTransport
) -> None:
    with client_twin(twin, f"http://127.0.0.1:{free_port()}", transport=counting, retries=3) as client:
        assert client.health() is False
        assert client.ready() is False
    assert len(counting.requests) == 2, "no retries for a probe"


def test_non_finite_metrics_are_sent_as_the_contract_strings_and_read_back_as_floats(
    client: lrclient.Client, api: httpx.Client, run_id: str
) -> None:
    client.create_run(run_id, HALVING_PLATEAU)
    metrics = {"val_loss": math.nan, "up": math.inf, "down": -math.inf, "np": np.float32(0.25), "n": 3}
    client.report(run_id, 0, metrics)
    stored = api.get(f"/runs/{run_id}/metrics").json()["reports"][0]["metrics"]
    assert stored == {"val_loss": "NaN", "up": "Infinity", "down": "-Infinity", "np": 0.25, "n": 3.0}
    (entry,) = client.reports(run_id)
    assert math.isnan(entry.metrics["val_loss"])
    assert (entry.metrics["up"], entry.metrics["down"], entry.metrics["np"]) == (math.inf, -math.inf, 0.25)
    repeat = client.report(run_id, 0, metrics)
    assert repeat.version == 1, "the same non-finite report again is an exact repeat"


def test_a_metric_that_is_not_a_number_is_refused_before_sending(client: lrclient.Client, run_id: str,
                                                                  counting: CountingTransport) -> None:
    with pytest.raises(TypeError, match="val_loss"):
        client.report(run_id, 0, {"val_loss": [1.0, 2.0]})  # type: ignore[dict-item]
    with pytest.raises(TypeError, match="bool"):
        client.report(run_id, 0, {"val_loss": True})
    assert counting.requests == []


def test_dot_run_ids_reach_their_own_run_rather_than_a_collapsed_path(client: lrclient.Client, run_id: str) -> None:
    client.create_run(run_id, PIECEWISE)
    for dots in (".", ".."):
        assert client.create_run(dots, HALVING_PLATEAU).created is True
        assert client.get_run(dots).run_id == dots
        assert client.lr(dots, 0) == 0.1
        client.delete_run(dots)
    assert client.get_run(run_id).run_id == run_id


def test_one_connection_is_reused_and_closed_with_the_client(server: Server) -> None:
    counting = CountingTransport()
    with lrclient.Client(server.url, transport=counting) as client:
        for _ in range(5):
            client.health()
    assert len(counting.local_ports) == 5 and len(set(counting.local_ports)) == 1


def test_a_closed_client_refuses_to_send(twin: str, server: Server) -> None:
    with client_twin(twin, server.url) as client:
        assert client.health() is True
        client.close()
        with pytest.raises(RuntimeError, match="client has been closed"):
            client.lr("any", 0)
