"""The schedule catalog: one discriminated union of parameter models, each building a vectorized function."""

from lrserve.schedules.base import ScheduleFn, ScheduleModel
from lrserve.schedules.catalog import MAX_SEQUENCE_DEPTH, Schedule, ScheduleAdapter, Sequence
from lrserve.schedules.recursion import NotCached, cached_only

__all__ = [
    "MAX_SEQUENCE_DEPTH", "NotCached", "Schedule", "ScheduleAdapter", "ScheduleFn", "ScheduleModel", "Sequence",
    "cached_only",
]
