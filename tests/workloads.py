"""The data-parallel training workload the scale-out tests replay against replicas or a balancer."""

from __future__ import annotations

import random
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor

import httpx

PLATEAU_SPEC = {
    "schedule": {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 40, "decay_rate": 0.5},
    "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 2},
}


def loss_at(epoch: int) -> float:
    """The all-reduced validation loss of an epoch: flat for 8 epochs at a time, so the plateau acts."""
    return 1.0 / (1 + epoch // 8)


def lr(api: httpx.Client, run_id: str, step: int) -> float:
    response = api.get(f"/runs/{run_id}/lr", params={"step": step})
    assert response.status_code == 200, response.text
    return response.json()["lr"]


def train_workers(pick: Callable[[], httpx.Client], run_id: str, workers: int, epochs: int) -> list[list[float]]:
    """Each worker reads the lr of epoch e, trains (a few ms), reports the all-reduced loss of e and goes
    on; `pick()` chooses the client of each request. A worker asks for epoch e only after its own report
    of e-1 was acknowledged, so every report the lr of e depends on is in: all workers must agree.
    Returns the lrs each worker trained with."""
    def train(worker: int) -> list[float]:
        rng = random.Random(worker)
        seen = []
        for epoch in range(epochs):
            seen.append(lr(pick(), run_id, epoch))
            time.sleep(rng.uniform(0.0, 0.004))  # training the epoch
            response = pick().post(f"/runs/{run_id}/metrics",
                                   json={"step": epoch, "metrics": {"val_loss": loss_at(epoch)}})
            assert response.status_code == 200, response.text
        return seen

    with ThreadPoolExecutor(workers) as pool:
        return list(pool.map(train, range(workers)))


def serial_replay(api: httpx.Client, run_id: str, epochs: int) -> list[float]:
    """One worker alone, one request at a time: the lrs every worker of `train_workers` must see."""
    replay = []
    for epoch in range(epochs):
        replay.append(lr(api, run_id, epoch))
        response = api.post(f"/runs/{run_id}/metrics", json={"step": epoch, "metrics": {"val_loss": loss_at(epoch)}})
        assert response.status_code == 200, response.text
    return replay
