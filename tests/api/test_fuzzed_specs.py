"""Over HTTP, a bounded sample of the property of tests/core/test_spec_properties.py: any mutated spec, as a
`PUT /runs` body or as a revision's schedule, is accepted or refused with a 422, never a 5xx; an accepted
run serves learning rates that are finite numbers >= 0, or a 422 for that step."""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, given, settings

from support import in_memory_server

from fuzzing import CONSTANT, mutated_specs

SETTINGS = settings(max_examples=80, deadline=None, derandomize=True,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
READ_STEPS = (0, 1, 100, 1_000_000)
_ids = itertools.count()


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Iterator[httpx.Client]:
    with in_memory_server(tmp_path_factory.mktemp("fuzz"), "fuzz") as server, \
            httpx.Client(base_url=server.url, timeout=30.0) as client:
        base = client.put("/runs/base", json={"schedule": CONSTANT})
        assert base.status_code == 201
        assert client.post("/runs/base/metrics", json={"step": 100, "metrics": {"loss": 1.0}}).status_code == 200
        yield client


def put(client: httpx.Client, path: str, body: Any, method: str = "PUT") -> httpx.Response:
    return client.request(method, path, content=json.dumps(body), headers={"content-type": "application/json"})


@SETTINGS
@given(mutated_specs())
def test_a_mutated_spec_is_created_or_refused_with_a_422_and_an_accepted_one_is_served(
    client: httpx.Client, spec: dict[str, Any]
) -> None:
    run_id = f"fuzz-{next(_ids)}"

    created = put(client, f"/runs/{run_id}", spec)

    assert created.status_code in (201, 422), created.text
    if created.status_code == 422:
        assert isinstance(created.json()["detail"], str) and created.json()["detail"]
        return
    for step in READ_STEPS:
        response = client.get(f"/runs/{run_id}/lr", params={"step": step})
        assert response.status_code in (200, 422), response.text
        if response.status_code == 200:
            lr = response.json()["lr"]
            assert math.isfinite(lr) and lr >= 0, lr


@SETTINGS
@given(mutated_specs())
def test_a_mutated_schedule_as_a_revision_is_a_409_or_a_422(client: httpx.Client, spec: dict[str, Any]) -> None:
    """The base run has a report at step 100, so a valid revision from step 10 is refused as a conflict."""
    response = put(client, "/runs/base/revisions", {"from_step": 10, "schedule": spec.get("schedule")},
                   method="POST")

    assert response.status_code in (409, 422), response.text
