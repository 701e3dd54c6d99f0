"""Property tests: no document makes spec validation fail other than with a ValidationError, and every spec it
accepts serves learning rates that are finite numbers >= 0, or InvalidInput (a 422) for a step, nothing else.

Documents are arbitrary JSON (nested dicts and lists of strings, booleans, numbers up to 10**400 and every
float) and valid specs of every schedule type with arbitrary mutations (values replaced or nudged, keys
removed or added, schedules wrapped in sequences). Runs are bounded: derandomized, a fixed number of
examples, a few seconds in all.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from pydantic import ValidationError

from lrserve.errors import InvalidInput
from lrserve.run_view import RunView, view_of
from lrserve.schedules import recursion
from lrserve.spec import Report, Revision, RunSpec
from lrserve.store import RunRecord, StoredRun

from fuzzing import JSON, mutated_specs

SETTINGS = settings(max_examples=300, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])
STEPS = np.arange(101, dtype=np.float64)
FAR_STEPS = np.array([10_000.0, 1_000_000.0, 2.0**40])


@pytest.fixture(autouse=True)
def bounded_cache() -> None:
    recursion.CACHE.clear()


def accepted(document: Any) -> RunSpec | None:
    """The validated spec, or None when it is refused; any other exception fails the test."""
    try:
        return RunSpec.model_validate(document)
    except ValidationError:
        return None


def served(view: RunView, steps: np.ndarray) -> None:
    """The lrs of `steps`: finite numbers >= 0, or InvalidInput."""
    try:
        values = view.lrs(steps)
    except InvalidInput:
        return
    assert np.isfinite(values).all() and (values >= 0).all(), values


def stored_and_loaded(spec: RunSpec) -> RunView:
    """The view the service builds for the run once stored: the canonical spec through JSON and back."""
    canonical = json.loads(json.dumps(spec.canonical(), allow_nan=False))
    view = view_of(StoredRun(RunRecord(run_id="r", spec_json=canonical, created_at="2026-01-01T00:00:00Z")))
    assert view.spec.canonical() == spec.canonical()
    return view


@SETTINGS
@given(JSON)
def test_any_json_document_is_a_spec_or_a_validation_error(document: Any) -> None:
    spec = accepted(document)
    if spec is not None:
        served(stored_and_loaded(spec), STEPS)


@SETTINGS
@given(mutated_specs())
def test_any_mutated_spec_is_a_validation_error_or_serves_finite_learning_rates(document: dict[str, Any]) -> None:
    spec = accepted(document)
    if spec is None:
        return
    view = stored_and_loaded(spec)

    served(view, STEPS)
    served(view, FAR_STEPS)
    try:
        _, after = view.accept(Report(step=3, metrics={"val_loss": 1.0}), "2026-01-01T00:00:00Z")
        _, after = after.accept(Report(step=4, metrics={"val_loss": "NaN"}), "2026-01-01T00:00:01Z")
    except InvalidInput:
        return
    served(after, STEPS)


@SETTINGS
@given(mutated_specs())
def test_any_mutated_schedule_as_a_revision_is_a_validation_error_or_serves_finite_learning_rates(
    document: dict[str, Any],
) -> None:
    try:
        revision = Revision.model_validate({"from_step": 50, "schedule": document.get("schedule")})
    except ValidationError:
        return
    base = stored_and_loaded(RunSpec.model_validate({"schedule": {"type": "constant", "learning_rate": 0.1}}))
    _, view = base.revised(revision, "2026-01-01T00:00:00Z")

    served(view, STEPS)
    served(view, FAR_STEPS)
