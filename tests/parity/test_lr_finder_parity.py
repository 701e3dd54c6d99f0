"""The range test (`GET /runs/{id}/lr-finder`) against PyTorch Lightning's own `lr_find` code.

Lightning's answer comes from its real classes: the losses go through `_LRCallback.on_train_batch_end` (which
smooths them and raises `should_stop` on divergence) with a minimal trainer, and its kept losses through
`_LRFinder.suggestion`. The minimal trainer counts `global_step` from 1 at the end of the first batch, as a
fresh `Trainer` does during `lr_find`; one test runs `Tuner.lr_find` end to end to pin that down.
"""

from __future__ import annotations

import math
from typing import Any

import httpx
import numpy as np
import pytest
import torch
from lightning.pytorch.tuner.lr_finder import _LRCallback, _LRFinder


RAMP = {"schedule": {"type": "expression", "expression": "1e-7 * 10 ** (min(step, 150) / 15)"},
        "step_unit": "batch"}


def create_run(api: httpx.Client, run_id: str, spec: dict[str, Any]) -> None:
    response = api.put(f"/runs/{run_id}", json=spec)
    assert response.status_code == 201, response.text


def accepted(api: httpx.Client, run_id: str, step: int, metrics: dict[str, Any]) -> None:
    response = api.post(f"/runs/{run_id}/metrics", json={"step": step, "metrics": metrics})
    assert response.status_code == 200, response.text


def lr_range(api: httpx.Client, run_id: str, start: int, stop: int) -> list[float]:
    response = api.get(f"/runs/{run_id}/lr/range", params={"start": start, "stop": stop})
    assert response.status_code == 200, response.text
    return response.json()["lr"]


class _Trainer:
    """What `_LRCallback.on_train_batch_end` reads of a trainer, and nothing more."""

    def __init__(self) -> None:
        self.global_step = 0
        self.should_stop = False
        self.accumulate_grad_batches = 1
        self.fit_loop = self
        self.batch_idx = 0
        self.strategy = self

    def broadcast(self, value: Any) -> Any:
        return value


def lightning_lr_find(lrs: list[float], losses: list[float], *, beta: float, threshold: float | None,
                      skip_begin: int, skip_end: int) -> tuple[list[float], float | None, bool]:
    """(Lightning's smoothed losses, its suggestion, whether it stopped early) for the losses of a sweep."""
    callback = _LRCallback(len(losses), early_stop_threshold=threshold, beta=beta)
    trainer = _Trainer()
    for index, loss in enumerate(losses):
        trainer.batch_idx, trainer.global_step = index, index + 1
        callback.on_train_batch_end(trainer, None, {"loss": torch.tensor(loss, dtype=torch.float64)}, None, index)
        if trainer.should_stop:
            break
    finder = _LRFinder("exponential", lrs[0] if lrs else 1e-7, 1.0, len(losses))
    finder.results = {"lr": lrs[:len(callback.losses)], "loss": callback.losses}
    return callback.losses, finder.suggestion(skip_begin=skip_begin, skip_end=skip_end), trainer.should_stop


def _curve(kind: str, n: int, seed: int) -> list[float]:
    rng = np.random.default_rng(seed)
    x = np.linspace(0.0, 1.0, n)
    if kind == "u":
        values = 2.0 - 1.5 * np.exp(-((x - 0.6) / 0.2) ** 2) + 3.0 * np.maximum(x - 0.8, 0.0) ** 2
    elif kind == "explode":
        values = 1.0 - 0.5 * x + np.exp(25.0 * (x - 0.7))
    elif kind == "early":
        values = 1.0 + np.where(np.arange(n) >= 14, 100.0, 0.0)
    elif kind == "flat":
        values = np.full(n, 0.693)
    elif kind == "down":
        values = np.exp(-4.0 * x)
    else:
        raise AssertionError(kind)
    noise = {"u": 0.03, "explode": 0.05, "early": 0.0, "flat": 0.0, "down": 0.01}[kind]
    return [float(v) for v in values + noise * rng.standard_normal(n)]


