"""A run as a value: the schedule with its revisions, the reports and the plateau reductions so far,
and the pure transitions that carry the contract's report, rewind and revision rules.

lr(N) = max(schedule(N) * factor**k, min(schedule(N), min_lr)), with k the reductions that took effect at
reports on steps < N, so an accepted report can never change the lr of a step it has already passed.
`min_lr` bounds reductions only: an lr the schedule itself puts below it (a warmup from 0, a long tail) is
served as it is, as Keras and PyTorch never raise an lr to `min_lr`.

A transition (`accept`, `rewound`, `revised`) returns a new view and never touches storage: `Runs`
decides a write with it on the run's current state and stores what it returns.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, replace
from functools import cached_property
from typing import Any

import numpy as np

from lrserve.errors import InvalidInput, ReportConflict, RevisionConflict
from lrserve.memo import BLOCK, MEMO
from lrserve.plateau import KerasPlateau, TorchPlateau, TrackerState, advance
from lrserve.schedules import ScheduleAdapter, ScheduleFn
from lrserve.schedules.base import STORED
from lrserve.schedules.expression import ExpressionError, check_recursive_cost
from lrserve.schedules.join import join, join_momentum
from lrserve.spec import MAX_STEP, Report, Revision, RunSpec
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
    state: TrackerState | None
    momentum: ScheduleFn | None = None
    """The momentum of each step (NaN where the schedule in effect sets none); None when no schedule of the
    run cycles momentum."""
    memo_key: int = field(default_factory=MEMO.new_key, compare=False, init=False)

    @property
    def plateau(self) -> KerasPlateau | TorchPlateau | None:
        return self.spec.plateau

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
        return self._lrs_with(steps, self.reduction_steps)

    def _lrs_with(self, steps: np.ndarray, reduction_steps: np.ndarray) -> np.ndarray:
        try:
            with np.errstate(all="ignore"):
                values = self.schedule(steps)
                if self.plateau is not None:
                    k = np.searchsorted(reduction_steps, steps, side="left")
                    floor = np.minimum(values, self.plateau.min_lr)
                    values = np.maximum(values * np.power(self.plateau.factor, k), floor)
        except ExpressionError as error:
            raise InvalidInput(f"step: {error}") from None
        bad = ~np.isfinite(values) | (values < 0)
        if bad.any():
            first = int(np.argmax(bad))
            raise InvalidInput(
                f"step: the schedule's learning rate at step {int(steps[first])} is {values[first]}, "
                "not a finite number >= 0; ask for an earlier step or revise the schedule"
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
        if report.step + 1 > MAX_STEP:
            raise InvalidInput(f"step: must be below {MAX_STEP}; received {report.step}")
        plateau, state, reduced = self.plateau, self.state, False
        reduction_steps = self.reduction_steps
        if plateau is not None and state is not None:
            value = report.value(plateau.monitor)
            if value is not None:
                outcome = advance(plateau, state, value, self._lr_alone(report.step))
                state, reduced = outcome.state, outcome.reduced
                if reduced:
                    reduction_steps = np.append(reduction_steps, float(report.step))
        next_lr = float(self._lrs_with(np.array([report.step + 1], dtype=np.float64), reduction_steps)[0])
        record = ReportRecord(
            step=report.step, metrics=dict(report.metrics), reduced=reduced, next_lr=next_lr,
            state=asdict(state) if state is not None else None, received_at=received_at,
        )
        after = replace(self, record=_bumped(self.record), reports=(*self.reports, record),
                        reduction_steps=reduction_steps, state=state)
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

    def revised(self, revision: Revision, created_at: str) -> tuple[RevisionRecord, RunView]:
        """From `revision.from_step` on, follow the new schedule; refused where it would change history."""
        latest = self.latest_step
        if latest is not None and revision.from_step <= latest:
            raise RevisionConflict(
                f"from_step: must be greater than {latest}, the step of the latest accepted report, "
                f"so that history never changes; received {revision.from_step}"
            )
        if self.revisions and revision.from_step < self.revisions[-1].from_step:
            raise RevisionConflict(
                f"from_step: must not be below {self.revisions[-1].from_step}, the from_step of the "
                f"previous revision; received {revision.from_step}"
            )
        if revision.schedule.recursive_cost():
            _check_recursive_cost(self.spec, self.revisions, revision)
        record = RevisionRecord(
            from_step=revision.from_step, schedule=revision.schedule.model_dump(mode="json"),
            reason=revision.reason, created_at=created_at,
        )
        revisions = (*self.revisions, record)
        return record, replace(self, record=_bumped(self.record), revisions=revisions,
                               schedule=schedule_with_revisions(self.spec, revisions),
                               momentum=momentum_with_revisions(self.spec, revisions))

    def _lr_alone(self, step: int) -> float:
        """One step's lr without filling the memo (for a view about to be replaced)."""
        return float(self.lrs(np.array([step], dtype=np.float64))[0])


def _check_recursive_cost(spec: RunSpec, revisions: tuple[RevisionRecord, ...], revision: Revision) -> None:
    """A run's recursive expressions (its spec's and its revisions') each compute their own steps, so together
    they get the budget of one: else a request spanning them all could take their number times as long."""
    schedules = [spec.schedule, *(ScheduleAdapter.validate_python(r.schedule, context={STORED: True})
                                  for r in revisions), revision.schedule]
    try:
        check_recursive_cost(schedules, "schedule: the run's")
    except ValueError as error:
        raise InvalidInput(str(error)) from None


def _bumped(record: RunRecord) -> RunRecord:
    return replace(record, version=record.version + 1)


def schedule_with_revisions(spec: RunSpec, revisions: tuple[RevisionRecord, ...]) -> ScheduleFn:
    if not revisions:
        return spec.schedule.build()
    later = [ScheduleAdapter.validate_python(r.schedule, context={STORED: True}).build() for r in revisions]
    return join([spec.schedule.build(), *later], [r.from_step for r in revisions])


def momentum_with_revisions(spec: RunSpec, revisions: tuple[RevisionRecord, ...]) -> ScheduleFn | None:
    """The momentum joined like the lr: the spec's schedule, then each revision's from its `from_step` on."""
    if not revisions:
        return spec.schedule.momentum()
    later = [ScheduleAdapter.validate_python(r.schedule, context={STORED: True}).momentum() for r in revisions]
    return join_momentum([spec.schedule.momentum(), *later], [r.from_step for r in revisions])


def _compiled(record: RunRecord, spec: RunSpec, revisions: tuple[RevisionRecord, ...],
              reports: tuple[ReportRecord, ...]) -> RunView:
    """The stored reports already carry each outcome, so nothing is replayed."""
    return RunView(
        record=record,
        spec=spec,
        schedule=schedule_with_revisions(spec, revisions),
        momentum=momentum_with_revisions(spec, revisions),
        revisions=revisions,
        reports=reports,
        reduction_steps=np.array([r.step for r in reports if r.reduced], dtype=np.float64),
        state=(TrackerState(**reports[-1].state) if reports and reports[-1].state else TrackerState())
        if spec.plateau else None,
    )


def view_of(stored: StoredRun, spec: RunSpec | None = None) -> RunView:
    """Compile a stored run into a view; `spec`, when it is the stored spec already validated, saves
    validating it again (for an expression-heavy spec, most of the cost)."""
    if spec is None or spec.canonical() != stored.run.spec:
        spec = RunSpec.model_validate(stored.run.spec, context={STORED: True})
    return _compiled(stored.run, spec, tuple(stored.revisions), tuple(stored.reports))
