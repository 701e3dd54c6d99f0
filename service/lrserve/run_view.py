"""A run as a value: the schedule with its revisions, the reports and the plateau reductions so far,
and the pure transitions that carry the contract's report, rewind and revision rules.

lr(N) = max(schedule(N) * M(N), min(schedule(N), min_lr(N))), where M(N) is the product of the factors of
the reductions that took effect at reports on steps < N (each reduction multiplies by the `factor` in effect
at its report's step) and min_lr(N) is the `min_lr` in effect at step N. Without plateau revisions this is
the contract's max(schedule(N) * factor**k, min(schedule(N), min_lr)). An accepted report can never change
the lr of a step it has already passed, nor can a revision (its `from_step` is after the latest report).
`min_lr` bounds reductions only: an lr the schedule itself puts below it (a warmup from 0, a long tail) is
served as it is, as Keras and PyTorch never raise an lr to `min_lr`.

Plateau settings change by revision: a report at step N is decided with the settings in effect at N (the
spec's, then each revision's changes from its `from_step` on), and the tracker's best value and counters
carry on across a change, as they do when one sets `patience` or `factor` on a live Keras or PyTorch
`ReduceLROnPlateau` between epochs. Reports at steps below `start_step` are recorded but do not move it.

A transition (`accept`, `rewound`, `revised`) returns a new view and never touches storage: `Runs`
decides a write with it on the run's current state and stores what it returns.
"""

from __future__ import annotations

import json
from bisect import bisect_right
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from lrserve.errors import InvalidInput, ReportConflict, RevisionConflict
from lrserve.memo import BLOCK, MEMO
from lrserve.plateau import KerasPlateau, PlateauChange, TorchPlateau, TrackerState, advance, changed
from lrserve.schedules import ScheduleAdapter, ScheduleFn, ScheduleModel
from lrserve.schedules.checks import LR_RULE, check_recursive_cost, first_bad
from lrserve.schedules.expression import ExpressionError
from lrserve.schedules.join import join, join_momentum
from lrserve.spec import Report, Revision, RunSpec
from lrserve.store import ReportRecord, RevisionRecord, RunRecord, Stamp, StoredRun


def canonical_metrics(metrics: dict[str, Any]) -> str:
    """Two reports carry the same metrics when these strings are equal."""
    return json.dumps(metrics, sort_keys=True)


