"""Metric reports: increasing steps, idempotent repeats, conflicts, and a history that never changes.

Most tests use HALVING_PLATEAU: constant 0.1 with a Keras plateau on val_loss (min mode, min_delta
1e-4) that halves the lr on every non-improving report (patience 1).
"""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from support import HALVING_PLATEAU, INITIAL_STATE, accepted, approx, create_run, is_iso8601, lr_at, lr_range, report


def state(best: float | None, reductions: int, wait: int = 0, cooldown_counter: int = 0) -> dict[str, Any]:
    return {"best": best, "wait": wait, "cooldown_counter": cooldown_counter, "reductions": reductions}


# (step, metrics, reduced, next_lr, state after the report), worked out by hand with Keras' rules.
TRACE: list[tuple[int, dict[str, Any], bool, float, dict[str, Any]]] = [
    (0, {"val_loss": 1.0}, False, 0.1, state(best=1.0, reductions=0)),  # the first report improves
    (1, {"val_loss": 1.0}, True, 0.05, state(best=1.0, reductions=1)),  # not better by min_delta
    (2, {"val_loss": 0.5}, False, 0.05, state(best=0.5, reductions=1)),
    (3, {"val_loss": 0.6}, True, 0.025, state(best=0.5, reductions=2)),
]


def play_trace(api: httpx.Client, run_id: str) -> list[dict[str, Any]]:
    create_run(api, run_id, HALVING_PLATEAU)
    return [accepted(api, run_id, step, metrics) for step, metrics, *_ in TRACE]


def snapshot(api: httpx.Client, run_id: str) -> tuple[Any, Any, list[float]]:
    return (api.get(f"/runs/{run_id}").json(), api.get(f"/runs/{run_id}/metrics").json(),
            lr_range(api, run_id, 0, 10))


def test_each_report_answers_the_next_lr_whether_it_reduced_and_the_state(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)

    for step, metrics, reduced, next_lr, after in TRACE:
        outcome = accepted(api, run_id, step, metrics)

        assert outcome == {"run_id": run_id, "step": step, "next_lr": approx(next_lr), "reduced": reduced,
                           "state": after, "warnings": []}, f"report at step {step}"
        assert lr_at(api, run_id, step + 1) == approx(next_lr)


def test_the_run_shows_the_latest_step_report_count_and_state(api: httpx.Client, run_id: str) -> None:
    play_trace(api, run_id)

    run = api.get(f"/runs/{run_id}").json()

    assert run["latest_step"] == 3
    assert run["reports"] == 4
    assert run["state"] == TRACE[-1][4]


def test_a_report_changes_the_lr_only_from_the_next_step_on(api: httpx.Client, run_id: str) -> None:
    play_trace(api, run_id)

    assert lr_range(api, run_id, 0, 7) == approx([0.1, 0.1, 0.05, 0.05, 0.025, 0.025, 0.025])


