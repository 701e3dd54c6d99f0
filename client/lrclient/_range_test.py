"""The framework-free part of `find_lr` (Keras and PyTorch): the ramp run, who reports each batch's loss, when
the sweep stops, and the service's verdict. No keras or torch import.

The ramp is exponential, lr(s) = start_lr * (end_lr / start_lr) ** (min(s, num_steps - 1) / (num_steps - 1)), in
batches: step 0 trains with start_lr, step num_steps - 1 with end_lr (an `expression` run, finite at every step).
"""

from __future__ import annotations

import math
import time
from typing import Any

from ._adapter import Report, chief_from_environment
from ._client import Client
from ._types import LrFinderResult

CHECK_EVERY = 10
"""The sweep asks the service whether the smoothed loss diverged every this many batches."""


def ramp_spec(start_lr: float, end_lr: float, num_steps: int) -> dict[str, Any]:
    """The run spec of the sweep: the exponential ramp from `start_lr` to `end_lr` over `num_steps` batches."""
    if not (isinstance(num_steps, int) and not isinstance(num_steps, bool) and num_steps >= 2):
        raise ValueError(f"num_steps must be an int >= 2. Received: num_steps={num_steps!r}")
    if not (math.isfinite(start_lr) and math.isfinite(end_lr) and 0 < start_lr < end_lr):
        raise ValueError(f"start_lr and end_lr must be finite with 0 < start_lr < end_lr. "
                         f"Received: start_lr={start_lr!r}, end_lr={end_lr!r}")
    last = num_steps - 1
    expression = f"{float(start_lr)!r} * ({float(end_lr)!r} / {float(start_lr)!r}) ** (min(step, {last}) / {last})"
    return {"schedule": {"type": "expression", "expression": expression}, "step_unit": "batch"}


class Sweep:
    """One process's part of a range test on run `run_id`.

    Every process creating the sweep with the same arguments shares the run (the same spec is accepted again).
    With `report=True` this process reports each batch's loss (several processes must then report the same,
    all-reduced, loss: an identical report repeats harmlessly, a different one is a conflict); with
    `report="chief"` only the chief (RANK 0, ...) reports and the others, at the end, wait up to
    `chief_timeout` seconds for the chief's reports to reach the steps they trained.
    """

    def __init__(self, client: Client, run_id: str, *, start_lr: float, end_lr: float, num_steps: int,
                 monitor: str, report: Report, finder_options: dict[str, Any], chief_timeout: float = 60.0) -> None:
        if report not in (True, "chief"):
            raise ValueError(f'report must be True or "chief". Received: report={report!r}')
        self.client, self.run_id, self.monitor = client, run_id, monitor
        self.reports = report is True or chief_from_environment()
        self.finder_options = finder_options
        self.chief_timeout = chief_timeout
        client.create_run(run_id, ramp_spec(start_lr, end_lr, num_steps))
        self.lrs = client.lr_range(run_id, 0, num_steps).lr
        self.trained = 0

    def trained_step(self, step: int, loss: float) -> bool:
        """Record that batch `step` trained with `self.lrs[step]` and had `loss`; whether to go on."""
        self.trained = step + 1
        if self.reports:
            self.client.report(self.run_id, step, {self.monitor: loss})
        if not math.isfinite(loss):
            return False  # the running average stays non-finite: nothing more to learn from this sweep
        if self.reports and (step + 1) % CHECK_EVERY == 0:
            return self.result().diverged_at is None
        return True

    def result(self) -> LrFinderResult:
        return self.client.lr_finder(self.run_id, self.monitor, **self.finder_options)

    def final_result(self) -> LrFinderResult:
        """The verdict once the reports cover what this process trained (a non-reporting worker waits)."""
        deadline = time.monotonic() + self.chief_timeout
        while True:
            result = self.result()
            covered = result.diverged_at is not None or (result.points and result.points[-1].step >= self.trained - 1)
            if self.reports or covered or self.trained == 0:
                return result
            if time.monotonic() > deadline:
                raise TimeoutError(f"the chief did not report the sweep of run '{self.run_id}' up to step "
                                   f"{self.trained - 1} within {self.chief_timeout} s")
            time.sleep(0.2)
