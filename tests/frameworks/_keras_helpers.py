"""Tiny deterministic Keras training for the callback tests, and the in-process Keras reference.

Every model here is small enough that a `fit` of ten epochs takes a fraction of a second on the
torch backend; the data never shuffles, and the same seed gives the same initial weights, so two
fits that use the same learning rates produce the same losses.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from unittest import mock

os.environ.setdefault("KERAS_BACKEND", "torch")

import keras
import numpy as np
from keras.src.backend.common import dtypes as keras_dtypes

SAMPLES, VALIDATION, BATCH = 48, 16, 16  # three batches per epoch
WEIGHTS = np.array([[1.0], [-2.0], [0.5], [3.0]])

# An exponential decay whose plateau reduces twice, is clamped at min_lr once, and then cannot
# reduce any more (Keras: float32(lr) must exceed float32(min_lr)) on the helpers' data.
DECAY = {"initial_learning_rate": 0.05, "decay_steps": 4, "decay_rate": 0.7}
PLATEAU = {"monitor": "val_loss", "factor": 0.5, "patience": 1, "min_delta": 0.3, "min_lr": 0.004}
EPOCH_SPEC = {"schedule": {"type": "exponential_decay", **DECAY}, "plateau": PLATEAU, "step_unit": "epoch"}


def regression_data(seed: int = 0) -> tuple[np.ndarray, ...]:
    """A noisy linear problem whose validation loss stops improving after a few epochs."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(SAMPLES + VALIDATION, 4)).astype("float32")
    y = (x @ WEIGHTS + rng.normal(size=(SAMPLES + VALIDATION, 1))).astype("float32")
    return x[:SAMPLES], y[:SAMPLES], x[SAMPLES:], y[SAMPLES:]


def tiny_model(seed: int = 0, learning_rate: float | Any = 0.01) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(keras.optimizers.SGD(learning_rate), "mse")
    return model


def fit(model: keras.Model, callbacks: list[keras.callbacks.Callback], epochs: int, seed: int = 0,
        **kwargs: Any) -> keras.callbacks.History:
    x, y, val_x, val_y = regression_data(seed)
    kwargs.setdefault("batch_size", BATCH)
    return model.fit(x, y, epochs=epochs, shuffle=False, verbose=0, validation_data=(val_x, val_y),
                     callbacks=callbacks, **kwargs)


def optimizer_lr(model: keras.Model) -> float:
    return float(model.optimizer.learning_rate)


class LrRecorder(keras.callbacks.Callback):
    """What the optimizer really trains with: its lr at each batch, keyed by global step.

    Listed after the callback under test, so it sees the lr that callback set.
    """

    def __init__(self) -> None:
        super().__init__()
        self.by_step: dict[int, float] = {}
        self.by_epoch: dict[int, float] = {}
        self._epoch = 0

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        self._epoch = epoch

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        step = int(self.model.optimizer.iterations)
        self.by_step[step] = optimizer_lr(self.model)
        self.by_epoch.setdefault(self._epoch, self.by_step[step])


@contextmanager
def keras_float64() -> Iterator[None]:
    """Keras in float64, as the contract's reference (64-bit type promotion kept on the torch backend)."""
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        with mock.patch.dict(keras_dtypes.BIT64_TO_BIT32_DTYPE, {"float64": "float64", "int64": "int64"}):
            yield
    finally:
        keras.config.set_floatx(previous)


def keras_schedule_values(schedule: keras.optimizers.schedules.LearningRateSchedule, steps: range) -> list[float]:
    """The Keras schedule object's own float64 value at each step."""
    with keras_float64():
        return [float(schedule(keras.ops.convert_to_tensor(s, "int64"))) for s in steps]


class ScheduleWithPlateau(keras.callbacks.Callback):
    """The in-process Keras reference for a run with a schedule and a plateau tracker.

    Keras's own `LearningRateScheduler` overrides `ReduceLROnPlateau` (keras-team/keras#8829), so
    the two are combined here: before epoch N the lr is `max(schedule(N) * factor**k, min_lr)`,
    where k counts the reductions the real `ReduceLROnPlateau` made on the val_loss of the epochs
    before N. That callback sees the lr actually used in the epoch, so it decides, as Keras does,
    whether a reduction may take effect (float32(lr) > float32(min_lr)).
    """

    def __init__(self, schedule: keras.optimizers.schedules.LearningRateSchedule,
                 plateau: keras.callbacks.ReduceLROnPlateau) -> None:
        super().__init__()
        self.schedule, self.plateau = schedule, plateau
        self.reductions = 0

    def set_model(self, model: keras.Model) -> None:
        super().set_model(model)
        self.plateau.set_model(model)

    def on_train_begin(self, logs: dict | None = None) -> None:
        self.plateau.on_train_begin(logs)

    def on_epoch_begin(self, epoch: int, logs: dict | None = None) -> None:
        scheduled = keras_schedule_values(self.schedule, range(epoch, epoch + 1))[0]
        self.model.optimizer.learning_rate = max(scheduled * self.plateau.factor**self.reductions, self.plateau.min_lr)

    def on_epoch_end(self, epoch: int, logs: dict | None = None) -> None:
        before = optimizer_lr(self.model)
        self.plateau.on_epoch_end(epoch, logs)
        if optimizer_lr(self.model) < before:
            self.reductions += 1
