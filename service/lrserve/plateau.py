"""ReduceLROnPlateau as a frozen state and a pure `advance`, with Keras or PyTorch semantics.

The two libraries differ in exactly these places, each named below:
- when a streak of bad reports triggers (Keras `wait >= patience`, torch `num_bad_epochs > patience`);
- how cooldown counts (Keras decrements before testing, so `cooldown=c` blocks c-1 reports; torch blocks c);
- how an improvement is measured (Keras `min_delta` compared in float32; torch `threshold`, rel or abs);
- whether a trigger takes effect (Keras only if float32(lr) > float32(min_lr), else nothing happens;
  torch always restarts its counters and cooldown, but lowers the lr only if the drop exceeds `eps`).
Deliberate deviation from both: a non-finite value never counts as an improvement, not even the first.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Annotated, Any, Literal, Union

import numpy as np
from pydantic import BaseModel, ConfigDict, Discriminator, Field, Tag, model_validator

_MAX_NAMES = {
    "auc", "precision", "recall", "f1_score", "fbeta_score", "r2_score", "iou", "mean_iou",
    "pearson_correlation", "concordance_correlation", "cosine_similarity",
}
_MIN_NAMES = {"mae", "mse", "rmse", "mape", "msle"}
_KERAS_ONLY = ("min_delta",)
_TORCH_ONLY = ("threshold", "threshold_mode", "eps")


def direction_of(monitor: str) -> Literal["min", "max"] | None:
    """The `auto` mode table: Keras 3.11+ metric directions, decided from the name alone."""
    name = monitor.removeprefix("val_")
    if "acc" in name or name in _MAX_NAMES:
        return "max"
    if "loss" in name or "error" in name or name in _MIN_NAMES:
        return "min"
    return None


class _PlateauBase(BaseModel):
    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    monitor: Annotated[str, Field(min_length=1, max_length=200)]
    mode: Literal["auto", "min", "max"] = "auto"
    factor: Annotated[float, Field(gt=0, lt=1)] = 0.1
    patience: Annotated[int, Field(ge=0)] = 10
    cooldown: Annotated[int, Field(ge=0)] = 0
    min_lr: Annotated[float, Field(ge=0)] = 0.0
    start_step: Annotated[int, Field(ge=0)] = 0

    @model_validator(mode="before")
    @classmethod
    def _no_fields_of_the_other_semantics(cls, data: Any) -> Any:
        if isinstance(data, dict):
            semantics = data.get("semantics", "keras")
            foreign = _TORCH_ONLY if semantics == "keras" else _KERAS_ONLY
            for name in foreign:
                if name in data:
                    own = "min_delta" if semantics == "keras" else "threshold"
                    raise ValueError(
                        f"{name} belongs to the other semantics and is not allowed with semantics "
                        f"{semantics!r}; use {own}, or set semantics to "
                        f"{'torch' if semantics == 'keras' else 'keras'!r}"
                    )
        return data

    @model_validator(mode="after")
    def _mode_is_decidable(self) -> _PlateauBase:
        if self.mode == "auto" and direction_of(self.monitor) is None:
            raise ValueError(
                f"mode 'auto' cannot tell whether {self.monitor!r} should be minimized or maximized; "
                "set mode to 'min' or 'max'"
            )
        return self

    @property
    def direction(self) -> Literal["min", "max"]:
        return self.mode if self.mode != "auto" else direction_of(self.monitor)  # type: ignore[return-value]


class KerasPlateau(_PlateauBase):
    """Keras `ReduceLROnPlateau`."""

    semantics: Literal["keras"] = "keras"
    min_delta: Annotated[float, Field(ge=0)] = 0.0001


class TorchPlateau(_PlateauBase):
    """PyTorch `ReduceLROnPlateau`."""

    semantics: Literal["torch"]
    threshold: Annotated[float, Field(ge=0)] = 0.0001
    threshold_mode: Literal["rel", "abs"] = "rel"
    eps: Annotated[float, Field(ge=0)] = 1e-8


def _semantics_of(data: Any) -> str:
    if isinstance(data, dict):
        return data.get("semantics", "keras")
    return getattr(data, "semantics", "keras")


PlateauSpec = Annotated[
    Union[Annotated[KerasPlateau, Tag("keras")], Annotated[TorchPlateau, Tag("torch")]],
    Discriminator(_semantics_of, custom_error_type="invalid_semantics",
                  custom_error_message="semantics must be 'keras' or 'torch'"),
]


_FIXED = ("monitor", "mode", "semantics", "threshold_mode", "eps")


class PlateauChange(BaseModel):
    """A revision's change to the run's plateau tracker: the fields given replace the ones in effect.

    What the tracker watches and how it compares (`monitor`, `mode`, `semantics`, `threshold_mode`,
    `eps`) cannot change: `best` and the counters carry on, and would mean something else.
    """

    model_config = ConfigDict(extra="forbid", strict=True, frozen=True, allow_inf_nan=False)

    factor: Annotated[float, Field(gt=0, lt=1)] | None = None
    patience: Annotated[int, Field(ge=0)] | None = None
    cooldown: Annotated[int, Field(ge=0)] | None = None
    min_lr: Annotated[float, Field(ge=0)] | None = None
    min_delta: Annotated[float, Field(ge=0)] | None = None
    threshold: Annotated[float, Field(ge=0)] | None = None
    start_step: Annotated[int, Field(ge=0)] | None = None

    @model_validator(mode="before")
    @classmethod
    def _what_the_tracker_watches_is_fixed(cls, data: Any) -> Any:
        if isinstance(data, dict):
            for name in _FIXED:
                if name in data:
                    raise ValueError(
                        f"{name} cannot change in a revision (the tracker's best value and counters would "
                        f"mean something else); a revision may change factor, patience, cooldown, min_lr, "
                        f"min_delta (keras) or threshold (torch), and start_step. Received {name}="
                        f"{data[name]!r}; to change it, create a new run"
                    )
        return data

    @model_validator(mode="after")
    def _changes_something(self) -> PlateauChange:
        if not self.changes():
            raise ValueError("a plateau change must set at least one of factor, patience, cooldown, min_lr, "
                             "min_delta, threshold, start_step; received none")
        return self

    def changes(self) -> dict[str, Any]:
        """The fields this change sets (a field left out, or null, keeps the value in effect)."""
        return {name: value for name, value in self.model_dump().items() if value is not None}


def changed(config: KerasPlateau | TorchPlateau, change: PlateauChange) -> KerasPlateau | TorchPlateau:
    """The tracker's settings with `change` applied; ValueError for a field of the other semantics."""
    fields = change.changes()
    foreign = _TORCH_ONLY if config.semantics == "keras" else _KERAS_ONLY
    for name in foreign:
        if name in fields:
            own = "min_delta" if config.semantics == "keras" else "threshold"
            raise ValueError(f"plateau.{name}: the run's plateau has semantics {config.semantics!r}, which has "
                             f"no {name}; use {own}")
    return config.model_copy(update=fields)


