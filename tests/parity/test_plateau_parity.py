"""Parity: the plateau tracker replays metric sequences exactly like the real ReduceLROnPlateau.

Every parity sequence is fed, epoch by epoch, to the real Keras callback (default floatx float32)
or the real PyTorch scheduler, and to a `constant`-schedule run of the service. After each report
the service's `next_lr`, `reduced` and `state` must equal what the library did at that epoch, and
the run's whole lr history must equal the library's lr epoch by epoch.

The last tests cover what is not parity: the contract's deliberate deviation for non-finite
values, reports without the monitored metric, and the plateau factor on a non-constant schedule.
"""

from __future__ import annotations

import functools
import math
import random
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import httpx
import keras
import numpy as np
import pytest
import torch

SEEDS_PER_FAMILY = 14
REPLAY_THREADS = 4
REL_TOL = 1e-6  # Keras keeps the lr in a float32 variable
MISSING = None  # a report that lacks the monitored metric

FACTORS = (0.1, 0.5, 0.9)
PATIENCES = (0, 1, 2, 5)
COOLDOWNS = (0, 1, 2, 3)

CONTRACT_DEFAULTS: dict[str, Any] = {
    "mode": "auto", "factor": 0.1, "patience": 10, "cooldown": 0, "min_lr": 0.0,
    "min_delta": 1e-4, "threshold": 1e-4, "threshold_mode": "rel", "eps": 1e-8,
}


# --------------------------------------------------------------------------- references


@contextmanager
def _quiet() -> Iterator[None]:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield


_keras_model: keras.Model | None = None


def _tiny_keras_model() -> keras.Model:
    """A compiled model whose metrics are built, so that Keras' `auto` mode can resolve names."""
    global _keras_model
    if _keras_model is None:
        model = keras.Sequential([keras.Input((1,)), keras.layers.Dense(1, activation="sigmoid")])
        model.compile(
            optimizer=keras.optimizers.SGD(learning_rate=0.1),
            loss="binary_crossentropy",
            metrics=["accuracy", keras.metrics.AUC(name="auc"), "mae"],
        )
        with _quiet():
            model.evaluate(np.array([[0.0], [1.0]]), np.array([[0.0], [1.0]]), verbose=0)
        _keras_model = model
    return _keras_model


@dataclass
class Snapshot:
    """What a reference looks like after one epoch end."""

    lr: float
    best: float | None
    wait: int
    cooldown_counter: int


class KerasReference:
    """Drives `keras.callbacks.ReduceLROnPlateau` by hand, one `on_epoch_end` per report."""

    def __init__(self, lr0: float, params: dict[str, Any]) -> None:
        self.model = _tiny_keras_model()
        self.model.optimizer.learning_rate = lr0
        self.callback = keras.callbacks.ReduceLROnPlateau(
            monitor=params["monitor"], mode=params["mode"], factor=params["factor"],
            patience=params["patience"], cooldown=params["cooldown"], min_lr=params["min_lr"],
            min_delta=params["min_delta"], verbose=0,
        )
        self.callback.set_model(self.model)
        self.callback.on_train_begin()
        self.monitor = params["monitor"]
        self.epoch = 0

    @property
    def best(self) -> float | None:
        return self.callback.best

    def lr(self) -> float:
        return float(self.model.optimizer.learning_rate)

    def report(self, value: float | None) -> Snapshot:
        logs = {"loss": 0.5} if value is MISSING else {self.monitor: value}
        with _quiet():
            self.callback.on_epoch_end(self.epoch, logs=logs)
        self.epoch += 1
        cb = self.callback
        return Snapshot(self.lr(), cb.best, cb.wait, cb.cooldown_counter)


class TorchReference:
    """Drives `torch.optim.lr_scheduler.ReduceLROnPlateau`, one `step(value)` per report."""

    def __init__(self, lr0: float, params: dict[str, Any]) -> None:
        self.optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr0)
        self.scheduler = torch.optim.lr_scheduler.ReduceLROnPlateau(
            self.optimizer, mode=params["torch_mode"], factor=params["factor"],
            patience=params["patience"], threshold=params["threshold"],
            threshold_mode=params["threshold_mode"], cooldown=params["cooldown"],
            min_lr=params["min_lr"], eps=params["eps"],
        )

    @property
    def best(self) -> float | None:
        best = self.scheduler.best
        return None if math.isinf(best) else best

    def lr(self) -> float:
        return float(self.optimizer.param_groups[0]["lr"])

    def report(self, value: float | None) -> Snapshot:
        if value is not MISSING:  # torch has no notion of a missing metric: skip the epoch
            self.scheduler.step(value)
        s = self.scheduler
        return Snapshot(self.lr(), self.best, s.num_bad_epochs, s.cooldown_counter)