@dataclass(frozen=True)
class RunView:
    """An immutable snapshot of one run; a write builds a new one and swaps it in."""

    record: RunRecord
    spec: RunSpec
    schedule: ScheduleFn
    revisions: tuple[RevisionRecord, ...]
    reports: tuple[ReportRecord, ...]
    reduction_steps: np.ndarray
    multipliers: np.ndarray
    """multipliers[k]: the product of the factors of the first k reductions (multipliers[0] = 1)."""
    plateaus: tuple[tuple[int, KerasPlateau | TorchPlateau], ...]
    """(from_step, the plateau settings in effect from it on), by step; empty without a tracker."""
    state: TrackerState | None
    momentum: ScheduleFn | None = None
    """The momentum of each step (NaN where the schedule in effect sets none); None when no schedule of the
    run cycles momentum."""
    memo_key: int = field(default_factory=MEMO.new_key, compare=False, init=False)

    @property
    def plateau(self) -> KerasPlateau | TorchPlateau | None:
        """The plateau settings the run was created with (what it monitors and how never changes)."""
        return self.spec.plateau

    def plateau_at(self, step: int) -> KerasPlateau | TorchPlateau:
        """The plateau settings in effect at `step` (the run must have a tracker)."""
        index = int(np.searchsorted(self._plateau_steps, step, side="right")) - 1
        return self.plateaus[index][1]

    @cached_property
    def _plateau_steps(self) -> np.ndarray:
        return np.array([step for step, _ in self.plateaus], dtype=np.float64)

    @cached_property
    def _min_lrs(self) -> np.ndarray:
        return np.array([config.min_lr for _, config in self.plateaus], dtype=np.float64)

    @property
    def latest_step(self) -> int | None:
        return self.reports[-1].step if self.reports else None

    @property
    def stamp(self) -> Stamp:
        return self.record.stamp

    def settled(self, last_step: int) -> bool:
        """Whether the lrs of steps <= `last_step` can change only through a rewind, revision or delete.

        Reports change the lr only through plateau reductions, and only after their step: without a
        tracker no report changes any lr; with one, the steps up to the latest report are fixed.
        """
        if self.plateau is None:
            return True
        latest = self.latest_step
        return latest is not None and last_step <= latest

    # -- learning rates ------------------------------------------------------------------------

    def lrs(self, steps: np.ndarray) -> np.ndarray:
        """The learning rates of `steps` (float64 array of whole numbers); 422 where one is not finite."""
        return self._lrs_with(steps, self.reduction_steps, self.multipliers)

    def _lrs_with(self, steps: np.ndarray, reduction_steps: np.ndarray, multipliers: np.ndarray) -> np.ndarray:
        try:
            with np.errstate(all="ignore"):
                values = self.schedule(steps)
                if self.plateaus:
                    k = np.searchsorted(reduction_steps, steps, side="left")
                    in_effect = np.searchsorted(self._plateau_steps, steps, side="right") - 1
                    floor = np.minimum(values, self._min_lrs[in_effect])
                    values = np.maximum(values * multipliers[k], floor)
        except ExpressionError as error:
            raise InvalidInput(f"step: {error}") from None
        first = first_bad(values)
        if first is not None:
            raise InvalidInput(
                f"step: the schedule's learning rate at step {int(steps[first])} is {values[first]}, "
                f"not {LR_RULE}; ask for an earlier step or revise the schedule"
            )
        return values

    def lr(self, step: int) -> float:
        """One step's lr, computed with its block of 1,024 steps and memoized (see `lrserve.memo`)."""
        index, offset = divmod(step, BLOCK)
        block = MEMO.get(self.memo_key, index)
        if block is None:
            try:
                start = index * BLOCK
                block = self.lrs(np.arange(start, start + BLOCK, dtype=np.float64))
            except InvalidInput:  # somewhere in the block, maybe not at `step`: ask for that step alone
                return float(self.lrs(np.array([step], dtype=np.float64))[0])
            MEMO.put(self.memo_key, index, block)
        return float(block[offset])

    def momentums(self, steps: np.ndarray) -> np.ndarray | None:
        """The momentum of `steps` (NaN where the schedule in effect sets none), or None for a run without any."""
        return None if self.momentum is None else self.momentum(steps)

    def momentum_at(self, step: int) -> float | None:
        """One step's momentum, or None where the schedule in effect sets none."""
        if self.momentum is None:
            return None
        value = float(self.momentum(np.array([step], dtype=np.float64))[0])
        return None if np.isnan(value) else value

    # -- reports -------------------------------------------------------------------------------

    def report_at(self, step: int) -> ReportRecord | None:
        index = int(np.searchsorted(self._report_steps, step))
        if index < len(self.reports) and self.reports[index].step == step:
            return self.reports[index]
        return None

    def reports_after(self, step: int) -> tuple[ReportRecord, ...]:
        return self.reports[int(np.searchsorted(self._report_steps, step, side="right")):]

    @cached_property
    def _report_steps(self) -> np.ndarray:
        return np.fromiter((r.step for r in self.reports), dtype=np.int64, count=len(self.reports))

    # -- transitions ---------------------------------------------------------------------------

    def accept(self, report: Report, received_at: str) -> tuple[ReportRecord, RunView | None]:
        """The report's outcome and the view once it is stored; None instead of a view for an exact repeat.

        Rules: a repeat (same step, same metrics) gets the original outcome, however late; different
        metrics for a reported step, or a step below the latest report, are a conflict (409).
        """
        earlier = self.report_at(report.step)
        if earlier is not None:
            if canonical_metrics(earlier.metrics) == canonical_metrics(report.metrics):
                return earlier, None
            raise ReportConflict(
                f"step: a report for step {report.step} was already accepted with different metrics "
                f"({canonical_metrics(earlier.metrics)}); reports are never overwritten. If workers measure "
                "their own values, all-reduce them first or let one worker report; to redo training from a "
                "checkpoint, POST /rewind first."
            )
        latest = self.latest_step
        if latest is not None and report.step < latest:
            raise ReportConflict(
                f"step: reports must come in increasing step order; step {report.step} is lower than "
                f"{latest}, the latest accepted report. To resume from a checkpoint, POST /rewind first."
            )
        state, reduced = self.state, False
        reduction_steps, multipliers = self.reduction_steps, self.multipliers
        if self.plateau is not None and state is not None:
            plateau = self.plateau_at(report.step)
            value = report.value(plateau.monitor)
            if value is not None and report.step >= plateau.start_step:
                outcome = advance(plateau, state, value, self._lr_alone(report.step))
                state, reduced = outcome.state, outcome.reduced
                if reduced:
                    reduction_steps = np.append(reduction_steps, float(report.step))
                    multipliers = np.append(multipliers, multipliers[-1] * plateau.factor)
        try:
            next_lr = float(self._lrs_with(np.array([report.step + 1], dtype=np.float64), reduction_steps,
                                           multipliers)[0])
        except InvalidInput as error:  # a growing schedule past its overflow: the answer would carry it
            raise InvalidInput(f"{error}. A report's answer carries the lr of the next step, so this report "
                               "was not stored") from None
        record = ReportRecord(
            step=report.step, metrics=dict(report.metrics), reduced=reduced, next_lr=next_lr,
            state=asdict(state) if state is not None else None, received_at=received_at,
        )
        after = replace(self, record=_bumped(self.record), reports=(*self.reports, record),
                        reduction_steps=reduction_steps, multipliers=multipliers, state=state)
        return record, after

    def report_warnings(self, report: Report) -> list[str]:
        """What the answer to `report` warns about: a plateau's monitored metric that the report lacks."""
        plateau = self.plateau
        if plateau is None or plateau.monitor in report.metrics:
            return []
        sent = ", ".join(repr(name) for name in sorted(report.metrics)) or "none"
        return [f"metrics: no {plateau.monitor!r}, the metric the plateau monitors, so this report was recorded "
                f"but did not move the tracker. Metrics sent: {sent}."]

    def rewound(self, step: int) -> RunView:
        """The run as if no report after `step` had been made (resume from a checkpoint); revisions stay."""
        kept = self.reports[:int(np.searchsorted(self._report_steps, step, side="right"))]
        return _compiled(_bumped(self.record), self.spec, self.revisions, kept)

    def revised(self, revision: Revision, created_at: str) -> tuple[RevisionRecord, RunView | None]:
        """From `revision.from_step` on, follow the new schedule and/or plateau settings; refused where it
        would change history. None instead of a view for a repeat of an accepted revision (same body),
        which gets the original, however late it comes."""
        key = from_step, schedule, change, reason = revision.canonical()
        for earlier in self.revisions:
            if (earlier.from_step, earlier.schedule, earlier.plateau, earlier.reason) == key:
                return earlier, None
        latest = self.latest_step
        if latest is not None and from_step <= latest:
            raise RevisionConflict(
                f"from_step: must be greater than {latest}, the step of the latest accepted report, "
                f"so that history never changes; received {from_step}"
            )
        if self.revisions and from_step < self.revisions[-1].from_step:
            raise RevisionConflict(
                f"from_step: must not be below {self.revisions[-1].from_step}, the from_step of the "
                f"previous revision; received {from_step}"
            )
        plateaus = self.plateaus
        if revision.plateau is not None:
            if not plateaus:
                raise InvalidInput("plateau: the run has no plateau tracker, so there is nothing to change; "
                                   "revise its schedule only, or create a run with a plateau")
            try:
                plateaus = (*plateaus, (from_step, changed(plateaus[-1][1], revision.plateau)))
            except ValueError as error:
                raise InvalidInput(str(error)) from None
        if revision.schedule is not None and revision.schedule.recursive_cost():
            _check_recursive_cost(self.spec, self.revisions, revision.schedule)
        record = RevisionRecord(from_step=from_step, schedule=schedule, reason=reason, created_at=created_at,
                                plateau=change)
        revisions = (*self.revisions, record)
        served = schedule_of(self.spec, revisions)
        return record, replace(self, record=_bumped(self.record), revisions=revisions, plateaus=plateaus,
                               schedule=served.lr, momentum=served.momentum)

    def _lr_alone(self, step: int) -> float:
        """One step's lr without filling the memo (for a view about to be replaced)."""
        return float(self.lrs(np.array([step], dtype=np.float64))[0])


