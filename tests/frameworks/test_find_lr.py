"""`find_lr` for Keras and PyTorch: a real sweep on a toy regression against a real service, the verdict the
service's, the weights and optimizer state put back bitwise, and a sensible suggestion."""

from __future__ import annotations

import httpx
import keras
import numpy as np
import pytest
import torch
from support import Server
from lrclient import Client
from lrclient.keras import find_lr as keras_find_lr
from lrclient.torch import find_lr as torch_find_lr

SWEEP = {"start_lr": 1e-4, "end_lr": 10.0, "num_steps": 80}


def toy_regression(seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((512, 4)).astype(np.float32)
    y = (x @ np.array([[1.0], [-2.0], [0.5], [3.0]], dtype=np.float32) + 0.5).astype(np.float32)
    return x, y


def endpoint(server: Server, run_id: str) -> dict:
    response = httpx.get(f"{server.url}/runs/{run_id}/lr-finder")
    assert response.status_code == 200, response.text
    return response.json()


def check_sensible(result, server: Server, run_id: str) -> None:
    body = endpoint(server, run_id)
    assert result.suggestion == body["suggestion"]
    assert result.diverged_at == body["diverged_at"]
    assert [p.step for p in result.points] == [p["step"] for p in body["points"]]
    assert len(result.points) >= 20
    assert SWEEP["start_lr"] <= result.suggestion <= SWEEP["end_lr"]
    assert 1e-4 <= result.suggestion <= 1.0, result.suggestion  # SGD/Adam on a unit-scale regression


def test_keras_find_lr(server: Server, run_id: str) -> None:
    keras.utils.set_random_seed(0)
    x, y = toy_regression(0)
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(8, activation="tanh"), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(learning_rate=1e-3, momentum=0.9), loss="mse")
    model.fit(x[:64], y[:64], batch_size=32, epochs=1, verbose=0)  # a built optimizer with state worth restoring
    weights = [w.numpy().copy() for w in model.weights]
    optimizer_values = [v.numpy().copy() for v in model.optimizer.variables]

    with Client(server.url) as client:
        result = keras_find_lr(model, x, y, run_id=run_id, client=client, batch_size=16, **SWEEP)

    check_sensible(result, server, run_id)
    assert all(np.array_equal(w.numpy(), before) for w, before in zip(model.weights, weights, strict=True))
    assert all(np.array_equal(v.numpy(), before)
               for v, before in zip(model.optimizer.variables, optimizer_values, strict=True))


def test_torch_find_lr(server: Server, run_id: str) -> None:
    torch.manual_seed(0)
    x, y = (torch.from_numpy(a) for a in toy_regression(1))
    model = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-3)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=128, shuffle=False)
    for features, target in list(loader)[:2]:  # optimizer state worth restoring
        optimizer.zero_grad()
        torch.nn.functional.mse_loss(model(features), target).backward()
        optimizer.step()
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    moments = [{k: v.clone() if torch.is_tensor(v) else v for k, v in s.items()} for s in optimizer.state.values()]

    def mse(model: torch.nn.Module, batch: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
        return torch.nn.functional.mse_loss(model(batch[0]), batch[1])

    result = torch_find_lr(model, optimizer, loader, mse, run_id=run_id, base_url=server.url, **SWEEP)

    check_sensible(result, server, run_id)
    assert all(torch.equal(model.state_dict()[k], v) for k, v in weights.items())
    after = list(optimizer.state.values())
    assert len(after) == len(moments)
    for state, before in zip(after, moments):
        assert all(torch.equal(state[k], v) if torch.is_tensor(v) else state[k] == v for k, v in before.items())
    assert [g["lr"] for g in optimizer.param_groups] == [1e-3]


def test_a_second_worker_shares_the_sweep(server: Server, run_id: str) -> None:
    """The same call again (another worker, the same all-reduced losses) repeats the reports harmlessly."""
    x, y = (torch.from_numpy(a) for a in toy_regression(2))
    batches = list(zip(x.split(16), y.split(16)))
    answers = []
    for _ in range(2):
        torch.manual_seed(0)
        model = torch.nn.Linear(4, 1)
        optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
        answers.append(torch_find_lr(model, optimizer, batches, lambda m, b: torch.nn.functional.mse_loss(m(b[0]), b[1]),
                                     run_id=run_id, base_url=server.url, **SWEEP))
    assert answers[0].points == answers[1].points and answers[0].suggestion == answers[1].suggestion


def test_a_bad_ramp_is_refused_before_training(server: Server, run_id: str) -> None:
    model = torch.nn.Linear(4, 1)
    with pytest.raises(ValueError, match="start_lr"):
        torch_find_lr(model, torch.optim.SGD(model.parameters(), lr=0.1), [], lambda m, b: b, run_id=run_id,
                      base_url=server.url, start_lr=1.0, end_lr=0.1)
