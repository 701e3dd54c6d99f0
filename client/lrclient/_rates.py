"""`LearningRates`: the cache framework adapters read learning rates through, correct by construction.

What makes a cached value safe to reuse comes from the contract:

- lr(N) is fixed once a report at a step >= N is accepted ("settled"), until a rewind.
- Any other cached value ("provisional") is the service's answer as of one run version. Every
  accepted write (report, rewind, revision) moves the version by exactly one, so comparing two
  run bodies tells what happened in between: `reports` counts reports, `revisions` lists
  revisions, and only a rewind moves the version without adding to either.
- Without a plateau tracker, reports and rewinds change no lr at all; only a revision does. With one,
  a report changes the lrs after its step only when its reduction takes effect (the run's
  `state.reductions` grows), so values fetched ahead outlive the reports that reduce nothing.
"""

from __future__ import annotations

import math
import time
import warnings
from array import array
from bisect import bisect_right, insort
from collections.abc import Mapping, Sequence
from dataclasses import replace
from typing import Any, Literal, TypeVar

from . import _base
from ._client import Client
from ._exceptions import InvalidRequest, LrserveError, ServiceUnreachable
from ._types import ReportOutcome, Run

T = TypeVar("T")

MAX_STEP = 2**40
MAX_RANGE_VALUES = 1_000_000
DEFAULT_HORIZON = 1_000
"""The horizon (steps fetched ahead in one request) when nothing tells how long training is: `LearningRates`'
default for a batch run (1 for an epoch run), and the adapters' default for an epoch run."""