Reference = KerasReference | TorchReference


# --------------------------------------------------------------------------- sequence families


@dataclass
class Scenario:
    """One parity case: the plateau parameters and a rule that picks each next metric value.

    `next_value(t, best)` sees the reference's current best, so that families can aim exactly
    at the improvement threshold; the chosen values are then replayed verbatim on the service.
    """

    lr0: float
    params: dict[str, Any]
    length: int
    next_value: Callable[[int, float | None], float | None]


def _base_params(rng: random.Random, semantics: str, monitor: str = "val_loss",
                 mode: str = "min") -> dict[str, Any]:
    params: dict[str, Any] = {
        "semantics": semantics, "monitor": monitor, "mode": mode,
        "factor": rng.choice(FACTORS), "patience": rng.choice(PATIENCES),
        "cooldown": rng.choice(COOLDOWNS), "min_lr": 0.0,
    }
    if semantics == "keras":
        params["min_delta"] = rng.choice((1e-4, 1e-4, 0.0, 0.01))
    else:
        params["threshold"] = rng.choice((1e-4, 1e-4, 0.0, 0.01))
        params["threshold_mode"] = rng.choice(("rel", "abs"))
        params["eps"] = 1e-8
    return params


def _geometric_min_lr(rng: random.Random, lr0: float, factor: float) -> float:
    """A floor half a factor-step between two reachable lrs: never a float32 near-tie."""
    return lr0 * factor ** (rng.randint(1, 4) + 0.5)


def long_plateaus(rng: random.Random, semantics: str) -> Scenario:
    params = _base_params(rng, semantics)
    level = rng.uniform(0.5, 3.0)

    def next_value(t: int, best: float | None) -> float:
        nonlocal level
        if t > 0 and rng.random() < 0.08:
            level -= rng.uniform(0.05, 0.5) * level  # a real improvement ends the plateau
        wobble = rng.choice((0.0, 0.0, 0.0, 1e-6, -1e-6)) * level  # below most thresholds used
        return level + wobble

    return Scenario(rng.choice((0.1, 0.01, 1.0)), params, rng.randint(30, 45), next_value)


def noisy_decreasing(rng: random.Random, semantics: str) -> Scenario:
    params = _base_params(rng, semantics, monitor=rng.choice(("val_loss", "loss")),
                          mode=rng.choice(("min", "auto")))
    params["min_lr"] = rng.choice((0.0, 1e-4))
    tau, noise = rng.uniform(5, 20), rng.uniform(0.005, 0.1)
    return Scenario(
        rng.choice((0.1, 0.05, 3e-4)), params, rng.randint(25, 40),
        lambda t, best: 2.0 * math.exp(-t / tau) + 0.1 + rng.gauss(0.0, noise),
    )


def noisy_increasing_max(rng: random.Random, semantics: str) -> Scenario:
    monitor = rng.choice(("val_accuracy", "accuracy", "val_auc"))
    params = _base_params(rng, semantics, monitor=monitor, mode=rng.choice(("max", "auto")))
    tau, noise = rng.uniform(4, 15), rng.uniform(0.002, 0.03)
    return Scenario(
        rng.choice((0.1, 0.02)), params, rng.randint(25, 40),
        lambda t, best: min(1.0, 1.0 - 0.8 * math.exp(-t / tau) + rng.gauss(0.0, noise)),
    )


def exact_ties(rng: random.Random, semantics: str) -> Scenario:
    """Values that land exactly on the improvement threshold from the best (and around it)."""
    mode = rng.choice(("min", "max"))
    monitor = "val_loss" if mode == "min" else "val_accuracy"
    params = _base_params(rng, semantics, monitor=monitor, mode=mode)
    sign = -1.0 if mode == "min" else 1.0  # the direction of improvement
    if semantics == "keras":
        params["min_delta"] = delta = rng.choice((0.0, 0.25, 0.5, 1e-4))
        start = rng.choice((4.0, 3.0, 1.0, 0.5))

        def threshold(best: float) -> float:
            return best + sign * delta
    else:
        params["threshold_mode"] = rel_or_abs = rng.choice(("rel", "abs"))
        params["threshold"] = thr = rng.choice((0.25, 0.5, 1e-4, 0.0))
        start = rng.choice((4.0, 3.0, 1.0, 0.5))

        def threshold(best: float) -> float:
            # the very float64 expressions PyTorch evaluates
            if rel_or_abs == "rel":
                return best * (1.0 - thr) if mode == "min" else best * (thr + 1.0)
            return best - thr if mode == "min" else best + thr

    def next_value(t: int, best: float | None) -> float:
        if best is None:
            return start
        edge = threshold(best)
        return rng.choice((
            edge, edge, edge,                           # exactly on the threshold
            best,                                       # equal to the best
            edge + sign * abs(edge) * 1e-9,             # better, but below float32 resolution
            edge + sign * max(abs(edge), 1.0) * 0.01,   # clearly better
            best - sign * 0.125,                        # worse
        ))

    return Scenario(0.1, params, rng.randint(25, 35), next_value)


