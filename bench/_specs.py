"""The realistic run the benchmarks use: warmup + cosine decay in batches, with a Keras plateau."""

from __future__ import annotations

from _servers import request_json

TOTAL_STEPS = 200_000
REPORT_EVERY = 2_000  # one validation per "epoch" of 2,000 batches

SPEC: dict[str, object] = {
    "schedule": {
        "type": "cosine_decay",
        "initial_learning_rate": 0.0,
        "warmup_target": 3e-4,
        "warmup_steps": 2_000,
        "decay_steps": TOTAL_STEPS - 2_000,
        "alpha": 0.01,
    },
    "plateau": {"monitor": "val_loss", "mode": "min", "factor": 0.5, "patience": 3, "cooldown": 1},
    "step_unit": "batch",
}


def val_loss(epoch: int) -> float:
    """Improves for 30 epochs, then stalls, so the plateau reduces a few times."""
    return 2.0 / (1 + epoch) if epoch < 30 else 2.0 / 31 + 0.001 * (epoch % 3)


def create_trained_run(port: int, run_id: str, epochs: int = 50) -> None:
    """Create the run and report `epochs` validations, as a training job would have."""
    status, body = request_json(port, "PUT", f"/runs/{run_id}", SPEC)
    assert status == 201, (status, body)
    for epoch in range(epochs):
        step = (epoch + 1) * REPORT_EVERY - 1
        status, body = request_json(
            port, "POST", f"/runs/{run_id}/metrics", {"step": step, "metrics": {"val_loss": val_loss(epoch)}}
        )
        assert status == 200, (status, body)
