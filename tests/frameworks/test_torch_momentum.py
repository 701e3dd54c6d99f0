"""ServiceScheduler cycles momentum exactly as PyTorch's OneCycleLR and CyclicLR, in real training loops."""

from __future__ import annotations

import copy
import warnings

import lrclient
import pytest
import torch
from support import Server
from lrclient.torch import ServiceScheduler
from torch import nn
from torch.optim import lr_scheduler

from .test_torch_scheduler import BATCHES_PER_EPOCH, regression, tiny_model

EPOCHS = 4
TOTAL = EPOCHS * BATCHES_PER_EPOCH


def momentum_of(optimizer: torch.optim.Optimizer) -> list[float]:
    return [group["betas"][0] if "betas" in group else group["momentum"] for group in optimizer.param_groups]


def train(model: nn.Module, optimizer: torch.optim.Optimizer, scheduler: lr_scheduler.LRScheduler,
          data: tuple[torch.Tensor, ...]) -> list[tuple[list[float], list[float]]]:
    """Train EPOCHS epochs, stepping the scheduler after every batch; each step's (lrs, momenta) in use."""
    x, y, _, _ = data
    used = []
    for _ in range(EPOCHS):
        for batch in range(BATCHES_PER_EPOCH):
            xs, ys = x[batch * 8:(batch + 1) * 8], y[batch * 8:(batch + 1) * 8]
            optimizer.zero_grad()
            nn.functional.mse_loss(model(xs), ys).backward()
            used.append(([g["lr"] for g in optimizer.param_groups], momentum_of(optimizer)))
            optimizer.step()
            scheduler.step()
    return used


OPTIMIZERS = {
    "sgd-momentum": lambda params: torch.optim.SGD(params, lr=0.05, momentum=0.9),
    "adam": lambda params: torch.optim.Adam(params, lr=0.05, betas=(0.9, 0.99)),
}


@pytest.mark.parametrize("name", list(OPTIMIZERS))
@pytest.mark.parametrize("schedule", [
    {"type": "one_cycle", "max_lr": 0.05, "total_steps": TOTAL},
    {"type": "cyclic", "base_lr": 0.005, "max_lr": 0.05, "step_size_up": 5, "mode": "triangular2",
     "base_momentum": 0.75, "max_momentum": 0.95},
], ids=["one-cycle", "cyclic"])
def test_a_training_loop_follows_the_momentum_of_the_torch_scheduler(server: Server, run_id, name, schedule):
    data = regression(seed=3)
    ours, theirs = tiny_model(1), tiny_model(1)
    reference_optimizer = OPTIMIZERS[name](theirs.parameters())
    options = {k: v for k, v in schedule.items() if k not in ("type", "max_lr", "total_steps", "base_lr")}
    if schedule["type"] == "one_cycle":
        reference = lr_scheduler.OneCycleLR(reference_optimizer, max_lr=0.05, total_steps=TOTAL, **options)
    else:
        reference = lr_scheduler.CyclicLR(reference_optimizer, base_lr=0.005, max_lr=0.05, **options)
    optimizer = OPTIMIZERS[name](ours.parameters())
    scheduler = ServiceScheduler(optimizer, run_id, base_url=server.url,
                                 spec={"schedule": schedule, "step_unit": "batch"}, horizon=TOTAL)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # OneCycleLR warns when stepped past its total at the very end
        expected = train(theirs, reference_optimizer, reference, data)
    served = train(ours, optimizer, scheduler, data)

    for step, ((lrs, momenta), (ref_lrs, ref_momenta)) in enumerate(zip(served, expected, strict=True)):
        assert lrs == pytest.approx(ref_lrs, rel=1e-6), step
        assert momenta == pytest.approx(ref_momenta, rel=1e-6), step
    assert len({m for _, (m, *_) in served}) > 5, "the momentum must actually cycle"
    for mine, ref in zip(ours.parameters(), theirs.parameters()):
        torch.testing.assert_close(mine, ref, rtol=1e-4, atol=1e-6)
    assert scheduler.rates.requests <= 2, "momentum comes with the lr: no request of its own"
    scheduler.close()


def test_an_optimizer_without_momentum_or_betas_is_refused_at_construction(server: Server, run_id):
    optimizer = torch.optim.Adagrad(tiny_model().parameters(), lr=0.01)
    spec = {"schedule": {"type": "one_cycle", "max_lr": 0.05, "total_steps": 10}, "step_unit": "batch"}

    with pytest.raises(ValueError, match="cycles momentum.*Adagrad has neither `momentum` nor `betas`"):
        ServiceScheduler(optimizer, run_id, base_url=server.url, spec=spec)


def test_a_run_without_momentum_leaves_the_optimizers_momentum_alone(server: Server, run_id):
    optimizer = torch.optim.Adagrad(tiny_model().parameters(), lr=0.01)  # fine: nothing to cycle
    spec = {"schedule": {"type": "one_cycle", "max_lr": 0.05, "total_steps": 10, "cycle_momentum": False},
            "step_unit": "batch"}
    scheduler = ServiceScheduler(optimizer, run_id, base_url=server.url, spec=spec)
    sgd = torch.optim.SGD(tiny_model().parameters(), lr=0.01, momentum=0.5)
    other = ServiceScheduler(sgd, f"{run_id}-sgd", base_url=server.url, spec=spec)
    for _ in range(3):
        sgd.step()
        other.step()
    assert sgd.param_groups[0]["momentum"] == 0.5
    scheduler.close()
    other.close()


def test_a_revision_that_starts_cycling_momentum_sets_it_from_its_step(server: Server, run_id):
    sgd = torch.optim.SGD(tiny_model().parameters(), lr=0.01, momentum=0.5)
    scheduler = ServiceScheduler(sgd, run_id, base_url=server.url,
                                 spec={"schedule": {"type": "constant", "learning_rate": 0.01}, "step_unit": "batch"})
    with lrclient.Client(server.url) as client:
        client.revise(run_id, from_step=3, schedule={"type": "cyclic", "base_lr": 0.01, "max_lr": 0.1,
                                                      "step_size_up": 2})
    seen = []
    for _ in range(6):
        sgd.step()
        scheduler.step()
        scheduler.rates.refresh()  # a batch run sees other writers at epoch boundaries; here at once
        scheduler._apply()
        seen.append(sgd.param_groups[0]["momentum"])
    assert seen[:2] == [0.5, 0.5]
    assert seen[2:5] == pytest.approx([0.9, 0.85, 0.8])
    scheduler.close()