def cooldowns(rng: random.Random, semantics: str) -> Scenario:
    params = _base_params(rng, semantics)
    params["factor"] = rng.choice((0.5, 0.9))
    params["cooldown"] = COOLDOWNS[rng.randrange(4)]
    params["patience"] = PATIENCES[rng.randrange(4)]
    level = 1.0

    def next_value(t: int, best: float | None) -> float:
        nonlocal level
        if rng.random() < 0.1:
            level *= 0.5
        return level

    return Scenario(0.1, params, rng.randint(25, 40), next_value)


def reaching_min_lr(rng: random.Random, semantics: str) -> Scenario:
    """Flat metrics: reductions until the floor clamps them (Keras' float32 pitfall included)."""
    params = _base_params(rng, semantics)
    params["patience"] = rng.choice((0, 1, 2))
    params["cooldown"] = rng.choice((0, 1))
    lr0 = rng.choice((0.1, 1.0, 0.05))
    if semantics == "keras" and rng.random() < 0.4:
        lr0, params["factor"], params["min_lr"] = 0.1, 0.1, 0.01  # 0.1*0.1 > 0.01 only in float64
    else:
        params["min_lr"] = _geometric_min_lr(rng, lr0, params["factor"])
    level = 1.0

    def next_value(t: int, best: float | None) -> float:
        nonlocal level
        if rng.random() < 0.05:
            level *= 0.5
        return level

    return Scenario(lr0, params, rng.randint(20, 32), next_value)


def torch_eps(rng: random.Random, semantics: str) -> Scenario:
    """Tiny lrs: torch stops reducing once `lr - lr*factor <= eps` (1e-6 halves to 1.5625e-8)."""
    params = _base_params(rng, semantics)
    params["patience"] = rng.choice((0, 1))
    params["cooldown"] = rng.choice((0, 0, 1))
    lr0, params["factor"], params["eps"] = rng.choice((
        (1e-6, 0.5, 1e-8), (1e-6, 0.1, 1e-8), (1e-5, 0.9, 1e-7), (3e-7, 0.5, 1e-8),
        (1e-3, 0.5, 1e-4),
    ))
    return Scenario(lr0, params, rng.randint(15, 30), lambda t, best: 1.0)


def negative_values(rng: random.Random, semantics: str) -> Scenario:
    """Negative metrics: torch `rel` mode is sign-broken there, and the service must be too."""
    mode = rng.choice(("min", "max"))
    params = _base_params(rng, semantics, monitor="val_loss" if mode == "min" else "val_auc",
                          mode=mode)
    if semantics == "torch":
        params["threshold_mode"] = rng.choice(("rel", "rel", "abs"))
        params["threshold"] = rng.choice((1e-4, 0.01, 0.1))
    scale = params.get("threshold", params.get("min_delta", 1e-4)) or 1e-4
    start = -rng.uniform(0.5, 5.0)

    def next_value(t: int, best: float | None) -> float:
        if best is None:
            return start
        # steps of a few thresholds either way: some worse values beat a rel threshold
        return best + rng.uniform(-3.0, 3.0) * scale * abs(best)

    return Scenario(0.1, params, rng.randint(25, 40), next_value)


def missing_metric(rng: random.Random, semantics: str) -> Scenario:
    """Some reports lack the monitored metric: Keras skips them, torch is not stepped."""
    params = _base_params(rng, semantics)
    params["patience"] = rng.choice((0, 1, 2))
    level = 1.0

    def next_value(t: int, best: float | None) -> float | None:
        nonlocal level
        if rng.random() < 0.3:
            return MISSING
        if rng.random() < 0.15:
            level *= 0.5
        return level

    return Scenario(0.1, params, rng.randint(20, 30), next_value)


FAMILIES: dict[str, Callable[[random.Random, str], Scenario]] = {
    "long-plateaus": long_plateaus,
    "noisy-decreasing": noisy_decreasing,
    "noisy-increasing-max": noisy_increasing_max,
    "exact-ties": exact_ties,
    "cooldowns": cooldowns,
    "reaching-min-lr": reaching_min_lr,
    "negative-values": negative_values,
    "missing-metric": missing_metric,
    "torch-eps": torch_eps,
}
KERAS_FAMILIES = [name for name in FAMILIES if name != "torch-eps"]
TORCH_FAMILIES = list(FAMILIES)


# --------------------------------------------------------------------------- replay


