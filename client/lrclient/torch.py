"""PyTorch adapter: `ServiceScheduler`, a learning-rate scheduler whose schedule lives in lrserve.

It is used like any `torch.optim.lr_scheduler` scheduler, and like `ReduceLROnPlateau` for the
reports: construction sets the lr of step 0, `step()` moves to the next step, `step(metrics)` first
reports the metrics measured at the end of the current step. Each param group gets the run's lr
scaled as a torch scheduler scales it (from the group's own initial lr). Where the run cycles momentum
(`one_cycle`, `cyclic`), every group's momentum is set as `OneCycleLR` / `CyclicLR` set it: `betas[0]` for
an optimizer with `betas` (Adam-style), else `momentum`. Its `state_dict()` is only the run id and the
position: the plateau state lives in the service, so a resumed job needs nothing else.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from typing import Any

from torch import Tensor
from torch.nn import Module
from torch.optim import Optimizer
from torch.optim.lr_scheduler import LRScheduler

from ._adapter import Metrics, OnError, Report, named_metrics
from ._client import Client
from ._follower import DEFAULT_CHIEF_TIMEOUT, RunFollower
from ._range_test import Sweep
from ._rates import LearningRates
from ._types import LrFinderResult

__all__ = ["ServiceScheduler", "find_lr", "group_scales", "momentum_key", "set_group_lrs", "set_group_momentum"]


def group_scales(optimizer: Optimizer, scales: Sequence[float] | None = None) -> list[float]:
    """Each param group's multiple of the run's lr: `scales`, or as a torch scheduler scales the groups.

    A torch scheduler computes each group's lr from the group's own initial lr, so by default group i
    keeps its ratio to the first group: `initial_lr_i / initial_lr_0`. `initial_lr` is read as torch
    schedulers read it: set from `lr` the first time a scheduler sees the group (kept if already there).
    """
    initial = []
    for group in optimizer.param_groups:
        lr = group["lr"]
        group.setdefault("initial_lr", lr.clone() if isinstance(lr, Tensor) else lr)
        initial.append(_as_float(group["initial_lr"]))
    if scales is not None:
        given = list(scales)
        if len(given) != len(initial) or not all(_is_scale(s) for s in given):
            raise ValueError(f"scales must hold one finite number >= 0 per param group ({len(initial)} groups). "
                             f"Received: scales={scales!r}")
        return [float(s) for s in given]
    if len(initial) > 1 and not (math.isfinite(initial[0]) and initial[0] > 0):
        raise ValueError("Each param group's lr is scaled by its initial lr over the first group's, but the first "
                         "group's initial lr is not > 0: pass scales=[...], one per group. "
                         f"Received: initial lrs {initial}")
    return [lr / initial[0] for lr in initial] if len(initial) > 1 else [1.0] * len(initial)


def set_group_lrs(optimizer: Optimizer, lr: float, scales: Sequence[float]) -> list[float]:
    """Set group i's lr to `lr * scales[i]` (a tensor lr in place); the values set."""
    values = [lr * scale for scale in scales]
    for group, value in zip(optimizer.param_groups, values, strict=True):
        if isinstance(group["lr"], Tensor):
            group["lr"].fill_(value)
        else:
            group["lr"] = value
    return values


def momentum_key(optimizer: Optimizer) -> str | None:
    """Where the optimizer keeps its momentum, as PyTorch's cycling schedulers decide: "betas" (its first
    entry, Adam-style) when the optimizer's defaults have betas, else "momentum", else None (neither)."""
    if "betas" in optimizer.defaults:
        return "betas"
    return "momentum" if "momentum" in optimizer.defaults else None


def set_group_momentum(optimizer: Optimizer, momentum: float, key: str) -> None:
    """Set every group's momentum (`key` "momentum") or `betas[0]` (`key` "betas") to `momentum`."""
    for group in optimizer.param_groups:
        if key == "betas":
            group["betas"] = (momentum, *group["betas"][1:])
        else:
            group["momentum"] = momentum


