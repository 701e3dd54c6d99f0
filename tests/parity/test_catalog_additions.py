"""The contract's catalog additions serve what their reference libraries compute, through the HTTP API:

- `product` against PyTorch `ChainedScheduler` of multiplicative schedulers, stepped on a real optimizer;
- `exponential_decay`'s `transition_begin` / `end_learning_rate` against optax `exponential_decay` (x64);
- `cosine_decay`'s `exponent` against optax `cosine_decay_schedule` / `warmup_cosine_decay_schedule` (x64);
- `one_cycle` / `cyclic` momentum against the momentum PyTorch `OneCycleLR` / `CyclicLR` set on SGD
  (`momentum`) and Adam (`betas[0]`), step by step.

Every expected value comes out of the library's own code (see references.py for the x64 and stepping rules).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from typing import Any

import httpx
import jax
import numpy as np
import optax
import pytest
import torch
from torch.optim import lr_scheduler

from lrserve.store import RunRecord, open_store

from .cases import constant, cosine, cyclic, exponential, linear, multistep, one_cycle, polynomial, schedule, sequence
from .cases import step_decay
from .references import _optax_values, reference_lrs
from .test_schedule_parity import served_lrs

product = lambda *children: schedule("product", schedules=list(children))  # noqa: E731


def factor(gamma: float) -> dict[str, Any]:
    """`exponential_decay` as a per-step factor: PyTorch `ExponentialLR(gamma)` times 1."""
    return exponential(initial_learning_rate=1.0, decay_steps=1, decay_rate=gamma)


def within_contract(served: np.ndarray, expected: np.ndarray) -> np.ndarray:
    """Indices where `served` misses `expected` by more than the contract's tolerance."""
    peak = float(np.max(np.abs(expected)))
    return np.flatnonzero(~(np.abs(served - expected) <= 1e-6 * np.abs(expected) + 1e-12 * peak))


# --- product: PyTorch ChainedScheduler -----------------------------------------------------------------

TorchChain = Callable[[torch.optim.Optimizer], list[lr_scheduler.LRScheduler]]

PRODUCT = [
    pytest.param(
        product(constant(learning_rate=0.1), linear(initial_learning_rate=0.1, end_learning_rate=1.0,
                                                     transition_steps=5), factor(0.9)),
        0.1, lambda o: [lr_scheduler.LinearLR(o, start_factor=0.1, total_iters=5), lr_scheduler.ExponentialLR(o, 0.9)],
        id="linear-warmup-x-exponential",
    ),
    pytest.param(
        product(step_decay(initial_learning_rate=0.05, step_size=3, gamma=0.5), factor(0.95)),
        0.05, lambda o: [lr_scheduler.StepLR(o, step_size=3, gamma=0.5), lr_scheduler.ExponentialLR(o, 0.95)],
        id="step-x-exponential",
    ),
    pytest.param(
        product(sequence(schedules=[constant(learning_rate=0.05), constant(learning_rate=0.1)], boundaries=[4]),
                factor(0.9)),
        0.1, lambda o: [lr_scheduler.ConstantLR(o, factor=0.5, total_iters=4), lr_scheduler.ExponentialLR(o, 0.9)],
        id="constant-factor-x-exponential",
    ),
    pytest.param(
        product(multistep(initial_learning_rate=1.0, milestones=[3, 6, 9], gamma=0.1), factor(0.98)),
        1.0, lambda o: [lr_scheduler.MultiStepLR(o, milestones=[3, 6, 9], gamma=0.1),
                        lr_scheduler.ExponentialLR(o, 0.98)],
        id="multistep-x-exponential",
    ),
    pytest.param(
        product(constant(learning_rate=0.3), linear(initial_learning_rate=0.25, end_learning_rate=1.0,
                                                     transition_steps=8),
                step_decay(initial_learning_rate=1.0, step_size=5, gamma=0.3), factor(0.97)),
        0.3, lambda o: [lr_scheduler.LinearLR(o, start_factor=0.25, total_iters=8),
                        lr_scheduler.StepLR(o, step_size=5, gamma=0.3), lr_scheduler.ExponentialLR(o, 0.97)],
        id="three-factors",
    ),
    pytest.param(
        product(polynomial(initial_learning_rate=0.2, decay_steps=20, end_learning_rate=0.0, power=2.0),
                factor(0.99)),
        0.2, lambda o: [lr_scheduler.PolynomialLR(o, total_iters=20, power=2.0), lr_scheduler.ExponentialLR(o, 0.99)],
        id="polynomial-x-exponential",
    ),
    pytest.param(
        product(factor(0.9), constant(learning_rate=0.01)),
        0.01, lambda o: [lr_scheduler.ExponentialLR(o, 0.9)],
        id="the-absolute-lr-second",
    ),
]