def _torch_mode(params: dict[str, Any]) -> str:
    """The contract's `auto` table for the names these tests use (torch has no `auto`)."""
    if params["mode"] != "auto":
        return params["mode"]
    name = params["monitor"].removeprefix("val_")
    return "max" if "acc" in name or name == "auc" else "min"


def _service_plateau(rng: random.Random, params: dict[str, Any]) -> dict[str, Any]:
    """The spec's plateau block; some fields equal to the contract default are left out."""
    spec = {}
    for key, value in params.items():
        if key in CONTRACT_DEFAULTS and value == CONTRACT_DEFAULTS[key] and rng.random() < 0.3:
            continue
        spec[key] = value
    if spec["semantics"] == "keras" and rng.random() < 0.3:
        del spec["semantics"]  # keras is the default
    return spec


@dataclass
class Replay:
    """The reference trace of one scenario: values[i] reported at epoch i, snapshots[i] after it."""

    family: str
    seed: int
    lr0: float
    plateau: dict[str, Any]
    initial_lr: float  # as the library holds it (float32 for Keras)
    values: list[float | None] = field(default_factory=list)
    snapshots: list[Snapshot] = field(default_factory=list)

    def describe(self) -> str:
        return (f"family={self.family} seed={self.seed} lr0={self.lr0!r}\n"
                f"  plateau={self.plateau}\n  values={self.values}")


def replay_reference(family: str, semantics: str, seed: int,
                     adjust: Callable[[Scenario], None] | None = None) -> Replay:
    rng = random.Random(f"{semantics}/{family}/{seed}")
    scenario = FAMILIES[family](rng, semantics)
    if adjust is not None:
        adjust(scenario)
    params = {**CONTRACT_DEFAULTS, **scenario.params}
    params["torch_mode"] = _torch_mode(params)
    ref: Reference = (KerasReference if semantics == "keras" else TorchReference)(
        scenario.lr0, params)
    replay = Replay(family, seed, scenario.lr0, _service_plateau(rng, scenario.params), ref.lr())
    for t in range(scenario.length):
        value = scenario.next_value(t, ref.best)
        replay.values.append(value)
        replay.snapshots.append(ref.report(value))
    return replay


def _metrics_body(step: int, value: float | str | None, monitor: str) -> dict[str, Any]:
    metrics = {"loss": 0.5} if value is MISSING else {monitor: value}
    return {"step": step, "metrics": metrics}


def create_run(api: httpx.Client, run_id: str, spec: dict[str, Any]) -> None:
    response = api.put(f"/runs/{run_id}", json=spec)
    assert response.status_code == 201, f"PUT {spec} -> {response.status_code} {response.text}"


def report(api: httpx.Client, run_id: str, body: dict[str, Any]) -> dict[str, Any]:
    response = api.post(f"/runs/{run_id}/metrics", json=body)
    assert response.status_code == 200, f"POST {body} -> {response.status_code} {response.text}"
    return response.json()


def lr_history(api: httpx.Client, run_id: str, stop: int) -> list[float]:
    response = api.get(f"/runs/{run_id}/lr/range", params={"start": 0, "stop": stop})
    assert response.status_code == 200, response.text
    return response.json()["lr"]


def _close(got: float, expected: float) -> bool:
    return math.isclose(got, expected, rel_tol=REL_TOL, abs_tol=0.0)


def first_difference(api: httpx.Client, run_id: str, replay: Replay) -> str | None:
    """Replay on the service; describe the first step where it parts from the reference."""
    spec = {"schedule": {"type": "constant", "learning_rate": replay.lr0},
            "plateau": replay.plateau, "step_unit": "epoch"}
    create_run(api, run_id, spec)
    monitor = replay.plateau["monitor"]
    previous_lr, previous_state, reductions = replay.initial_lr, None, 0
    for step, (value, ref) in enumerate(zip(replay.values, replay.snapshots, strict=True)):
        out = report(api, run_id, _metrics_body(step, value, monitor))
        reduced = ref.lr != previous_lr
        reductions += reduced
        expected_state = {"best": ref.best, "wait": ref.wait,
                          "cooldown_counter": ref.cooldown_counter, "reductions": reductions}
        state = {key: (out.get("state") or {}).get(key) for key in expected_state}
        problems = []
        if not _close(out["next_lr"], ref.lr):
            problems.append(f"next_lr {out['next_lr']!r} != reference {ref.lr!r}")
        if out["reduced"] is not reduced:
            problems.append(f"reduced {out['reduced']!r} != reference {reduced!r}")
        if state != expected_state:
            problems.append(f"state {state} != reference {expected_state}")
        if value is MISSING and previous_state is not None and out["state"] != previous_state:
            problems.append(f"a report without {monitor!r} moved the state: "
                            f"{previous_state} -> {out['state']}")
        if problems:
            return (f"first difference at step {step} (value {value!r}, lr before "
                    f"{previous_lr!r}):\n  " + "\n  ".join(problems))
        previous_lr, previous_state = ref.lr, out["state"]

    expected = [replay.lr0] + [snap.lr for snap in replay.snapshots]
    history = lr_history(api, run_id, len(expected))
    if len(history) != len(expected):
        return f"lr/range returned {len(history)} values, expected {len(expected)}"
    for step, (got, want) in enumerate(zip(history, expected)):
        if not _close(got, want):
            return f"lr/range history differs first at step {step}: {got!r} != reference {want!r}"
    return None