def _check_recursive_cost(spec: RunSpec, revisions: tuple[RevisionRecord, ...], schedule: ScheduleModel) -> None:
    """A run's recursive expressions (its spec's and its revisions') each compute their own steps, so together
    they get the budget of one: else a request spanning them all could take their number times as long."""
    schedules = [spec.schedule, *(ScheduleAdapter.validate_python(r.schedule)
                                  for r in revisions if r.schedule is not None), schedule]
    try:
        check_recursive_cost(schedules, "schedule: the run's")
    except ValueError as error:
        raise InvalidInput(str(error)) from None


def _bumped(record: RunRecord) -> RunRecord:
    return replace(record, version=record.version + 1)


@dataclass(frozen=True)
class ServedSchedule:
    """What a run's schedules serve, as functions of the step: the lr before plateau reductions, and the
    momentum (NaN where the schedule in effect sets none; None when no schedule of the run cycles it)."""

    lr: ScheduleFn
    momentum: ScheduleFn | None


def schedule_of(spec: RunSpec, revisions: tuple[RevisionRecord, ...] = ()) -> ServedSchedule:
    """The one way from a spec and its revisions to functions of the step: the spec's schedule joined with
    each revision that carries one, from its `from_step` on (a plateau-only revision keeps it)."""
    revised = [r for r in revisions if r.schedule is not None]
    if not revised:
        return ServedSchedule(spec.schedule.build(), spec.schedule.momentum())
    later = [ScheduleAdapter.validate_python(r.schedule) for r in revised]
    boundaries = [r.from_step for r in revised]
    return ServedSchedule(join([spec.schedule.build(), *(s.build() for s in later)], boundaries),
                          join_momentum([spec.schedule.momentum(), *(s.momentum() for s in later)], boundaries))


