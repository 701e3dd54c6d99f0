"""Schemathesis against a real `lrserve serve`: requests generated from openapi.json, valid ones and invalid
ones, for every operation, on runs that exist (a plateau run with reports, a recursive expression, a
sequence) and on ids nobody created; none of them may get a 5xx (schemathesis' `not_a_server_error`).

Two of schemathesis' phases: its coverage cases (deterministic: each parameter's boundaries, missing and
wrongly typed values) and fuzzing (derandomized, a fixed number of examples per operation and mode). Two
bounds keep the file to a few minutes on a slow machine, neither leaving a kind of request unsent:

- a request that waits for a report (`wait_for_step`) waits `SHORT_WAIT` at most, not the generated `wait`
  (up to 10 s, 5 s if absent): the waiting itself is tested in tests/store and tests/client; here only the
  status of the answer counts;
- the bodies of `POST /preview`, `PUT /runs/{run_id}` and `POST /runs/{run_id}/revisions` hold a `schedule`
  of the same schemas, whose invalid variants make nearly all of the coverage phase's cases (8,479 for each
  operation, all but one the same for the three): each variant the three have in common is sent to one of
  them, chosen by a checksum of its text, so every one is sent once; each operation is sent all its valid
  cases, the variants only it has, and every other invalid case (path, plateau, `from_step`, ...).
"""

from __future__ import annotations

import json
import zlib

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup

from support import Server, in_memory_server

SCHEMA = schemathesis.openapi.from_path(Path(__file__).parents[2] / "openapi.json")
OPERATIONS = {f"{op.method.upper()} {op.path}": op for op in (r.ok() for r in SCHEMA.get_all_operations())}
EXAMPLES = {GenerationMode.POSITIVE: 100, GenerationMode.NEGATIVE: 50}
DOCUMENT = json.loads((Path(__file__).parents[2] / "openapi.json").read_text())
WITHOUT_INPUT = {f"{method.upper()} {path}" for path, operations in DOCUMENT["paths"].items()
                 for method, operation in operations.items()
                 if not operation.get("parameters") and "requestBody" not in operation}
"""Operations that take no parameter and no body: no request to them can be invalid."""
WAIT = next(p for p in DOCUMENT["paths"]["/runs/{run_id}"]["get"]["parameters"] if p["name"] == "wait")["schema"]
"""The schema of `GET /runs/{run_id}`'s `wait`: the seconds a read waiting for a report (`wait_for_step`) waits."""
SHORT_WAIT = 0.05
"""Seconds a generated request with `wait_for_step` waits for the report at most."""
SCHEDULE_SHARED = ("POST /preview", "PUT /runs/{run_id}", "POST /runs/{run_id}/revisions")
"""The operations whose body holds a `schedule` of the same schemas; its invalid variants are dealt out among them."""
RUNS = [pytest.param(name, mode, id=f"{name}-{mode.value}") for name in sorted(OPERATIONS)
        for mode in EXAMPLES if not (mode is GenerationMode.NEGATIVE and name in WITHOUT_INPUT)]
