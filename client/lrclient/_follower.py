"""`RunFollower`: the one core every framework adapter is a thin layer over.

Whatever the framework, a training process follows a run through the same few calls:

    follower = RunFollower("resnet-1", spec=spec, report="chief", on_error="last")
    follower.open(epochs=epochs, steps_per_epoch=n)   # before training: create or load the run
    follower.begin(step)            # the first step this job trains: fails now if its reports would be refused
    lr = follower.lr(step)          # before each step: from memory, but for one request per prefetch
    follower.report(step, logs)     # at each epoch end: the metrics measured at the end of `step`
    follower.boundary()             # between two epochs: before the next epoch's first lr
    follower.close()

It decides everything else, once for all adapters: who reports (`report`), what is reported
(`metrics`), how far learning rates are fetched ahead, when the cache is revalidated, waiting for the
chief's report, resending reports missed during an outage, and the `on_error` policy.

Requests per epoch after the first: the report, and nothing else while reports reduce nothing. The
prefetch reaches to the end of training (or `BATCH_HORIZON` steps), and a report's answer revalidates
the cache (it carries the run's version and `next_lr`), so the epoch boundary needs no request. A
report whose reduction takes effect costs one `lr/range` in the next epoch (epoch runs: none, since
the answer's `next_lr` is the next epoch's lr).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable, Mapping
from typing import Any

from ._adapter import (
    Metrics,
    OnError,
    Report,
    check_choices,
    cycles_momentum,
    open_run,
    reports_here,
    select_metrics,
    waits_for_chief,
)
from . import _base
from ._retry import RetryPolicy
from ._client import Client
from ._exceptions import ReportsAhead, ServiceUnreachable
from ._rates import DEFAULT_HORIZON, LearningRates
from ._types import ReportOutcome, Run

DEFAULT_RETRY = RetryPolicy(retries=7, backoff=0.2, max_backoff=5.0)
"""The retries of a client the follower creates: 12 to 16 s of waiting, so a restarted service goes unnoticed."""
DEFAULT_CHIEF_TIMEOUT = 120.0
"""Seconds a worker that does not report waits for the chief's report before it gives up."""
BATCH_HORIZON = 10_000
"""The horizon of a batch run when the adapter does not know how many steps there will be (an epoch run's is
`DEFAULT_HORIZON`, 1,000 epochs)."""
MAX_HORIZON = 100_000
"""The most values one prefetch asks for (about 2 MB of JSON)."""
RESEND_INTERVAL = 1.0
"""During an outage, queued reports are resent at most this often from `lr` (every boundary tries)."""


def _start_at(step: int) -> str:
    return f"start training at step {step}"