class LearningRates:
    """Learning rates of one run, fetched ahead and reused while the contract says they hold.

        rates = LearningRates(client, "resnet-1", horizon=steps_per_epoch)
        lr = rates.lr(step)                 # one request per `horizon` steps, or none
        rates.report(step, {"val_loss": v}) # settles every step <= step
        rates.refresh()                     # at each epoch boundary: sees other workers' writes

    `lr(step)` prefetches `[step, step + horizon)` in one request (horizon: 1 for epoch runs, else
    the adapter passes the steps per epoch). With `on_error="raise"` an outage (no answer after
    the client's retries, or a 502/503/504) raises `ServiceUnreachable`; with `on_error="last"`
    `lr` returns the last learning rate it returned, warns once per outage, probes the service
    at most every `probe_interval` seconds, and resumes as soon as it answers. It never invents
    a learning rate: without one known it raises either way. `report` always raises on an outage
    (the adapters decide whether to queue it). `requests` counts the requests sent (a retried
    request counts once); `outage` is True while the service cannot be reached. `run` may be a run
    body the caller already holds (e.g. the answer of `create_run`): it saves the first request.
    Not thread-safe: one per training loop.
    """

    def __init__(self, client: Client, run_id: str, *, horizon: int | None = None,
                 on_error: Literal["raise", "last"] = "raise", run: Run | None = None) -> None:
        if on_error not in ("raise", "last"):
            raise ValueError(f'on_error must be "raise" or "last". Received: on_error={on_error!r}')
        if horizon is not None and (isinstance(horizon, bool) or not isinstance(horizon, int) or horizon < 1):
            raise ValueError(f"horizon must be None or an int >= 1. Received: horizon={horizon!r}")
        self.client = client
        self.run_id = run_id
        self.horizon = horizon
        self.on_error = on_error
        self.probe_interval = 1.0
        self.requests = 0
        self._run: Run | None = run  # the run as of the last sync; every cached value holds for it
        self._cache = _Blocks()
        self._momenta = _Blocks()  # NaN: the schedule in effect sets no momentum. Reports never change these.
        self._last_lr: float | None = None
        self._last_momentum: float | None = None
        self._failed_at: float | None = None  # monotonic time of the last failure, while in an outage
        self._warned = False

    def __repr__(self) -> str:
        version = None if self._run is None else self._run.version
        return f"LearningRates(run_id={self.run_id!r}, version={version}, cached_steps={len(self._cache)})"

    # -- what the run says ----------------------------------------------------------------------------

    @property
    def run(self) -> Run:
        """The run as of the last revalidation (fetched on first use)."""
        try:
            return self._synced()
        except LrserveError as error:
            if not _base.is_outage(error):
                raise
            raise self._unreachable(error) from error

    @property
    def step_unit(self) -> str:
        """What a step counts: "epoch" or "batch"."""
        return self.run.step_unit

    @property
    def plateau(self) -> Mapping[str, Any] | None:
        """The run's plateau settings (`monitor`, ...), or None."""
        return self.run.plateau

    # -- reading and writing --------------------------------------------------------------------------

    def lr(self, step: int) -> float:
        """The learning rate of `step`: from the cache, else one `lr/range` request for the horizon."""
        cached = self._cache.get(step)
        if cached is None:
            if self.on_error == "last" and self._last_lr is not None and self._resting():
                return self._last_lr
            try:
                cached, _ = self._fetch(step)
            except LrserveError as error:
                if not _base.is_outage(error):
                    raise
                return self._fallback(error)
        self._last_lr = cached
        return cached

    def momentum(self, step: int) -> float | None:
        """The momentum of `step`, None where the schedule in effect sets none: from the cache `lr(step)` filled
        (reports never change a momentum), else one request. In an outage, as `lr` (the last one returned)."""
        cached = self._momenta.get(step)
        if cached is None:
            if self.on_error == "last" and self._last_lr is not None and self._resting():
                return self._last_momentum
            try:
                _, momentum = self._fetch(step)
            except LrserveError as error:
                if not _base.is_outage(error):
                    raise
                self._fallback(error)
                return self._last_momentum
        else:
            momentum = None if math.isnan(cached) else cached
        self._last_momentum = momentum
        return momentum

    def report(self, step: int, metrics: Mapping[str, float | int | str]) -> ReportOutcome:
        """Report metrics measured at the end of `step`; steps <= `step` become settled."""
        old = self.run
        try:
            outcome = self._send(_base.report(self.run_id, step, metrics))
        except LrserveError as error:
            if not _base.is_outage(error):
                raise
            raise self._unreachable(error) from error
        latest = -1 if old.latest_step is None else old.latest_step
        if step > latest and outcome.version == old.version + 1:
            # The only write since our last sync was this report (ours, or the same one by a peer).
            self._run = replace(old, latest_step=step, reports=old.reports + 1, version=outcome.version,
                                state=outcome.state, etag=None)
            if old.plateau is not None and outcome.reduced:
                self._cache.drop_above(step)  # this report reduced every later lr
            self._cache.put(step + 1, [outcome.next_lr])
        elif outcome.version != old.version:
            self.refresh()  # somebody else wrote too: learn what before trusting the cache
            if self._run is not None and (self._run.version, self._run.latest_step) == (outcome.version, step):
                self._cache.put(step + 1, [outcome.next_lr])
        return outcome

    def refresh(self, wait_for_step: int | None = None, wait: float = _base.WAIT_FOR_REPORT) -> None:
        """Revalidate with one GET (conditional when possible); drop what a newer version may have changed.

        With `wait_for_step`, the service holds the answer until the run has a report at that step or later
        (or `wait` seconds, at most 10): one request while another worker's report is awaited.
        """
        if self._run is None:
            self.run  # noqa: B018 - the first sync is the revalidation
            return
        if self.on_error == "last" and self._resting():
            return
        etag = self._run.etag
        call = _base.get_run(self.run_id, wait_for_step, wait) if etag is None else \
            _base.get_run_if_changed(self.run_id, etag, wait_for_step, wait)
        try:
            changed = self._send(call)
        except LrserveError as error:
            if not _base.is_outage(error):
                raise
            if self.on_error == "raise":
                raise self._unreachable(error) from error
            self._warn(error, stacklevel=4)
            return
        if changed is not None:
            self._apply(changed)

    @property
    def version(self) -> int | None:
        """The run version the cache holds for (None before the first request)."""
        return None if self._run is None else self._run.version

    @property
    def outage(self) -> bool:
        """True from a request that met an outage until one is answered again."""
        return self._failed_at is not None

    # -- internals ------------------------------------------------------------------------------------

    def _synced(self) -> Run:
        if self._run is None:
            self._apply(self._send(_base.get_run(self.run_id)))
        assert self._run is not None
        return self._run

    def _fetch(self, step: int) -> tuple[float, float | None]:
        """The lr and momentum of `step`, caching those of the horizon from it when the run has not moved."""
        run = self._synced()
        horizon = self.horizon or (1 if run.step_unit == "epoch" else DEFAULT_HORIZON)
        stop = max(step + 1, min(step + horizon, step + MAX_RANGE_VALUES, MAX_STEP + 1))
        try:
            fetched = self._send(_base.lr_range(self.run_id, step, stop))
        except InvalidRequest:
            if stop - step == 1:
                raise
            # The step is fine but a later one of the horizon is not (e.g. past a recursive
            # expression's last step): ask for this one alone, and the service says which.
            return self._send(_base.lr_point(self.run_id, step))
        if fetched.version != run.version:
            self.refresh()  # the run moved since our last sync: learn how before caching anything
        momenta = fetched.momentum or (None,) * len(fetched.lr)
        if self._run is not None and fetched.version == self._run.version:
            self._cache.put(step, fetched.lr)
            self._momenta.put(step, [math.nan if m is None else m for m in momenta])
        return fetched.lr[0], momenta[0]

    def _apply(self, new: Run) -> None:
        """Adopt a newer run body, keeping only the cached values it cannot have changed."""
        old, self._run = self._run, new
        if old is None or new.created_at != old.created_at or new.version < old.version:
            self._cache.clear()  # first sync, or the run was deleted and created again
            self._momenta.clear()
            return
        if new.version == old.version:
            return  # nothing was written since what we hold
        revised = len(new.revisions) != len(old.revisions)
        if revised:
            self._momenta.clear()  # only a revision changes a momentum (rare: start again)
        if new.plateau is None and not revised:
            return  # without a tracker only a revision changes an lr
        rewound = new.version - old.version != (new.reports - old.reports) + (len(new.revisions) - len(old.revisions))
        if rewound:
            self._cache.clear()  # we cannot tell which step it went back to: nothing is settled
        elif revised or _reductions(new) != _reductions(old):
            # Reports and revisions since `old` change only steps after its latest report.
            self._cache.drop_above(-1 if old.latest_step is None else old.latest_step)
        # else: only new reports, none of whose reductions took effect: no lr changed

    def _send(self, call: _base.Call[T]) -> T:
        """One request; during an outage (on_error="last") a single attempt, no retries."""
        probing = self.on_error == "last" and self._failed_at is not None
        self.requests += 1
        try:
            result = self.client._send(call, retries=0 if probing else None)
        except LrserveError as error:
            if _base.is_outage(error):
                self._failed_at = time.monotonic()
            raise
        self._failed_at, self._warned = None, False
        return result

    def _resting(self) -> bool:
        """In an outage, and the last failed attempt is too recent to try again."""
        return self._failed_at is not None and time.monotonic() - self._failed_at < self.probe_interval

    def _fallback(self, error: LrserveError) -> float:
        if self.on_error == "raise" or self._last_lr is None:
            raise self._unreachable(error) from error
        self._warn(error, stacklevel=5)
        return self._last_lr

    def _warn(self, error: LrserveError, stacklevel: int) -> None:
        """Warn once per outage, pointing at the caller of `lr` or `refresh`."""
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"lrserve at {self.client.base_url} cannot be reached for run {self.run_id!r} ({error}); "
                f"training goes on with the last known learning rate {self._last_lr} until it answers again",
                RuntimeWarning,
                stacklevel=stacklevel,
            )

    def _unreachable(self, error: LrserveError) -> ServiceUnreachable:
        known = "" if self._last_lr is not None or self.on_error == "raise" else " and no learning rate is known yet"
        return ServiceUnreachable(
            f"lrserve at {self.client.base_url} cannot be reached for run {self.run_id!r}{known}: {error}. "
            "Start the service (or fix base_url / LRSERVE_URL), or pass on_error=\"last\" to train on "
            "with the last known learning rate during an outage.",
            cause=error,
        )