def chained_lrs(initial_lr: float, chain: TorchChain, steps: int) -> np.ndarray:
    """The lr a real `ChainedScheduler` leaves in the optimizer's first group after 0 .. steps-1 calls."""
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=initial_lr)
    scheduler = lr_scheduler.ChainedScheduler(chain(optimizer), optimizer=optimizer)
    values = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # stepping without optimizer.step(): nothing is trained
        for _ in range(steps):
            values.append(optimizer.param_groups[0]["lr"])
            scheduler.step()
    return np.asarray(values, dtype=np.float64)


@pytest.mark.parametrize(("spec", "initial_lr", "chain"), PRODUCT)
def test_product_matches_torch_chained_scheduler_step_by_step(api, run_id, spec, initial_lr, chain):
    steps, served = served_lrs(api, run_id, spec, [range(0, 60), 7, 59])

    expected = chained_lrs(initial_lr, chain, 60)[steps]

    wrong = within_contract(served, expected)
    assert not wrong.size, [(steps[i], served[i], expected[i]) for i in wrong[:5]]


def test_product_nests_and_counts_toward_the_depth_limit(api, run_id):
    nested: dict[str, Any] = constant(learning_rate=0.5)
    for _ in range(8):
        nested = product(nested, constant(learning_rate=1.0))
    assert api.put(f"/runs/{run_id}", json={"schedule": nested}).status_code == 201
    assert api.get(f"/runs/{run_id}/lr", params={"step": 3}).json()["lr"] == 0.5

    too_deep = sequence(schedules=[nested], boundaries=[])
    response = api.put(f"/runs/{run_id}-deep", json={"schedule": too_deep})
    assert response.status_code == 422
    assert "at most 8 levels deep" in response.text


@pytest.mark.parametrize("children", [[], [constant(learning_rate=0.1)]], ids=["none", "one"])
def test_a_product_of_fewer_than_two_schedules_is_refused(api, run_id, children):
    response = api.put(f"/runs/{run_id}", json={"schedule": {"type": "product", "schedules": children}})
    assert response.status_code == 422
    assert "schedules" in response.json()["detail"] and "at least 2" in response.json()["detail"]


# --- exponential_decay with optax's options -----------------------------------------------------------

def optax_exponential(spec: dict[str, Any], steps: list[int]) -> np.ndarray:
    with jax.enable_x64(True):
        reference = optax.exponential_decay(
            init_value=spec["initial_learning_rate"], transition_steps=spec["decay_steps"],
            decay_rate=spec["decay_rate"], transition_begin=spec.get("transition_begin", 0),
            staircase=spec.get("staircase", False), end_value=spec.get("end_learning_rate"),
        )
    return np.asarray(_optax_values(reference, steps))


