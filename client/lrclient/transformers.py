"""Hugging Face adapter: `LearningRateCallback` makes a `transformers.Trainer` follow an lrserve run.

One step of the run is one optimizer step (`state.global_step`), so gradient accumulation and
`max_steps` count as the Trainer counts. The lr is set on every param group right before each
`optimizer.step()` (`on_pre_optimizer_step`), after whatever the Trainer's own scheduler did: whatever
`lr_scheduler_type` is, the lr used is the run's (`"constant"` only keeps the Trainer's scheduler idle).
Each evaluation's metrics (`eval_loss`, ...) are reported at the step of the last optimizer step, and
`logs["learning_rate"]` is the lr used, not the idle scheduler's.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

from transformers import TrainerCallback

from ._adapter import Metrics, OnError, Report
from ._client import Client
from ._follower import DEFAULT_CHIEF_TIMEOUT, RunFollower
from ._rates import LearningRates
from .torch import group_scales, set_group_lrs

__all__ = ["LearningRateCallback"]


class LearningRateCallback(TrainerCallback):
    """Set the optimizer's lr from an lrserve run at every optimizer step; report each evaluation.

    Args:
        run_id: the run's id; its `step_unit` must be `"batch"` (a step is an optimizer step).
        base_url, spec, report, on_error, token, client, is_chief, chief_timeout: as for
            `lrclient.keras.LearningRateCallback`.
        metrics: what is reported at each evaluation: by default the plateau's monitored metric and
            the `eval_*` metrics; `"all"`, or a list of names.
        scales: one multiple of the run's lr per param group; default each group's initial lr over the
            first group's (`lrclient.torch.group_scales`).

    Raises `lrclient.ReportsAhead` at train begin when the run already has reports at the step the
    Trainer starts from (a script run again; a resume without `resume_from_checkpoint` or a rewind).
    """

    def __init__(self, run_id: str, base_url: str | None = None, spec: Mapping[str, Any] | None = None,
                 report: Report = True, on_error: OnError = "raise", token: str | None = None,
                 client: Client | None = None, *, is_chief: Callable[[], bool] | None = None,
                 chief_timeout: float = DEFAULT_CHIEF_TIMEOUT, metrics: Metrics = None,
                 scales: Sequence[float] | None = None) -> None:
        self.follower = RunFollower(run_id, base_url=base_url, token=token, client=client, spec=spec, report=report,
                                    on_error=on_error, metrics=metrics, is_chief=is_chief,
                                    chief_timeout=chief_timeout, validation_prefix="eval_", resume=_resume)
        self.scales = scales
        self.learning_rate: float | None = None  # the first group's lr at the last optimizer step
        self._training = False

    @property
    def rates(self) -> LearningRates | None:
        """The learning-rate cache of the current (or last) `train()`; `rates.requests` counts its requests."""
        return self.follower.rates

    def on_train_begin(self, args: Any, state: Any, control: Any, optimizer: Any = None, **kwargs: Any) -> None:
        run = self.follower.open(horizon=state.max_steps or None)
        if run.step_unit != "batch":
            self.follower.close()
            raise ValueError(f"The Trainer counts optimizer steps: run '{run.run_id}' must have step_unit "
                             f"'batch'. Received: step_unit={run.step_unit!r}")
        self._scales = group_scales(optimizer, self.scales)
        self.follower.begin(state.global_step)
        self._training = True

    def on_pre_optimizer_step(self, args: Any, state: Any, control: Any, optimizer: Any = None,
                              **kwargs: Any) -> None:
        self.learning_rate = set_group_lrs(optimizer, self.follower.lr(state.global_step), self._scales)[0]

    def on_evaluate(self, args: Any, state: Any, control: Any, metrics: Mapping[str, Any] | None = None,
                    **kwargs: Any) -> None:
        if self._training and state.global_step > 0:  # not an evaluate() outside train(), nor eval_on_start
            self.follower.report(state.global_step - 1, metrics or {})
            self.follower.boundary()

    def on_log(self, args: Any, state: Any, control: Any, logs: dict | None = None, **kwargs: Any) -> None:
        if logs is not None and "learning_rate" in logs and self.learning_rate is not None:
            logs["learning_rate"] = self.learning_rate

    def on_train_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self._training = False
        self.follower.close()


def _resume(step: int) -> str:
    return (f"trainer.train(resume_from_checkpoint=...) with the checkpoint saved at global step {step} "
            f"(checkpoint-{step})")