EXISTING: dict[str, dict[str, Any]] = {
    "plateau": {"schedule": {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 10,
                             "decay_rate": 0.5},
                "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1}},
    "recursive": {"schedule": {"type": "expression", "expression": "lr * 0.999 if epoch % 2 else lr",
                               "recursive": True, "initial_learning_rate": 0.1}},
    "sequence": {"schedule": {"type": "sequence", "boundaries": [5], "schedules": [
        {"type": "linear", "initial_learning_rate": 0.0, "end_learning_rate": 0.1, "transition_steps": 5},
        {"type": "cosine_decay", "initial_learning_rate": 0.1, "decay_steps": 100}]}},
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with in_memory_server(tmp_path_factory.mktemp("schemathesis"), "schemathesis") as server:
        yield server


@pytest.fixture
def service(server: Server) -> Server:
    """The service with the existing runs in place (again: a generated DELETE or rewind may have hit them)."""
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        for run_id, spec in EXISTING.items():
            assert client.put(f"/runs/{run_id}", json=spec).status_code in (200, 201)
        for step, loss in enumerate([1.0, 0.9, 0.95, 0.97]):
            client.post("/runs/plateau/metrics", json={"step": step, "metrics": {"val_loss": loss}})
    return server


def with_a_short_wait(case: Any) -> Any:
    """The case, waiting `SHORT_WAIT` at most if it waits for a report with a valid, longer `wait` (or none: 5 s).

    An invalid `wait` (a string, > 10, <= 0) is left as generated: it must still get its 422.
    """
    query = case.query or {}
    wait = query.get("wait", WAIT["default"])
    if "wait_for_step" not in query or isinstance(wait, bool):
        return case
    try:
        seconds = float(wait)  # a number, or in the coverage phase the text of one
    except (TypeError, ValueError):
        return case
    if SHORT_WAIT < seconds <= WAIT["maximum"]:
        query["wait"] = str(SHORT_WAIT) if isinstance(wait, str) else SHORT_WAIT
    return case


def varies_the_schedule(case: Any) -> bool:
    """Whether the case is one of the coverage phase's invalid variants of the body's `schedule`."""
    location = getattr(case.meta.phase.data, "location", None)
    return (case.meta.generation.mode is GenerationMode.NEGATIVE
            and (location or "").startswith("/properties/schedule/")
            and isinstance(case.body, dict) and "schedule" in case.body)


def schedule_text(case: Any) -> str:
    """The case's `schedule`, as one text whatever the order of its keys."""
    return json.dumps(case.body["schedule"], sort_keys=True, default=repr)


def dealt_to(schedule: str) -> str:
    """The operation of `SCHEDULE_SHARED` that sends this invalid variant of the schedule (by a checksum of it)."""
    return SCHEDULE_SHARED[zlib.crc32(schedule.encode()) % len(SCHEDULE_SHARED)]


def cases(operation: Any, mode: GenerationMode) -> st.SearchStrategy[Any]:
    """Generated requests; those with a run id address one of the existing runs half of the time."""
    generated = operation.as_strategy(mode)
    if "{run_id}" not in operation.path:
        return generated
    existing = [operation.as_strategy(mode, path_parameters={"run_id": run_id}) for run_id in EXISTING]
    return st.one_of(generated, *existing)


def coverage_cases(name: str) -> Iterator[Any]:
    """The coverage phase's cases of an operation, valid and invalid, in schemathesis' (fixed) order."""
    operation = OPERATIONS[name]
    return SCHEMA.iter_coverage_cases(operation, generation_modes=list(GenerationMode),
                                      generation_config=SCHEMA.config.generation_for(operation=operation))


def server_errors(service: Server, numbered: Iterable[tuple[int, Any]]) -> list[str]:
    """Send each (number, case); the cases answered with a 5xx, with a curl command to repeat each. Every odd-
    numbered case with a run id addresses one of the existing runs instead."""
    session = requests.Session()
    failures = []
    for number, case in numbered:
        if "run_id" in (case.path_parameters or {}) and number % 2:
            case.path_parameters["run_id"] = list(EXISTING)[number % len(EXISTING)]
        response = with_a_short_wait(case).call(base_url=service.url, session=session, timeout=30)
        try:
            case.validate_response(response, checks=[not_a_server_error])
        except FailureGroup as error:
            failures.append(f"{error}\n{case.as_curl_command()}")
    return failures


@pytest.mark.parametrize("name", sorted(set(OPERATIONS) - set(SCHEDULE_SHARED)))
def test_no_coverage_case_gets_a_server_error(service: Server, name: str) -> None:
    numbered = list(enumerate(coverage_cases(name), 1))
    failures = server_errors(service, numbered)
    assert numbered
    assert failures == [], "\n\n".join(failures[:5])


def test_no_coverage_case_of_the_operations_taking_a_schedule_gets_a_server_error(service: Server) -> None:
    """Each sends its own cases, the invalid variants of the schedule that only it generates (`null` is a valid
    revision's schedule, `{}` an invalid one), and its share of those all three generate: each of those once."""
    generated = {name: list(enumerate(coverage_cases(name), 1)) for name in SCHEDULE_SHARED}
    variants = {name: {schedule_text(case) for _, case in numbered if varies_the_schedule(case)}
                for name, numbered in generated.items()}
    common = set.intersection(*variants.values())

    def sent_by(name: str, case: Any) -> bool:
        if not varies_the_schedule(case) or schedule_text(case) not in common:
            return True
        return dealt_to(schedule_text(case)) == name

    failures = [failure for name, numbered in generated.items()
                for failure in server_errors(service, [(n, case) for n, case in numbered if sent_by(name, case)])]
    assert all(numbered for numbered in generated.values())
    assert len(common) > 0.99 * max(map(len, variants.values())) > 1000, "nearly every variant is common to all three"
    assert failures == [], "\n\n".join(failures[:5])


def test_every_operation_of_the_api_is_tested() -> None:
    documented = {f"{method.upper()} {path}" for path, operations in DOCUMENT["paths"].items() for method in operations}
    assert set(OPERATIONS) == documented and len(OPERATIONS) >= 15


def test_the_short_wait_is_a_valid_wait_shorter_than_the_default() -> None:
    assert WAIT["exclusiveMinimum"] < SHORT_WAIT < WAIT["default"] <= WAIT["maximum"]


def test_the_operations_that_share_out_the_schedule_variants_take_the_same_schedule_schemas() -> None:
    def body(name: str) -> str:
        method, path = name.split(" ")
        return DOCUMENT["paths"][path][method.lower()]["requestBody"]["content"]["application/json"]["schema"]["$ref"]

    schemas = DOCUMENT["components"]["schemas"]
    whole = schemas["RunSpec"]["properties"]["schedule"]
    revision = schemas["Revision"]["properties"]["schedule"]["anyOf"][0]
    assert [body(name) for name in SCHEDULE_SHARED] == [
        "#/components/schemas/RunSpec", "#/components/schemas/RunSpec", "#/components/schemas/Revision"]
    assert (revision["oneOf"], revision["discriminator"]) == (whole["oneOf"], whole["discriminator"])


@pytest.mark.parametrize(("name", "mode"), RUNS)
def test_no_generated_request_gets_a_server_error(service: Server, name: str, mode: GenerationMode) -> None:
    operation = OPERATIONS[name]
    session = requests.Session()

    @settings(max_examples=EXAMPLES[mode], deadline=None, derandomize=True, database=None,
              phases=[Phase.explicit, Phase.generate], suppress_health_check=list(HealthCheck))
    @given(case=cases(operation, mode))
    def check(case: Any) -> None:
        response = with_a_short_wait(case).call(base_url=service.url, session=session, timeout=30)
        case.validate_response(response, checks=[not_a_server_error])

    check()
