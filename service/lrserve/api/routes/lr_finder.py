"""`/runs/{id}/lr-finder`: the learning-rate range test (PyTorch Lightning's `lr_find` rule, see
`lrserve.lr_finder`) over the run's reports of one metric."""

from __future__ import annotations

import math
from typing import Annotated

import numpy as np
from fastapi import APIRouter, Query, Response

from lrserve.api import answers
from lrserve.api.deps import RunId, RunsDep
from lrserve.api.schemas import ErrorOut, LrFinderOut
from lrserve.errors import InvalidInput
from lrserve.lr_finder import BETA, EARLY_STOP_THRESHOLD, SKIP_BEGIN, SKIP_END, range_test
from lrserve.spec import MAX_METRIC_NAME, MAX_STEP, metric_value

router = APIRouter(tags=["history"], responses={404: {"model": ErrorOut}, 422: {"model": ErrorOut}})

NO_EARLY_STOP = ("null", "none")


@router.get("/runs/{run_id}/lr-finder", response_model=LrFinderOut)
def lr_finder(
    run_id: RunId,
    runs: RunsDep,
    monitor: Annotated[str, Query(min_length=1, max_length=MAX_METRIC_NAME, description=(
        "the metric holding each batch's loss; reports without it are left out"))] = "loss",
    skip_begin: Annotated[int, Query(ge=0, le=MAX_STEP, description=(
        "points left out at the start when looking for the steepest descent"))] = SKIP_BEGIN,
    skip_end: Annotated[int, Query(ge=0, le=MAX_STEP, description=(
        "points left out at the end; Lightning's window [skip_begin:-skip_end] is empty for 0, so 0 always "
        "answers a null suggestion"))] = SKIP_END,
    beta: Annotated[float, Query(ge=0, lt=1, allow_inf_nan=False, description=(
        "smoothing: the weight of the running average (0 = no smoothing)"))] = BETA,
    early_stop_threshold: Annotated[str, Query(description=(
        "stop at the first point whose smoothed loss exceeds this many times the best one so far: a finite "
        "number > 1, or null to never stop early"), examples=["4.0", "null"])] = str(EARLY_STOP_THRESHOLD),
) -> Response:
    """The range test over the run's reports of `monitor`, one per batch of an lr ramp: each point's lr is
    the lr its step trained with, its smoothed loss is Lightning's bias-corrected running average, the points
    end where the smoothed loss diverged, and `suggestion` is the lr at the steepest descent.

    Runs in the thread pool (a plain `def`): a run may hold hundreds of thousands of reports.
    """
    threshold = _threshold(early_stop_threshold)
    view = runs.view(run_id)
    steps: list[int] = []
    losses: list[float] = []
    for report in view.reports:
        value = metric_value(report.metrics.get(monitor))
        if value is not None:
            steps.append(report.step)
            losses.append(value)
    lrs = view.lrs(np.array(steps, dtype=np.float64)).tolist() if steps else []
    test = range_test(steps, lrs, losses, beta=beta, early_stop_threshold=threshold, skip_begin=skip_begin,
                      skip_end=skip_end)
    return answers.json_response(answers.lr_finder(run_id, monitor, test), view.record.version)


def _threshold(text: str) -> float | None:
    """The query's early_stop_threshold: a finite number > 1, or None for "null" (never stop early)."""
    if text.strip().lower() in NO_EARLY_STOP:
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and value > 1):
        shown = repr(text[:40]) + ("..." if len(text) > 40 else "")
        raise InvalidInput(
            "early_stop_threshold: must be a finite number > 1 (the sweep stops once the smoothed loss exceeds "
            f"that many times its best, as in Lightning's lr_find), or null to never stop early; received {shown}"
        )
    return value
