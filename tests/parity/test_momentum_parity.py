"""`one_cycle` and `cyclic` serve the momentum PyTorch's `OneCycleLR` and `CyclicLR` set, step by step.

The reference is the real scheduler stepped on a real optimizer: SGD's `param_groups[0]["momentum"]`, or Adam's
`param_groups[0]["betas"][0]`, read after construction (step 0) and after each `scheduler.step()`.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytest
import torch
from torch.optim import lr_scheduler

from .cases import constant, cyclic, one_cycle, sequence

ONE_CYCLE_OPTIONS = ("pct_start", "anneal_strategy", "div_factor", "final_div_factor", "three_phase",
                     "cycle_momentum", "base_momentum", "max_momentum")
CYCLIC_OPTIONS = ("step_size_up", "step_size_down", "mode", "gamma", "cycle_momentum", "base_momentum",
                  "max_momentum")


def optimizer(kind: str) -> torch.optim.Optimizer:
    params = [torch.nn.Parameter(torch.zeros(1))]
    return torch.optim.SGD(params, lr=0.1, momentum=0.9) if kind == "sgd" else torch.optim.Adam(params, lr=0.1)


def torch_momentum(spec: dict[str, Any], kind: str, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """(lr, momentum) of steps 0 .. steps-1 as the real scheduler leaves them in the optimizer's first group;
    one_cycle steps past `total_steps` hold the last step's, as the contract says."""
    opt = optimizer(kind)
    options = {k: spec[k] for k in (ONE_CYCLE_OPTIONS if spec["type"] == "one_cycle" else CYCLIC_OPTIONS) if k in spec}
    if spec["type"] == "one_cycle":
        scheduler = lr_scheduler.OneCycleLR(opt, max_lr=spec["max_lr"], total_steps=spec["total_steps"], **options)
        last = spec["total_steps"] - 1
    else:
        scheduler = lr_scheduler.CyclicLR(opt, base_lr=spec["base_lr"], max_lr=spec["max_lr"], **options)
        last = steps
    lrs, momentums = [], []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping without optimizer.step(): nothing is trained
        for step in range(steps):
            group = opt.param_groups[0]
            lrs.append(group["lr"])
            momentums.append(group["momentum"] if kind == "sgd" else group["betas"][0])
            if step < last:
                scheduler.step()
    return np.asarray(lrs), np.asarray(momentums)


MOMENTUM = [
    pytest.param(one_cycle(max_lr=0.1, total_steps=100), id="one-cycle-defaults"),
    pytest.param(one_cycle(max_lr=0.1, total_steps=100, anneal_strategy="linear", base_momentum=0.8,
                           max_momentum=0.99), id="one-cycle-linear"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=57, pct_start=0.25, three_phase=True), id="one-cycle-three-phase"),
    pytest.param(one_cycle(max_lr=0.5, total_steps=10, pct_start=0.5), id="one-cycle-short"),
    pytest.param(cyclic(base_lr=0.01, max_lr=0.1, step_size_up=10), id="cyclic-triangular"),
    pytest.param(cyclic(base_lr=0.01, max_lr=0.1, step_size_up=7, step_size_down=13, mode="triangular2",
                        base_momentum=0.7, max_momentum=0.95), id="cyclic-triangular2-asymmetric"),
    pytest.param(cyclic(base_lr=0.001, max_lr=0.1, step_size_up=5, mode="exp_range", gamma=0.99),
                 id="cyclic-exp-range"),
]