def assert_parity(api: httpx.Client, run_id: str, semantics: str, family: str) -> None:
    """Replay every seed of a family; report each differing sequence with its first difference.

    The references run first, one after another (Keras shares one model); the service replays
    run on a few threads, one run each, since a report costs mostly a durable commit.
    """
    replays = [replay_reference(family, semantics, seed) for seed in range(SEEDS_PER_FAMILY)]

    def check(replay: Replay) -> str | None:
        try:
            return first_difference(api, f"{run_id}-s{replay.seed}", replay)
        except AssertionError as error:
            return f"request failed: {error}"

    with ThreadPoolExecutor(max_workers=REPLAY_THREADS) as pool:
        differences = list(pool.map(check, replays))
    failures = [f"{replay.describe()}\n  {difference}"
                for replay, difference in zip(replays, differences) if difference]
    assert not failures, (f"{len(failures)}/{SEEDS_PER_FAMILY} {semantics} sequences differ:\n\n"
                          + "\n\n".join(failures))


# --------------------------------------------------------------------------- parity tests


@pytest.mark.parametrize("family", KERAS_FAMILIES)
def test_keras_semantics_replay_like_keras_reduce_lr_on_plateau(
    api: httpx.Client, run_id: str, family: str
) -> None:
    """Each `keras` sequence gives, epoch by epoch, the lr of Keras' own callback."""
    assert_parity(api, run_id, "keras", family)


@pytest.mark.parametrize("family", TORCH_FAMILIES)
def test_torch_semantics_replay_like_torch_reduce_lr_on_plateau(
    api: httpx.Client, run_id: str, family: str
) -> None:
    """Each `torch` sequence gives, epoch by epoch, the lr of PyTorch's own scheduler."""
    assert_parity(api, run_id, "torch", family)


@functools.cache
def _replays(family: str, semantics: str) -> tuple[Replay, ...]:
    return tuple(replay_reference(family, semantics, seed) for seed in range(SEEDS_PER_FAMILY))


def test_the_keras_families_hit_the_float32_min_lr_pitfall() -> None:
    """lr0=0.1, factor=0.1, min_lr=0.01: Keras stops at 0.01 and lets `wait` grow."""
    pitfall = [r for r in _replays("reaching-min-lr", "keras")
               if r.plateau.get("min_lr") == 0.01 and r.plateau.get("factor", 0.1) == 0.1]
    assert pitfall, "no seed hits lr0=0.1, factor=0.1, min_lr=0.01"
    assert all(r.snapshots[-1].lr == np.float32(0.01) for r in pitfall)
    assert any(r.snapshots[-1].wait > r.plateau["patience"] + 1 for r in pitfall)


def test_the_torch_families_hit_the_eps_stop() -> None:
    """lr 1e-6 halves down to 1.5625e-8 and then stops: the next cut would be below eps."""
    assert any(r.lr0 == 1e-6 and r.snapshots[-1].lr == 1.5625e-8
               for r in _replays("torch-eps", "torch"))


def test_the_torch_families_hit_the_sign_broken_rel_threshold() -> None:
    """With negative values in min/rel mode, torch takes some worse values as the new best."""
    worse_taken_as_best = 0
    for r in _replays("negative-values", "torch"):
        if r.plateau.get("threshold_mode", "rel") != "rel" or r.plateau["mode"] != "min":
            continue
        for value, before, after in zip(r.values[1:], r.snapshots, r.snapshots[1:]):
            worse_taken_as_best += value > before.best and after.best == value
    assert worse_taken_as_best > 0


def test_the_tie_families_land_exactly_on_the_threshold() -> None:
    """Torch ties hit `best*(1-thr)` or `best-thr` exactly and are not improvements."""
    ties = 0
    for r in _replays("exact-ties", "torch"):
        p = {**CONTRACT_DEFAULTS, **r.plateau}
        for value, before, after in zip(r.values[1:], r.snapshots, r.snapshots[1:]):
            best, thr = before.best, p["threshold"]
            rel = p["threshold_mode"] == "rel"
            edge = ((best * (1.0 - thr) if rel else best - thr) if p["mode"] == "min"
                    else (best * (thr + 1.0) if rel else best + thr))
            ties += value == edge and after.best == best
    assert ties >= 50
    modes = {r.plateau.get("threshold_mode", "rel") for r in _replays("exact-ties", "torch")}
    assert modes == {"rel", "abs"}


