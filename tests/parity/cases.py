"""Parameter sets for the schedule parity tests: one table per schedule type of the contract.

Each entry is `pytest.param(schedule, steps, id=...)`. `steps` mixes `range` objects (asked for
with one GET /lr/range call: start, stop, every) and single ints (asked for with GET /lr?step=N).
Steps are chosen to sit on, just before and just after every boundary, restart and phase end,
and far past the end of the schedule (up to 10**7).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from functools import partial
from typing import Any

import pytest

from .references import PYTHON_EQUIVALENTS

FAR = [10**6, 10**7 - 1, 10**7]
# About a hundred steps spread over the whole first ten million, in one range call.
SPAN = range(0, 10**7 + 1, 99_991)


def schedule(type_: str, **params: Any) -> dict[str, Any]:
    return {"type": type_, **params}


def around(*points: int) -> list[int]:
    """Each point with the step just before and just after it."""
    return sorted({step for point in points for step in (point - 1, point, point + 1) if step >= 0})


def restarts(first_decay_steps: int, t_mul: float, limit: int = 10**7) -> list[int]:
    """The integer steps up to `limit` where a cosine_decay_restarts period starts (exactly)."""
    start, length, t = Fraction(0), Fraction(first_decay_steps), Fraction(t_mul)
    assert t > 1, "with t_mul == 1 every multiple of first_decay_steps is a restart"
    found = []
    while start + length <= limit:
        start, length = start + length, length * t
        if start.denominator == 1:
            found.append(int(start))
    return found


constant = partial(schedule, "constant")
exponential = partial(schedule, "exponential_decay")
inverse_time = partial(schedule, "inverse_time_decay")
polynomial = partial(schedule, "polynomial_decay")
piecewise = partial(schedule, "piecewise_constant")
cosine = partial(schedule, "cosine_decay")
restarting = partial(schedule, "cosine_decay_restarts")
step_decay = partial(schedule, "step_decay")
multistep = partial(schedule, "multistep_decay")
linear = partial(schedule, "linear")
one_cycle = partial(schedule, "one_cycle")
cyclic = partial(schedule, "cyclic")
inverse_sqrt = partial(schedule, "inverse_sqrt")
wsd = partial(schedule, "warmup_stable_decay")
sequence = partial(schedule, "sequence")


def expression(text: str, fn: Callable[..., float], **params: Any) -> dict[str, Any]:
    """An expression spec; `fn`, its Python twin, is what Keras LearningRateScheduler runs."""
    PYTHON_EQUIVALENTS.setdefault(text, fn)
    return schedule("expression", expression=text, **params)


CONSTANT = [
    pytest.param(constant(learning_rate=0.1), [range(0, 50), *FAR], id="typical"),
    pytest.param(constant(learning_rate=0.0), [range(0, 10), *FAR], id="zero"),
    pytest.param(constant(learning_rate=1.0), [range(0, 10), 2**40], id="one-up-to-2**40"),
    pytest.param(constant(learning_rate=3e-4), [SPAN], id="adam-default-span"),
    pytest.param(constant(learning_rate=1e-3), [0, 1, 10**7], id="1e-3"),
    pytest.param(constant(learning_rate=1e-9), [range(0, 5), 10**7], id="tiny"),
    pytest.param(constant(learning_rate=1e-300), [0, 10**7], id="near-underflow"),
    pytest.param(constant(learning_rate=5e-324), [0, 1, 10**7], id="smallest-subnormal"),
    pytest.param(constant(learning_rate=1e300), [0, 10**7], id="huge"),
    pytest.param(constant(learning_rate=10.0), [range(0, 3), 10**7], id="ten"),
    pytest.param(constant(learning_rate=0.1 + 0.2), [0, 1, 10**7], id="not-a-short-decimal"),
    pytest.param(constant(learning_rate=1 / 3), [0, 10**7], id="one-third"),
    pytest.param(constant(learning_rate=math.pi), [range(0, 3)], id="pi"),
    pytest.param(constant(learning_rate=2), [0, 1, 10**7], id="integer-json-value"),
    pytest.param(constant(learning_rate=0.123456789012345), [0, 10**7], id="many-digits"),
    pytest.param(constant(learning_rate=2e-5), [range(0, 1000, 7)], id="fine-tuning-every-7"),
    pytest.param(constant(learning_rate=0.01), [range(10**7 - 5, 10**7 + 5)], id="far-range"),
    pytest.param(constant(learning_rate=0.05), [range(123, 124)], id="single-step-range"),
    pytest.param(constant(learning_rate=7.5e-5), [range(0, 100_000)], id="hundred-thousand-steps"),
    pytest.param(constant(learning_rate=0.5), [range(5, 50, 5), 0, 3], id="every-5-and-singles"),
]

EXPONENTIAL_DECAY = [
    pytest.param(
        exponential(initial_learning_rate=0.1, decay_steps=1000, decay_rate=0.96),
        [range(0, 2100), *FAR], id="keras-docs-continuous",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.1, decay_steps=1000, decay_rate=0.96, staircase=True),
        [range(0, 3100), *around(10**6, 10**7 - 1000, 10**7)], id="keras-docs-staircase",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.1, decay_steps=1000, decay_rate=0.96, staircase=False),
        [SPAN], id="explicit-default-staircase-span",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.1, decay_steps=7, decay_rate=0.5, staircase=True),
        [range(0, 100), *around(7 * 1000, 7 * 1_428_571)], id="staircase-odd-period",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.1, decay_steps=1, decay_rate=0.5, staircase=True),
        [range(0, 1200, 7), *around(1070, 1074, 1078), *FAR], id="halving-every-step-underflows",
    ),
    pytest.param(
        exponential(initial_learning_rate=1.0, decay_steps=1, decay_rate=0.9999),
        [range(0, 100), 10**4, 10**5, 7 * 10**5, *FAR], id="per-step-decay",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.01, decay_steps=100, decay_rate=1.0),
        [range(0, 300), *FAR], id="rate-one-is-constant",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.001, decay_steps=100, decay_rate=1.01),
        [range(0, 3000, 3), 10**5], id="rate-above-one-grows",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.0, staircase=True),
        [range(0, 30), 10**7], id="rate-zero-staircase",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.1, decay_steps=10, decay_rate=0.0),
        [range(0, 5), 10**7], id="rate-zero-continuous",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.1, decay_steps=10**7, decay_rate=0.5),
        [range(0, 10), *around(5 * 10**6, 10**7)], id="horizon-of-ten-million",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.1, decay_steps=10**7, decay_rate=0.5, staircase=True),
        [0, *around(10**7), 2 * 10**7], id="staircase-of-ten-million",
    ),
    pytest.param(
        exponential(initial_learning_rate=1e-8, decay_steps=3, decay_rate=0.9),
        [range(0, 60), 10**7], id="tiny-initial",
    ),
    pytest.param(
        exponential(initial_learning_rate=2.0, decay_steps=250, decay_rate=0.1, staircase=True),
        [range(0, 1260, 5), *around(250, 500, 750, 1000, 1250, 2500)], id="tenfold-steps",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.3, decay_steps=3, decay_rate=0.97),
        [range(0, 40), *FAR], id="short-period-continuous",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.5, decay_steps=2, decay_rate=0.9, staircase=True),
        [range(0, 21), *around(10**6, 10**7)], id="staircase-period-two",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.05, decay_steps=1000, decay_rate=0.5),
        [range(0, 100_000, 997)], id="every-997",
    ),
    pytest.param(
        exponential(initial_learning_rate=1.0, decay_steps=100_000, decay_rate=0.1, staircase=True),
        [range(0, 10**7 + 1, 100_000), *around(300_000)], id="staircase-sampled-on-boundaries",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.1, decay_steps=1, decay_rate=0.99),
        [range(0, 5000)], id="dense-per-step",
    ),
    pytest.param(
        exponential(initial_learning_rate=0.2, decay_steps=13, decay_rate=0.75, staircase=True),
        [range(0, 200), *around(13 * 769_230)], id="staircase-period-13",
    ),
]

INVERSE_TIME_DECAY = [
    pytest.param(
        inverse_time(initial_learning_rate=0.1, decay_rate=1e-4),
        [range(0, 200), 10**4, *FAR], id="legacy-keras-decay-default-steps",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=0.1, decay_steps=1, decay_rate=1e-4),
        [SPAN], id="legacy-explicit-decay-steps-span",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=0.1, decay_steps=1000, decay_rate=0.5),
        [range(0, 3000), *FAR], id="keras-docs-continuous",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=0.1, decay_steps=1000, decay_rate=0.5, staircase=True),
        [range(0, 3100), *around(10**6, 10**7)], id="keras-docs-staircase",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=0.01, decay_steps=10, decay_rate=0.0),
        [range(0, 50), 10**7], id="rate-zero-is-constant",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=1.0, decay_steps=1, decay_rate=1.0),
        [range(0, 1000), *FAR], id="one-over-step-plus-one",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=1.0, decay_steps=7, decay_rate=2.0, staircase=True),
        [range(0, 80), *around(7 * 142_857)], id="staircase-odd-period",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=0.5, decay_steps=3, decay_rate=0.1),
        [range(0, 100), *FAR], id="short-period",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=0.5, decay_steps=10**7, decay_rate=1.0),
        [range(0, 5), *around(10**7), 2 * 10**7], id="horizon-ten-million",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=0.5, decay_steps=10**7, decay_rate=1.0, staircase=True),
        [0, *around(10**7, 2 * 10**7)], id="staircase-ten-million",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=3e-4, decay_rate=1e-6),
        [range(0, 100_000, 1000), *FAR], id="tiny-legacy-decay",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=1e-3, decay_steps=100, decay_rate=10.0),
        [range(0, 500), *FAR], id="steep",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=2.0, decay_steps=50, decay_rate=0.25, staircase=True),
        [range(0, 400), *around(5000)], id="staircase-period-50",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=0.1, decay_steps=2, decay_rate=1.0, staircase=True),
        [range(0, 20), *around(10**7)], id="staircase-period-two",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=0.1, decay_steps=1, decay_rate=1e-3, staircase=True),
        [range(0, 100), *FAR], id="staircase-period-one-equals-continuous",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=1e-6, decay_steps=5, decay_rate=0.5),
        [range(0, 30), 10**7], id="tiny-initial",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=0.2, decay_steps=1000, decay_rate=3.0),
        [range(0, 10**6, 9973)], id="every-9973",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=1.0, decay_steps=100_000, decay_rate=1.0,
                     staircase=True),
        [range(0, 10**7 + 1, 100_000), *around(500_000)], id="staircase-sampled-on-boundaries",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=0.1, decay_steps=13, decay_rate=0.7, staircase=False),
        [range(0, 200), *FAR], id="explicit-default-staircase",
    ),
    pytest.param(
        inverse_time(initial_learning_rate=10.0, decay_steps=1, decay_rate=0.01),
        [range(0, 5000)], id="dense-per-step",
    ),
]

POLYNOMIAL_DECAY = [
    pytest.param(
        polynomial(initial_learning_rate=0.1, decay_steps=1000),
        [range(0, 1100), *FAR], id="defaults-linear-to-1e-4",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.1, decay_steps=10, end_learning_rate=0.01, cycle=True),
        [range(0, 100), *around(10**6, 10**7)], id="cycle-widening-sawtooth",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.1, decay_steps=10, end_learning_rate=0.01, cycle=False),
        [range(0, 30), *FAR], id="no-cycle-holds-end",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.1, decay_steps=1000, end_learning_rate=0.0, power=2.0),
        [range(0, 900, 9), range(900, 1010), *FAR], id="quadratic-to-zero",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.1, decay_steps=1000, end_learning_rate=0.001, power=0.5),
        [range(0, 900, 9), range(900, 1010), *FAR], id="square-root",
    ),
    pytest.param(
        polynomial(initial_learning_rate=1.0, decay_steps=100, end_learning_rate=0.0, power=3.0,
                   cycle=True),
        [range(0, 450), *around(10**7)], id="cubic-cycle",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.0, decay_steps=100, end_learning_rate=0.1),
        [range(0, 150), *FAR], id="increasing-warmup-like",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.05, decay_steps=100, end_learning_rate=0.05, power=2.0),
        [range(0, 150), 10**7], id="end-equals-initial",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.1, decay_steps=1, end_learning_rate=0.01),
        [range(0, 10), *FAR], id="decay-steps-one",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.1, decay_steps=1, end_learning_rate=0.01, cycle=True),
        [range(0, 10), *FAR], id="decay-steps-one-cycle",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.1, decay_steps=7, end_learning_rate=0.001, power=1.5,
                   cycle=True),
        [range(0, 100), *around(7 * 142_857, 7 * 1_428_571)], id="cycle-odd-period",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.1, decay_steps=10**7, end_learning_rate=0.0),
        [range(0, 10), *around(5 * 10**6, 10**7)], id="horizon-ten-million",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.1, decay_steps=10**6, end_learning_rate=0.0, cycle=True),
        [0, 1, *around(10**6, 2 * 10**6, 10**7)], id="cycle-million-sparse",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.1, decay_steps=1000, power=1.0, cycle=False,
                   end_learning_rate=0.0001),
        [SPAN], id="all-defaults-spelled-out-span",
    ),
    pytest.param(
        polynomial(initial_learning_rate=2.0, decay_steps=50, end_learning_rate=0.5, power=0.25),
        [range(0, 60)], id="quarter-power",
    ),
    pytest.param(
        polynomial(initial_learning_rate=2.0, decay_steps=50, end_learning_rate=0.5, power=0.0),
        [range(0, 60), 10**7], id="power-zero",
    ),
    pytest.param(
        polynomial(initial_learning_rate=1e-3, decay_steps=3, end_learning_rate=1e-5, cycle=True),
        [range(0, 40), 10**7 - 1, 10**7, 10**7 + 2], id="cycle-period-three",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.1, decay_steps=10_000, end_learning_rate=1e-6, power=2.0,
                   cycle=True),
        [range(0, 100_000, 250), *around(30_000)], id="cycle-every-250",
    ),
    pytest.param(
        polynomial(initial_learning_rate=1.0, decay_steps=5000, end_learning_rate=0.0),
        [range(0, 5100)], id="dense-linear",
    ),
    pytest.param(
        polynomial(initial_learning_rate=0.3, decay_steps=4, end_learning_rate=0.1, power=2.0,
                   cycle=True),
        [range(0, 33)], id="cycle-quadratic-small",
    ),
]

PIECEWISE_CONSTANT = [
    pytest.param(
        piecewise(boundaries=[10, 20], values=[1.0, 0.5, 0.1]),
        [range(0, 30), 10**7], id="boundary-keeps-earlier-value",
    ),
    pytest.param(
        piecewise(boundaries=[0], values=[0.1, 0.01]),
        [range(0, 5), 10**7], id="boundary-at-zero",
    ),
    pytest.param(
        piecewise(boundaries=[1], values=[0.1, 0.01]),
        [range(0, 5)], id="boundary-at-one",
    ),
    pytest.param(
        piecewise(boundaries=[1, 2, 3, 4, 5], values=[0.6, 0.5, 0.4, 0.3, 0.2, 0.1]),
        [range(0, 10)], id="every-step-a-boundary",
    ),
    pytest.param(
        piecewise(boundaries=[100_000, 110_000], values=[1.0, 0.5, 0.1]),
        [range(0, 200_000, 1000), *around(100_000, 110_000)], id="keras-docs",
    ),
    pytest.param(
        piecewise(boundaries=[10**7], values=[0.1, 0.001]),
        [0, *around(10**7)], id="boundary-ten-million",
    ),
    pytest.param(
        piecewise(boundaries=[2**40 - 1], values=[0.1, 0.001]),
        [0, 2**40 - 2, 2**40 - 1, 2**40], id="boundary-at-the-last-step",
    ),
    pytest.param(
        piecewise(boundaries=[5, 10, 15], values=[0.001, 0.01, 0.1, 1.0]),
        [range(0, 20), *FAR], id="increasing-values",
    ),
    pytest.param(
        piecewise(boundaries=[5, 10], values=[0.1, 0.1, 0.1]),
        [range(0, 15)], id="equal-values",
    ),
    pytest.param(
        piecewise(boundaries=[3, 6], values=[0.1, 0.0, 0.05]),
        [range(0, 10)], id="zero-in-the-middle",
    ),
    pytest.param(
        piecewise(boundaries=[10, 20], values=[1, 0.5, 0]),
        [range(0, 25)], id="integer-json-values",
    ),
    pytest.param(
        piecewise(boundaries=list(range(10, 210, 10)), values=[1.0 / (i + 1) for i in range(21)]),
        [range(0, 220)], id="twenty-boundaries",
    ),
    pytest.param(
        piecewise(boundaries=[30, 60, 90], values=[0.1, 0.01, 0.001, 0.0001]),
        [*around(30, 60, 90), 0, *FAR], id="resnet-epochs",
    ),
    pytest.param(
        piecewise(boundaries=[1000, 10**6, 5 * 10**6], values=[0.2, 0.1, 0.05, 0.01]),
        [SPAN, *around(1000, 10**6, 5 * 10**6)], id="far-boundaries-span",
    ),
    pytest.param(
        piecewise(boundaries=[7], values=[1e-9, 1e-3]),
        [range(0, 15), 10**7], id="tiny-then-larger",
    ),
    pytest.param(
        piecewise(boundaries=[50, 51], values=[0.3, 0.2, 0.1]),
        [range(45, 56)], id="adjacent-boundaries",
    ),
    pytest.param(
        piecewise(boundaries=[2, 4, 8, 16, 32, 64, 128, 256, 512, 1024],
                  values=[2.0**-i for i in range(11)]),
        [range(0, 20), *around(32, 64, 128, 256, 512, 1024), 10**7], id="powers-of-two",
    ),
    pytest.param(
        piecewise(boundaries=[999_999, 1_000_000], values=[0.5, 0.25, 0.125]),
        [*around(999_999, 1_000_000), 10**7], id="adjacent-at-a-million",
    ),
    pytest.param(
        piecewise(boundaries=[10, 20, 30], values=[0.1, 0.2, 0.1, 0.2]),
        [range(0, 40, 3), *around(10, 20, 30)], id="alternating-every-3",
    ),
    pytest.param(
        piecewise(boundaries=[4000], values=[3e-4, 3e-5]),
        [range(3900, 4100), range(0, 10**6, 10_007)], id="fine-tuning",
    ),
]

COSINE_DECAY = [
    pytest.param(cosine(initial_learning_rate=0.1, decay_steps=1000),
                 [range(0, 1100), *FAR], id="defaults"),
    pytest.param(cosine(initial_learning_rate=0.1, decay_steps=1000, alpha=0.1),
                 [range(0, 1100, 3), *around(1000), *FAR], id="alpha-floor"),
    pytest.param(
        cosine(initial_learning_rate=0.0, decay_steps=100, alpha=0.1, warmup_target=1.0,
               warmup_steps=10),
        [range(0, 130), *FAR], id="warmup-then-decay",
    ),
    pytest.param(
        cosine(initial_learning_rate=0.0, decay_steps=100, warmup_target=1.0, warmup_steps=0),
        [range(0, 110), 10**7], id="target-without-warmup-decays-from-target",
    ),
    pytest.param(
        cosine(initial_learning_rate=0.1, decay_steps=100, warmup_steps=50),
        [range(0, 120), 10**7], id="warmup-steps-ignored-without-target",
    ),
    pytest.param(
        cosine(initial_learning_rate=0.1, decay_steps=100, alpha=0.0, warmup_target=None,
               warmup_steps=0),
        [range(0, 120)], id="defaults-spelled-out",
    ),
    pytest.param(
        cosine(initial_learning_rate=0.1, decay_steps=50, warmup_target=0.05, warmup_steps=20),
        [range(0, 80), *FAR], id="warmup-downwards",
    ),
    pytest.param(cosine(initial_learning_rate=0.1, decay_steps=1),
                 [range(0, 5), *FAR], id="decay-steps-one"),
    pytest.param(
        cosine(initial_learning_rate=0.0, decay_steps=1, warmup_target=0.1, warmup_steps=1),
        [range(0, 5), 10**7], id="one-step-warmup-one-step-decay",
    ),
    pytest.param(cosine(initial_learning_rate=0.1, decay_steps=1000, alpha=1.0),
                 [range(0, 1010, 10), 10**7], id="alpha-one-is-constant"),
    pytest.param(cosine(initial_learning_rate=0.1, decay_steps=10**7),
                 [range(0, 10), SPAN, *around(5 * 10**6, 10**7)], id="horizon-ten-million"),
    pytest.param(
        cosine(initial_learning_rate=1e-5, decay_steps=10**6, alpha=0.01, warmup_target=1e-3,
               warmup_steps=10_000),
        [0, 1, *around(10_000, 510_000, 1_010_000), 10**7], id="large-warmup-sparse",
    ),
    pytest.param(cosine(initial_learning_rate=3e-4, decay_steps=7, alpha=0.5),
                 [range(0, 20)], id="odd-steps-half-floor"),
    pytest.param(
        cosine(initial_learning_rate=0.0, decay_steps=90, alpha=0.0, warmup_target=0.1,
               warmup_steps=10),
        [range(0, 110)], id="warmup-to-zero",
    ),
    pytest.param(
        cosine(initial_learning_rate=0.01, decay_steps=1000, alpha=0.05, warmup_target=0.1,
               warmup_steps=100),
        [range(0, 1200, 3), *around(100, 1100)], id="warmup-from-nonzero-every-3",
    ),
    pytest.param(cosine(initial_learning_rate=0.1, decay_steps=5000),
                 [range(0, 5100)], id="dense"),
    pytest.param(
        cosine(initial_learning_rate=0.1, decay_steps=100, warmup_target=0.1, warmup_steps=10),
        [range(0, 120)], id="target-equals-initial",
    ),
    pytest.param(cosine(initial_learning_rate=2.0, decay_steps=3, alpha=0.25),
                 [range(0, 6), *FAR], id="three-steps"),
    pytest.param(
        cosine(initial_learning_rate=0.0, decay_steps=10**6, warmup_target=1.0, warmup_steps=10**6),
        [0, *around(500_000, 10**6, 1_500_000, 2 * 10**6), 10**7],
        id="million-warmup-million-decay",
    ),
    pytest.param(cosine(initial_learning_rate=0.1, decay_steps=100_000, alpha=0.001),
                 [range(0, 10**6, 997)], id="every-997"),
]

COSINE_DECAY_RESTARTS = [
    pytest.param(
        restarting(initial_learning_rate=1.0, first_decay_steps=10),
        [range(0, 400), *around(*restarts(10, 2.0))], id="defaults-t-mul-2",
    ),
    pytest.param(
        restarting(initial_learning_rate=0.1, first_decay_steps=10, t_mul=1.0),
        [range(0, 60), *around(10**6, 10**7)], id="t-mul-one-fixed-periods",
    ),
    pytest.param(
        restarting(initial_learning_rate=0.1, first_decay_steps=10, t_mul=2.0, m_mul=0.5),
        [range(0, 400), *around(*restarts(10, 2.0))], id="m-mul-half",
    ),
    pytest.param(
        restarting(initial_learning_rate=0.1, first_decay_steps=10, alpha=0.1),
        [range(0, 320), *FAR], id="alpha-not-scaled-by-m-mul",
    ),
    pytest.param(
        restarting(initial_learning_rate=0.1, first_decay_steps=10, m_mul=0.5, alpha=0.1),
        [range(0, 320), *FAR], id="alpha-and-m-mul",
    ),
    pytest.param(
        restarting(initial_learning_rate=1.0, first_decay_steps=64, t_mul=1.5),
        [range(0, 2200, 3), *around(*restarts(64, 1.5))], id="t-mul-1.5-integer-restarts",
    ),
    pytest.param(
        restarting(initial_learning_rate=1.0, first_decay_steps=10, t_mul=1.5),
        [range(0, 300), 10**7], id="t-mul-1.5-fractional-restarts",
    ),
    pytest.param(
        restarting(initial_learning_rate=1.0, first_decay_steps=1, t_mul=3.0),
        [range(0, 130), *around(*restarts(1, 3.0))], id="t-mul-3-every-restart-to-ten-million",
    ),
    pytest.param(
        restarting(initial_learning_rate=1.0, first_decay_steps=1, t_mul=2.0),
        [range(0, 260), *around(*restarts(1, 2.0))], id="t-mul-2-from-one-every-restart",
    ),
    pytest.param(
        restarting(initial_learning_rate=0.1, first_decay_steps=7, t_mul=2.0, m_mul=0.9,
                   alpha=0.05),
        [range(0, 460), *around(*restarts(7, 2.0))], id="odd-first-period",
    ),
    pytest.param(
        restarting(initial_learning_rate=0.1, first_decay_steps=1, t_mul=1.0, m_mul=0.99),
        [range(0, 100), 10**4], id="every-step-a-restart",
    ),
    pytest.param(
        restarting(initial_learning_rate=0.1, first_decay_steps=1000, t_mul=1.0),
        [range(0, 3001, 5), *around(10**6, 10**7 - 1000, 10**7)], id="t-mul-one-far",
    ),
    pytest.param(
        restarting(initial_learning_rate=1.0, first_decay_steps=256, t_mul=1.25, m_mul=0.8),
        [range(0, 3000, 5), *around(*restarts(256, 1.25))], id="t-mul-1.25",
    ),
    pytest.param(
        restarting(initial_learning_rate=0.1, first_decay_steps=1000),
        [SPAN, *around(*restarts(1000, 2.0))], id="first-1000-span",
    ),
    pytest.param(
        restarting(initial_learning_rate=1.0, first_decay_steps=5, t_mul=4.0, m_mul=0.5),
        [range(0, 500), *around(*restarts(5, 4.0))], id="t-mul-4",
    ),
    pytest.param(
        restarting(initial_learning_rate=1.0, first_decay_steps=6, t_mul=2.5),
        [range(0, 200), *around(*restarts(6, 2.5)), 10**7], id="t-mul-2.5",
    ),
    pytest.param(
        restarting(initial_learning_rate=0.1, first_decay_steps=3, t_mul=10.0, alpha=0.2),
        [range(0, 400), *around(*restarts(3, 10.0))], id="t-mul-10",
    ),
    pytest.param(
        restarting(initial_learning_rate=0.1, first_decay_steps=10, t_mul=2.0, m_mul=1.0,
                   alpha=0.0),
        [range(0, 100)], id="defaults-spelled-out",
    ),
    pytest.param(
        restarting(initial_learning_rate=0.1, first_decay_steps=10**7),
        [0, *around(5 * 10**6, 10**7)], id="first-period-ten-million",
    ),
    pytest.param(
        restarting(initial_learning_rate=1.0, first_decay_steps=3, t_mul=2.0, m_mul=1.1),
        [range(0, 200), *around(*restarts(3, 2.0, limit=10**5))], id="m-mul-above-one",
    ),
    pytest.param(
        restarting(initial_learning_rate=1.0, first_decay_steps=100, t_mul=3.0, m_mul=0.7),
        [range(0, 1400, 3), *around(*restarts(100, 3.0))], id="t-mul-3-from-100",
    ),
]

STEP_DECAY = [
    pytest.param(step_decay(initial_learning_rate=0.1, step_size=3, gamma=0.5),
                 [range(0, 20), *FAR], id="verified-halving"),
    pytest.param(step_decay(initial_learning_rate=0.1, step_size=30),
                 [range(0, 100), *FAR], id="default-gamma"),
    pytest.param(step_decay(initial_learning_rate=0.1, step_size=1, gamma=0.9),
                 [range(0, 200), *FAR], id="step-size-one"),
    pytest.param(step_decay(initial_learning_rate=0.1, step_size=10, gamma=1.0),
                 [range(0, 50), 10**7], id="gamma-one-is-constant"),
    pytest.param(step_decay(initial_learning_rate=0.01, step_size=10, gamma=2.0),
                 [range(0, 50)], id="gamma-above-one-grows"),
    pytest.param(step_decay(initial_learning_rate=0.1, step_size=10**6, gamma=0.5),
                 [0, *around(10**6, 2 * 10**6, 10**7)], id="million-step-periods"),
    pytest.param(step_decay(initial_learning_rate=0.1, step_size=100, gamma=0.9),
                 [range(0, 20_000, 50), *FAR], id="underflows-far-every-50"),
    pytest.param(step_decay(initial_learning_rate=1.0, step_size=7, gamma=0.3),
                 [range(0, 100), *around(7 * 1_428_571)], id="odd-period"),
    pytest.param(step_decay(initial_learning_rate=0.1, step_size=10**7, gamma=0.1),
                 [0, *around(10**7), 2 * 10**7], id="period-ten-million"),
    pytest.param(step_decay(initial_learning_rate=3e-4, step_size=2, gamma=0.99),
                 [range(0, 6000), *FAR], id="dense-past-sequential-limit"),
    pytest.param(step_decay(initial_learning_rate=0.1, step_size=4999, gamma=0.5),
                 [range(4990, 5010), *around(9998, 14997)], id="boundary-near-sequential-limit"),
    pytest.param(step_decay(initial_learning_rate=0.5, step_size=1000, gamma=0.1),
                 [SPAN], id="span"),
    pytest.param(step_decay(initial_learning_rate=0.1, step_size=25, gamma=0.75),
                 [range(0, 300, 25), range(1, 300, 25), range(24, 300, 25)],
                 id="boundaries-by-range"),
    pytest.param(step_decay(initial_learning_rate=0.0, step_size=3, gamma=0.5),
                 [range(0, 10), 10**7], id="zero-initial"),
    pytest.param(step_decay(initial_learning_rate=1e-7, step_size=5, gamma=0.5),
                 [range(0, 60)], id="tiny-initial"),
    pytest.param(step_decay(initial_learning_rate=0.1, step_size=3, gamma=0.1),
                 [range(0, 12), 2**40], id="explicit-default-gamma-up-to-2**40"),
    pytest.param(step_decay(initial_learning_rate=2.0, step_size=2, gamma=0.5),
                 [range(0, 2200)], id="halving-to-underflow"),
    pytest.param(step_decay(initial_learning_rate=0.1, step_size=333, gamma=0.95),
                 [range(0, 5000, 3), *around(333 * 30_000)], id="period-333"),
    pytest.param(step_decay(initial_learning_rate=0.1, step_size=1, gamma=0.999_999),
                 [range(0, 10), *FAR], id="gentle-every-step"),
    pytest.param(step_decay(initial_learning_rate=0.25, step_size=50_000, gamma=0.2),
                 [range(0, 10**6, 10_000), *around(50_000, 100_000)], id="every-10000"),
]

MULTISTEP_DECAY = [
    pytest.param(multistep(initial_learning_rate=0.05, milestones=[30, 80]),
                 [range(0, 100), *FAR], id="torch-docs-default-gamma"),
    pytest.param(multistep(initial_learning_rate=0.1, milestones=[0], gamma=0.5),
                 [range(0, 5), 10**7], id="milestone-at-zero"),
    pytest.param(multistep(initial_learning_rate=0.1, milestones=[1, 2, 3, 4, 5], gamma=0.5),
                 [range(0, 10)], id="every-step-a-milestone"),
    pytest.param(multistep(initial_learning_rate=0.1, milestones=[10**6, 10**7], gamma=0.1),
                 [0, *around(10**6, 10**7)], id="far-milestones"),
    pytest.param(multistep(initial_learning_rate=0.1, milestones=[30, 60, 90], gamma=0.1),
                 [*around(30, 60, 90), 0, *FAR], id="resnet-epochs"),
    pytest.param(multistep(initial_learning_rate=0.1, milestones=[10, 20], gamma=1.0),
                 [range(0, 30)], id="gamma-one"),
    pytest.param(multistep(initial_learning_rate=0.01, milestones=[5, 10], gamma=3.0),
                 [range(0, 15)], id="gamma-above-one"),
    pytest.param(multistep(initial_learning_rate=0.1, milestones=[4999, 5000, 5001], gamma=0.5),
                 [range(4990, 5010), 10**7], id="milestones-at-sequential-limit"),
    pytest.param(multistep(initial_learning_rate=0.1, milestones=[100], gamma=0.1),
                 [range(0, 200), *FAR], id="single-milestone"),
    pytest.param(multistep(initial_learning_rate=1.0, milestones=list(range(10, 1010, 10)),
                           gamma=0.9),
                 [range(0, 1100)], id="hundred-milestones"),
    pytest.param(multistep(initial_learning_rate=0.1, milestones=[2**40], gamma=0.5),
                 [0, 2**40 - 1, 2**40], id="milestone-at-the-last-step"),
    pytest.param(multistep(initial_learning_rate=0.1, milestones=[1000, 10**6, 5 * 10**6],
                           gamma=0.2),
                 [SPAN, *around(1000, 10**6, 5 * 10**6)], id="span"),
    pytest.param(multistep(initial_learning_rate=0.0, milestones=[3], gamma=0.5),
                 [range(0, 6)], id="zero-initial"),
    pytest.param(multistep(initial_learning_rate=3e-4, milestones=[8000, 9000], gamma=0.1),
                 [range(0, 10_000)], id="dense-past-sequential-limit"),
    pytest.param(multistep(initial_learning_rate=0.1, milestones=[1], gamma=0.1),
                 [range(0, 4), 10**7], id="milestone-at-one"),
    pytest.param(multistep(initial_learning_rate=0.1, milestones=[50, 51, 52], gamma=0.5),
                 [range(45, 60)], id="adjacent-milestones"),
    pytest.param(multistep(initial_learning_rate=0.2, milestones=[7, 700, 70_000], gamma=0.3),
                 [*around(7, 700, 70_000), *FAR], id="decades"),
    pytest.param(multistep(initial_learning_rate=1.0, milestones=[2**k for k in range(1, 24)],
                           gamma=0.5),
                 [range(0, 100), *around(*[2**k for k in range(1, 24)])], id="powers-of-two"),
    pytest.param(multistep(initial_learning_rate=0.1, milestones=[10, 20, 30], gamma=0.1),
                 [range(0, 40, 3), *around(10, 20, 30)], id="every-3"),
    pytest.param(multistep(initial_learning_rate=0.1, milestones=[150, 225], gamma=0.1),
                 [range(140, 240)], id="range-not-from-zero"),
]

LINEAR = [
    pytest.param(linear(initial_learning_rate=0.1, end_learning_rate=0.001, transition_steps=1000),
                 [range(0, 1100), *FAR], id="decay"),
    pytest.param(linear(initial_learning_rate=0.0, end_learning_rate=1.0, transition_steps=3),
                 [range(0, 6)], id="short-warmup"),
    pytest.param(linear(initial_learning_rate=0.1, end_learning_rate=0.001, transition_steps=1000,
                        transition_begin=50),
                 [range(0, 1100), *FAR], id="begin-50"),
    pytest.param(linear(initial_learning_rate=0.1, end_learning_rate=0.001, transition_steps=0),
                 [range(0, 5), *FAR], id="zero-transition-is-constant-initial"),
    pytest.param(linear(initial_learning_rate=0.1, end_learning_rate=0.001, transition_steps=0,
                        transition_begin=10),
                 [range(0, 15)], id="zero-transition-with-begin"),
    pytest.param(linear(initial_learning_rate=0.0, end_learning_rate=0.1, transition_steps=10**6,
                        transition_begin=10**6),
                 [0, *around(10**6, 1_500_000, 2 * 10**6), 10**7],
                 id="million-begin-million-steps"),
    pytest.param(linear(initial_learning_rate=0.1, end_learning_rate=0.1, transition_steps=100),
                 [range(0, 110)], id="end-equals-initial"),
    pytest.param(linear(initial_learning_rate=0.1, end_learning_rate=0.0, transition_steps=1),
                 [range(0, 4), *FAR], id="one-step"),
    pytest.param(linear(initial_learning_rate=0.1, end_learning_rate=0.0, transition_steps=1,
                        transition_begin=1),
                 [range(0, 4)], id="one-step-after-one"),
    pytest.param(linear(initial_learning_rate=0.1, end_learning_rate=0.0, transition_steps=10**7),
                 [range(0, 10), SPAN, *around(10**7)], id="ten-million"),
    pytest.param(linear(initial_learning_rate=1e-6, end_learning_rate=1e-3, transition_steps=7,
                        transition_begin=3),
                 [range(0, 15)], id="odd-warmup"),
    pytest.param(linear(initial_learning_rate=0.3, end_learning_rate=0.0, transition_steps=9999),
                 [range(0, 10_100)], id="dense"),
    pytest.param(linear(initial_learning_rate=0.1, end_learning_rate=0.001, transition_steps=1000,
                        transition_begin=0),
                 [range(0, 1100, 7)], id="explicit-default-begin-every-7"),
    pytest.param(linear(initial_learning_rate=0.0, end_learning_rate=0.0, transition_steps=10),
                 [range(0, 12)], id="all-zero"),
    pytest.param(linear(initial_learning_rate=2.0, end_learning_rate=0.5, transition_steps=3,
                        transition_begin=10**7 - 1),
                 [0, *around(10**7 - 1, 10**7 + 2)], id="begin-near-ten-million"),
    pytest.param(linear(initial_learning_rate=0.1, end_learning_rate=0.2, transition_steps=100,
                        transition_begin=100),
                 [range(0, 250, 5), *around(100, 200)], id="ramp-every-5"),
    pytest.param(linear(initial_learning_rate=1.0, end_learning_rate=1e-4, transition_steps=3333),
                 [range(0, 4000, 3), *around(3333)], id="thirds"),
    pytest.param(linear(initial_learning_rate=0.05, end_learning_rate=0.0, transition_steps=2,
                        transition_begin=5),
                 [range(0, 10), 10**7], id="two-steps-after-five"),
    pytest.param(linear(initial_learning_rate=1e-3, end_learning_rate=1e-5,
                        transition_steps=123_456,
                        transition_begin=7),
                 [range(0, 10), range(0, 200_000, 1000), *around(7, 123_463)], id="odd-horizon"),
    pytest.param(linear(initial_learning_rate=0.0, end_learning_rate=3e-4, transition_steps=2000),
                 [range(0, 2100), *FAR], id="transformer-warmup"),
]

ONE_CYCLE = [
    pytest.param(one_cycle(max_lr=1.0, total_steps=10),
                 [range(0, 20), *FAR], id="verified-ten-steps-holds-after"),
    pytest.param(one_cycle(max_lr=0.1, total_steps=1000),
                 [range(0, 1010), *FAR], id="thousand-steps"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=10, anneal_strategy="linear"),
                 [range(0, 15)], id="linear-anneal"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=100, three_phase=True),
                 [range(0, 110)], id="three-phase"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=100, three_phase=True, anneal_strategy="linear"),
                 [range(0, 110), 10**7], id="three-phase-linear"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=10, pct_start=0.05),
                 [range(0, 12)], id="no-warmup-pct-below-one-step"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=1),
                 [range(0, 3), *FAR], id="single-step"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=10, pct_start=1.0),
                 [range(0, 12), 10**7], id="pct-start-one-all-warmup"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=100, pct_start=0.7, three_phase=True),
                 [range(0, 110)], id="three-phase-never-reaches-phase-3"),
    pytest.param(one_cycle(max_lr=0.5, total_steps=50, div_factor=1.0, final_div_factor=1.0),
                 [range(0, 55)], id="no-division"),
    pytest.param(one_cycle(max_lr=0.01, total_steps=10**7),
                 [range(0, 10), SPAN, *around(3 * 10**6, 10**7 - 1), 2 * 10**7], id="ten-million"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=8, pct_start=0.25),
                 [range(0, 12)], id="integer-phase-ends"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=8, pct_start=0.25, three_phase=True),
                 [range(0, 12)], id="integer-phase-ends-three-phase"),
    pytest.param(one_cycle(max_lr=0.1, total_steps=2),
                 [range(0, 5)], id="two-steps"),
    pytest.param(one_cycle(max_lr=0.1, total_steps=3, pct_start=0.5),
                 [range(0, 5)], id="three-steps"),
    pytest.param(one_cycle(max_lr=0.1, total_steps=7000, pct_start=0.4, div_factor=10.0,
                           final_div_factor=100.0),
                 [range(0, 7100)], id="dense-past-sequential-limit"),
    pytest.param(one_cycle(max_lr=2.0, total_steps=1000, pct_start=0.3, anneal_strategy="cos",
                           div_factor=25.0, final_div_factor=10000.0, three_phase=False),
                 [range(0, 1000, 7), *around(299, 999)], id="defaults-spelled-out"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=10, pct_start=0.05, three_phase=True),
                 [range(0, 12)], id="three-phase-negative-phase-ends"),
    pytest.param(one_cycle(max_lr=0.3, total_steps=123_457, pct_start=0.123),
                 [range(0, 200_000, 1009), *around(15_185, 123_456)], id="odd-total"),
    pytest.param(one_cycle(max_lr=1e-3, total_steps=5, pct_start=0.9, anneal_strategy="linear",
                           three_phase=True),
                 [range(0, 8)], id="five-steps-three-phase-linear"),
    pytest.param(one_cycle(max_lr=0.1, total_steps=10_000, pct_start=0.1),
                 [*around(999, 1000, 9999), 0, 10**7], id="sparse-around-peak"),
]

# one_cycle specs that PyTorch cannot construct (pct_start*total_steps == 1 divides by zero).
ONE_CYCLE_UNCONSTRUCTIBLE = [
    pytest.param(one_cycle(max_lr=1.0, total_steps=10, pct_start=0.1), id="ten-steps-pct-0.1"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=100, pct_start=0.01),
                 id="hundred-steps-pct-0.01"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=20, pct_start=0.05), id="twenty-steps-pct-0.05"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=1, pct_start=1.0), id="one-step-pct-1"),
    pytest.param(one_cycle(max_lr=1.0, total_steps=4, pct_start=0.25, three_phase=True),
                 id="three-phase-four-steps"),
]

CYCLIC = [
    pytest.param(cyclic(base_lr=0.1, max_lr=1.0, step_size_up=2, step_size_down=3),
                 [range(0, 30), *FAR], id="verified-up-2-down-3"),
    pytest.param(cyclic(base_lr=0.001, max_lr=0.006),
                 [range(0, 8001), *FAR], id="torch-defaults"),
    # triangular2 scales by 1/2**(cycle-1): PyTorch overflows (OverflowError) from cycle 1025 on,
    # so its far steps stop just before that (step_size_up=10: cycle 1024 ends at step 20479).
    pytest.param(cyclic(base_lr=0.001, max_lr=0.1, step_size_up=10, mode="triangular2"),
                 [range(0, 120), *around(10_000, 20_470)], id="triangular2"),
    pytest.param(cyclic(base_lr=0.001, max_lr=0.1, step_size_up=10, mode="exp_range", gamma=0.99),
                 [range(0, 120), *FAR], id="exp-range"),
    pytest.param(cyclic(base_lr=0.001, max_lr=0.1, step_size_up=10, step_size_down=None),
                 [range(0, 50)], id="explicit-null-down"),
    pytest.param(cyclic(base_lr=0.1, max_lr=1.0, step_size_up=1, step_size_down=1),
                 [range(0, 10), *FAR], id="one-up-one-down"),
    pytest.param(cyclic(base_lr=0.1, max_lr=0.1, step_size_up=5),
                 [range(0, 20)], id="base-equals-max"),
    pytest.param(cyclic(base_lr=1.0, max_lr=0.1, step_size_up=5),
                 [range(0, 20), 10**7], id="base-above-max"),
    pytest.param(cyclic(base_lr=0.0, max_lr=1.0, step_size_up=10**6),
                 [0, *around(10**6, 2 * 10**6, 10**7)], id="million-half-cycles"),
    pytest.param(cyclic(base_lr=0.01, max_lr=0.1, step_size_up=3, step_size_down=7),
                 [range(0, 50), *around(10**7 - 10, 10**7)], id="asymmetric"),
    pytest.param(cyclic(base_lr=0.01, max_lr=0.1, step_size_up=7, step_size_down=3,
                        mode="triangular2"),
                 [range(0, 100)], id="triangular2-asymmetric"),
    pytest.param(cyclic(base_lr=0.001, max_lr=0.1, step_size_up=100, mode="exp_range",
                        gamma=0.9999),
                 [range(0, 10_000, 3), *FAR], id="exp-range-long"),
    pytest.param(cyclic(base_lr=0.001, max_lr=0.006, step_size_up=2000, step_size_down=None,
                        mode="triangular", gamma=1.0),
                 [range(0, 8001, 13)], id="defaults-spelled-out"),
    pytest.param(cyclic(base_lr=0.01, max_lr=0.1, step_size_up=2500),
                 [range(4990, 5010), *around(2500, 7500, 10**7)], id="cycle-at-sequential-limit"),
    pytest.param(cyclic(base_lr=0.01, max_lr=0.1, step_size_up=1, step_size_down=10**6),
                 [range(0, 5), *around(10**6, 10**6 + 1)], id="instant-rise-slow-fall"),
    pytest.param(cyclic(base_lr=0.0, max_lr=1e-3, step_size_up=4, mode="triangular2"),
                 [range(0, 200), range(8000, 8192)], id="triangular2-to-underflow"),
    pytest.param(cyclic(base_lr=0.1, max_lr=0.2, step_size_up=3, mode="exp_range", gamma=1.0),
                 [range(0, 20)], id="exp-range-gamma-one"),
    pytest.param(cyclic(base_lr=1e-4, max_lr=1e-2, step_size_up=333, step_size_down=667),
                 [SPAN, range(0, 2000, 3)], id="span"),
    pytest.param(cyclic(base_lr=0.05, max_lr=0.5, step_size_up=6, mode="exp_range", gamma=0.5),
                 [range(0, 40), 10**7], id="exp-range-fast-collapse"),
    pytest.param(cyclic(base_lr=0.001, max_lr=0.01, step_size_up=50, step_size_down=25),
                 [*around(50, 75, 125, 150), range(0, 300, 25)], id="on-every-turn"),
]

INVERSE_SQRT = [
    pytest.param(inverse_sqrt(initial_learning_rate=1.0, warmup_steps=4),
                 [range(0, 20), *FAR], id="verified-warmup-4"),
    pytest.param(inverse_sqrt(initial_learning_rate=0.1),
                 [range(0, 100), 10**4, *FAR], id="default-no-warmup-timescale-10000"),
    pytest.param(inverse_sqrt(initial_learning_rate=0.1, warmup_steps=0),
                 [SPAN], id="explicit-zero-warmup-span"),
    pytest.param(inverse_sqrt(initial_learning_rate=1e-3, warmup_steps=1000),
                 [range(0, 2000), *FAR], id="warmup-1000-timescale-defaults-to-warmup"),
    pytest.param(inverse_sqrt(initial_learning_rate=1e-3, warmup_steps=1000, timescale=None),
                 [*around(1000), 0, 10**7], id="explicit-null-timescale"),
    pytest.param(inverse_sqrt(initial_learning_rate=1.0, warmup_steps=0, timescale=1),
                 [range(0, 100), *FAR], id="one-over-sqrt-step-plus-one"),
    pytest.param(inverse_sqrt(initial_learning_rate=1.0, warmup_steps=10, timescale=1),
                 [range(0, 30), *FAR], id="timescale-one-with-warmup"),
    pytest.param(inverse_sqrt(initial_learning_rate=0.5, warmup_steps=100, timescale=10_000),
                 [range(0, 300), *FAR], id="timescale-above-warmup"),
    pytest.param(inverse_sqrt(initial_learning_rate=0.5, warmup_steps=1, timescale=3),
                 [range(0, 10), *FAR], id="warmup-one"),
    pytest.param(inverse_sqrt(initial_learning_rate=0.2, warmup_steps=4000),
                 [range(0, 8000, 3), *around(4000)], id="transformer-4000"),
    pytest.param(inverse_sqrt(initial_learning_rate=0.2, warmup_steps=10**6),
                 [0, 1, *around(10**6), 10**7], id="million-warmup"),
    pytest.param(inverse_sqrt(initial_learning_rate=0.2, warmup_steps=10**7),
                 [0, *around(10**7), 2 * 10**7], id="ten-million-warmup"),
    pytest.param(inverse_sqrt(initial_learning_rate=0.0, warmup_steps=5),
                 [range(0, 10)], id="zero-rate"),
    pytest.param(inverse_sqrt(initial_learning_rate=3e-4, warmup_steps=7, timescale=13),
                 [range(0, 50)], id="odd-numbers"),
    pytest.param(inverse_sqrt(initial_learning_rate=1.0, warmup_steps=50, timescale=10),
                 [range(0, 100), *FAR], id="timescale-below-warmup"),
    pytest.param(inverse_sqrt(initial_learning_rate=1.0, warmup_steps=0, timescale=10**7),
                 [range(0, 10), *FAR], id="huge-timescale"),
    pytest.param(inverse_sqrt(initial_learning_rate=1e-2, warmup_steps=6000),
                 [range(0, 7000)], id="dense-past-sequential-limit"),
    pytest.param(inverse_sqrt(initial_learning_rate=1.0, warmup_steps=2, timescale=2),
                 [range(0, 10), 2**40], id="up-to-2**40"),
    pytest.param(inverse_sqrt(initial_learning_rate=0.01, warmup_steps=100, timescale=1000),
                 [range(0, 10**6, 4999)], id="every-4999"),
    pytest.param(inverse_sqrt(initial_learning_rate=5.0, warmup_steps=3),
                 [range(0, 8), 9999, 10_000, 10_001], id="warmup-3-default-timescale-is-warmup"),
]

WARMUP_STABLE_DECAY = [
    pytest.param(wsd(initial_learning_rate=1.0, warmup_steps=4, stable_steps=2, decay_steps=4,
                     min_lr_ratio=0.1),
                 [range(0, 15), *FAR], id="verified-w4-s2-d4"),
    *[
        pytest.param(
            wsd(initial_learning_rate=0.1, warmup_steps=10, stable_steps=5, decay_steps=20,
                min_lr_ratio=0.05, warmup_type=warmup_type, decay_type=decay_type),
            [range(0, 40), 10**7], id=f"warmup-{warmup_type}-decay-{decay_type}",
        )
        for warmup_type in ("linear", "cosine", "1-sqrt")
        for decay_type in ("linear", "cosine", "1-sqrt")
    ],
    pytest.param(wsd(initial_learning_rate=0.1, warmup_steps=10, stable_steps=5, decay_steps=20),
                 [range(0, 40), *FAR], id="defaults-to-zero"),
    pytest.param(wsd(initial_learning_rate=0.1, warmup_steps=10, stable_steps=5, decay_steps=20,
                     num_cycles=1.0),
                 [range(0, 40)], id="full-cosine-cycle"),
    pytest.param(wsd(initial_learning_rate=0.1, warmup_steps=10, stable_steps=5, decay_steps=20,
                     num_cycles=0.25, min_lr_ratio=0.2),
                 [range(0, 40)], id="quarter-cosine"),
    pytest.param(wsd(initial_learning_rate=0.1, warmup_steps=0, stable_steps=0, decay_steps=10),
                 [range(0, 15)], id="decay-only"),
    pytest.param(wsd(initial_learning_rate=0.1, warmup_steps=10, stable_steps=0, decay_steps=0,
                     min_lr_ratio=0.3),
                 [range(0, 15), 10**7], id="warmup-only"),
    pytest.param(wsd(initial_learning_rate=0.1, warmup_steps=0, stable_steps=10, decay_steps=0,
                     min_lr_ratio=0.5),
                 [range(0, 15), 10**7], id="stable-only"),
    pytest.param(wsd(initial_learning_rate=3e-4, warmup_steps=1000, stable_steps=10**6,
                     decay_steps=10**6, min_lr_ratio=0.1),
                 [range(0, 1010), *around(1000, 1_001_000, 1_501_000, 2_001_000), 10**7],
                 id="llm-scale-sparse"),
    pytest.param(wsd(initial_learning_rate=1.0, warmup_steps=1, stable_steps=1, decay_steps=1,
                     min_lr_ratio=0.25),
                 [range(0, 6)], id="one-step-phases"),
    pytest.param(wsd(initial_learning_rate=1e-3, warmup_steps=2000, stable_steps=3000,
                     decay_steps=2000, min_lr_ratio=0.0, warmup_type="linear",
                     decay_type="cosine", num_cycles=0.5),
                 [range(0, 7100, 3), *around(2000, 5000, 7000)], id="defaults-spelled-out"),
    pytest.param(wsd(initial_learning_rate=0.1, warmup_steps=3, stable_steps=10**7, decay_steps=7,
                     decay_type="1-sqrt"),
                 [range(0, 10), *around(10**7 + 3, 10**7 + 10)], id="ten-million-stable"),
    pytest.param(wsd(initial_learning_rate=2.0, warmup_steps=6000, stable_steps=10, decay_steps=10,
                     warmup_type="cosine", min_lr_ratio=0.01),
                 [range(0, 6030)], id="dense-past-sequential-limit"),
    pytest.param(wsd(initial_learning_rate=0.1, warmup_steps=10, stable_steps=5, decay_steps=20,
                     min_lr_ratio=1.0),
                 [range(0, 40)], id="min-ratio-one-is-constant"),
    pytest.param(wsd(initial_learning_rate=0.1, warmup_steps=100, stable_steps=100, decay_steps=100,
                     num_cycles=1.5, min_lr_ratio=0.1),
                 [range(0, 320)], id="one-and-a-half-cycles"),
]

_WARMUP = linear(initial_learning_rate=0.0, end_learning_rate=0.1, transition_steps=100)

SEQUENCE = [
    pytest.param(
        sequence(schedules=[_WARMUP, cosine(initial_learning_rate=0.1, decay_steps=1000)],
                 boundaries=[100]),
        [range(0, 1200), *FAR], id="warmup-then-cosine",
    ),
    pytest.param(
        sequence(schedules=[
            linear(initial_learning_rate=0.0, end_learning_rate=1.0, transition_steps=3),
            constant(learning_rate=0.5),
            linear(initial_learning_rate=1.0, end_learning_rate=0.0, transition_steps=4),
        ], boundaries=[3, 6]),
        [range(0, 15), 10**7], id="verified-three-pieces",
    ),
    pytest.param(
        sequence(schedules=[constant(learning_rate=1.0), constant(learning_rate=0.5)],
                 boundaries=[0]),
        [range(0, 3), 10**7], id="boundary-zero-skips-first",
    ),
    pytest.param(
        sequence(schedules=[constant(learning_rate=1.0), constant(learning_rate=0.5),
                            constant(learning_rate=0.25)], boundaries=[10, 20]),
        [range(0, 30)], id="boundary-starts-the-next-unlike-piecewise",
    ),
    pytest.param(
        sequence(schedules=[_WARMUP, exponential(initial_learning_rate=0.1, decay_steps=100,
                                                  decay_rate=0.5, staircase=True)],
                 boundaries=[100]),
        [range(0, 500), *FAR], id="warmup-then-staircase",
    ),
    pytest.param(
        sequence(schedules=[_WARMUP, restarting(initial_learning_rate=0.1, first_decay_steps=10)],
                 boundaries=[100]),
        [range(0, 500), *around(*[100 + r for r in restarts(10, 2.0)])], id="warmup-then-restarts",
    ),
    pytest.param(
        sequence(schedules=[_WARMUP, step_decay(initial_learning_rate=0.1, step_size=30,
                                                 gamma=0.5)],
                 boundaries=[100]),
        [range(0, 300), *FAR], id="warmup-then-step-decay",
    ),
    pytest.param(
        sequence(schedules=[_WARMUP, multistep(initial_learning_rate=0.1, milestones=[0, 50, 100])],
                 boundaries=[100]),
        [range(0, 300), 10**7], id="warmup-then-multistep-from-zero",
    ),
    pytest.param(
        sequence(schedules=[one_cycle(max_lr=0.1, total_steps=50), constant(learning_rate=1e-4)],
                 boundaries=[80]),
        [range(0, 100)], id="one-cycle-holds-then-constant",
    ),
    pytest.param(
        sequence(schedules=[cyclic(base_lr=0.01, max_lr=0.1, step_size_up=5),
                            inverse_sqrt(initial_learning_rate=0.1, warmup_steps=0, timescale=10)],
                 boundaries=[23]),
        [range(0, 60), *FAR], id="cyclic-then-inverse-sqrt",
    ),
    pytest.param(
        sequence(schedules=[wsd(initial_learning_rate=0.1, warmup_steps=5, stable_steps=5,
                                decay_steps=5),
                            polynomial(initial_learning_rate=0.01, decay_steps=10, cycle=True)],
                 boundaries=[12]),
        [range(0, 60), 10**7], id="wsd-cut-short-then-polynomial-cycle",
    ),
    pytest.param(
        sequence(schedules=[
            constant(learning_rate=0.1),
            sequence(schedules=[constant(learning_rate=0.2), _WARMUP], boundaries=[5]),
        ], boundaries=[10]),
        [range(0, 130), 10**7], id="nested-sequence",
    ),
    pytest.param(
        sequence(schedules=[_WARMUP, cosine(initial_learning_rate=0.1, decay_steps=10**7)],
                 boundaries=[10**6]),
        [range(0, 200), *around(10**6, 10**7, 11 * 10**6)], id="far-boundary",
    ),
    pytest.param(
        sequence(schedules=[piecewise(boundaries=[5], values=[0.1, 0.05]),
                            inverse_time(initial_learning_rate=0.05, decay_rate=0.1)],
                 boundaries=[10]),
        [range(0, 30), *FAR], id="piecewise-then-inverse-time",
    ),
    pytest.param(
        sequence(schedules=[constant(learning_rate=0.1), constant(learning_rate=0.01),
                            constant(learning_rate=0.001), constant(learning_rate=0.0001)],
                 boundaries=[1, 2, 3]),
        [range(0, 6)], id="one-step-segments",
    ),
    pytest.param(
        sequence(schedules=[_WARMUP, linear(initial_learning_rate=0.1, end_learning_rate=0.0,
                                             transition_steps=900)],
                 boundaries=[100]),
        [range(0, 1100, 3), *around(100, 1000)], id="warmup-then-linear-every-3",
    ),
    pytest.param(
        sequence(schedules=[constant(learning_rate=0.3),
                            expression("0.3 * 0.5 ** (step // 10)",
                                       lambda step: 0.3 * 0.5 ** (step // 10))],
                 boundaries=[7]),
        [range(0, 60), *FAR], id="constant-then-expression",
    ),
    pytest.param(
        sequence(schedules=[_WARMUP, expression("lr * 0.99", lambda epoch, lr: lr * 0.99,
                                                 initial_learning_rate=0.1, recursive=True)],
                 boundaries=[100]),
        [range(0, 400)], id="warmup-then-recursive-expression",
    ),
    pytest.param(
        sequence(schedules=[_WARMUP, cosine(initial_learning_rate=0.1, decay_steps=900, alpha=0.1),
                            constant(learning_rate=0.01)],
                 boundaries=[100, 1000]),
        [SPAN, *around(100, 1000)], id="warmup-cosine-floor-span",
    ),
    pytest.param(
        sequence(schedules=[
            sequence(schedules=[
                sequence(schedules=[constant(learning_rate=0.4), constant(learning_rate=0.3)],
                         boundaries=[2]),
                constant(learning_rate=0.2),
            ], boundaries=[4]),
            constant(learning_rate=0.1),
        ], boundaries=[6]),
        [range(0, 10)], id="three-levels-deep",
    ),
    pytest.param(
        sequence(schedules=[one_cycle(max_lr=0.1, total_steps=10**6),
                            wsd(initial_learning_rate=0.01, warmup_steps=0,
                                                       stable_steps=0, decay_steps=10**6)],
                 boundaries=[10**6]),
        [0, *around(300_000, 10**6 - 1, 10**6, 2 * 10**6), 10**7], id="one-cycle-then-wsd-sparse",
    ),
]


EXPRESSION = [
    pytest.param(
        expression("0.01 if epoch < 5 else 0.01 * exp(0.1 * (10 - epoch))",
                   lambda epoch: 0.01 if epoch < 5 else 0.01 * math.exp(0.1 * (10 - epoch))),
        [range(0, 40), *FAR], id="contract-example",
    ),
    pytest.param(
        expression("0.1 * 0.5 ** (step // 10)", lambda step: 0.1 * 0.5 ** (step // 10)),
        [range(0, 100), *FAR], id="step-decay-floor-division",
    ),
    pytest.param(
        expression("0.1 / sqrt(1 + step)", lambda step: 0.1 / math.sqrt(1 + step)),
        [range(0, 100), SPAN], id="inverse-sqrt-span",
    ),
    pytest.param(
        expression("0.05 * (1 + cos(pi * min(step, 100) / 100)) / 2",
                   lambda step: 0.05 * (1 + math.cos(math.pi * min(step, 100) / 100)) / 2),
        [range(0, 120), 10**7], id="cosine-with-pi-and-min",
    ),
    pytest.param(
        expression("max(1e-4, 0.1 - 0.001 * step)", lambda step: max(1e-4, 0.1 - 0.001 * step)),
        [range(0, 120), 10**7], id="linear-with-max",
    ),
    pytest.param(
        expression("0.1 * e ** (-step / 50)", lambda step: 0.1 * math.e ** (-step / 50)),
        [range(0, 200), *FAR], id="constant-e",
    ),
    pytest.param(
        expression("0.01 * (1 + (step - 7) % 5)", lambda step: 0.01 * (1 + (step - 7) % 5)),
        [range(0, 30), 10**7], id="python-modulo-of-negatives",
    ),
    pytest.param(
        expression("0.1 * 2 ** min((step - 20) // 8, 3)",
                   lambda step: 0.1 * 2 ** min((step - 20) // 8, 3)),
        [range(0, 60), 10**7], id="python-floor-division-of-negatives",
    ),
    pytest.param(
        expression("0.001 * log(step + 1) + 1e-4", lambda step: 0.001 * math.log(step + 1) + 1e-4),
        [range(0, 50), *FAR], id="log",
    ),
    pytest.param(
        expression("1e-3 * (log2(step + 2) + log10(step + 10))",
                   lambda step: 1e-3 * (math.log2(step + 2) + math.log10(step + 10))),
        [range(0, 50), *FAR], id="log2-and-log10",
    ),
    pytest.param(
        expression("0.01 * (1.5 + sin(step / 10) + 0.2 * tan(0.3 * cos(step)))",
                   lambda step: 0.01 * (1.5 + math.sin(step / 10)
                                        + 0.2 * math.tan(0.3 * math.cos(step)))),
        [range(0, 100), *FAR], id="trigonometry",
    ),
    pytest.param(
        expression("0.1 * 0.9 ** floor(step / 3) + 0.001 * ceil(step / 7)",
                   lambda step: 0.1 * 0.9 ** math.floor(step / 3) + 0.001 * math.ceil(step / 7)),
        [range(0, 50), 10**7], id="floor-and-ceil",
    ),
    pytest.param(
        expression("0.01 * abs(step - 50) / 50 + 0.001",
                   lambda step: 0.01 * abs(step - 50) / 50 + 0.001),
        [range(0, 110), 10**7], id="abs-triangle",
    ),
    pytest.param(
        expression("0.1 if 10 <= step < 20 else 0.01",
                   lambda step: 0.1 if 10 <= step < 20 else 0.01),
        [range(0, 30), 10**7], id="chained-comparison",
    ),
    pytest.param(
        expression("0.1 if step % 2 == 0 and step < 10 or step == 15 else 0.02",
                   lambda step: 0.1 if step % 2 == 0 and step < 10 or step == 15 else 0.02),
        [range(0, 20)], id="and-or-in-condition",
    ),
    pytest.param(
        expression("0.1 if not step > 5 else 0.05", lambda step: 0.1 if not step > 5 else 0.05),
        [range(0, 10)], id="not",
    ),
    pytest.param(
        expression("0.1 * 0.5 ** (step >= 10) * 0.5 ** (step >= 20)",
                   lambda step: 0.1 * 0.5 ** (step >= 10) * 0.5 ** (step >= 20)),
        [range(0, 30), *FAR], id="booleans-as-numbers",
    ),
    pytest.param(
        expression("0.1 * min(1.0, (step + 1) / 5)", lambda step: 0.1 * min(1.0, (step + 1) / 5)),
        [range(0, 10), 10**7], id="ramp-with-min",
    ),
    pytest.param(
        expression("lr * 0.9", lambda epoch, lr: lr * 0.9,
                   initial_learning_rate=0.1, recursive=True),
        [range(0, 300)], id="recursive-geometric",
    ),
    pytest.param(
        expression("lr if epoch < 10 else lr * exp(-0.1)",
                   lambda epoch, lr: lr if epoch < 10 else lr * math.exp(-0.1),
                   initial_learning_rate=0.01, recursive=True),
        [range(0, 100)], id="recursive-keras-docs-example",
    ),
    pytest.param(
        expression("lr * 0.5 if epoch % 10 == 0 and epoch > 0 else lr",
                   lambda epoch, lr: lr * 0.5 if epoch % 10 == 0 and epoch > 0 else lr,
                   initial_learning_rate=0.1, recursive=True),
        [range(0, 60), 2000], id="recursive-step-decay",
    ),
    pytest.param(
        expression("max(lr * 0.95, 1e-4)", lambda epoch, lr: max(lr * 0.95, 1e-4),
                   initial_learning_rate=0.1, recursive=True),
        [range(0, 200), 3000], id="recursive-with-floor",
    ),
    pytest.param(
        expression("lr + 0.001 if epoch < 10 else lr * 0.98",
                   lambda epoch, lr: lr + 0.001 if epoch < 10 else lr * 0.98,
                   initial_learning_rate=0.0, recursive=True),
        [range(0, 1000, 3), 4999], id="recursive-warmup-then-decay",
    ),
    pytest.param(
        expression("min(lr * 1.1, 0.5)", lambda epoch, lr: min(lr * 1.1, 0.5),
                   initial_learning_rate=1e-3, recursive=True),
        [range(0, 100)], id="recursive-growth-capped",
    ),
    pytest.param(
        expression("0.1 * 0.5 ** (step // 10)", lambda step: 0.1 * 0.5 ** (step // 10),
                   recursive=False),
        [range(0, 25)], id="explicit-not-recursive",
    ),
]
