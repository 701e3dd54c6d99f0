"""Draw a learning-rate curve to a PNG, SVG or PDF file with matplotlib (the optional `plot` extra).

Pure in what it draws: a `Curve` holds everything, gathered by the caller from a run or a spec file.
Uses matplotlib's object API (no pyplot), so it needs no display and keeps no global state.
"""

from __future__ import annotations

import bisect
import importlib.util
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

DPI = 100
DEFAULT_SIZE = (1000, 600)
FORMATS = {".png": "png", ".svg": "svg", ".pdf": "pdf"}


class PlotUnavailable(Exception):
    """matplotlib is not installed."""


@dataclass(frozen=True)
class Metric:
    """A reported metric: its value measured at the end of each step."""

    name: str
    steps: Sequence[int]
    values: Sequence[float]


@dataclass(frozen=True)
class Curve:
    """What one plot shows: the lr of `steps` (each holds until the next), the first steps with a reduced
    lr (a report at step N reduces from N+1 on), the steps where a revision starts, and maybe a metric."""

    title: str
    steps: Sequence[int]
    lrs: Sequence[float]
    step_unit: str = "step"
    reduced_from: Sequence[int] = ()
    revisions: Sequence[int] = ()
    metric: Metric | None = None


def format_of(path: Path) -> str | None:
    """The file format named by the path's extension, or None if it names none we write."""
    return FORMATS.get(path.suffix.lower())


def ensure_matplotlib() -> None:
    if importlib.util.find_spec("matplotlib") is None:
        raise PlotUnavailable("needs matplotlib, which is not installed here; install it with: "
                              "pip install 'lrserve[plot]'")


def draw(curve: Curve, path: Path, size: tuple[int, int] = DEFAULT_SIZE, log: bool = False) -> None:
    """Write the curve to `path` (format from its extension), exactly `size` pixels at 100 dpi."""
    ensure_matplotlib()
    from matplotlib.figure import Figure

    fmt = format_of(path)
    if fmt is None:
        raise ValueError(f"cannot write {path.suffix or 'a file without extension'}: use one of "
                         f"{', '.join(FORMATS)}")
    width, height = size
    figure = Figure(figsize=(width / DPI, height / DPI), dpi=DPI, layout="constrained")
    axes = figure.add_subplot()
    # Each lr holds for its whole step: draw the last one's step too.
    gap = curve.steps[-1] - curve.steps[-2] if len(curve.steps) > 1 else 1
    axes.step([*curve.steps, curve.steps[-1] + gap], [*curve.lrs, curve.lrs[-1]], where="post",
              color="tab:blue", label="learning rate")
    if curve.reduced_from:
        axes.scatter(curve.reduced_from, [_lr_at(curve, step) for step in curve.reduced_from], marker="v",
                     color="tab:red", zorder=3, label="plateau reduction")
    for index, step in enumerate(curve.revisions):
        axes.axvline(step, color="tab:gray", linestyle="--", label="revision" if index == 0 else None)
    if log:
        axes.set_yscale("log")
    axes.set_xlabel(curve.step_unit)
    axes.set_ylabel("learning rate")
    axes.set_title(curve.title)
    axes.grid(True, alpha=0.3)
    handles, labels = axes.get_legend_handles_labels()
    if curve.metric is not None:
        finite = [(s, v) for s, v in zip(curve.metric.steps, curve.metric.values) if math.isfinite(v)]
        twin = axes.twinx()
        twin.plot([s for s, _ in finite], [v for _, v in finite], color="tab:orange", marker=".",
                  label=curve.metric.name)
        twin.set_ylabel(curve.metric.name)
        more_handles, more_labels = twin.get_legend_handles_labels()
        handles, labels = handles + more_handles, labels + more_labels
    axes.legend(handles, labels, loc="best")
    figure.savefig(path, format=fmt, dpi=DPI)


def _lr_at(curve: Curve, step: int) -> float:
    """The lr drawn at `step`: that of the last plotted step at or before it."""
    return curve.lrs[max(bisect.bisect_right(curve.steps, step) - 1, 0)]