@pytest.mark.parametrize("kind", ["sgd", "adam"])
@pytest.mark.parametrize("spec", MOMENTUM)
def test_momentum_matches_the_torch_scheduler_on_sgd_and_adam(api, run_id, spec, kind):
    assert api.put(f"/runs/{run_id}", json={"schedule": spec, "step_unit": "batch"}).status_code == 201
    body = api.get(f"/runs/{run_id}/lr/range", params={"start": 0, "stop": 130}).json()
    singles = [api.get(f"/runs/{run_id}/lr", params={"step": step}).json() for step in (0, 9, 129)]

    lrs, momentums = torch_momentum(spec, kind, 130)

    np.testing.assert_allclose(body["lr"], lrs, rtol=1e-6, atol=1e-12)
    np.testing.assert_allclose(body["momentum"], momentums, rtol=1e-6, atol=1e-12)
    assert [s["momentum"] for s in singles] == pytest.approx([momentums[0], momentums[9], momentums[129]], rel=1e-6)


@pytest.mark.parametrize("spec", [one_cycle(max_lr=0.1, total_steps=100, cycle_momentum=False),
                                  cyclic(base_lr=0.01, max_lr=0.1, cycle_momentum=False),
                                  constant(learning_rate=0.1)], ids=["one-cycle-off", "cyclic-off", "constant"])
def test_a_run_that_cycles_no_momentum_answers_no_momentum_at_all(api, run_id, spec):
    assert api.put(f"/runs/{run_id}", json={"schedule": spec}).status_code == 201

    assert "momentum" not in api.get(f"/runs/{run_id}/lr", params={"step": 3}).json()
    assert "momentum" not in api.get(f"/runs/{run_id}/lr/range", params={"start": 0, "stop": 5}).json()


def test_a_sequence_serves_the_momentum_of_the_segment_in_effect_and_null_elsewhere(api, run_id):
    cycle = one_cycle(max_lr=0.1, total_steps=20)
    spec = sequence(schedules=[constant(learning_rate=0.01), cycle, constant(learning_rate=0.001)],
                    boundaries=[5, 25])
    assert api.put(f"/runs/{run_id}", json={"schedule": spec}).status_code == 201

    served = api.get(f"/runs/{run_id}/lr/range", params={"start": 0, "stop": 30}).json()["momentum"]

    _, momentums = torch_momentum(cycle, "sgd", 20)
    assert served[:5] == [None] * 5 and served[25:] == [None] * 5
    np.testing.assert_allclose(served[5:25], momentums, rtol=1e-6)


def test_a_revision_joins_momentum_like_the_lr(api, run_id):
    assert api.put(f"/runs/{run_id}", json={"schedule": constant(learning_rate=0.01)}).status_code == 201
    assert "momentum" not in api.get(f"/runs/{run_id}/lr/range", params={"start": 0, "stop": 3}).json()
    cycle = cyclic(base_lr=0.01, max_lr=0.1, step_size_up=4)
    assert api.post(f"/runs/{run_id}/revisions", json={"from_step": 10, "schedule": cycle}).status_code == 201

    served = api.get(f"/runs/{run_id}/lr/range", params={"start": 0, "stop": 30}).json()["momentum"]

    _, momentums = torch_momentum(cycle, "sgd", 20)
    assert served[:10] == [None] * 10
    np.testing.assert_allclose(served[10:], momentums, rtol=1e-6)
    assert api.get(f"/runs/{run_id}/lr", params={"step": 12}).json()["momentum"] == pytest.approx(momentums[2])


def test_a_large_range_carries_the_momentum_too(api, run_id):
    spec = cyclic(base_lr=0.01, max_lr=0.1, step_size_up=1000, mode="triangular2")
    assert api.put(f"/runs/{run_id}", json={"schedule": spec, "step_unit": "batch"}).status_code == 201

    body = api.get(f"/runs/{run_id}/lr/range", params={"start": 0, "stop": 140_000, "every": 2}).json()

    assert len(body["lr"]) == len(body["momentum"]) == 70_000
    _, momentums = torch_momentum(spec, "sgd", 5000)
    np.testing.assert_allclose(body["momentum"][:2500], momentums[::2], rtol=1e-6)
    low, high = spec.get("base_momentum", 0.8), spec.get("max_momentum", 0.9)
    assert all(low - 1e-12 <= m <= high + 1e-12 for m in body["momentum"])