class RunFollower:
    """One run, followed by one training process (see the module docstring for the calls).

    Args:
        run_id: the run's id.
        base_url, token: the service; defaults `$LRSERVE_URL` / `$LRSERVE_TOKEN`.
        client: an `lrclient.Client` to use instead of creating one (the follower then never closes it;
            a client it creates retries for `DEFAULT_RETRY.window()` before giving up).
        spec: create the run at `open()` (the same spec again is fine); None follows an existing run.
        report: True, False, or "chief" (only the chief reports; the others wait for its reports when
            the run has a plateau tracker).
        on_error: "raise" stops on an outage with `ServiceUnreachable`; "last" trains on with the last
            known lr, warns once, and resends the missed reports in order once the service answers.
        metrics: what `report` sends: None (the monitored metric and the names starting with
            `validation_prefix`, or, without a prefix, everything), "all", or a list of names.
        is_chief: decides "chief" instead of the environment (`RANK`, `TF_CONFIG`, `LOCAL_RANK`).
        chief_timeout: seconds a non-reporting worker waits for the chief's report, then `TimeoutError`.
        validation_prefix: the adapter's name prefix of validation metrics (Keras: "val_").
        resume: the adapter's words for "resume at step N" (e.g. Keras' `initial_epoch`), for messages.
    """

    def __init__(
        self,
        run_id: str,
        *,
        base_url: str | None = None,
        token: str | None = None,
        client: Client | None = None,
        spec: Mapping[str, Any] | None = None,
        report: Report = True,
        on_error: OnError = "raise",
        metrics: Metrics = None,
        is_chief: Callable[[], bool] | None = None,
        chief_timeout: float = DEFAULT_CHIEF_TIMEOUT,
        validation_prefix: str | None = None,
        resume: Callable[[int], str] = _start_at,
    ) -> None:
        check_choices(report, on_error, metrics)
        if not chief_timeout > 0:
            raise ValueError(f"chief_timeout must be a number of seconds > 0. Received: chief_timeout={chief_timeout!r}")
        self.run_id, self.spec, self.report_policy, self.on_error = run_id, spec, report, on_error
        self.metrics, self.is_chief, self.chief_timeout = metrics, is_chief, chief_timeout
        self.validation_prefix, self.resume = validation_prefix, resume
        self._base_url, self._token, self._given_client = base_url, token, client
        self.client: Client | None = None
        self.rates: LearningRates | None = None
        self.reporting = False
        self.last_lr: float | None = None  # the lr `lr` returned last
        self._waits = False
        self._queue: list[tuple[int, dict[str, Any]]] = []  # reports not yet accepted (outage), oldest first
        self._failed_at = -float("inf")
        self._fresh = False  # a report's answer (or the chief's) revalidated the cache at this epoch's end
        self._warned_outage = self._warned_metrics = False

    def __repr__(self) -> str:
        return f"RunFollower(run_id={self.run_id!r}, rates={self.rates!r})"

    # -- the calls an adapter makes -----------------------------------------------------------------

    def open(self, *, epochs: int | None = None, steps_per_epoch: int | None = None,
             horizon: int | None = None) -> Run:
        """Create (or load) the run before training. Always raises on an outage: no lr is known yet.

        What the adapter knows of the training's length sets how far a prefetch reaches: the whole
        training when it is known (`epochs`, and `steps_per_epoch` in batch runs), else `DEFAULT_HORIZON`
        epochs or `BATCH_HORIZON` steps; at most `MAX_HORIZON`. `horizon` overrides it.
        """
        self.close()
        self.client = self._given_client or self._new_client()
        run = open_run(self.client, self.run_id, self.spec)
        if horizon is None:
            if run.step_unit == "epoch":
                horizon = epochs or DEFAULT_HORIZON
            else:
                horizon = epochs * steps_per_epoch if epochs and steps_per_epoch else \
                    max(steps_per_epoch or 0, BATCH_HORIZON)
            horizon = min(horizon, MAX_HORIZON)
        self.rates = LearningRates(self.client, self.run_id, horizon=max(1, horizon), on_error=self.on_error,
                                   run=run)
        self.reporting = reports_here(self.report_policy, self.is_chief)
        self._waits = waits_for_chief(self.report_policy, self.reporting, run.plateau)
        self._queue.clear()
        self._fresh, self._warned_outage, self._warned_metrics = False, False, False
        self.last_lr = None
        return run

    def begin(self, step: int) -> None:
        """Training starts at `step`: raise `ReportsAhead` now, not a 409 an epoch later, if this process
        reports and the run already has reports at `step` or after it (a script run again, a resume
        without a rewind)."""
        latest = self.run.latest_step
        if not self.reporting or latest is None or latest < step:
            return
        raise ReportsAhead(
            f"Run '{self.run_id}' already has reports up to step {latest}, and this job starts at step {step}: "
            "its first report would be refused (409 Conflict) after an epoch of training. Either\n"
            f"  - start a new run: pass a new run_id (e.g. '{self.run_id}-2');\n"
            f"  - or resume after the last report: {self.resume(latest + 1)};\n"
            f"  - or train steps {step}-{latest} again: forget their reports first, with "
            f"lrclient.Client('{self.client.base_url if self.client else ''}').rewind('{self.run_id}', {step - 1}).\n"
            "(A process that only reads the run's learning rates passes report=False.)"
        )

    def lr(self, step: int) -> float:
        """The learning rate of `step`; the last one while reports missed in an outage wait to be resent
        (any of them may reduce it)."""
        if self._queue and self.last_lr is not None:
            self._resend(throttle=True)
            if self._queue:
                return self.last_lr
        self.last_lr = self.rates.lr(step)
        return self.last_lr

    def momentum(self, step: int) -> float | None:
        """The momentum of `step` (None: the schedule in effect leaves the optimizer's alone). Call it after
        `lr(step)`, whose request brought it: no request of its own, as reports never change a momentum."""
        return self.rates.momentum(step)

    @property
    def cycles_momentum(self) -> bool:
        """Whether the run's schedule or a revision cycles momentum (a `one_cycle` or `cyclic` in it)."""
        return cycles_momentum(self.run)

    def report(self, step: int, metrics: Mapping[str, Any]) -> ReportOutcome | None:
        """The metrics measured at the end of `step`: report the chosen ones (see `metrics`), or, in a worker
        that does not report, wait for the chief's report when the run has a plateau tracker.

        The outcome, or None when nothing was sent or an outage queued the report. A run without a
        tracker is sent nothing when no chosen metric is there.
        """
        chosen = select_metrics(metrics, self.metrics, self.monitor, self.validation_prefix)
        if self.reporting:
            if not chosen and self.plateau is None:
                return None
            self._queue.append((step, chosen))
            return self._resend(throttle=False)
        if self._waits:
            self._wait_for_chief(step)
        return None

    def boundary(self) -> None:
        """An epoch boundary passed (between two epochs, not before the first): resend missed reports, then
        revalidate the cache (one conditional GET) to see what other workers wrote during the epoch, unless
        a report's answer at its end already did."""
        if self._queue:
            self._resend(throttle=False)
            if self._queue:
                return
        if not self._fresh:
            self.rates.refresh()  # LearningRates applies on_error to its own requests
        self._fresh = False

    def close(self) -> None:
        """Close the client if the follower created it (`open` creates a new one)."""
        if self._given_client is None and self.client is not None:
            self.client.close()
        self.client = None

    # -- what the run says --------------------------------------------------------------------------

    @property
    def run(self) -> Run:
        """The run as of the last revalidation."""
        return self.rates.run

    @property
    def step_unit(self) -> str:
        return self.run.step_unit

    @property
    def plateau(self) -> Mapping[str, Any] | None:
        return self.run.plateau

    @property
    def monitor(self) -> str | None:
        """The metric the plateau tracker monitors, if the run has one."""
        return None if self.plateau is None else self.plateau["monitor"]

    # -- internals ----------------------------------------------------------------------------------

    def _new_client(self) -> Client:
        client = Client(base_url=self._base_url, token=self._token)
        client.retry = DEFAULT_RETRY
        return client

    def _resend(self, throttle: bool) -> ReportOutcome | None:
        """Send the queued reports in order: the last outcome, or None while the service is away."""
        if throttle and time.monotonic() - self._failed_at < RESEND_INTERVAL:
            return None
        outcome = None
        while self._queue:
            step, metrics = self._queue[0]
            try:
                outcome = self.rates.report(step, metrics)
            except ServiceUnreachable as error:
                self._failed_at = time.monotonic()
                self._outage(error, f"lrserve could not be reached to report step {step} of run '{self.run_id}'; "
                                    "training goes on with the last known learning rate and the report is "
                                    "resent when the service answers again.")
                return None
            self._queue.pop(0)
            self._answered(outcome)
        self._warned_outage = False
        return outcome

    def _outage(self, error: ServiceUnreachable, warning: str) -> None:
        """The on_error policy for the follower's own requests (`LearningRates` applies it to lr reads)."""
        if self.on_error == "raise":
            self._queue.clear()
            raise error
        if not self._warned_outage:
            self._warned_outage = True
            warnings.warn(warning, RuntimeWarning, stacklevel=4)

    def _answered(self, outcome: ReportOutcome) -> None:
        # The answer carries the run's version: if the cache is as new, the next boundary needs no request.
        self._fresh = self.rates.version is not None and self.rates.version >= outcome.version
        if outcome.warnings and not self._warned_metrics:
            self._warned_metrics = True  # once, as Keras' ReduceLROnPlateau does for a missing metric
            warnings.warn(f"lrserve run '{self.run_id}', report at step {outcome.step}: "
                          f"{' '.join(outcome.warnings)} Choose what is reported with metrics=[...].",
                          UserWarning, stacklevel=4)

    def _wait_for_chief(self, step: int) -> None:
        """Wait until the chief's report at `step` or later is in: each conditional GET is held by the service
        until the report comes (or a few seconds), so a wait costs one request however long the chief takes."""
        deadline = time.monotonic() + self.chief_timeout
        delay = 0.005
        while True:
            asked = time.monotonic()
            self.rates.refresh(wait_for_step=step, wait=min(_base.WAIT_FOR_REPORT, max(0.01, deadline - asked)))
            if self.rates.outage:
                return  # on_error="last" (else refresh raised): train on with what is known
            latest = self.run.latest_step
            if latest is not None and latest >= step:
                self._fresh = True
                return
            if time.monotonic() >= deadline:
                raise TimeoutError(
                    f"No report at step {step} reached run '{self.run_id}' within {self.chief_timeout:g} s "
                    f"(latest reported step: {latest}). This worker does not report (report='chief' and it is "
                    "not the chief), so it waits for the chief's report before training on with the next "
                    "learning rate. The chief may have stopped or died; if it is only slower (a longer "
                    "validation), raise chief_timeout. Is the chief running with report='chief' or report=True?"
                )
            if time.monotonic() - asked < _base.WAIT_FOR_REPORT / 2:  # a service that does not hold requests
                time.sleep(delay)
                delay = min(delay * 2, 0.2)