def _reductions(run: Run) -> int:
    return 0 if run.state is None else run.state.reductions


class _Blocks:
    """Learning rates by step, stored as a few contiguous blocks of doubles (8 bytes a step)."""

    def __init__(self) -> None:
        self._starts: list[int] = []
        self._values: dict[int, array[float]] = {}

    def __len__(self) -> int:
        return sum(map(len, self._values.values()))

    def get(self, step: int) -> float | None:
        i = bisect_right(self._starts, step) - 1
        if i < 0:
            return None
        start = self._starts[i]
        values = self._values[start]
        return values[step - start] if step - start < len(values) else None

    def put(self, start: int, values: Sequence[float]) -> None:
        """Store values for steps start, start+1, ...; they replace whatever was cached there."""
        stop = start + len(values)
        for begin in [s for s in self._starts if s < stop and s + len(self._values[s]) > start]:
            old = self._values.pop(begin)
            self._starts.remove(begin)
            if begin < start:
                self._insert(begin, old[: start - begin])
            if begin + len(old) > stop:
                self._insert(stop, old[stop - begin:])
        self._insert(start, array("d", values))
        self._merge()

    def drop_above(self, step: int) -> None:
        """Forget every step after `step`."""
        for begin in [s for s in self._starts if s + len(self._values[s]) - 1 > step]:
            if begin > step:
                self._starts.remove(begin)
                del self._values[begin]
            else:
                del self._values[begin][step - begin + 1:]

    def clear(self) -> None:
        self._starts.clear()
        self._values.clear()

    def _insert(self, start: int, values: array[float]) -> None:
        insort(self._starts, start)
        self._values[start] = values

    def _merge(self) -> None:
        """Join blocks that touch, so a training loop's sequential reads stay in one block."""
        i = 0
        while i + 1 < len(self._starts):
            start, following = self._starts[i], self._starts[i + 1]
            if start + len(self._values[start]) == following:
                self._values[start].extend(self._values.pop(following))
                del self._starts[i + 1]
            else:
                i += 1