def _with(values: list[float], **at: float) -> list[float]:
    out = list(values)
    for index, value in at.items():
        out[int(index.removeprefix("i"))] = value
    return out


DEFAULT = {"beta": 0.98, "threshold": 4.0, "skip_begin": 10, "skip_end": 1}
CASES = [
    pytest.param(_curve("u", 100, 0), {}, id="u-shaped"),
    pytest.param(_curve("u", 120, 1), {}, id="u-shaped-noisy-1"),
    pytest.param(_curve("u", 80, 2), {}, id="u-shaped-noisy-2"),
    pytest.param(_curve("u", 140, 3), {"beta": 0.9}, id="u-shaped-beta-0.9"),
    pytest.param(_curve("u", 100, 4), {"beta": 0.0}, id="u-shaped-unsmoothed"),
    pytest.param(_curve("u", 100, 5), {"beta": 0.5, "skip_begin": 0, "skip_end": 5}, id="u-shaped-other-skips"),
    pytest.param(_curve("explode", 120, 6), {}, id="explodes-late"),
    pytest.param(_curve("explode", 120, 7), {"threshold": 1.5}, id="explodes-threshold-1.5"),
    pytest.param(_curve("explode", 120, 8), {"threshold": None}, id="explodes-never-stopped"),
    pytest.param(_curve("explode", 120, 9), {"threshold": 10.0, "beta": 0.7}, id="explodes-threshold-10"),
    pytest.param(_curve("early", 60, 10), {}, id="diverges-early"),
    pytest.param(_curve("early", 60, 11), {"beta": 0.0, "skip_begin": 2}, id="diverges-early-skip-2"),
    pytest.param(_curve("flat", 50, 12), {}, id="flat"),
    pytest.param(_curve("flat", 50, 13), {"beta": 0.0}, id="flat-unsmoothed"),
    pytest.param(_curve("down", 90, 14), {}, id="monotone-down"),
    pytest.param(_with(_curve("u", 100, 15), i40=math.nan), {}, id="nan-in-the-middle"),
    pytest.param(_with(_curve("u", 100, 16), i0=math.nan), {}, id="nan-first"),
    pytest.param(_with(_curve("u", 100, 17), i55=math.inf), {}, id="infinity-stops"),
    pytest.param(_with(_curve("u", 100, 18), i55=math.inf), {"threshold": None}, id="infinity-kept"),
    pytest.param(_with(_curve("u", 100, 19), i30=-math.inf), {"threshold": None}, id="minus-infinity"),
    pytest.param(_with(_curve("u", 100, 20), i30=1e39), {"threshold": None}, id="beyond-float32"),
    pytest.param(_curve("u", 12, 21), {}, id="too-short-after-skipping"),
    pytest.param(_curve("u", 13, 22), {}, id="just-two-points"),
    pytest.param(_curve("u", 1, 23), {"skip_begin": 0}, id="one-point"),
    pytest.param([], {}, id="no-points"),
    pytest.param(_curve("u", 60, 24), {"skip_end": 0}, id="skip-end-0-keeps-nothing"),
    pytest.param(_curve("u", 60, 25), {"skip_begin": 70}, id="skip-begin-past-the-end"),
]


def _json_loss(value: float) -> float | str:
    if math.isnan(value):
        return "NaN"
    return value if math.isfinite(value) else ("Infinity" if value > 0 else "-Infinity")


def _float(value: float | str) -> float:
    return {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}.get(value, value)  # type: ignore[arg-type]


