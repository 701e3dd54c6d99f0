"""Parity for plateau revisions: a revision's plateau change is what setting the same attributes on a live
Keras `ReduceLROnPlateau` (or PyTorch `ReduceLROnPlateau`) between epochs does, and `start_step` is what
not calling it for the epochs before does.

Both libraries read `factor`, `patience`, `cooldown`, `min_lr` and the improvement threshold at every call
and keep their counters and best value, so a change applies to the next decision and the counters carry on.
Each scenario plays random metric sequences with one to three revisions on a `constant` schedule, feeding
the real library (attributes changed at the revision's step) and the service, and compares every answer.

`min_lr` is changed only to a value below the lr in effect, before any reduction met the floor: there the
contract's formula and a live object agree. (Where they do not, the formula is the contract: a lower min_lr
lets an lr held at the old floor drop to schedule * multiplier, a higher one lifts a reduced lr to it.)
"""

from __future__ import annotations

import math
import random
from typing import Any

import httpx
import pytest
from keras import ops

from .test_plateau_parity import CONTRACT_DEFAULTS, KerasReference, Reference, TorchReference

SEEDS = 12
LENGTH = 40
REL_TOL = 1e-6  # Keras keeps the lr in a float32 variable


def random_change(rng: random.Random, semantics: str, step: int, lr: float, floor_moved: bool) -> dict[str, Any]:
    change: dict[str, Any] = {}
    while not change:
        if rng.random() < 0.5:
            change["factor"] = rng.choice((0.1, 0.5, 0.8))
        if rng.random() < 0.5:
            change["patience"] = rng.choice((0, 1, 2, 4))
        if rng.random() < 0.4:
            change["cooldown"] = rng.choice((0, 1, 3))
        if rng.random() < 0.3:
            change["min_delta" if semantics == "keras" else "threshold"] = rng.choice((0.0, 1e-4, 0.05))
        if rng.random() < 0.2:
            change["start_step"] = step + rng.randint(1, 4)
        if not floor_moved and rng.random() < 0.3:
            change["min_lr"] = lr * 0.3 ** (rng.randint(1, 3) + 0.5)  # no float32 near-tie with a reachable lr
    return change


def apply_to_reference(ref: Reference, change: dict[str, Any]) -> None:
    """Set the attributes a user would set on the live object between epochs."""
    if isinstance(ref, KerasReference):
        cb = ref.callback
        for name in ("factor", "patience", "cooldown", "min_lr"):
            if name in change:
                setattr(cb, name, change[name])
        if "min_delta" in change:
            # Keras negates min_delta once it knows the mode is `min` (`_set_monitor_op`): keep that sign.
            cb.min_delta = -change["min_delta"] if cb.monitor_op is ops.less else change["min_delta"]
        return
    scheduler = ref.scheduler
    for name in ("factor", "patience", "cooldown", "threshold"):
        if name in change:
            setattr(scheduler, name, change[name])
    if "min_lr" in change:
        scheduler.min_lrs = [change["min_lr"]]


def replay(api: httpx.Client, run_id: str, semantics: str, seed: int) -> None:
    rng = random.Random(f"plateau-revisions/{semantics}/{seed}")
    params: dict[str, Any] = {
        "monitor": "val_loss", "mode": "min", "factor": rng.choice((0.1, 0.5)), "patience": rng.choice((0, 1, 2)),
        "cooldown": rng.choice((0, 1, 2)), "min_lr": 0.0, "semantics": semantics,
    }
    lr0 = 0.1
    ref: Reference = (KerasReference if semantics == "keras" else TorchReference)(
        lr0, {**CONTRACT_DEFAULTS, **params, "torch_mode": "min"})
    ref.report(1.0)  # Keras builds its comparison on the first call; the service gets the same first report
    spec = {"schedule": {"type": "constant", "learning_rate": lr0}, "plateau": params}
    assert api.put(f"/runs/{run_id}", json=spec).status_code == 201
    assert api.post(f"/runs/{run_id}/metrics", json={"step": 0, "metrics": {"val_loss": 1.0}}).status_code == 200

    revision_steps = set(rng.sample(range(1, LENGTH), rng.randint(1, 3)))
    start_step, floor_moved, level, history = 0, False, 1.0, [ref.lr(), ref.lr()]
    for step in range(1, LENGTH):
        if step in revision_steps:
            change = random_change(rng, semantics, step, ref.lr(), floor_moved)
            floor_moved |= "min_lr" in change
            response = api.post(f"/runs/{run_id}/revisions", json={"from_step": step, "plateau": change})
            assert response.status_code == 201, response.text
            apply_to_reference(ref, change)
            start_step = change.get("start_step", start_step)
        if rng.random() < 0.15:
            level *= rng.uniform(0.5, 0.99)  # a real improvement
        value = level * (1 + rng.choice((0.0, 0.0, 1e-6, 0.01)))
        before = ref.lr()
        snapshot = ref.report(value) if step >= start_step else None
        out = api.post(f"/runs/{run_id}/metrics", json={"step": step, "metrics": {"val_loss": value}}).json()
        where = f"seed {seed}, step {step}, value {value!r}, revisions at {sorted(revision_steps)}"
        assert math.isclose(out["next_lr"], ref.lr(), rel_tol=REL_TOL), f"next_lr {out['next_lr']} != {ref.lr()}; {where}"
        assert out["reduced"] is (ref.lr() != before), where
        if snapshot is not None:
            assert (out["state"]["wait"], out["state"]["cooldown_counter"]) == (snapshot.wait,
                                                                               snapshot.cooldown_counter), where
        history.append(ref.lr())
    served = api.get(f"/runs/{run_id}/lr/range", params={"start": 0, "stop": LENGTH + 1}).json()["lr"]
    assert served == pytest.approx(history, rel=REL_TOL)


@pytest.mark.parametrize("semantics", ["keras", "torch"])
def test_plateau_revisions_behave_like_changing_a_live_reduce_lr_on_plateau(api: httpx.Client, run_id: str,
                                                                           semantics: str) -> None:
    for seed in range(SEEDS):
        replay(api, f"{run_id}-{seed}", semantics, seed)
