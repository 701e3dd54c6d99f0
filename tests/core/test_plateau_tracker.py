"""The pure plateau tracker, on traces worked out by hand from the two libraries' documented rules."""

from __future__ import annotations

import pytest

from lrserve.plateau import KerasPlateau, TorchPlateau, TrackerState, advance


def cut_epochs(config: KerasPlateau | TorchPlateau, values: list[float], lr: float = 1.0) -> list[int]:
    """The 0-based epochs whose report made a reduction take effect."""
    state, cuts = TrackerState(), []
    for epoch, value in enumerate(values):
        outcome = advance(config, state, value, lr)
        state = outcome.state
        if outcome.reduced:
            cuts.append(epoch)
            lr *= config.factor
    return cuts


@pytest.mark.parametrize(
    ("keras_fields", "torch_fields", "keras_cuts", "torch_cuts"),
    [
        pytest.param({"patience": 1}, {"patience": 1}, [1, 2, 3, 4, 5], [2, 4], id="patience-1"),
        pytest.param({"patience": 2, "cooldown": 2}, {"patience": 2, "cooldown": 2}, [2, 5], [3], id="cooldown-2"),
        pytest.param({"patience": 0}, {"patience": 0}, [1, 2, 3, 4, 5], [1, 2, 3, 4, 5], id="patience-0"),
    ],
)
def test_a_flat_metric_is_cut_where_each_library_cuts_it(
    keras_fields: dict, torch_fields: dict, keras_cuts: list[int], torch_cuts: list[int]
) -> None:
    flat = [1.0] * 6
    keras = KerasPlateau(monitor="val_loss", factor=0.5, **keras_fields)
    torch = TorchPlateau(monitor="val_loss", factor=0.5, semantics="torch", **torch_fields)
    assert cut_epochs(keras, flat) == keras_cuts
    assert cut_epochs(torch, flat) == torch_cuts


def test_keras_does_not_count_a_cut_when_float32_lr_equals_float32_min_lr() -> None:
    config = KerasPlateau(monitor="val_loss", factor=0.1, patience=1, min_lr=0.01)
    state = TrackerState(best=1.0)
    outcome = advance(config, state, 2.0, lr=0.1 * 0.1)  # 0.010000000000000002 > 0.01 only in float64
    assert not outcome.reduced
    assert outcome.state.wait == 1 and outcome.state.cooldown_counter == 0


def test_torch_restarts_its_counters_even_when_eps_blocks_the_cut() -> None:
    config = TorchPlateau(monitor="val_loss", semantics="torch", factor=0.5, patience=0, cooldown=3, eps=1e-8)
    outcome = advance(config, TrackerState(best=1.0), 2.0, lr=1e-8)
    assert not outcome.reduced
    assert outcome.state.cooldown_counter == 3 and outcome.state.wait == 0


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf")])
@pytest.mark.parametrize("semantics", ["keras", "torch"])
def test_a_non_finite_first_report_is_not_an_improvement(semantics: str, value: float) -> None:
    config = (KerasPlateau(monitor="val_loss", patience=5) if semantics == "keras"
              else TorchPlateau(monitor="val_loss", semantics="torch", patience=5))
    outcome = advance(config, TrackerState(), value, lr=0.1)
    assert outcome.state.best is None
    assert outcome.state.wait == 1


def test_keras_misses_improvements_below_float32_resolution() -> None:
    config = KerasPlateau(monitor="val_loss", min_delta=0.0, patience=5)
    outcome = advance(config, TrackerState(best=1.0), 1.0 - 1e-9, lr=0.1)
    assert outcome.state.best == 1.0 and outcome.state.wait == 1
