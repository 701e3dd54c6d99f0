"""A run as the service serves it: the schedule with its revisions, and the plateau reductions so far.

lr(N) = max(schedule(N) * factor**k, min_lr), with k the reductions that took effect at reports on steps
< N, so an accepted report can never change the lr of a step it has already passed.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np

from lrserve.errors import InvalidInput
from lrserve.plateau import KerasPlateau, TorchPlateau, TrackerState
from lrserve.schedules import ScheduleAdapter, ScheduleFn
from lrserve.schedules.expression import ExpressionError
from lrserve.schedules.join import join
from lrserve.spec import STORED, RunSpec
from lrserve.store import ReportRecord, RevisionRecord, RunRecord, StoredRun

_BLOCK = 1024
_MAX_BLOCKS = 256  # 2 MiB of float64 per run at most


@dataclass(frozen=True)
class RunView:
    """An immutable snapshot of one run; a write builds a new one (with an empty memo) and swaps it in."""

    record: RunRecord
    spec: RunSpec
    schedule: ScheduleFn
    revisions: tuple[RevisionRecord, ...]
    reports: tuple[ReportRecord, ...]
    reduction_steps: np.ndarray
    state: TrackerState | None
    memo: dict[int, np.ndarray] = field(default_factory=dict, compare=False, init=False)
    memo_lock: threading.Lock = field(default_factory=threading.Lock, compare=False, init=False)

    @property
    def plateau(self) -> KerasPlateau | TorchPlateau | None:
        return self.spec.plateau

    @property
    def latest_step(self) -> int | None:
        return self.reports[-1].step if self.reports else None

    def lrs(self, steps: np.ndarray) -> np.ndarray:
        """The learning rates of `steps` (float64 array of whole numbers); 422 where one is not finite."""
        return self.lrs_with(steps, self.reduction_steps)

    def lrs_with(self, steps: np.ndarray, reduction_steps: np.ndarray) -> np.ndarray:
        try:
            with np.errstate(all="ignore"):
                values = self.schedule(steps)
                if self.plateau is not None:
                    k = np.searchsorted(reduction_steps, steps, side="left")
                    values = np.maximum(values * np.power(self.plateau.factor, k), self.plateau.min_lr)
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
        """One step's lr. Computed a block of 1,024 steps at a time and memoized: training asks for
        consecutive steps, one numpy call costs about as much for 1,024 steps as for one, and the view is
        immutable, so the memo never goes stale."""
        index, offset = divmod(step, _BLOCK)
        block = self.memo.get(index)
        if block is None:
            try:
                start = index * _BLOCK
                block = self.lrs(np.arange(start, start + _BLOCK, dtype=np.float64))
            except InvalidInput:  # somewhere in the block, maybe not at `step`: ask for that step alone
                return float(self.lrs(np.array([step], dtype=np.float64))[0])
            with self.memo_lock:  # a hit reads without the lock; only misses change the memo
                if len(self.memo) >= _MAX_BLOCKS:
                    self.memo.pop(next(iter(self.memo)))  # the oldest block
                self.memo[index] = block
        return float(block[offset])

    def report_at(self, step: int) -> ReportRecord | None:
        index = int(np.searchsorted(self._report_steps, step))
        if index < len(self.reports) and self.reports[index].step == step:
            return self.reports[index]
        return None

    @cached_property
    def _report_steps(self) -> np.ndarray:
        return np.fromiter((r.step for r in self.reports), dtype=np.int64, count=len(self.reports))


def schedule_with_revisions(spec: RunSpec, revisions: tuple[RevisionRecord, ...]) -> ScheduleFn:
    if not revisions:
        return spec.schedule.build()
    later = [ScheduleAdapter.validate_python(r.schedule).build() for r in revisions]
    return join([spec.schedule.build(), *later], [r.from_step for r in revisions])


def state_from(record: dict | None) -> TrackerState:
    return TrackerState(**record) if record else TrackerState()


def view_of(stored: StoredRun) -> RunView:
    """Compile a stored run into a view: the stored reports already carry each outcome, so nothing is replayed."""
    spec = RunSpec.model_validate(stored.run.spec, context={STORED: True})
    revisions = tuple(stored.revisions)
    reports = tuple(stored.reports)
    return RunView(
        record=stored.run,
        spec=spec,
        schedule=schedule_with_revisions(spec, revisions),
        revisions=revisions,
        reports=reports,
        reduction_steps=np.array([r.step for r in reports if r.reduced], dtype=np.float64),
        state=(state_from(reports[-1].state) if reports else TrackerState()) if spec.plateau else None,
    )
