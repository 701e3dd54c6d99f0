"""LearningRateCallback cycles the optimizer's momentum as PyTorch's CyclicLR does, in a real Keras fit."""

from __future__ import annotations

import warnings

import keras
import numpy as np
import pytest
import torch
from support import Server
from lrclient.keras import LearningRateCallback
from torch.optim import lr_scheduler

from ._keras_helpers import BATCH, SAMPLES, fit

EPOCHS = 4
STEPS = EPOCHS * SAMPLES // BATCH
CYCLIC = {"type": "cyclic", "base_lr": 0.005, "max_lr": 0.05, "step_size_up": 2, "step_size_down": 3,
          "mode": "triangular2", "base_momentum": 0.7, "max_momentum": 0.95}


def model_with(optimizer: keras.optimizers.Optimizer, seed: int = 0) -> keras.Model:
    keras.utils.set_random_seed(seed)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer, "mse")
    return model


class MomentumRecorder(keras.callbacks.Callback):
    """The optimizer's lr and momentum at each batch (listed after the callback under test)."""

    def __init__(self, attribute: str) -> None:
        super().__init__()
        self.attribute, self.used = attribute, []

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        optimizer = self.model.optimizer
        self.used.append((float(optimizer.learning_rate), float(getattr(optimizer, self.attribute))))


class TorchCyclic(keras.callbacks.Callback):
    """The reference: a real torch CyclicLR stepped once per batch, its lr and momentum copied into Keras."""

    def __init__(self, attribute: str) -> None:
        super().__init__()
        self.attribute = attribute
        self.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.005, momentum=0.9)
        options = {k: v for k, v in CYCLIC.items() if k not in ("type", "base_lr", "max_lr")}
        self.scheduler = lr_scheduler.CyclicLR(self.optimizer, base_lr=0.005, max_lr=0.05, **options)

    def on_train_batch_begin(self, batch: int, logs: dict | None = None) -> None:
        group = self.optimizer.param_groups[0]
        self.model.optimizer.learning_rate = group["lr"]
        setattr(self.model.optimizer, self.attribute, group["momentum"])

    def on_train_batch_end(self, batch: int, logs: dict | None = None) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            self.scheduler.step()


@pytest.mark.parametrize(("make", "attribute"), [
    (lambda: keras.optimizers.SGD(0.01, momentum=0.9), "momentum"),
    (lambda: keras.optimizers.Adam(0.01, beta_1=0.9), "beta_1"),
], ids=["sgd-momentum", "adam-beta-1"])
def test_fit_follows_the_momentum_of_torch_cyclic_lr(server: Server, run_id, make, attribute):
    ours, theirs = model_with(make()), model_with(make())
    recorded, expected = MomentumRecorder(attribute), MomentumRecorder(attribute)
    callback = LearningRateCallback(run_id, base_url=server.url, spec={"schedule": CYCLIC, "step_unit": "batch"})

    history = fit(ours, [callback, recorded], EPOCHS)
    reference = fit(theirs, [TorchCyclic(attribute), expected], EPOCHS)

    assert len(recorded.used) == STEPS
    np.testing.assert_allclose(recorded.used, expected.used, rtol=1e-6)
    assert len({m for _, m in recorded.used}) > 3, "the momentum must actually cycle"
    np.testing.assert_allclose(history.history["loss"], reference.history["loss"], rtol=1e-5)
    assert callback.rates.requests == 1 + EPOCHS, "one range and the reports: momentum comes with the lr"


def test_an_sgd_without_momentum_trains_on_with_one_clear_warning(server: Server, run_id):
    model = model_with(keras.optimizers.SGD(0.01))
    callback = LearningRateCallback(run_id, base_url=server.url, spec={"schedule": CYCLIC, "step_unit": "batch"})

    with pytest.warns(UserWarning, match="cycles momentum.*built with momentum=0") as caught:
        fit(model, [callback], 2)

    assert len([w for w in caught if "momentum" in str(w.message)]) == 1
    assert model.optimizer.momentum == 0.0
