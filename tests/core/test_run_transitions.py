"""The run as a value: the report, rewind and revision rules as pure transitions, without a server.

The run: constant 0.1 with a Keras plateau on val_loss that halves the lr on every non-improving
report (patience 1), so every value below is worked out by hand.
"""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from lrserve.errors import InvalidInput, ReportConflict, RevisionConflict
from lrserve.run_view import RunView, view_of
from lrserve.spec import MAX_STEP, Report, Revision, RunSpec
from lrserve.store import RunRecord, StoredRun

SPEC = {"schedule": {"type": "constant", "learning_rate": 0.1},
        "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1}}


def new_run(spec: dict = SPEC) -> RunView:
    canonical = RunSpec.model_validate(spec).canonical()
    return view_of(StoredRun(RunRecord(run_id="r", spec_json=canonical, created_at="t0", seq=1)))


def reported(view: RunView, *losses: tuple[int, float]) -> RunView:
    for step, loss in losses:
        _, after = view.accept(Report(step=step, metrics={"val_loss": loss}), "t")
        assert after is not None
        view = after
    return view


def lrs(view: RunView, stop: int) -> list[float]:
    return [view.lr(step) for step in range(stop)]


def test_a_new_report_returns_its_outcome_and_a_new_view_one_version_later() -> None:
    view = new_run()

    record, after = view.accept(Report(step=0, metrics={"val_loss": 1.0}), "t1")

    assert after is not None
    assert (record.step, record.reduced, record.next_lr, record.received_at) == (0, False, 0.1, "t1")
    assert record.state == {"best": 1.0, "wait": 0, "cooldown_counter": 0, "reductions": 0}
    assert (after.record.version, after.latest_step) == (1, 0)
    assert (view.record.version, view.latest_step) == (0, None)  # the old value is untouched


def test_a_report_changes_the_lr_only_from_the_next_step_on() -> None:
    view = reported(new_run(), (0, 1.0), (1, 1.0), (2, 0.5), (3, 0.6))

    assert lrs(view, 6) == [0.1, 0.1, 0.05, 0.05, 0.025, 0.025]
    assert [r.reduced for r in view.reports] == [False, True, False, True]


def test_an_exact_repeat_gets_the_original_outcome_and_changes_nothing() -> None:
    view = reported(new_run(), (0, 1.0), (1, 1.0), (2, 0.5))

    record, after = view.accept(Report(step=1, metrics={"val_loss": 1.0}), "later")

    assert after is None
    assert record == view.report_at(1) and record.received_at == "t"


def test_different_metrics_for_a_reported_step_are_a_conflict() -> None:
    view = reported(new_run(), (0, 1.0), (1, 1.0))

    with pytest.raises(ReportConflict, match="step 1 was already accepted with different metrics"):
        view.accept(Report(step=1, metrics={"val_loss": 0.9}), "t")


def test_a_new_step_below_the_latest_report_is_a_conflict() -> None:
    view = reported(new_run(), (0, 1.0), (5, 1.0))

    with pytest.raises(ReportConflict, match="lower than 5"):
        view.accept(Report(step=3, metrics={"val_loss": 1.0}), "t")


def test_a_report_without_the_monitored_metric_is_recorded_and_moves_nothing() -> None:
    view = reported(new_run(), (0, 1.0))

    record, after = view.accept(Report(step=1, metrics={"accuracy": 0.5}), "t")

    assert after is not None and record.reduced is False and record.state == view.reports[0].state
    assert after.latest_step == 1


def test_the_last_step_cannot_be_reported_since_it_has_no_next_lr() -> None:
    with pytest.raises(ValidationError, match=f"must be below {MAX_STEP}; received {MAX_STEP}"):
        Report(step=MAX_STEP, metrics={"val_loss": 1.0})
    new_run().accept(Report(step=MAX_STEP - 1, metrics={"val_loss": 1.0}), "t")


def test_a_rewind_forgets_later_reports_and_their_reductions() -> None:
    view = reported(new_run(), (0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0))  # reductions at 1, 2, 3
    assert lrs(view, 5) == [0.1, 0.1, 0.05, 0.025, 0.0125]

    after = view.rewound(1)

    assert [r.step for r in after.reports] == [0, 1] and after.record.version == view.record.version + 1
    assert after.state is not None and after.state.reductions == 1
    assert lrs(after, 5) == [0.1, 0.1, 0.05, 0.05, 0.05]
    # the rewound steps can be reported again, with other metrics
    _, again = after.accept(Report(step=2, metrics={"val_loss": 0.5}), "t")
    assert again is not None and lrs(again, 4) == [0.1, 0.1, 0.05, 0.05]


def test_a_rewind_to_minus_one_forgets_every_report() -> None:
    after = reported(new_run(), (0, 1.0), (1, 1.0)).rewound(-1)

    assert after.reports == () and after.state is not None and after.state.reductions == 0
    assert lrs(after, 3) == [0.1, 0.1, 0.1]


def test_a_revision_changes_the_schedule_from_its_step_and_keeps_the_multiplier() -> None:
    view = reported(new_run(), (0, 1.0), (1, 1.0))  # one reduction: factor 0.5 from step 2 on
    revision = Revision.model_validate({"from_step": 4, "reason": "hotter",
                                        "schedule": {"type": "constant", "learning_rate": 0.4}})

    record, after = view.revised(revision, "t2")

    assert (record.from_step, record.reason, record.created_at) == (4, "hotter", "t2")
    assert lrs(after, 6) == [0.1, 0.1, 0.05, 0.05, 0.2, 0.2]
    assert after.record.version == view.record.version + 1 and len(after.revisions) == 1


@pytest.mark.parametrize(("from_step", "message"), [(1, "greater than 1"), (0, "greater than 1")])
def test_a_revision_that_would_change_history_is_a_conflict(from_step: int, message: str) -> None:
    view = reported(new_run(), (0, 1.0), (1, 1.0))
    revision = Revision.model_validate({"from_step": from_step, "schedule": {"type": "constant", "learning_rate": 1.0}})

    with pytest.raises(RevisionConflict, match=message):
        view.revised(revision, "t")


def test_a_revision_may_not_start_before_the_previous_one() -> None:
    first = Revision.model_validate({"from_step": 10, "schedule": {"type": "constant", "learning_rate": 1.0}})
    earlier = Revision.model_validate({"from_step": 9, "schedule": {"type": "constant", "learning_rate": 1.0}})
    _, view = new_run().revised(first, "t")

    with pytest.raises(RevisionConflict, match="not be below 10"):
        view.revised(earlier, "t")


def test_settled_steps_are_those_only_a_rewind_revision_or_delete_can_change() -> None:
    view = reported(new_run(), (0, 1.0), (3, 1.0))
    assert view.settled(3) and not view.settled(4)
    assert not new_run().settled(0)  # nothing reported: the first report may reduce step 1 on
    without_tracker = new_run({"schedule": {"type": "constant", "learning_rate": 0.1}})
    assert without_tracker.settled(10**9)  # no report can change any lr


def test_min_lr_bounds_reductions_and_never_raises_the_schedule() -> None:
    """Warmup 0 -> 0.1 over 10 steps; min_lr 0.03; a flat loss, patience 0. lr(N) = max(s(N) * 0.5**k,
    min(s(N), 0.03)), and Keras reduces only when the lr at the report is above min_lr:
    reports 1-3 (lr 0.01, 0.02, 0.03) do not reduce; 4 (0.04) does; 5 and 6 (0.03) do not; 7 (0.035) does."""
    view = new_run({"schedule": {"type": "linear", "initial_learning_rate": 0.0, "end_learning_rate": 0.1,
                                 "transition_steps": 10},
                    "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 0, "min_lr": 0.03}})
    assert lrs(view, 3) == pytest.approx([0.0, 0.01, 0.02])  # below min_lr before any reduction: as scheduled
    view = reported(view, *((step, 1.0) for step in range(8)))

    assert [r.step for r in view.reports if r.reduced] == [4, 7]
    assert lrs(view, 10) == pytest.approx([0.0, 0.01, 0.02, 0.03, 0.04, 0.03, 0.03, 0.035, 0.03, 0.03])


# -- plateau start_step and plateau revisions ----------------------------------------------------


def revised(view: RunView, body: dict) -> RunView:
    record, after = view.revised(Revision.model_validate({"reason": "", **body}), "t")
    assert after is not None
    return after


def test_reports_below_start_step_are_recorded_but_leave_the_tracker_as_it_was() -> None:
    view = reported(new_run({**SPEC, "plateau": {**SPEC["plateau"], "start_step": 2}}), (0, 1.0), (1, 2.0))

    assert [r.state for r in view.reports] == [{"best": None, "wait": 0, "cooldown_counter": 0, "reductions": 0}] * 2
    view = reported(view, (2, 3.0), (3, 3.0))  # 3.0 is the first value the tracker sees: the best
    assert [r.reduced for r in view.reports] == [False, False, False, True]
    assert lrs(view, 5) == [0.1, 0.1, 0.1, 0.1, 0.05]


def test_a_revision_may_change_only_the_plateau_and_the_schedule_carries_on() -> None:
    view = revised(reported(new_run(), (0, 1.0)), {"from_step": 1, "plateau": {"factor": 0.1}})

    assert view.revisions[-1].schedule is None and view.revisions[-1].plateau == {"factor": 0.1}
    view = reported(view, (1, 1.0))
    assert lrs(view, 3) == pytest.approx([0.1, 0.1, 0.01], rel=1e-12)


def test_each_reduction_multiplies_by_the_factor_in_effect_at_its_report() -> None:
    view = reported(new_run(), (0, 1.0), (1, 1.0))  # halved at 1
    view = revised(view, {"from_step": 2, "plateau": {"factor": 0.1}})
    view = reported(view, (2, 1.0))  # then divided by 10 at 2

    assert lrs(view, 4) == pytest.approx([0.1, 0.1, 0.05, 0.005], rel=1e-12)
    assert view.rewound(1).lr(3) == pytest.approx(0.05, rel=1e-12)  # the revision stays, the reduction at 2 goes


def test_min_lr_bounds_the_steps_from_its_revision_on() -> None:
    view = reported(new_run(), (0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0))  # 0.1 halved three times: 0.0125
    view = revised(view, {"from_step": 6, "plateau": {"min_lr": 0.02}})

    assert lrs(view, 8) == pytest.approx([0.1, 0.1, 0.05, 0.025, 0.0125, 0.0125, 0.02, 0.02], rel=1e-12)


def test_the_counters_carry_on_and_the_new_patience_decides_the_next_report() -> None:
    view = reported(new_run({**SPEC, "plateau": {**SPEC["plateau"], "patience": 3}}), (0, 1.0), (1, 1.0), (2, 1.0))
    assert view.state is not None and view.state.wait == 2

    after = reported(revised(view, {"from_step": 3, "plateau": {"patience": 2}}), (3, 1.0))

    assert after.reports[-1].reduced  # wait 3 >= 2; had the change reset wait, 1 < 2 would not reduce


def test_a_plateau_change_is_refused_for_a_run_without_a_tracker_or_with_the_other_semantics() -> None:
    with pytest.raises(InvalidInput, match="no plateau"):
        new_run({"schedule": SPEC["schedule"]}).revised(
            Revision(from_step=0, plateau={"factor": 0.5}), "t")
    with pytest.raises(InvalidInput, match="threshold"):
        new_run().revised(Revision(from_step=0, plateau={"threshold": 0.5}), "t")


@pytest.mark.parametrize("field", ["monitor", "mode", "semantics", "threshold_mode", "eps"])
def test_what_the_tracker_watches_cannot_change(field: str) -> None:
    with pytest.raises(ValueError, match=f"{field} cannot change"):
        Revision.model_validate({"from_step": 0, "plateau": {field: "min"}})


def test_a_revision_needs_a_schedule_or_a_plateau_change() -> None:
    with pytest.raises(ValueError, match="neither"):
        Revision.model_validate({"from_step": 3})
    with pytest.raises(ValueError, match="at least one"):
        Revision.model_validate({"from_step": 3, "plateau": {}})


def test_repeating_an_accepted_revision_returns_the_original_even_after_later_writes() -> None:
    body = {"from_step": 2, "plateau": {"factor": 0.2}, "reason": "slow"}
    first = revised(new_run(), body)
    later = revised(reported(first, (2, 1.0), (3, 1.0)), {"from_step": 5, "schedule": {"type": "constant",
                                                                                       "learning_rate": 0.3}})

    record, after = later.revised(Revision.model_validate(body), "much later")

    assert after is None
    assert record == first.revisions[0] and record.created_at == "t"
    with pytest.raises(RevisionConflict):  # a different body at that step is still history
        later.revised(Revision.model_validate({**body, "reason": "other"}), "t")


# -- what the rules above leave out: revisions survive a rewind, start_step revised, a next lr past overflow ----


def test_a_rewind_forgets_reports_but_keeps_every_revision() -> None:
    view = reported(new_run(), (0, 1.0), (1, 1.0))  # halved at 1
    view = revised(view, {"from_step": 3, "schedule": {"type": "constant", "learning_rate": 0.4}})
    assert lrs(view, 5) == [0.1, 0.1, 0.05, 0.2, 0.2]

    after = view.rewound(0)

    assert [r.step for r in after.reports] == [0] and after.revisions == view.revisions
    assert lrs(after, 5) == [0.1, 0.1, 0.1, 0.4, 0.4]  # the reduction at 1 is forgotten, the revision is not


def test_a_revision_may_move_start_step_and_reports_below_it_leave_the_tracker_alone() -> None:
    view = revised(new_run(), {"from_step": 0, "plateau": {"start_step": 3}})

    view = reported(view, (0, 1.0), (1, 1.0), (2, 1.0), (3, 1.0), (4, 1.0))

    # steps 0-2 are below start_step; 3 is the first value the tracker sees (the best), 4 does not improve
    assert [r.reduced for r in view.reports] == [False, False, False, False, True]
    assert lrs(view, 6) == [0.1, 0.1, 0.1, 0.1, 0.1, 0.05]


def test_a_report_whose_next_lr_is_not_finite_is_refused_and_changes_nothing() -> None:
    # lr(n) = 1e300 ** n: 1 at step 0, 1e300 at step 1, inf from step 2 on
    view = new_run({"schedule": {"type": "exponential_decay", "initial_learning_rate": 1.0, "decay_steps": 1,
                                 "decay_rate": 1e300}})
    record, after = view.accept(Report(step=0, metrics={"val_loss": 1.0}), "t")
    assert after is not None and record.next_lr == 1e300

    with pytest.raises(InvalidInput, match="next step"):
        after.accept(Report(step=1, metrics={"val_loss": 1.0}), "t")
    assert [r.step for r in after.reports] == [0] and after.record.version == 1