def test_the_families_cover_every_factor_patience_and_cooldown() -> None:
    replays = [r for family in FAMILIES for semantics in ("keras", "torch")
               if family in (KERAS_FAMILIES if semantics == "keras" else TORCH_FAMILIES)
               for r in _replays(family, semantics)]
    assert {r.plateau.get("factor", 0.1) for r in replays} >= set(FACTORS)
    assert {r.plateau.get("patience", 10) for r in replays} >= set(PATIENCES)
    assert {r.plateau.get("cooldown", 0) for r in replays} >= set(COOLDOWNS)
    assert {r.plateau.get("mode", "auto") for r in replays} == {"min", "max", "auto"}


def test_at_least_two_hundred_sequences_are_replayed() -> None:
    assert SEEDS_PER_FAMILY * (len(KERAS_FAMILIES) + len(TORCH_FAMILIES)) >= 200


# --------------------------------------------------------------------------- the deviation


def _plateau_run(api: httpx.Client, run_id: str, plateau: dict[str, Any],
                 lr: float = 0.1) -> None:
    create_run(api, run_id, {"schedule": {"type": "constant", "learning_rate": lr},
                             "plateau": plateau, "step_unit": "epoch"})


def _report_all(api: httpx.Client, run_id: str, monitor: str,
                values: list[float | str]) -> list[dict[str, Any]]:
    return [report(api, run_id, _metrics_body(step, v, monitor)) for step, v in enumerate(values)]


def test_keras_non_finite_values_never_improve_even_as_the_first_report(
    api: httpx.Client, run_id: str
) -> None:
    """With patience 1 every non-improving report cuts the lr, and NaN, inf and -inf all do."""
    _plateau_run(api, run_id, {"monitor": "val_loss", "mode": "min", "factor": 0.5,
                               "patience": 1, "semantics": "keras"})
    outs = _report_all(api, run_id, "val_loss",
                       ["NaN", 1.0, "Infinity", "-Infinity", 0.5, "NaN", 0.25])
    # a first NaN is a bad report (wait 1 >= patience 1); the first finite value is the first
    # best; -inf would beat any best for Keras, but the contract says it never improves
    assert [o["reduced"] for o in outs] == [True, False, True, True, False, True, False]
    assert [o["next_lr"] for o in outs] == pytest.approx(
        [0.05, 0.05, 0.025, 0.0125, 0.0125, 0.00625, 0.00625], rel=REL_TOL)
    assert outs[0]["state"]["best"] is None
    run = api.get(f"/runs/{run_id}").json()
    assert run["state"]["best"] == 0.25


def test_keras_non_finite_values_never_improve_in_max_mode(
    api: httpx.Client, run_id: str
) -> None:
    _plateau_run(api, run_id, {"monitor": "val_accuracy", "factor": 0.5, "patience": 2,
                               "semantics": "keras"})  # auto -> max
    outs = _report_all(api, run_id, "val_accuracy",
                       ["Infinity", "NaN", 0.5, "Infinity", "NaN", 0.6])
    assert [o["reduced"] for o in outs] == [False, True, False, False, True, False]
    assert [o["next_lr"] for o in outs] == pytest.approx(
        [0.1, 0.05, 0.05, 0.05, 0.025, 0.025], rel=REL_TOL)
    assert outs[0]["state"]["best"] is None and outs[0]["state"]["wait"] == 1
    assert outs[2]["state"]["best"] == 0.5 and outs[2]["state"]["wait"] == 0
    assert outs[5]["state"]["best"] == 0.6


def test_torch_non_finite_values_never_improve_even_as_the_first_report(
    api: httpx.Client, run_id: str
) -> None:
    """Torch patience 0 cuts at every bad epoch; -inf in min mode is bad too (torch: the best)."""
    _plateau_run(api, run_id, {"monitor": "val_loss", "mode": "min", "factor": 0.5,
                               "patience": 0, "semantics": "torch"})
    outs = _report_all(api, run_id, "val_loss",
                       ["NaN", "-Infinity", 1.0, "NaN", "Infinity", 0.5, "-Infinity"])
    assert [o["reduced"] for o in outs] == [True, True, False, True, True, False, True]
    assert [o["next_lr"] for o in outs] == pytest.approx(
        [0.05, 0.025, 0.025, 0.0125, 0.00625, 0.00625, 0.003125], rel=REL_TOL)
    run = api.get(f"/runs/{run_id}").json()
    assert run["state"]["best"] == 0.5