@dataclass(frozen=True)
class TrackerState:
    """What the tracker remembers between reports. `wait` is Keras `wait` or torch `num_bad_epochs`."""

    best: float | None = None
    wait: int = 0
    cooldown_counter: int = 0
    reductions: int = 0


@dataclass(frozen=True)
class Outcome:
    state: TrackerState
    reduced: bool


def is_improvement(config: KerasPlateau | TorchPlateau, current: float, best: float | None) -> bool:
    if not math.isfinite(current):
        return False
    if best is None:
        return True
    sign = 1.0 if config.direction == "max" else -1.0
    if isinstance(config, KerasPlateau):
        # Keras compares through keras.ops in floatx (float32): differences below float32 resolution vanish.
        shifted = np.float32(current - sign * config.min_delta)
        return bool(shifted > np.float32(best)) if sign > 0 else bool(shifted < np.float32(best))
    if config.threshold_mode == "rel":
        bound = best * (1.0 + sign * config.threshold)
    else:
        bound = best + sign * config.threshold
    return current > bound if sign > 0 else current < bound


def takes_effect(config: KerasPlateau | TorchPlateau, lr: float) -> bool:
    """Whether a triggered reduction lowers the lr `lr` in effect at the report's step."""
    if isinstance(config, KerasPlateau):
        return bool(np.float32(lr) > np.float32(config.min_lr))
    return lr - max(lr * config.factor, config.min_lr) > config.eps


def advance(config: KerasPlateau | TorchPlateau, state: TrackerState, current: float, lr: float) -> Outcome:
    """The tracker after one report of `current`, measured while training at learning rate `lr`."""
    if isinstance(config, KerasPlateau):
        return _advance_keras(config, state, current, lr)
    return _advance_torch(config, state, current, lr)


def _advance_keras(config: KerasPlateau, state: TrackerState, current: float, lr: float) -> Outcome:
    if state.cooldown_counter > 0:
        state = replace(state, cooldown_counter=state.cooldown_counter - 1, wait=0)
    if is_improvement(config, current, state.best):
        return Outcome(replace(state, best=current, wait=0), reduced=False)
    if state.cooldown_counter > 0:
        return Outcome(state, reduced=False)
    state = replace(state, wait=state.wait + 1)
    if state.wait >= config.patience and takes_effect(config, lr):
        reduced = replace(state, wait=0, cooldown_counter=config.cooldown, reductions=state.reductions + 1)
        return Outcome(reduced, reduced=True)
    return Outcome(state, reduced=False)


def _advance_torch(config: TorchPlateau, state: TrackerState, current: float, lr: float) -> Outcome:
    if is_improvement(config, current, state.best):
        state = replace(state, best=current, wait=0)
    else:
        state = replace(state, wait=state.wait + 1)
    if state.cooldown_counter > 0:
        state = replace(state, cooldown_counter=state.cooldown_counter - 1, wait=0)
    if state.wait <= config.patience:
        return Outcome(state, reduced=False)
    effective = takes_effect(config, lr)
    state = replace(state, wait=0, cooldown_counter=config.cooldown,
                    reductions=state.reductions + (1 if effective else 0))
    return Outcome(state, reduced=effective)