def plateaus_with_revisions(spec: RunSpec, revisions: tuple[RevisionRecord, ...]
                            ) -> tuple[tuple[int, KerasPlateau | TorchPlateau], ...]:
    """(from_step, settings in effect from it on): the spec's from step 0, then each plateau revision's."""
    if spec.plateau is None:
        return ()
    plateaus = [(0, spec.plateau)]
    for revision in revisions:
        if revision.plateau is not None:
            plateaus.append((revision.from_step, changed(plateaus[-1][1], PlateauChange(**revision.plateau))))
    return tuple(plateaus)


def _compiled(record: RunRecord, spec: RunSpec, revisions: tuple[RevisionRecord, ...],
              reports: tuple[ReportRecord, ...]) -> RunView:
    """The stored reports already carry each outcome, so nothing is replayed."""
    plateaus = plateaus_with_revisions(spec, revisions)
    plateau_steps = [step for step, _ in plateaus]
    reduced = [r.step for r in reports if r.reduced]
    factors = [plateaus[bisect_right(plateau_steps, step) - 1][1].factor for step in reduced]
    served = schedule_of(spec, revisions)
    return RunView(
        record=record,
        spec=spec,
        schedule=served.lr,
        momentum=served.momentum,
        revisions=revisions,
        reports=reports,
        reduction_steps=np.array(reduced, dtype=np.float64),
        multipliers=np.cumprod([1.0, *factors]),
        plateaus=plateaus,
        state=(TrackerState(**reports[-1].state) if reports and reports[-1].state else TrackerState())
        if spec.plateau else None,
    )


def view_of(stored: StoredRun, spec: RunSpec | None = None) -> RunView:
    """Compile a stored run into a view; `spec`, when it is the stored spec already validated, saves
    validating it again (for an expression-heavy spec, most of the cost)."""
    if spec is None or spec.canonical() != stored.run.spec_json:
        spec = RunSpec.model_validate(stored.run.spec_json)
    return _compiled(stored.run, spec, tuple(stored.revisions), tuple(stored.reports))


def new_view(spec: RunSpec) -> RunView:
    """The view of a run just created with `spec` (no reports, no revisions): what a preview computes with
    (`POST /preview`, `lrserve preview` and `lrserve plot SPEC.json`), so it shows what such a run serves."""
    return _compiled(RunRecord(run_id="preview", spec_json=spec.canonical(), created_at=""), spec, (), ())
