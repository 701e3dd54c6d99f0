"""One contract for every storage backend: the same tests run on a real SQLite file and a real PostgreSQL."""

from __future__ import annotations

import pytest

from lrserve.errors import RunNotFound
import threading

from lrserve.store import ReportRecord, RevisionRecord, RunRecord, Store, open_store

SPEC = {"schedule": {"type": "constant", "learning_rate": 0.1}, "plateau": None, "step_unit": "epoch"}


def run(run_id: str) -> RunRecord:
    return RunRecord(run_id=run_id, spec_json=SPEC, created_at="2026-11-23T00:00:00Z")


def report(step: int, reduced: bool = False) -> ReportRecord:
    return ReportRecord(step=step, metrics={"val_loss": 0.5, "odd": "NaN"}, reduced=reduced,
                        next_lr=0.1 / (step + 1), state={"best": 0.5, "wait": step, "cooldown_counter": 0,
                                                         "reductions": int(reduced)},
                        received_at=f"2026-11-23T00:00:0{step}Z")


def append_report(store: Store, run_id: str, record: ReportRecord) -> int:
    with store.writing(run_id) as writer:
        writer.append_report(record)
    return writer.version_after


def truncate_reports(store: Store, run_id: str, after_step: int) -> int:
    with store.writing(run_id) as writer:
        writer.truncate_reports(after_step)
    return writer.version_after


def append_revision(store: Store, run_id: str, revision: RevisionRecord) -> int:
    with store.writing(run_id) as writer:
        writer.append_revision(revision)
    return writer.version_after


def test_a_run_is_created_once_and_loads_as_it_was_stored(store: Store) -> None:
    assert store.create_run(run("a")) is True
    assert store.create_run(RunRecord(run_id="a", spec_json={"other": 1}, created_at="x")) is False
    loaded = store.load("a")
    assert loaded is not None
    assert (loaded.run.run_id, loaded.run.spec_json, loaded.run.version) == ("a", SPEC, 0)
    assert loaded.reports == [] and loaded.revisions == []
    assert store.load("missing") is None


def test_reports_come_back_in_step_order_with_their_outcome_and_each_write_bumps_the_version(store: Store) -> None:
    store.create_run(run("a"))
    versions = [append_report(store, "a", report(step, reduced=step == 1)) for step in (0, 1, 5)]
    assert versions == [1, 2, 3]
    loaded = store.load("a")
    assert loaded is not None
    assert loaded.reports == [report(0), report(1, reduced=True), report(5)]
    assert loaded.run.version == 3


def test_truncating_forgets_reports_after_a_step_only(store: Store) -> None:
    store.create_run(run("a"))
    for step in range(5):
        append_report(store, "a", report(step))
    assert truncate_reports(store, "a", 2) == 6
    loaded = store.load("a")
    assert loaded is not None
    assert [r.step for r in loaded.reports] == [0, 1, 2]
    truncate_reports(store, "a", -1)
    assert store.load("a").reports == []  # type: ignore[union-attr]


def test_revisions_keep_their_order(store: Store) -> None:
    store.create_run(run("a"))
    first = RevisionRecord(from_step=10, schedule={"type": "constant", "learning_rate": 0.2}, reason="one",
                           created_at="t1")
    second = RevisionRecord(from_step=10, schedule={"type": "constant", "learning_rate": 0.3}, reason="two",
                            created_at="t2")
    append_revision(store, "a", first)
    append_revision(store, "a", second)
    assert store.load("a").revisions == [first, second]  # type: ignore[union-attr]


def test_revisions_keep_their_plateau_changes_and_a_missing_schedule(store: Store) -> None:
    store.create_run(run("a"))
    both = RevisionRecord(3, {"type": "constant", "learning_rate": 0.2}, "both", "t1", plateau={"factor": 0.5})
    plateau_only = RevisionRecord(4, None, "plateau only", "t2", plateau={"patience": 2, "min_lr": 1e-5})
    append_revision(store, "a", both)
    append_revision(store, "a", plateau_only)
    assert store.load("a").revisions == [both, plateau_only]  # type: ignore[union-attr]


def test_deleting_a_run_removes_its_history(store: Store) -> None:
    store.create_run(run("a"))
    append_report(store, "a", report(0))
    assert store.delete_run("a") is True
    assert store.delete_run("a") is False
    assert store.load("a") is None
    store.create_run(run("a"))
    assert store.load("a").reports == []  # type: ignore[union-attr]


def test_runs_are_listed_oldest_first_in_pages_with_their_latest_step(store: Store) -> None:
    for name in ("c", "a", "b"):
        store.create_run(run(name))
    append_report(store, "a", report(3))
    first = store.list_runs(0, 2)
    assert [r.record.run_id for r in first] == ["c", "a"]
    assert [r.latest_step for r in first] == [None, 3]
    rest = store.list_runs(first[-1].record.seq, 2)
    assert [r.record.run_id for r in rest] == ["b"]


PREFIXED = ["a_b", "ab", "a-b", "a.b", "A_b", "a_", "a", "a_b_c", "b_a", "az", "azz", "a9", "aZ"]


def listed(store: Store, prefix: str | None, after_seq: int = 0, limit: int = 100) -> list[str]:
    return [r.record.run_id for r in store.list_runs(after_seq, limit, prefix)]


