"""Recursive expressions, `lr(0) = f(0, lr_init)` and `lr(n) = f(n, lr(n-1))`: computed in order, in chunks, kept in a
cache bounded in bytes for the whole process.

Steps must be computed one after the other, so a recursive expression is the only schedule whose cost grows
with the step asked: up to about a second for step 1,000,000 (`Expression` refuses any whose cost would be
larger). Three rules keep that cost from hurting the service:

- values are computed only up to the highest step asked, never further (a `sequence` of many short recursive
  segments computes a few steps of each);
- they are kept as float64 (8 bytes a step) in one LRU cache for every run of the process, bounded by
  `MAX_CACHE_BYTES`; an evicted sequence is computed again when it is asked for. Runs with the same
  expression and initial lr share one sequence, since it is a pure function of the two;
- code on the event loop reads under `cached_only()`: there, a step not computed yet raises `NotCached`
  instead of being computed, so that the caller can compute it in a worker thread.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

import numpy as np

from lrserve.schedules.compiler import ExpressionError, Spine

MAX_RECURSIVE_STEP = 1_000_000
CHUNK = 16_384
MAX_CACHE_BYTES = 256 * 1024 * 1024

_cached_only: ContextVar[bool] = ContextVar("lrserve_recursion_cached_only", default=False)


class NotCached(Exception):
    """A step of a recursive expression is not computed yet, inside `cached_only()`."""


@contextmanager
def cached_only() -> Iterator[None]:
    """Within this block, recursive expressions answer from their cache or raise `NotCached`; never compute."""
    token = _cached_only.set(True)
    try:
        yield
    finally:
        _cached_only.reset(token)


class _Sequence:
    """The values lr(0), lr(1), ... computed so far. Readers take `known` (array, count) in one read, without
    the lock: the array is only ever appended to, or replaced by a longer copy."""

    def __init__(self) -> None:
        self.known: tuple[np.ndarray, int] = (np.empty(0), 0)
        self.lock = threading.Lock()

    @property
    def nbytes(self) -> int:
        return self.known[0].nbytes


class _Cache:
    """Every sequence of the process, least recently used first, bounded by the bytes of their arrays."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._sequences: OrderedDict[tuple[str, str], _Sequence] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: tuple[str, str], create: bool) -> _Sequence | None:
        with self._lock:
            sequence = self._sequences.get(key)
            if sequence is not None:
                self._sequences.move_to_end(key)
            elif create:
                sequence = self._sequences[key] = _Sequence()
            return sequence

    def grown(self, key: tuple[str, str], sequence: _Sequence) -> None:
        """Account for `sequence` having grown: evict the least recently used others until all fit."""
        with self._lock:
            if self._sequences.get(key) is not sequence:  # evicted while it was being computed
                return
            total = sum(s.nbytes for s in self._sequences.values())
            for other_key in list(self._sequences):
                if total <= self.max_bytes:
                    break
                if other_key != key:
                    total -= self._sequences.pop(other_key).nbytes

    @property
    def nbytes(self) -> int:
        with self._lock:
            return sum(s.nbytes for s in self._sequences.values())

    def clear(self) -> None:
        with self._lock:
            self._sequences.clear()


CACHE = _Cache(MAX_CACHE_BYTES)
"""The process's cache of recursive sequences, shared by every run."""


class Recursion:
    """The schedule function of a recursive expression: lr(steps) read from (or computed into) the cache."""

    def __init__(self, spine: Spine, expression: str, initial: float) -> None:
        self._spine = spine
        self._initial = initial
        self._key = (expression, initial.hex())  # hex: 0.0 and -0.0 are equal, yet may start different sequences

    def __call__(self, step: np.ndarray) -> np.ndarray:
        step = np.asarray(step, dtype=np.float64)
        if step.size == 0:
            return np.empty(step.shape)
        last = int(step.max())
        if last > MAX_RECURSIVE_STEP:
            raise ExpressionError(
                f"a recursive expression is served up to step {MAX_RECURSIVE_STEP}; step {last} was requested"
            )
        values, count = self._known_up_to(last)
        assert count > last
        return values[step.astype(np.int64)]

    def _known_up_to(self, last: int) -> tuple[np.ndarray, int]:
        sequence = CACHE.get(self._key, create=not _cached_only.get())
        if sequence is not None:
            values, count = sequence.known
            if count > last:
                return values, count
        if sequence is None or _cached_only.get():
            raise NotCached(f"step {last} of a recursive expression is not computed yet")
        with sequence.lock:
            self._extend(sequence, last)
        CACHE.grown(self._key, sequence)
        return sequence.known

    def _extend(self, sequence: _Sequence, last: int) -> None:
        """Compute the steps up to `last`, a chunk at a time (the caller holds the sequence's lock)."""
        values, count = sequence.known
        if count > last:
            return
        end = last + 1
        if len(values) < end:
            grown = np.empty(min(MAX_RECURSIVE_STEP + 1, max(end, 2 * len(values))))
            grown[:count] = values[:count]
            values = grown
        step_fn = self._spine.step_fn
        lr = float(values[count - 1]) if count else self._initial
        with np.errstate(all="ignore"):
            for start in range(count, end, CHUNK):
                stop = min(start + CHUNK, end)
                rows = self._spine.columns(np.arange(start, stop, dtype=np.float64))
                chunk = []
                append = chunk.append
                for row in rows:
                    lr = step_fn(row, lr)
                    append(lr)
                values[start:stop] = chunk
                sequence.known = (values, stop)