class ServiceScheduler(LRScheduler):
    """Set every param group's lr from an lrserve run, one step at a time.

    Epoch runs (`step_unit: "epoch"`)::

        scheduler = ServiceScheduler(optimizer, "my-run", spec=spec)   # lr of epoch 0 is set
        for epoch in range(epochs):
            train_one_epoch()
            scheduler.step(validation_loss)    # report at this epoch, then move to the next

    Batch runs (`step_unit: "batch"`): call `step()` after every `optimizer.step()`, and at the end
    of each epoch `report(metrics)`, which reports at the step of the epoch's last batch and
    re-reads the lr of the next one (the report may have reduced it).

    Args:
        optimizer: the wrapped optimizer; group i gets the run's lr times `scales[i]`.
        run_id, base_url, spec, report, on_error, token, client, is_chief, chief_timeout: as for
            `lrclient.keras.LearningRateCallback`.
        horizon: steps fetched per lr/range request (default 1,000 epochs, or 10,000 batches; pass
            `epochs * len(loader)` to fetch the whole training in one request).
        metrics: what a dict passed to `step`/`report` sends: everything (the default), or a list of names.
        scales: one multiple of the run's lr per param group; default `initial_lr_i / initial_lr_0`.
        start_step: the step whose lr construction sets (a resume without `load_state_dict`).

    Where the run cycles momentum, each step also sets every group's `momentum` (or `betas[0]`), exactly as
    `OneCycleLR` / `CyclicLR` would; a `ValueError` at construction (or at the step where a revision starts
    cycling it) when the optimizer has neither, as PyTorch raises.

    Raises `lrclient.ReportsAhead` at the first `optimizer.step()` when this process reports and the
    run already has reports at the current step or after it (a script run again; a resume whose
    `load_state_dict` or `start_step` is before the run's last report, without a rewind).
    """

    def __init__(
        self,
        optimizer: Optimizer,
        run_id: str,
        base_url: str | None = None,
        spec: Mapping[str, Any] | None = None,
        report: Report = True,
        on_error: OnError = "raise",
        token: str | None = None,
        client: Client | None = None,
        *,
        is_chief: Callable[[], bool] | None = None,
        chief_timeout: float = DEFAULT_CHIEF_TIMEOUT,
        horizon: int | None = None,
        metrics: Metrics = None,
        scales: Sequence[float] | None = None,
        start_step: int = 0,
    ) -> None:
        # `LRScheduler.__init__` is deliberately not called: it ends with an initial `self.step()` (which here
        # would move to step 1 and might report), insists on `initial_lr` in every group when resuming
        # (`start_step` resumes without `load_state_dict`) and wraps `optimizer.step` to warn about the call
        # order. The attributes torch's tooling reads (`optimizer`, `base_lrs`, `last_epoch`, `_step_count`,
        # `_last_lr`) are set here instead, and `_check_start` is our own optimizer step pre-hook.
        if not isinstance(optimizer, Optimizer):
            raise TypeError(f"{type(optimizer).__name__} is not an Optimizer")
        self.optimizer = optimizer
        self.scales = group_scales(optimizer, scales)
        self.base_lrs = [_as_float(group["initial_lr"]) for group in optimizer.param_groups]
        self.run_id = run_id
        self.follower = RunFollower(run_id, base_url=base_url, token=token, client=client, spec=spec, report=report,
                                    on_error=on_error, metrics=metrics, is_chief=is_chief,
                                    chief_timeout=chief_timeout, resume=_resume)
        self.follower.open(horizon=horizon)
        self.momentum_key = momentum_key(optimizer)
        if self.follower.cycles_momentum:
            self._check_momentum()
        self._step_count = 1
        self.last_epoch = start_step  # the step whose lr is set, as torch schedulers count
        self._before_training = optimizer.register_step_pre_hook(self._check_start)
        self._apply()

    @property
    def step_unit(self) -> str:
        return self.follower.step_unit

    @property
    def rates(self) -> LearningRates:
        return self.follower.rates

    @property
    def client(self) -> Client:
        return self.follower.client

    # -- the scheduler interface -----------------------------------------------------------------

    def step(self, metrics: float | Mapping[str, Any] | None = None) -> None:  # type: ignore[override]
        """Move to the next step; with `metrics`, first report them at the current step.

        `metrics` is a number (the plateau's monitored metric) or a dict of metrics.
        """
        if metrics is not None:
            self.follower.report(self.last_epoch, named_metrics(metrics, self.follower.plateau))
        if self.step_unit == "epoch":
            self.follower.boundary()
        self._step_count += 1
        self.last_epoch += 1
        self._apply()

    def report(self, metrics: float | Mapping[str, Any]) -> None:
        """Report metrics for the last finished step (batch runs: at epoch end, after the last `step()`)."""
        if self.last_epoch < 1:
            raise ValueError("report() reports the step before the current one; no step has finished yet. "
                             "Call step() after each optimizer.step(), or step(metrics) in epoch runs.")
        self.follower.report(self.last_epoch - 1, named_metrics(metrics, self.follower.plateau))
        self.follower.boundary()
        self._apply()

    def get_lr(self) -> list[float]:
        lr = self.follower.lr(self.last_epoch)
        return [lr * scale for scale in self.scales]

    def get_last_lr(self) -> list[float]:
        return list(self._last_lr)

    def state_dict(self) -> dict[str, Any]:
        """Only the run id and the position: the schedule and plateau state live in the service."""
        return {"run_id": self.run_id, "last_epoch": self.last_epoch}

    def load_state_dict(self, state_dict: Mapping[str, Any]) -> None:
        """Move to the saved position (of the same run) and set its lr.

        To resume after a crash, rewind the run to the checkpoint's last reported step first
        (`lrclient.Client().rewind(run_id, step)`), so that reports made after the checkpoint are forgotten.
        """
        if state_dict.get("run_id") != self.run_id:
            raise ValueError(
                f"This state belongs to run '{state_dict.get('run_id')}', not to run '{self.run_id}'. "
                f"Received: state_dict={dict(state_dict)}"
            )
        self.last_epoch = int(state_dict["last_epoch"])
        self.follower.rates.refresh()
        self._apply()

    def close(self) -> None:
        """Close the HTTP client if this scheduler created it."""
        self.follower.close()

    # -- helpers ---------------------------------------------------------------------------------

    def _apply(self) -> None:
        self._last_lr = set_group_lrs(self.optimizer, self.follower.lr(self.last_epoch), self.scales)
        momentum = self.follower.momentum(self.last_epoch)
        if momentum is not None:
            set_group_momentum(self.optimizer, momentum, self._check_momentum())

    def _check_momentum(self) -> str:
        if self.momentum_key is None:
            raise ValueError(
                f"Run '{self.run_id}' cycles momentum (a one_cycle or cyclic schedule), but "
                f"{type(self.optimizer).__name__} has neither `momentum` nor `betas` to set, as PyTorch's "
                "OneCycleLR/CyclicLR require. Use an optimizer with momentum (SGD) or betas (Adam, AdamW), or "
                "set \"cycle_momentum\": false in the run's schedule."
            )
        return self.momentum_key

    def _check_start(self, optimizer: Optimizer, args: Any, kwargs: Any) -> None:
        """Before the first optimizer step (after any `load_state_dict`): fail early on a re-run."""
        self._before_training.remove()
        self.follower.begin(self.last_epoch)