PREFIX_CASES = [
    pytest.param("a_", ["a_b", "a_", "a_b_c"], id="underscore-is-no-wildcard"),
    pytest.param("a_b", ["a_b", "a_b_c"], id="a-whole-id-and-its-extensions"),
    pytest.param("a", ["a_b", "ab", "a-b", "a.b", "a_", "a", "a_b_c", "az", "azz", "a9", "aZ"], id="one-letter"),
    pytest.param("A", ["A_b"], id="case-sensitive"),
    pytest.param("a.", ["a.b"], id="dot-is-no-wildcard"),
    pytest.param("a-", ["a-b"], id="dash-whose-successor-is-dot"),
    pytest.param("az", ["az", "azz"], id="ends-in-z"),
    pytest.param("a9", ["a9"], id="ends-in-9"),
    pytest.param("aZ", ["aZ"], id="ends-in-Z"),
    pytest.param("b", ["b_a"], id="other-letter"),
    pytest.param("a_b_c_d", [], id="longer-than-every-id"),
    pytest.param("c", [], id="no-match"),
    pytest.param(None, PREFIXED, id="no-prefix"),
]


@pytest.mark.parametrize(("prefix", "expected"), PREFIX_CASES)
def test_a_prefix_lists_exactly_the_runs_whose_id_starts_with_it_oldest_first(
    store: Store, prefix: str | None, expected: list[str]
) -> None:
    for name in PREFIXED:
        store.create_run(run(name))
    assert listed(store, prefix) == expected


@pytest.mark.parametrize(("prefix", "expected"), PREFIX_CASES)
def test_a_prefix_means_the_same_in_a_postgres_database_that_sorts_text_linguistically(
    linguistic_store: Store, prefix: str | None, expected: list[str]
) -> None:
    for name in PREFIXED:
        linguistic_store.create_run(run(name))
    assert listed(linguistic_store, prefix) == expected


def test_pages_of_a_prefix_continue_after_the_last_run_of_the_previous_page(store: Store) -> None:
    for i in range(7):
        store.create_run(run(f"x_{i}"))
        store.create_run(run(f"xy{i}"))  # between the matching runs, never listed
    first = store.list_runs(0, 3, "x_")
    second = store.list_runs(first[-1].record.seq, 3, "x_")
    third = store.list_runs(second[-1].record.seq, 3, "x_")
    assert [[r.record.run_id for r in page] for page in (first, second, third)] == [
        ["x_0", "x_1", "x_2"], ["x_3", "x_4", "x_5"], ["x_6"]]
    assert listed(store, "x_", after_seq=third[-1].record.seq) == []


def test_a_write_to_an_unknown_run_raises_run_not_found(store: Store) -> None:
    with pytest.raises(RunNotFound):
        with store.writing("missing"):
            pass


def test_a_second_store_on_the_same_database_sees_what_the_first_committed(database_url: str) -> None:
    first = open_store(database_url)
    try:
        first.create_run(run("a"))
        append_report(first, "a", report(0))
    finally:
        first.close()
    second = open_store(database_url)
    try:
        assert second.load("a").reports == [report(0)]  # type: ignore[union-attr]
        second.ping()
    finally:
        second.close()


def test_a_write_sees_the_stamp_and_the_data_it_decides_on(store: Store) -> None:
    store.create_run(run("a"))
    stamp = store.stamp("a")
    assert stamp is not None and stamp[1] == 0
    with store.writing("a") as writer:
        assert writer.stamp == stamp
        assert writer.load().reports == []
        writer.append_report(report(0))
    assert store.stamp("a") == (stamp[0], 1)
    with store.writing("a") as writer:
        assert writer.stamp == (stamp[0], 1) and [r.step for r in writer.load().reports] == [0]
    assert store.stamp("a") == (stamp[0], 1)  # a write that changed nothing keeps the version
    assert store.stamp("missing") is None


def test_a_write_that_fails_changes_nothing(store: Store) -> None:
    store.create_run(run("a"))
    with pytest.raises(RuntimeError):
        with store.writing("a") as writer:
            writer.append_report(report(0))
            raise RuntimeError("decided against it")
    assert store.load("a").reports == [] and store.stamp("a")[1] == 0  # type: ignore[union-attr,index]


def test_writers_to_one_run_wait_for_each_other(database_url: str) -> None:
    """A second store (as another process would be) cannot write until the first one's write commits."""
    first, second = open_store(database_url), open_store(database_url)
    try:
        first.create_run(run("a"))
        inside, done = threading.Event(), []

        def write_second() -> None:
            inside.wait()
            with second.writing("a") as writer:
                done.append([r.step for r in writer.load().reports])
                writer.append_report(report(1))

        thread = threading.Thread(target=write_second)
        thread.start()
        with first.writing("a") as writer:
            inside.set()
            thread.join(timeout=0.5)
            assert thread.is_alive(), "the second writer did not wait for the first"
            writer.append_report(report(0))
        thread.join(timeout=30)
        assert done == [[0]]  # it decided on the first writer's committed report
        assert second.stamp("a")[1] == 2  # type: ignore[index]
    finally:
        first.close()
        second.close()


def test_rewinds_revisions_and_deletes_are_logged_in_commit_order(store: Store) -> None:
    start = store.last_event()
    store.create_run(run("a"))
    store.create_run(run("b"))
    append_report(store, "a", report(0))  # reports are not events
    truncate_reports(store, "a", -1)
    append_revision(store, "b", RevisionRecord(5, {}, "", "t"))
    store.delete_run("a")
    store.delete_run("missing")  # nothing deleted, nothing logged
    events = store.events_after(start)
    assert [run_id for _, run_id in events] == ["a", "b", "a"]
    assert [event_id for event_id, _ in events] == sorted(event_id for event_id, _ in events)
    assert store.last_event() == events[-1][0]
    assert store.events_after(events[1][0]) == events[2:]
    store.prune_events(before=float("inf"))
    assert store.events_after(start) == []


def test_a_run_created_again_has_a_new_stamp(store: Store) -> None:
    store.create_run(run("a"))
    first = store.stamp("a")
    store.delete_run("a")
    store.create_run(run("a"))
    assert store.stamp("a") != first
