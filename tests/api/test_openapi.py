"""openapi.json at the repository root is exactly what the service serves."""

from __future__ import annotations

import json
from pathlib import Path

import httpx

OPENAPI = Path(__file__).resolve().parents[2] / "openapi.json"


def test_the_committed_openapi_json_is_what_the_service_serves(api: httpx.Client) -> None:
    assert OPENAPI.is_file(), f"{OPENAPI} is missing; regenerate it with `python -m lrserve openapi > openapi.json`"
    served = api.get("/openapi.json")

    assert served.status_code == 200
    assert json.loads(OPENAPI.read_text()) == served.json(), (
        "openapi.json is stale; regenerate it with `python -m lrserve openapi > openapi.json`"
    )


def test_the_schema_documents_every_endpoint_of_the_contract(api: httpx.Client) -> None:
    paths = api.get("/openapi.json").json()["paths"]

    expected = {
        "/healthz": {"get", "head"},
        "/readyz": {"get", "head"},
        "/metrics": {"get"},
        "/runs": {"get"},
        "/runs/{run_id}": {"put", "get", "delete"},
        "/runs/{run_id}/lr": {"get"},
        "/runs/{run_id}/lr/range": {"get"},
        "/runs/{run_id}/metrics": {"post", "get"},
        "/runs/{run_id}/rewind": {"post"},
        "/runs/{run_id}/revisions": {"post"},
    }
    methods = {"get", "head", "put", "post", "delete"}
    assert {path: set(paths.get(path, {})) & methods for path in expected} == expected