def _resume(step: int) -> str:
    return (f"load the checkpoint saved after step {step - 1} and call scheduler.load_state_dict(...) with its "
            f"scheduler state (last_epoch {step}) before the first optimizer.step(), or pass "
            f"ServiceScheduler(..., start_step={step})")


def _is_scale(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value) and value >= 0


def _as_float(value: float | Tensor) -> float:
    return float(value.item()) if isinstance(value, Tensor) else float(value)


def find_lr(
    model: Module,
    optimizer: Optimizer,
    batches: Iterable[Any],
    loss_fn: Callable[[Module, Any], Tensor],
    *,
    run_id: str,
    base_url: str | None = None,
    start_lr: float = 1e-7,
    end_lr: float = 10.0,
    num_steps: int = 100,
    monitor: str = "loss",
    report: Report = True,
    skip_begin: int = 10,
    skip_end: int = 1,
    beta: float = 0.98,
    early_stop_threshold: float | None = 4.0,
    token: str | None = None,
    client: Client | None = None,
) -> LrFinderResult:
    """The learning-rate range test (PyTorch Lightning's `lr_find` rule, computed by the service).

    Creates run `run_id` with the exponential ramp from `start_lr` to `end_lr` over `num_steps` batches, trains
    one batch per step (`loss = loss_fn(model, batch)`, backward, `optimizer.step()`, each param group at the
    ramp's lr scaled as `ServiceScheduler` scales groups), reports each batch's loss, stops early once the
    service sees the smoothed loss diverge (checked every 10 batches) or the loss is not finite, then puts
    the model's weights and the optimizer's state back exactly as they were and returns the service's
    verdict: `result.suggestion` (None with too few points), `result.points`, `result.diverged_at`.
    `batches` is iterated again from its start when it runs out (a DataLoader is a new epoch).
    Several processes may share one sweep: see `report` in `lrclient.keras.find_lr`.
    """
    model_state = copy.deepcopy(model.state_dict())
    optimizer_state = copy.deepcopy(optimizer.state_dict())
    owned = client is None
    client = Client(base_url, token=token) if client is None else client
    try:
        sweep = Sweep(client, run_id, start_lr=start_lr, end_lr=end_lr, num_steps=num_steps, monitor=monitor,
                      report=report, finder_options={"skip_begin": skip_begin, "skip_end": skip_end, "beta": beta,
                                                     "early_stop_threshold": early_stop_threshold})
        scales = group_scales(optimizer)
        model.train()
        for step, batch in zip(range(num_steps), _cycled(batches)):
            set_group_lrs(optimizer, sweep.lrs[step], scales)
            optimizer.zero_grad()
            loss = loss_fn(model, batch)
            loss.backward()
            optimizer.step()
            if not sweep.trained_step(step, float(loss.detach())):
                break
        return sweep.final_result()
    finally:
        model.load_state_dict(model_state)
        optimizer.load_state_dict(optimizer_state)
        if owned:
            client.close()


def _cycled(batches: Iterable[Any]) -> Iterator[Any]:
    """The batches, again from the start each time they run out (stops if a pass yields none)."""
    while True:
        empty = True
        for batch in batches:
            empty = False
            yield batch
        if empty:
            return