EXPONENTIAL_OPTAX = [
    pytest.param(exponential(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, transition_begin=25),
                 id="transition-begin"),
    pytest.param(exponential(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, transition_begin=25,
                             staircase=True), id="transition-begin-staircase"),
    pytest.param(exponential(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5, end_learning_rate=0.01),
                 id="floor"),
    pytest.param(exponential(initial_learning_rate=0.01, decay_steps=5, decay_rate=1.5, end_learning_rate=0.5),
                 id="ceiling"),
    pytest.param(exponential(initial_learning_rate=0.1, decay_steps=3, decay_rate=0.9, end_learning_rate=0.2),
                 id="floor-above-the-start-holds-the-floor"),
    pytest.param(exponential(initial_learning_rate=0.1, decay_steps=4, decay_rate=0.8, transition_begin=100,
                             end_learning_rate=0.02, staircase=True), id="all-options"),
    pytest.param(exponential(initial_learning_rate=0.1, decay_steps=2.5, decay_rate=0.9, transition_begin=3,
                             end_learning_rate=0.0), id="fractional-steps-zero-floor"),
    pytest.param(exponential(initial_learning_rate=0.1, decay_steps=10, decay_rate=1.0, end_learning_rate=0.05),
                 id="rate-one-is-a-ceiling-as-in-optax"),
]


@pytest.mark.parametrize("spec", EXPONENTIAL_OPTAX)
def test_exponential_decay_options_match_optax_exponential_decay(api, run_id, spec):
    steps, served = served_lrs(api, run_id, spec, [range(0, 300), 10**6])

    wrong = within_contract(served, optax_exponential(spec, steps))

    assert not wrong.size, [(steps[i], served[i]) for i in wrong[:5]]


def test_exponential_decay_with_default_options_is_still_keras_exponential_decay(api, run_id):
    spec = exponential(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, staircase=True,
                       transition_begin=0, end_learning_rate=None)
    keras_spec = exponential(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.5, staircase=True)
    steps, served = served_lrs(api, run_id, spec, [range(0, 100)])
    assert not within_contract(served, reference_lrs(keras_spec, steps)).size


def test_exponential_decay_options_with_a_zero_rate_are_refused(api, run_id):
    spec = exponential(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.0, transition_begin=5)
    response = api.put(f"/runs/{run_id}", json={"schedule": spec})
    assert response.status_code == 422
    assert "decay_rate must be > 0" in response.json()["detail"]


# --- cosine_decay's exponent ----------------------------------------------------------------------------

def optax_cosine(spec: dict[str, Any], steps: list[int]) -> np.ndarray:
    """optax's cosine decay; with a Keras warmup, `warmup_cosine_decay_schedule`, whose `decay_steps` counts
    the warmup and whose `end_value` is absolute."""
    alpha, exponent = spec.get("alpha", 0.0), spec.get("exponent", 1.0)
    with jax.enable_x64(True):
        if spec.get("warmup_target") is None:
            reference = optax.cosine_decay_schedule(spec["initial_learning_rate"], spec["decay_steps"], alpha,
                                                    exponent)
        else:
            target, warmup = spec["warmup_target"], spec.get("warmup_steps", 0)
            reference = optax.warmup_cosine_decay_schedule(
                init_value=spec["initial_learning_rate"], peak_value=target, warmup_steps=warmup,
                decay_steps=warmup + spec["decay_steps"], end_value=alpha * target, exponent=exponent)
    return np.asarray(_optax_values(reference, steps))


COSINE_EXPONENT = [
    pytest.param(cosine(initial_learning_rate=0.1, decay_steps=100, exponent=2.0), id="squared"),
    pytest.param(cosine(initial_learning_rate=0.1, decay_steps=100, exponent=0.5, alpha=0.1), id="root-alpha"),
    pytest.param(cosine(initial_learning_rate=1.0, decay_steps=37, exponent=3.7, alpha=0.01), id="odd"),
    pytest.param(cosine(initial_learning_rate=0.1, decay_steps=100, exponent=1.0), id="one-as-optax"),
    pytest.param(cosine(initial_learning_rate=0.0, decay_steps=80, warmup_target=0.1, warmup_steps=20,
                        exponent=2.0), id="after-a-keras-warmup"),
    pytest.param(cosine(initial_learning_rate=0.01, decay_steps=50, warmup_target=0.2, warmup_steps=10,
                        alpha=0.05, exponent=1.5), id="warmup-and-alpha"),
]


