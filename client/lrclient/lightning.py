"""PyTorch Lightning adapter: `LearningRateCallback` sets the optimizers' lr from an lrserve run.

A `lightning.pytorch.Callback`, in place of an lr scheduler in `configure_optimizers` and of a
`ReduceLROnPlateau` config: the service holds the schedule and the plateau tracker. Each param group
is scaled as a torch scheduler scales it (`lrclient.torch.group_scales`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import lightning.pytorch as pl

from ._adapter import Metrics, OnError, Report
from ._client import Client
from ._follower import DEFAULT_CHIEF_TIMEOUT, RunFollower
from .torch import group_scales, set_group_lrs

__all__ = ["LearningRateCallback"]


class LearningRateCallback(pl.Callback):
    """Set every param group's lr from an lrserve run, per optimizer step or per epoch.

    Batch runs (`step_unit: "batch"`) set the lr of `trainer.global_step` (optimizer steps: gradient
    accumulation counts once) before each training batch; epoch runs that of `trainer.current_epoch` at
    each epoch start. After each validation (not the sanity check) `trainer.callback_metrics` are
    reported (by default the monitored metric and `val_*`) at the epoch, or at the last optimizer step
    of a batch run (use one when validating more than once an epoch). Resume with `trainer.fit(...,
    ckpt_path=...)`. After the first epoch, an epoch costs one request, two after a batch run's reduction.

    Args: `run_id`, `base_url`, `spec`, `report`, `on_error`, `token`, `client`, `is_chief`,
    `chief_timeout` and `metrics` as for `lrclient.keras.LearningRateCallback` (`metrics` picks names of
    `trainer.callback_metrics`); `scales` as for `lrclient.torch.ServiceScheduler` (every optimizer).
    """

    def __init__(self, run_id: str, base_url: str | None = None, spec: Mapping[str, Any] | None = None,
                 report: Report = True, on_error: OnError = "raise", token: str | None = None,
                 client: Client | None = None, *, is_chief: Callable[[], bool] | None = None,
                 chief_timeout: float = DEFAULT_CHIEF_TIMEOUT, metrics: Metrics = None,
                 scales: Sequence[float] | None = None) -> None:
        self.follower = RunFollower(run_id, base_url=base_url, token=token, client=client, spec=spec, report=report,
                                    on_error=on_error, metrics=metrics, is_chief=is_chief,
                                    chief_timeout=chief_timeout, validation_prefix="val_", resume=self._resume)
        self.scales = scales
        self.learning_rates: list[list[float]] = []  # per optimizer, the lr of each param group set last

    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._group_scales = [group_scales(optimizer, self.scales) for optimizer in trainer.optimizers]
        batches = trainer.num_training_batches
        steps = math.ceil(batches / trainer.accumulate_grad_batches) if math.isfinite(batches) else None
        self.follower.open(epochs=trainer.max_epochs if trainer.max_epochs > 0 else None, steps_per_epoch=steps)
        self._epoch_run = self.follower.step_unit == "epoch"
        self.follower.begin(trainer.current_epoch if self._epoch_run else trainer.global_step)
        self._first_epoch = True

    def on_train_epoch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if not self._first_epoch:
            self.follower.boundary()
        self._first_epoch = False
        if self._epoch_run:
            self._set(trainer, trainer.current_epoch)

    def on_train_batch_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule, batch: Any,
                             batch_idx: int) -> None:
        if not self._epoch_run:
            self._set(trainer, trainer.global_step)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking or self.follower.rates is None:
            return
        step = trainer.current_epoch if self._epoch_run else trainer.global_step - 1
        if step >= 0:
            measured = {name: float(value) for name, value in trainer.callback_metrics.items() if value.numel() == 1}
            self.follower.report(step, measured)

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self.follower.close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self.follower.close()

    def _set(self, trainer: pl.Trainer, step: int) -> None:
        lr = self.follower.lr(step)
        self.learning_rates = [set_group_lrs(optimizer, lr, scales)
                               for optimizer, scales in zip(trainer.optimizers, self._group_scales, strict=True)]

    def _resume(self, step: int) -> str:
        unit = "epoch" if self.follower.step_unit == "epoch" else "global step"
        return f"trainer.fit(model, ckpt_path=...) with the checkpoint whose {unit} is {step}"
