"""Two worker processes of one data-parallel job, each following one run with the same adapter, train with
identical learning rates: the service's, step for step, plateau reductions included."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
from support import Server

WORKER = Path(__file__).with_name("_two_workers.py")
STEPS = 20  # _two_workers.EPOCHS * _two_workers.BATCHES


@pytest.mark.parametrize("framework", ["torch", "lightning", "transformers", "optax"])
def test_two_worker_processes_train_with_the_runs_identical_learning_rates(
    server: Server, run_id: str, tmp_path: Path, framework: str
) -> None:
    pytest.importorskip({"torch": "torch", "lightning": "lightning.pytorch", "transformers": "transformers",
                         "optax": "optax"}[framework])
    outs = [tmp_path / f"worker-{rank}.json" for rank in range(2)]
    workers = [subprocess.Popen([sys.executable, str(WORKER), framework, server.url, run_id, str(out)],
                                env={**os.environ, "RANK": str(rank)}) for rank, out in enumerate(outs)]
    assert [worker.wait(timeout=120) for worker in workers] == [0, 0]

    response = httpx.get(f"{server.url}/runs/{run_id}/lr/range", params={"start": 0, "stop": STEPS})
    response.raise_for_status()
    served = response.json()["lr"]
    first, second = (json.loads(out.read_text()) for out in outs)
    assert first == second == served
    run = httpx.get(f"{server.url}/runs/{run_id}").json()
    assert run["state"]["reductions"] >= 1, "the plateau should have reduced the lr during training"