def test_torch_non_finite_values_never_improve_in_max_mode_with_cooldown(
    api: httpx.Client, run_id: str
) -> None:
    """Torch patience 1, cooldown 1: the bad epoch right after a cut is ignored."""
    _plateau_run(api, run_id, {"monitor": "val_auc", "mode": "max", "factor": 0.1,
                               "patience": 1, "cooldown": 1, "semantics": "torch"})
    outs = _report_all(api, run_id, "val_auc",
                       ["Infinity", "NaN", "NaN", "Infinity", "Infinity", 0.9])
    # bad counts: 1, 2 -> cut (cooldown 1), ignored (cooldown ends), 1, 2 -> cut, then a best
    assert [o["reduced"] for o in outs] == [False, True, False, False, True, False]
    assert [o["next_lr"] for o in outs] == pytest.approx(
        [0.1, 0.01, 0.01, 0.01, 0.001, 0.001], rel=REL_TOL)
    assert outs[5]["state"]["best"] == 0.9


def test_non_finite_values_are_recorded_as_json_strings(api: httpx.Client, run_id: str) -> None:
    _plateau_run(api, run_id, {"monitor": "val_loss", "patience": 3, "semantics": "torch"})
    for step, value in enumerate(["NaN", "Infinity", "-Infinity"]):
        report(api, run_id, _metrics_body(step, value, "val_loss"))
    reports = api.get(f"/runs/{run_id}/metrics").json()["reports"]
    assert [r["metrics"]["val_loss"] for r in reports] == ["NaN", "Infinity", "-Infinity"]


# --------------------------------------------------------------------------- missing metric


@pytest.mark.parametrize("semantics", ["keras", "torch"])
def test_a_report_without_the_monitored_metric_is_recorded_but_moves_nothing(
    api: httpx.Client, run_id: str, semantics: str
) -> None:
    """Mid-cooldown, a report lacking `val_loss` neither counts down nor changes the lr."""
    _plateau_run(api, run_id, {"monitor": "val_loss", "factor": 0.5, "patience": 1,
                               "cooldown": 3, "semantics": semantics})
    for step, value in enumerate([1.0, 1.0, 1.0]):
        before = report(api, run_id, _metrics_body(step, value, "val_loss"))
    assert before["state"]["cooldown_counter"] > 0, before
    run_before = api.get(f"/runs/{run_id}").json()

    out = report(api, run_id, {"step": 3, "metrics": {"loss": 0.7, "accuracy": 0.5}})
    assert out["state"] == before["state"]
    assert out["next_lr"] == before["next_lr"]
    assert out["reduced"] is False

    run_after = api.get(f"/runs/{run_id}").json()
    assert run_after["state"] == run_before["state"]
    assert run_after["latest_step"] == 3
    recorded = api.get(f"/runs/{run_id}/metrics").json()["reports"]
    assert recorded[-1]["step"] == 3
    assert recorded[-1]["metrics"] == {"loss": 0.7, "accuracy": 0.5}
    assert lr_history(api, run_id, 5)[4] == pytest.approx(before["next_lr"], rel=REL_TOL)


# --------------------------------------------------------------------------- other schedules


@contextmanager
def _keras_float64() -> Iterator[None]:
    previous = keras.config.floatx()
    keras.config.set_floatx("float64")
    try:
        yield
    finally:
        keras.config.set_floatx(previous)


def keras_schedule_values(schedule_cls: type, kwargs: dict[str, Any], steps: int) -> list[float]:
    """The contract's reference for Keras schedules: Keras itself with floatx float64."""
    with _keras_float64(), _quiet():
        schedule = schedule_cls(**kwargs)
        return [float(keras.ops.convert_to_numpy(schedule(step))) for step in range(steps)]


def torch_multistep_values(lr0: float, milestones: list[int], gamma: float,
                           steps: int) -> list[float]:
    optimizer = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr0)
    scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, milestones=milestones, gamma=gamma)
    values = []
    with _quiet():
        for _ in range(steps):
            values.append(float(optimizer.param_groups[0]["lr"]))
            scheduler.step()
    return values


def _reductions_before_each_step(replay: Replay) -> list[int]:
    """k(N): reductions the library made at epochs < N, for N = 0..len(values)."""
    counts, k, lr = [0], 0, replay.initial_lr
    for snap in replay.snapshots:
        k += snap.lr != lr
        lr = snap.lr
        counts.append(k)
    return counts