def test_history_never_changes_once_a_report_is_accepted(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    fixed: list[float] = []

    for step in range(8):
        accepted(api, run_id, step, {"val_loss": 1.0})  # every report after the first one halves the lr
        values = lr_range(api, run_id, 0, 10)

        assert values[: len(fixed)] == fixed, f"after the report at step {step}"
        fixed = values[: step + 1]
    assert fixed == approx([0.1, 0.1] + [0.1 * 0.5 ** (s - 1) for s in range(2, 8)])


def test_a_lagging_reader_asking_an_old_step_gets_that_steps_lr(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    for step in range(10):
        accepted(api, run_id, step, {"val_loss": 1.0})

    assert lr_at(api, run_id, 0) == approx(0.1)
    assert lr_at(api, run_id, 1) == approx(0.1)
    assert lr_at(api, run_id, 2) == approx(0.05)
    assert lr_at(api, run_id, 5) == approx(0.1 * 0.5**4)
    assert lr_at(api, run_id, 10) == approx(0.1 * 0.5**9)
    assert lr_at(api, run_id, 1000) == approx(0.1 * 0.5**9)


def test_a_report_may_skip_steps(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    accepted(api, run_id, 0, {"val_loss": 1.0})

    outcome = accepted(api, run_id, 10, {"val_loss": 1.0})

    assert outcome["reduced"] is True and outcome["next_lr"] == approx(0.05)
    assert lr_range(api, run_id, 9, 13) == approx([0.1, 0.1, 0.05, 0.05])


@pytest.mark.parametrize("repeated", [0, 1, 3])
def test_an_exact_repeat_returns_the_original_outcome_and_changes_nothing(
    api: httpx.Client, run_id: str, repeated: int
) -> None:
    originals = play_trace(api, run_id)
    before = snapshot(api, run_id)
    step, metrics, *_ = TRACE[repeated]

    again = report(api, run_id, step, metrics)

    assert again.status_code == 200
    assert again.json() == originals[repeated]
    assert snapshot(api, run_id) == before


def test_a_repeat_still_answers_the_original_after_later_reports(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    original = accepted(api, run_id, 0, {"val_loss": 1.0, "accuracy": 0.5})
    for step in range(1, 6):
        accepted(api, run_id, step, {"val_loss": 1.0})

    late = accepted(api, run_id, 0, {"accuracy": 0.5, "val_loss": 1.0})

    assert late == original
    assert late["next_lr"] == approx(0.1) and late["reduced"] is False
    assert api.get(f"/runs/{run_id}").json()["state"]["reductions"] == 5


@pytest.mark.parametrize(
    ("step", "metrics"),
    [
        pytest.param(3, {"val_loss": 0.7}, id="latest-step-other-value"),
        pytest.param(1, {"val_loss": 0.9}, id="old-step-other-value"),
        pytest.param(2, {"val_loss": 0.5, "accuracy": 0.9}, id="extra-metric"),
        pytest.param(2, {"accuracy": 0.9}, id="missing-metric"),
        pytest.param(3, {"val_loss": "NaN"}, id="non-finite-instead-of-number"),
    ],
)
def test_the_same_step_with_different_metrics_is_409(
    api: httpx.Client, run_id: str, step: int, metrics: dict[str, Any]
) -> None:
    play_trace(api, run_id)
    before = snapshot(api, run_id)

    conflict = report(api, run_id, step, metrics)

    assert conflict.status_code == 409
    assert isinstance(conflict.json()["detail"], str)
    assert snapshot(api, run_id) == before


def test_a_new_step_lower_than_the_latest_is_409(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    accepted(api, run_id, 0, {"val_loss": 1.0})
    accepted(api, run_id, 5, {"val_loss": 1.0})
    before = snapshot(api, run_id)

    conflict = report(api, run_id, 3, {"val_loss": 0.1})

    assert conflict.status_code == 409
    assert snapshot(api, run_id) == before


def test_a_report_without_the_monitored_metric_is_recorded_but_moves_nothing(
    api: httpx.Client, run_id: str
) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    first = accepted(api, run_id, 0, {"val_loss": 1.0})

    silent = accepted(api, run_id, 1, {"accuracy": 0.9})

    # a non-improving val_loss here would have halved the lr (patience 1)
    assert {k: v for k, v in silent.items() if k != "warnings"} == {
        "run_id": run_id, "step": 1, "next_lr": approx(0.1), "reduced": False, "state": first["state"]}
    assert len(silent["warnings"]) == 1, "the answer says why nothing moved"
    recorded = api.get(f"/runs/{run_id}/metrics").json()["reports"]
    assert [(r["step"], r["metrics"]) for r in recorded] == [(0, {"val_loss": 1.0}), (1, {"accuracy": 0.9})]
    assert api.get(f"/runs/{run_id}").json()["latest_step"] == 1
    assert accepted(api, run_id, 2, {"val_loss": 1.0})["reduced"] is True


def test_a_report_without_the_monitored_metric_is_answered_with_a_warning_naming_both(
    api: httpx.Client, run_id: str
) -> None:
    create_run(api, run_id, HALVING_PLATEAU)

    (warning,) = accepted(api, run_id, 0, {"loss": 0.5, "accuracy": 0.9})["warnings"]
    repeat = accepted(api, run_id, 0, {"loss": 0.5, "accuracy": 0.9})
    empty = accepted(api, run_id, 1, {})

    assert "'val_loss'" in warning and "the plateau monitors" in warning
    assert "'accuracy', 'loss'" in warning, "it names the metrics that were sent"
    assert repeat["warnings"] == [warning], "a repeat is answered alike"
    assert len(empty["warnings"]) == 1 and "Metrics sent: none" in empty["warnings"][0]
    assert accepted(api, run_id, 2, {"val_loss": 1.0})["warnings"] == []


def test_an_empty_metrics_object_is_accepted_and_moves_nothing(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)

    outcome = accepted(api, run_id, 0, {})

    assert outcome["state"] == INITIAL_STATE and outcome["reduced"] is False


def test_non_finite_values_are_accepted_and_never_improve(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)

    nan = accepted(api, run_id, 0, {"val_loss": "NaN"})  # not an improvement even as the first report
    minus_inf = accepted(api, run_id, 1, {"val_loss": "-Infinity"})
    plus_inf = accepted(api, run_id, 2, {"val_loss": "Infinity"})
    finite = accepted(api, run_id, 3, {"val_loss": 1.0})

    assert [o["reduced"] for o in (nan, minus_inf, plus_inf, finite)] == [True, True, True, False]
    assert [o["next_lr"] for o in (nan, minus_inf, plus_inf, finite)] == approx([0.05, 0.025, 0.0125, 0.0125])
    assert [o["state"]["best"] for o in (nan, minus_inf, plus_inf, finite)] == [None, None, None, 1.0]


def test_non_finite_values_come_back_as_strings(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    metrics = {"val_loss": 1.0, "a": "NaN", "b": "Infinity", "c": "-Infinity"}
    accepted(api, run_id, 0, metrics)

    recorded = api.get(f"/runs/{run_id}/metrics").json()["reports"]

    assert recorded[0]["metrics"] == metrics
    assert accepted(api, run_id, 0, metrics)["step"] == 0  # and the repeat is recognised as the same


def test_get_metrics_lists_reports_oldest_first_with_their_outcome(api: httpx.Client, run_id: str) -> None:
    outcomes = play_trace(api, run_id)

    response = api.get(f"/runs/{run_id}/metrics")

    assert response.status_code == 200
    body = response.json()
    assert body["run_id"] == run_id
    assert [r["step"] for r in body["reports"]] == [0, 1, 2, 3]
    for listed, (step, metrics, reduced, next_lr, after), outcome in zip(body["reports"], TRACE, outcomes):
        assert listed["metrics"] == metrics
        assert listed["reduced"] is reduced
        assert listed["next_lr"] == approx(next_lr) == outcome["next_lr"]
        assert listed["state"] == after
        assert is_iso8601(listed["received_at"])


def test_a_run_without_plateau_accepts_reports_and_never_reduces(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {"schedule": {"type": "step_decay", "initial_learning_rate": 0.1, "step_size": 3,
                                          "gamma": 0.5}})

    outcome = accepted(api, run_id, 2, {"val_loss": 9.0})

    assert outcome == {"run_id": run_id, "step": 2, "next_lr": approx(0.05), "reduced": False, "state": None,
                       "warnings": []}
    assert api.get(f"/runs/{run_id}").json()["latest_step"] == 2


def test_next_lr_includes_the_schedule_and_the_plateau_factor(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {**HALVING_PLATEAU,
                             "schedule": {"type": "step_decay", "initial_learning_rate": 0.1, "step_size": 3,
                                          "gamma": 0.5}})
    accepted(api, run_id, 0, {"val_loss": 1.0})

    outcome = accepted(api, run_id, 2, {"val_loss": 1.0})

    assert outcome["reduced"] is True
    assert outcome["next_lr"] == approx(0.1 * 0.5 * 0.5)  # step 3: one step_size passed, one reduction
    assert lr_range(api, run_id, 0, 7) == approx([0.1, 0.1, 0.1, 0.025, 0.025, 0.025, 0.0125])


def test_torch_semantics_wait_for_more_than_patience_bad_reports(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, {**HALVING_PLATEAU,
                             "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1, "semantics": "torch"}})

    outcomes = [accepted(api, run_id, step, {"val_loss": 1.0}) for step in range(3)]

    assert [o["reduced"] for o in outcomes] == [False, False, True]
    assert [o["state"]["wait"] for o in outcomes] == [0, 1, 0]


def test_a_future_step_read_before_a_reduction_is_served_reduced_after_it(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    accepted(api, run_id, 0, {"val_loss": 1.0})
    assert lr_at(api, run_id, 500) == approx(0.1)  # read (and remembered) before the reduction

    accepted(api, run_id, 1, {"val_loss": 1.0})  # patience 1: this report halves the lr from step 2 on

    assert lr_at(api, run_id, 500) == approx(0.05)
    assert lr_at(api, run_id, 1) == approx(0.1)


# --- pages of reports ---


def report_steps(api: httpx.Client, run_id: str, steps: range) -> None:
    """One report per step, each with a val_loss that identifies its step."""
    for step in steps:
        accepted(api, run_id, step, {"val_loss": float(step)})


def metrics_page(api: httpx.Client, run_id: str, **params: Any) -> dict[str, Any]:
    response = api.get(f"/runs/{run_id}/metrics", params=params)
    assert response.status_code == 200, response.text
    return response.json()


def test_pages_of_reports_chain_by_next_after_step_until_it_is_null(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    report_steps(api, run_id, range(0, 50, 2))  # 25 reports, on steps 0, 2, ..., 48
    everything = metrics_page(api, run_id)["reports"]

    first = metrics_page(api, run_id, limit=10)
    second = metrics_page(api, run_id, limit=10, after_step=first["next_after_step"])
    third = metrics_page(api, run_id, limit=10, after_step=second["next_after_step"])

    assert [len(page["reports"]) for page in (first, second, third)] == [10, 10, 5]
    assert [page["next_after_step"] for page in (first, second, third)] == [18, 38, None]
    assert {page["run_id"] for page in (first, second, third)} == {run_id}
    assert first["reports"] + second["reports"] + third["reports"] == everything
    assert [r["step"] for r in everything] == list(range(0, 50, 2))
    assert [r["metrics"]["val_loss"] for r in everything] == [float(s) for s in range(0, 50, 2)]


@pytest.mark.parametrize(("after_step", "first_step"), [
    pytest.param(-1, 0, id="minus-one-is-the-start"),
    pytest.param(0, 2, id="after-the-first-report"),
    pytest.param(7, 8, id="between-two-reports"),
    pytest.param(8, 10, id="on-a-report"),
])
def test_after_step_starts_a_page_at_the_first_report_on_a_later_step(
    api: httpx.Client, run_id: str, after_step: int, first_step: int
) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    report_steps(api, run_id, range(0, 20, 2))

    page = metrics_page(api, run_id, after_step=after_step, limit=3)

    assert [r["step"] for r in page["reports"]] == [first_step, first_step + 2, first_step + 4]
    assert page["next_after_step"] == first_step + 4


@pytest.mark.parametrize("after_step", [18, 19, 10**12])
def test_a_page_after_the_latest_report_is_empty_and_the_last(api: httpx.Client, run_id: str, after_step: int) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    report_steps(api, run_id, range(0, 20, 2))

    page = metrics_page(api, run_id, after_step=after_step)

    assert page == {"run_id": run_id, "reports": [], "next_after_step": None}


def test_a_page_that_ends_with_the_latest_report_is_the_last(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    report_steps(api, run_id, range(4))

    exact = metrics_page(api, run_id, limit=4)
    shorter = metrics_page(api, run_id, limit=3)

    assert [r["step"] for r in exact["reports"]] == [0, 1, 2, 3] and exact["next_after_step"] is None
    assert [r["step"] for r in shorter["reports"]] == [0, 1, 2] and shorter["next_after_step"] == 2


def test_a_run_without_reports_has_one_empty_last_page(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)

    assert metrics_page(api, run_id) == {"run_id": run_id, "reports": [], "next_after_step": None}


def test_a_report_accepted_between_two_pages_is_on_the_next_page(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    report_steps(api, run_id, range(3))
    first = metrics_page(api, run_id, limit=2)

    accepted(api, run_id, 10, {"val_loss": 10.0})
    second = metrics_page(api, run_id, limit=2, after_step=first["next_after_step"])

    assert [r["step"] for r in second["reports"]] == [2, 10]
    assert second["next_after_step"] is None


def test_a_page_holds_1000_reports_by_default_and_up_to_10000(api: httpx.Client, run_id: str) -> None:
    create_run(api, run_id, HALVING_PLATEAU)
    report_steps(api, run_id, range(1001))

    default = metrics_page(api, run_id)
    largest = metrics_page(api, run_id, limit=10_000)
    rest = metrics_page(api, run_id, after_step=default["next_after_step"])

    assert [r["step"] for r in default["reports"]] == list(range(1000))
    assert default["next_after_step"] == 999
    assert [r["step"] for r in rest["reports"]] == [1000] and rest["next_after_step"] is None
    assert len(largest["reports"]) == 1001 and largest["next_after_step"] is None


@pytest.mark.parametrize(("params", "field"), [
    pytest.param({"limit": 0}, "limit", id="limit-0"),
    pytest.param({"limit": -1}, "limit", id="limit-negative"),
    pytest.param({"limit": 10_001}, "limit", id="limit-10001"),
    pytest.param({"limit": "many"}, "limit", id="limit-not-an-int"),
    pytest.param({"after_step": -2}, "after_step", id="after-step-below-minus-one"),
    pytest.param({"after_step": 2**40 + 1}, "after_step", id="after-step-beyond-the-last-step"),
    pytest.param({"after_step": "99999999999999999999"}, "after_step", id="after-step-beyond-64-bits"),
    pytest.param({"after_step": "1.5"}, "after_step", id="after-step-not-an-int"),
    pytest.param({"after_step": "²"}, "after_step", id="after-step-superscript-two"),
])
def test_a_page_outside_the_bounds_is_422_naming_the_parameter(
    api: httpx.Client, run_id: str, params: dict[str, Any], field: str
) -> None:
    create_run(api, run_id, HALVING_PLATEAU)

    response = api.get(f"/runs/{run_id}/metrics", params=params)

    assert response.status_code == 422, response.text
    assert field in response.json()["detail"]


def test_pages_of_an_unknown_run_are_404(api: httpx.Client, run_id: str) -> None:
    assert api.get(f"/runs/{run_id}/metrics", params={"after_step": 3, "limit": 5}).status_code == 404


def test_the_last_step_cannot_be_reported_since_its_answer_carries_the_lr_of_the_next(
    api: httpx.Client, run_id: str
) -> None:
    create_run(api, run_id, HALVING_PLATEAU)

    last = api.post(f"/runs/{run_id}/metrics", json={"step": 2**40, "metrics": {"val_loss": 1.0}})
    before_it = api.post(f"/runs/{run_id}/metrics", json={"step": 2**40 - 1, "metrics": {"val_loss": 1.0}})

    assert last.status_code == 422, last.text
    assert last.json()["detail"] == f"step: must be below {2**40}; received {2**40}"
    assert before_it.status_code == 200, before_it.text
