"""The tests of LearningRateCallback on one Keras backend, collected by test_keras_jax / test_keras_tensorflow.

The backend is fixed per process, so each backend trains in one subprocess (`_backend_fit.py`),
batch mode and epoch mode in it, against the session's lrserve process. A test module imports
these tests and defines the `backend` fixture; one module per backend, so that `-n 2 --dist
loadfile` trains the two backends at once. (Torch, the tests' own backend: test_keras_callback.)
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import httpx
import numpy as np
import pytest
from support import Server

F32 = 1e-7  # an lr read back from Keras's float32 variable
BACKEND_SCRIPT = Path(__file__).with_name("_backend_fit.py")


def service_history(server: Server, run_id: str, stop: int) -> list[float]:
    response = httpx.get(f"{server.url}/runs/{run_id}/lr/range", params={"start": 0, "stop": stop})
    response.raise_for_status()
    return response.json()["lr"]


def reductions(server: Server, run_id: str) -> int:
    response = httpx.get(f"{server.url}/runs/{run_id}")
    response.raise_for_status()
    return response.json()["state"]["reductions"]


@pytest.fixture(scope="module")
def trained(backend: str, server: Server, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, dict[str, Any]]:
    """One subprocess per backend: both modes' fits, against runs `keras-<backend>-batch` / `-epoch`."""
    pytest.importorskip(backend)
    run_id = f"keras-{backend}-{os.getpid()}"
    out = tmp_path_factory.mktemp(backend) / "fit.json"
    env = {**os.environ, "KERAS_BACKEND": backend, "TF_CPP_MIN_LOG_LEVEL": "2"}
    subprocess.run([sys.executable, str(BACKEND_SCRIPT), server.url, run_id, str(out)], env=env, check=True,
                   timeout=180)
    result = json.loads(out.read_text())
    assert result["backend"] == backend
    return run_id, result


def test_batch_mode_sets_every_batch_lr_of_the_service_and_of_keras_own_schedule(
    server: Server, trained: tuple[str, dict[str, Any]]
) -> None:
    run_id, result = trained
    batch = result["batch"]
    served = service_history(server, f"{run_id}-batch", 48)
    assert batch["steps"] == list(range(48)), "every batch of 4 epochs x 12 batches"
    assert batch["lr"] == pytest.approx(served, rel=F32)
    assert batch["lr"] == pytest.approx(batch["keras"], rel=1e-6), "Keras's own schedule on this backend"
    assert len(set(batch["lr"][:12])) == 12, "batch mode must change the lr within an epoch"
    assert batch["logged"] == [served[12 * e + 11] for e in range(4)]
    assert np.diff(batch["requests"]).tolist() == [1, 1, 1], "one request an epoch after the first"


def test_epoch_mode_trains_with_the_lr_of_the_service_and_of_in_process_keras(
    server: Server, trained: tuple[str, dict[str, Any]]
) -> None:
    run_id, result = trained
    epoch = result["epoch"]
    served = service_history(server, f"{run_id}-epoch", 10)
    assert epoch["lr"] == pytest.approx(served, rel=F32)
    assert epoch["logged"] == served
    assert epoch["lr"] == pytest.approx(epoch["keras"], rel=F32), "LearningRateScheduler + ReduceLROnPlateau"
    assert epoch["keras_reductions"] >= 1, "the data no longer exercises the plateau"
    assert reductions(server, f"{run_id}-epoch") == epoch["keras_reductions"]