SCHEDULE_CASES = {
    "keras-cosine-decay": (
        "keras",
        {"type": "cosine_decay", "initial_learning_rate": 0.1, "decay_steps": 40, "alpha": 0.1},
        lambda steps: keras_schedule_values(
            keras.optimizers.schedules.CosineDecay,
            {"initial_learning_rate": 0.1, "decay_steps": 40, "alpha": 0.1}, steps),
    ),
    "keras-exponential-decay": (
        "keras",
        {"type": "exponential_decay", "initial_learning_rate": 0.5, "decay_steps": 7,
         "decay_rate": 0.8, "staircase": True},
        lambda steps: keras_schedule_values(
            keras.optimizers.schedules.ExponentialDecay,
            {"initial_learning_rate": 0.5, "decay_steps": 7, "decay_rate": 0.8,
             "staircase": True}, steps),
    ),
    "torch-multistep-decay": (
        "torch",
        {"type": "multistep_decay", "initial_learning_rate": 0.2, "milestones": [5, 12, 30],
         "gamma": 0.5},
        lambda steps: torch_multistep_values(0.2, [5, 12, 30], 0.5, steps),
    ),
}


@pytest.mark.parametrize("case", list(SCHEDULE_CASES))
@pytest.mark.parametrize("family", ["noisy-decreasing", "cooldowns"])
def test_plateau_reductions_multiply_a_decaying_schedule(
    api: httpx.Client, run_id: str, case: str, family: str
) -> None:
    """lr(N) = schedule(N) * factor**k(N), with k(N) the library's cuts before N (min_lr 0)."""
    semantics, schedule, reference = SCHEDULE_CASES[case]

    def few_cuts_and_no_floor(scenario: Scenario) -> None:
        # min_lr 0 and at most ~13 halvings: every triggered cut takes effect on either
        # schedule, so the constant-schedule library run gives the same k(N)
        scenario.params.update(min_lr=0.0, patience=max(scenario.params["patience"], 2),
                               factor=max(scenario.params["factor"], 0.5))

    for seed in range(3):
        replay = replay_reference(family, semantics, seed, adjust=few_cuts_and_no_floor)
        plateau = {**replay.plateau, "semantics": semantics}
        rid = f"{run_id}-s{seed}"
        create_run(api, rid, {"schedule": schedule, "plateau": plateau, "step_unit": "epoch"})
        n = len(replay.values)
        sched = reference(n + 1)
        peak = max(sched)
        k = _reductions_before_each_step(replay)
        factor = plateau.get("factor", 0.1)
        expected = [sched[step] * factor ** k[step] for step in range(n + 1)]
        for step, value in enumerate(replay.values):
            out = report(api, rid, _metrics_body(step, value, plateau["monitor"]))
            assert out["reduced"] is (k[step + 1] > k[step]), (replay.describe(), step)
            assert out["next_lr"] == pytest.approx(
                expected[step + 1], rel=REL_TOL, abs=1e-12 * peak), (replay.describe(), step)
        assert lr_history(api, rid, n + 1) == pytest.approx(
            expected, rel=REL_TOL, abs=1e-12 * peak), replay.describe()


def test_min_lr_is_judged_on_the_effective_lr_of_a_rising_schedule(
    api: httpx.Client, run_id: str
) -> None:
    """Keras semantics on piecewise_constant [0.1 up to step 3, then 1.0], min_lr 0.03.

    Flat metrics, patience 1, factor 0.5. Cuts take effect at reports 1 and 2 (0.1 -> 0.05 -> 0.03
    clamped); report 3 sees the clamped lr 0.03 and cannot cut (wait keeps growing); from step 4
    the schedule rises to 1.0 and cuts take effect again at reports 4..7 until 1.0*0.5**6 is
    clamped; report 8 cannot cut.
    """
    schedule = {"type": "piecewise_constant", "boundaries": [3], "values": [0.1, 1.0]}
    create_run(api, run_id, {"schedule": schedule, "step_unit": "epoch",
                             "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1,
                                         "min_lr": 0.03, "semantics": "keras"}})
    sched = keras_schedule_values(keras.optimizers.schedules.PiecewiseConstantDecay,
                                  {"boundaries": [3], "values": [0.1, 1.0]}, 10)
    k = [0, 0, 1, 2, 2, 3, 4, 5, 6, 6]
    expected = [max(sched[n] * 0.5 ** k[n], 0.03) for n in range(10)]
    assert expected == pytest.approx(
        [0.1, 0.1, 0.05, 0.03, 0.25, 0.125, 0.0625, 0.03125, 0.03, 0.03])

    outs = [report(api, run_id, _metrics_body(step, 1.0, "val_loss")) for step in range(9)]
    assert [o["reduced"] for o in outs] == [False, True, True, False, True, True, True, True, False]
    assert [o["next_lr"] for o in outs] == pytest.approx(expected[1:], rel=REL_TOL)
    assert outs[3]["state"]["wait"] == 1 and outs[3]["state"]["reductions"] == 2
    assert outs[4]["state"]["wait"] == 0 and outs[4]["state"]["reductions"] == 3
    assert outs[8]["state"]["reductions"] == 6
    assert lr_history(api, run_id, 10) == pytest.approx(expected, rel=REL_TOL)