@pytest.mark.parametrize(("losses", "options"), CASES)
def test_the_range_test_is_lightnings(api: httpx.Client, run_id: str, losses: list[float],
                                      options: dict[str, Any]) -> None:
    settings = {**DEFAULT, **options}
    create_run(api, run_id, RAMP)
    for step, loss in enumerate(losses):
        accepted(api, run_id, step, {"loss": _json_loss(loss), "accuracy": 0.5})
    threshold = settings["threshold"]
    response = api.get(f"/runs/{run_id}/lr-finder", params={
        "skip_begin": settings["skip_begin"], "skip_end": settings["skip_end"], "beta": settings["beta"],
        "early_stop_threshold": "null" if threshold is None else threshold})
    assert response.status_code == 200, response.text
    body = response.json()

    lrs = lr_range(api, run_id, 0, len(losses)) if losses else []
    smoothed, suggestion, stopped = lightning_lr_find(lrs, losses, beta=settings["beta"], threshold=threshold,
                                                      skip_begin=settings["skip_begin"],
                                                      skip_end=settings["skip_end"])
    points = body["points"]
    assert [p["step"] for p in points] == list(range(len(smoothed)))
    assert [p["lr"] for p in points] == lrs[:len(smoothed)]
    assert [_float(p["loss"]) for p in points] == pytest.approx(losses[:len(smoothed)], nan_ok=True)
    assert np.array_equal([_float(p["smoothed"]) for p in points], smoothed, equal_nan=True)
    assert body["diverged_at"] == (len(smoothed) - 1 if stopped else None)
    assert body["suggestion"] == suggestion


def test_the_cases_cover_what_they_claim() -> None:
    """The table holds stops, no stops, suggestions and nulls: a broken comparison cannot pass on one kind."""
    outcomes = []
    for case in CASES:
        losses, options = case.values
        settings = {**DEFAULT, **options}
        lrs = [1e-7 * 10 ** (min(step, 150) / 15) for step in range(len(losses))]
        outcomes.append(lightning_lr_find(lrs, losses, beta=settings["beta"], threshold=settings["threshold"],
                                          skip_begin=settings["skip_begin"], skip_end=settings["skip_end"]))
    assert len(CASES) >= 20
    assert sum(stopped for _, _, stopped in outcomes) >= 5 and sum(not s for _, _, s in outcomes) >= 5
    assert sum(suggestion is None for _, suggestion, _ in outcomes) >= 5
    assert len({suggestion for _, suggestion, _ in outcomes if suggestion is not None}) >= 8


def test_a_real_lightning_lr_find_gets_the_same_answer(api: httpx.Client, run_id: str, tmp_path: Any) -> None:
    """Tuner.lr_find end to end on a tiny regression; its own lrs served by a piecewise_constant run, its raw
    losses reported: the service's smoothed losses, stop and suggestion are Lightning's."""
    import lightning.pytorch as pl
    from lightning.pytorch.tuner import Tuner

    class Regression(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)
            self.lr = 1e-3
            self.raw_losses: list[float] = []

        def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
            x, y = batch
            loss = torch.nn.functional.mse_loss(self.layer(x), y)
            self.raw_losses.append(loss.item())
            return loss

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=self.lr)

    torch.manual_seed(0)
    x = torch.randn(1024, 4)
    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]])),
                                         batch_size=8)
    trainer = pl.Trainer(max_epochs=1, logger=False, enable_checkpointing=False, enable_progress_bar=False,
                         enable_model_summary=False, default_root_dir=tmp_path, accelerator="cpu")
    model = Regression()
    finder = Tuner(trainer).lr_find(model, train_dataloaders=loader, min_lr=1e-5, max_lr=100.0, num_training=100,
                                    update_attr=False)
    assert finder is not None
    lrs, smoothed = finder.results["lr"], finder.results["loss"]
    assert 20 < len(smoothed) < 100, "the sweep should diverge before its end, to test the stop"
    create_run(api, run_id, {"schedule": {"type": "piecewise_constant", "boundaries": list(range(len(lrs) - 1)),
                                          "values": lrs}, "step_unit": "batch"})
    for step, loss in enumerate(model.raw_losses):
        accepted(api, run_id, step, {"loss": loss})

    body = api.get(f"/runs/{run_id}/lr-finder").json()

    assert [p["lr"] for p in body["points"]] == lrs
    assert [p["smoothed"] for p in body["points"]] == smoothed
    assert body["diverged_at"] == len(smoothed) - 1
    assert body["suggestion"] == finder.suggestion()