@pytest.mark.parametrize("spec", COSINE_EXPONENT)
def test_cosine_decay_exponent_matches_optax_cosine_decay_schedule(api, run_id, spec):
    steps, served = served_lrs(api, run_id, spec, [range(0, 200), 10**6])

    wrong = within_contract(served, optax_cosine(spec, steps))

    assert not wrong.size, [(steps[i], served[i]) for i in wrong[:5]]


def test_cosine_decay_with_exponent_one_is_keras_cosine_decay_with_its_warmup(api, run_id):
    keras_spec = cosine(initial_learning_rate=0.0, decay_steps=80, warmup_target=0.1, warmup_steps=20, alpha=0.1)
    steps, served = served_lrs(api, run_id, {**keras_spec, "exponent": 1.0}, [range(0, 120)])
    assert not within_contract(served, reference_lrs(keras_spec, steps)).size


# --- specs stored before the additions ------------------------------------------------------------------

OLD_BODIES = [
    pytest.param({"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 10.0,
                  "decay_rate": 0.5, "staircase": False}, id="exponential_decay"),
    pytest.param({"type": "cosine_decay", "initial_learning_rate": 0.1, "decay_steps": 10.0, "alpha": 0.0,
                  "warmup_target": None, "warmup_steps": 0}, id="cosine_decay"),
    pytest.param({"type": "one_cycle", "max_lr": 0.1, "total_steps": 100, "pct_start": 0.3,
                  "anneal_strategy": "cos", "div_factor": 25.0, "final_div_factor": 10000.0,
                  "three_phase": False}, id="one_cycle"),
    pytest.param({"type": "cyclic", "base_lr": 0.01, "max_lr": 0.1, "step_size_up": 2000.0,
                  "step_size_down": None, "mode": "triangular", "gamma": 1.0}, id="cyclic"),
]


CHANGED = {"exponential_decay": {"transition_begin": 5}, "cosine_decay": {"exponent": 2.0},
           "one_cycle": {"cycle_momentum": False}, "cyclic": {"max_momentum": 0.95}}


@pytest.mark.parametrize("old_schedule", OLD_BODIES)
def test_a_run_stored_before_the_new_parameters_is_the_same_spec_as_its_body_sent_again(
    api, server, run_id, old_schedule
):
    """A spec stored with every default of its time filled in, and none of the parameters added since, equals
    the same body sent again, with or without the new parameters spelled out at their defaults."""
    stored = {"schedule": old_schedule, "plateau": None, "step_unit": "batch"}
    store = open_store(server.database_url)
    try:
        assert store.create_run(RunRecord(run_id=run_id, spec_json=stored, created_at="2026-11-01T00:00:00Z"))
    finally:
        store.close()
    defaults = {"exponential_decay": {"transition_begin": 0, "end_learning_rate": None},
                "cosine_decay": {"exponent": 1.0},
                "one_cycle": {"cycle_momentum": True, "base_momentum": 0.85, "max_momentum": 0.95},
                "cyclic": {"cycle_momentum": True, "base_momentum": 0.8, "max_momentum": 0.9}}
    spelled_out = {**old_schedule, **defaults[old_schedule["type"]]}

    for body in (stored, {"schedule": old_schedule, "step_unit": "batch"}, {**stored, "schedule": spelled_out}):
        response = api.put(f"/runs/{run_id}", json=body)
        assert response.status_code == 200, response.text
    assert api.get(f"/runs/{run_id}").json()["spec"] == stored

    changed = {**old_schedule, **CHANGED[old_schedule["type"]]}
    assert api.put(f"/runs/{run_id}", json={**stored, "schedule": changed}).status_code == 409
