"""Invalid requests: each gets the right 4xx and a `detail` that names the field or the problem; never a 5xx.

Paths use placeholders: `{run}` is a prepared run (constant 0.1, a plateau on val_loss, a report at
step 5, a revision from step 20), `{rec}` a run with a recursive expression, `{new}` an id nobody
created. `detail` patterns are regular expressions searched case-insensitively; `{new}` in a
pattern stands for that id.
"""

from __future__ import annotations

import os
import re
import time
from dataclasses import dataclass
from typing import Any

import httpx
import pytest

from support import Server, accepted, create_run


@dataclass(frozen=True)
class Bad:
    method: str
    path: str
    status: int
    detail: tuple[str, ...]
    json: Any = None
    raw: bytes | None = None


CONSTANT = {"type": "constant", "learning_rate": 0.1}
EXPONENTIAL = {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 100, "decay_rate": 0.9}
RECURSIVE = {"type": "expression", "expression": "lr * 0.99", "recursive": True, "initial_learning_rate": 0.1}
PLATEAU = {"monitor": "val_loss", "factor": 0.5, "patience": 1}
NOT_FOUND = r"not found|unknown|no run|does not exist|doesn't exist"


def schedule(**fields: Any) -> dict[str, Any]:
    return {"schedule": fields}


def plateau(**fields: Any) -> dict[str, Any]:
    return {"schedule": CONSTANT, "plateau": fields}


def expression(text: str, **fields: Any) -> dict[str, Any]:
    return schedule(type="expression", expression=text, **fields)


def nested_sequence(depth: int) -> dict[str, Any]:
    inner: dict[str, Any] = CONSTANT
    for _ in range(depth):
        inner = {"type": "sequence", "schedules": [inner, CONSTANT], "boundaries": [5]}
    return inner


def put(json: Any, status: int, *detail: str, path: str = "/runs/{new}") -> Bad:
    return Bad("PUT", path, status, detail, json=json)


def cases() -> list[Any]:
    p = pytest.param
    return [
        # --- run specs: schedules ---
        p(put(schedule(type="foo", learning_rate=0.1), 422, "foo", "exponential_decay", "piecewise_constant"),
          id="schedule-unknown-type-lists-valid-types"),
        p(put(schedule(learning_rate=0.1), 422, r"\btype\b"), id="schedule-missing-type"),
        p(put({**schedule(**EXPONENTIAL, decay_step=10)}, 422, r"decay_step\b"), id="schedule-unknown-field"),
        p(put(schedule(type="exponential_decay", initial_learning_rate=0.1, decay_rate=0.9), 422, "decay_steps"),
          id="schedule-missing-required-field"),
        p(put(schedule(**{**EXPONENTIAL, "decay_steps": 0}), 422, "decay_steps"), id="decay-steps-zero"),
        p(put(schedule(**{**EXPONENTIAL, "decay_steps": -5}), 422, "decay_steps", "-5"), id="decay-steps-negative"),
        p(put(schedule(**{**EXPONENTIAL, "staircase": "sometimes"}), 422, "staircase"), id="staircase-not-bool"),
        p(put(schedule(type="constant", learning_rate=-0.1), 422, "learning_rate", r"-0\.1"), id="lr-negative"),
        p(put(schedule(type="constant", learning_rate="fast"), 422, "learning_rate"), id="lr-not-a-number"),
        p(put(schedule(type="constant"), 422, "learning_rate"), id="lr-missing"),
        p(put(schedule(type="piecewise_constant", boundaries=[20, 10], values=[1.0, 0.5, 0.1]), 422,
              "boundaries", "increasing"), id="boundaries-not-increasing"),
        p(put(schedule(type="piecewise_constant", boundaries=[10, 10], values=[1.0, 0.5, 0.1]), 422,
              "boundaries"), id="boundaries-repeated"),
        p(put(schedule(type="piecewise_constant", boundaries=[], values=[0.1]), 422, "boundaries"),
          id="boundaries-empty"),
        p(put(schedule(type="piecewise_constant", boundaries=[10], values=[1.0]), 422, "values"),
          id="values-one-too-few"),
        p(put(schedule(type="piecewise_constant", boundaries=[10], values=[1.0, 0.5, 0.1]), 422, "values"),
          id="values-one-too-many"),
        p(put(schedule(type="piecewise_constant", boundaries=[10.5], values=[1.0, 0.5]), 422, "boundaries"),
          id="boundaries-not-integers"),
        p(put(schedule(type="multistep_decay", initial_learning_rate=0.1, milestones=[5, 3]), 422, "milestones"),
          id="milestones-not-increasing"),
        p(put(schedule(type="step_decay", initial_learning_rate=0.1, step_size=0), 422, "step_size"),
          id="step-size-zero"),
        p(put(schedule(type="one_cycle", max_lr=1.0, total_steps=10, pct_start=0.1), 422, "pct_start"),
          id="one-cycle-pct-start-times-total-steps-is-1"),
        p(put(schedule(type="one_cycle", max_lr=1.0, total_steps=0), 422, "total_steps"),
          id="one-cycle-no-steps"),
        p(put(schedule(type="one_cycle", max_lr=1.0, total_steps=100, anneal_strategy="exp"), 422,
              "anneal_strategy"), id="one-cycle-unknown-anneal-strategy"),
        p(put(schedule(type="cyclic", base_lr=0.001, max_lr=0.01, step_size_up=0), 422, "step_size_up"),
          id="cyclic-step-size-up-zero"),
        p(put(schedule(type="cyclic", base_lr=0.001, max_lr=0.01, mode="zigzag"), 422, r"\bmode\b"),
          id="cyclic-unknown-mode"),
        p(put(schedule(type="cosine_decay_restarts", initial_learning_rate=0.1, first_decay_steps=10, t_mul=0.5),
              422, "t_mul"), id="cosine-restarts-t-mul-below-1"),
        p(put(schedule(type="linear", initial_learning_rate=0.1, end_learning_rate=0.0, transition_steps=-1), 422,
              "transition_steps"), id="linear-negative-transition-steps"),
        p(put(schedule(type="warmup_stable_decay", initial_learning_rate=0.1, warmup_steps=10, stable_steps=10,
                       decay_steps=10, decay_type="exp"), 422, "decay_type"), id="wsd-unknown-decay-type"),
        p(put(schedule(type="inverse_sqrt", initial_learning_rate=0.1, timescale=0), 422, "timescale"),
          id="inverse-sqrt-timescale-zero"),
        p(put(schedule(type="sequence", schedules=[CONSTANT, CONSTANT], boundaries=[5, 10]), 422, "boundaries"),
          id="sequence-boundaries-count"),
        p(put(schedule(type="sequence", schedules=[CONSTANT, {"type": "constant", "learnin_rate": 0.1}],
                       boundaries=[5]), 422, "learnin_rate"), id="sequence-inner-unknown-field"),
        p(put(schedule(type="sequence", schedules=[CONSTANT, CONSTANT, CONSTANT], boundaries=[10, 5]), 422,
              "boundaries"), id="sequence-boundaries-not-increasing"),
        p(put({"schedule": nested_sequence(10)}, 422, r"depth|deep|nest"), id="sequence-too-deep"),
        # --- run specs: expressions ---
        p(put(expression("__import__('os').getcwd()"), 422, "__import__"), id="expression-forbidden-name"),
        p(put(expression("step.real + 0.1"), 422, r"attribute|real"), id="expression-attribute-access"),
        p(put(expression("9**9**9**9"), 422, r"expression|inf|finite|large|costly"), id="expression-power-tower"),
        p(put(expression("+".join(["0.001"] * 200)), 422, "expression", r"1000|long|length"),
          id="expression-too-long"),
        p(put(expression("lr * 0.5", recursive=True), 422, "initial_learning_rate"),
          id="expression-recursive-without-initial-lr"),
        p(put(expression("lr * 0.5"), 422, r"\blr\b"), id="expression-lr-without-recursive"),
        p(put(expression("0.1 * foo_bar"), 422, "foo_bar"), id="expression-unknown-name"),
        p(put(expression("0.1 *"), 422, r"expression|syntax"), id="expression-syntax-error"),
        p(put(expression("(lambda: 0.1)()"), 422, r"lambda|expression"), id="expression-lambda"),
        p(put(expression("[0.1, 0.2][0]"), 422, r"expression|list|subscript"), id="expression-subscript"),
        p(put(expression("1 / step"), 422, r"finite|zero|division"), id="expression-divides-by-zero-at-step-0"),
        p(put(expression(""), 422, "expression"), id="expression-empty"),
        # --- run specs: plateau and the rest ---
        p(put(plateau(factor=0.5), 422, "monitor"), id="plateau-missing-monitor"),
        p(put(plateau(**PLATEAU, patiense=3), 422, "patiense"), id="plateau-unknown-field"),
        p(put(plateau(**PLATEAU, threshold=0.01), 422, "threshold"), id="plateau-threshold-with-keras"),
        p(put(plateau(**PLATEAU, semantics="keras", threshold_mode="abs"), 422, "threshold_mode"),
          id="plateau-threshold-mode-with-keras"),
        p(put(plateau(**PLATEAU, eps=1e-6), 422, "eps"), id="plateau-eps-with-keras"),
        p(put(plateau(**PLATEAU, semantics="torch", min_delta=0.01), 422, "min_delta"),
          id="plateau-min-delta-with-torch"),
        p(put(plateau(monitor="val_kappa"), 422, "kappa", r"\bmode\b"), id="plateau-auto-mode-unknown-metric"),
        p(put(plateau(monitor="val_loss", factor=1.0), 422, "factor"), id="plateau-factor-1"),
        p(put(plateau(monitor="val_loss", factor=1.5), 422, "factor"), id="plateau-factor-above-1"),
        p(put(plateau(monitor="val_loss", factor=0.0), 422, "factor"), id="plateau-factor-0"),
        p(put(plateau(monitor="val_loss", patience=-1), 422, "patience"), id="plateau-negative-patience"),
        p(put(plateau(monitor="val_loss", cooldown=-1), 422, "cooldown"), id="plateau-negative-cooldown"),
        p(put(plateau(monitor="val_loss", min_lr=-0.1), 422, "min_lr"), id="plateau-negative-min-lr"),
        p(put(plateau(monitor="val_loss", mode="sideways"), 422, r"\bmode\b"), id="plateau-unknown-mode"),
        p(put(plateau(monitor="val_loss", semantics="tf"), 422, "semantics"), id="plateau-unknown-semantics"),
        p(put({"schedule": CONSTANT, "step_unit": "iteration"}, 422, "step_unit"), id="unknown-step-unit"),
        p(put({"schedule": CONSTANT, "plateu": None}, 422, "plateu"), id="spec-unknown-top-level-field"),
        p(put({"step_unit": "epoch"}, 422, "schedule"), id="spec-missing-schedule"),
        p(put({"schedule": "constant"}, 422, "schedule"), id="spec-schedule-not-an-object"),
        p(put([CONSTANT], 422, r"object|dict"), id="spec-a-list"),
        p(Bad("PUT", "/runs/{new}", 422, ("json",), raw=b"{not json"), id="spec-not-json"),
        p(put({"schedule": CONSTANT}, 422, "run_id", path="/runs/bad*id"), id="run-id-bad-character"),
        p(put({"schedule": CONSTANT}, 422, "run_id", path="/runs/bad id"), id="run-id-space"),
        p(put({"schedule": CONSTANT}, 422, "run_id", path="/runs/h\u00e9llo"), id="run-id-not-ascii"),
        p(put({"schedule": CONSTANT}, 422, "run_id", path="/runs/" + "a" * 129), id="run-id-129-characters"),
        p(put({"schedule": {**CONSTANT, "learning_rate": 0.2}, "plateau": PLATEAU}, 409, r"spec|exist|differ",
              path="/runs/{run}"), id="put-a-different-spec"),
        # --- unknown runs ---
        p(Bad("GET", "/runs/{new}", 404, (NOT_FOUND, "{new}")), id="get-unknown-run"),
        p(Bad("DELETE", "/runs/{new}", 404, (NOT_FOUND,)), id="delete-unknown-run"),
        p(Bad("GET", "/runs/{new}/lr?step=0", 404, (NOT_FOUND,)), id="lr-unknown-run"),
        p(Bad("GET", "/runs/{new}/lr/range?start=0&stop=5", 404, (NOT_FOUND,)), id="range-unknown-run"),
        p(Bad("POST", "/runs/{new}/metrics", 404, (NOT_FOUND,), json={"step": 0, "metrics": {"val_loss": 1.0}}),
          id="report-unknown-run"),
        p(Bad("GET", "/runs/{new}/metrics", 404, (NOT_FOUND,)), id="reports-of-unknown-run"),
        p(Bad("POST", "/runs/{new}/rewind", 404, (NOT_FOUND,), json={"step": 0}), id="rewind-unknown-run"),
        p(Bad("POST", "/runs/{new}/revisions", 404, (NOT_FOUND,),
              json={"from_step": 10, "schedule": CONSTANT, "reason": "x"}), id="revise-unknown-run"),
        # --- lr and lr/range ---
        p(Bad("GET", "/runs/{run}/lr", 422, ("step",)), id="lr-missing-step"),
        p(Bad("GET", "/runs/{run}/lr?step=-1", 422, ("step",)), id="lr-negative-step"),
        p(Bad("GET", "/runs/{run}/lr?step=abc", 422, ("step",)), id="lr-step-not-an-int"),
        p(Bad("GET", "/runs/{run}/lr?step=1.5", 422, ("step",)), id="lr-step-fraction"),
        p(Bad("GET", f"/runs/{{run}}/lr?step={2**40 + 1}", 422, ("step",)), id="lr-step-beyond-2-to-the-40"),
        p(Bad("GET", "/runs/{rec}/lr?step=1000001", 422, ("step",)), id="lr-recursive-expression-past-1e6"),
        p(Bad("GET", "/runs/{run}/lr/range?start=-1&stop=5", 422, ("start",)), id="range-negative-start"),
        p(Bad("GET", "/runs/{run}/lr/range?start=0&stop=5&every=0", 422, ("every",)), id="range-every-0"),
        p(Bad("GET", "/runs/{run}/lr/range?start=0&stop=5&every=-1", 422, ("every",)), id="range-every-negative"),
        p(Bad("GET", "/runs/{run}/lr/range?start=0&stop=1000001", 422, (r"1[,_ ]?000[,_ ]?000",)),
          id="range-more-than-a-million-values"),
        p(Bad("GET", "/runs/{run}/lr/range?start=0&stop=2000002&every=2", 422, (r"1[,_ ]?000[,_ ]?000",)),
          id="range-more-than-a-million-values-with-every"),
        # --- reports ---
        p(Bad("POST", "/runs/{run}/metrics", 422, ("step",), json={"step": -1, "metrics": {"val_loss": 1.0}}),
          id="report-negative-step"),
        p(Bad("POST", "/runs/{run}/metrics", 422, ("step",), json={"step": 6.5, "metrics": {"val_loss": 1.0}}),
          id="report-step-fraction"),
        p(Bad("POST", "/runs/{run}/metrics", 422, ("step",), json={"step": "six", "metrics": {"val_loss": 1.0}}),
          id="report-step-not-a-number"),
        p(Bad("POST", "/runs/{run}/metrics", 422, ("step",), json={"step": 2**40 + 1, "metrics": {}}),
          id="report-step-beyond-2-to-the-40"),
        p(Bad("POST", "/runs/{run}/metrics", 422, ("step",), json={"metrics": {"val_loss": 1.0}}),
          id="report-missing-step"),
        p(Bad("POST", "/runs/{run}/metrics", 422, ("metrics",), json={"step": 6}), id="report-missing-metrics"),
        p(Bad("POST", "/runs/{run}/metrics", 422, ("metrics",), json={"step": 6, "metrics": [1.0]}),
          id="report-metrics-a-list"),
        p(Bad("POST", "/runs/{run}/metrics", 422, ("val_loss",), json={"step": 6, "metrics": {"val_loss": "high"}}),
          id="report-metric-a-word"),
        p(Bad("POST", "/runs/{run}/metrics", 422, ("val_loss",), json={"step": 6, "metrics": {"val_loss": None}}),
          id="report-metric-null"),
        p(Bad("POST", "/runs/{run}/metrics", 422, ("json",), raw=b"step=6&val_loss=1.0"), id="report-not-json"),
        p(Bad("POST", "/runs/{run}/metrics", 409, (r"\bstep\b",), json={"step": 3, "metrics": {"val_loss": 1.0}}),
          id="report-lower-new-step"),
        p(Bad("POST", "/runs/{run}/metrics", 409, (r"\bstep\b|metrics|differ",),
              json={"step": 5, "metrics": {"val_loss": 0.9}}), id="report-same-step-other-metrics"),
        # --- rewind ---
        p(Bad("POST", "/runs/{run}/rewind", 422, ("step",), json={}), id="rewind-missing-step"),
        p(Bad("POST", "/runs/{run}/rewind", 422, ("step",), json={"step": -2}), id="rewind-below-minus-one"),
        p(Bad("POST", "/runs/{run}/rewind", 422, ("step",), json={"step": "x"}), id="rewind-step-not-an-int"),
        p(Bad("POST", "/runs/{run}/rewind", 422, ("json",), raw=b"step: 3"), id="rewind-not-json"),
        # --- revisions ---
        p(Bad("POST", "/runs/{run}/revisions", 409, ("from_step",),
              json={"from_step": 5, "schedule": CONSTANT, "reason": "x"}), id="revise-at-the-latest-report"),
        p(Bad("POST", "/runs/{run}/revisions", 409, ("from_step",),
              json={"from_step": 2, "schedule": CONSTANT, "reason": "x"}), id="revise-before-the-latest-report"),
        p(Bad("POST", "/runs/{run}/revisions", 409, ("from_step",),
              json={"from_step": 10, "schedule": CONSTANT, "reason": "x"}), id="revise-below-an-earlier-revision"),
        p(Bad("POST", "/runs/{run}/revisions", 422, ("from_step",), json={"schedule": CONSTANT, "reason": "x"}),
          id="revise-missing-from-step"),
        p(Bad("POST", "/runs/{run}/revisions", 422, ("from_step",),
              json={"from_step": -1, "schedule": CONSTANT, "reason": "x"}), id="revise-negative-from-step"),
        p(Bad("POST", "/runs/{run}/revisions", 422, ("schedule",), json={"from_step": 30, "reason": "x"}),
          id="revise-missing-schedule"),
        p(Bad("POST", "/runs/{run}/revisions", 422, ("foo", "exponential_decay"),
              json={"from_step": 30, "schedule": {"type": "foo"}, "reason": "x"}), id="revise-unknown-type"),
        p(Bad("POST", "/runs/{run}/revisions", 422, (r"decay_step\b",),
              json={"from_step": 30, "schedule": {**EXPONENTIAL, "decay_step": 3}, "reason": "x"}),
          id="revise-unknown-field"),
        # --- listing ---
        p(Bad("GET", "/runs?limit=0", 422, ("limit",)), id="list-limit-0"),
        p(Bad("GET", "/runs?limit=1001", 422, ("limit",)), id="list-limit-1001"),
        p(Bad("GET", "/runs?limit=many", 422, ("limit",)), id="list-limit-not-an-int"),
        p(Bad("GET", "/runs?cursor=%21%21not-a-cursor%21%21", 422, ("cursor",)), id="list-garbage-cursor"),
    ]


CASES = cases()


@dataclass(frozen=True)
class Ids:
    run: str
    rec: str
    new: str

    def fill(self, text: str, escape: bool = False) -> str:
        sub = re.escape if escape else (lambda s: s)
        return text.replace("{run}", sub(self.run)).replace("{rec}", sub(self.rec)).replace("{new}", sub(self.new))


def prepare(api: httpx.Client, prefix: str) -> tuple[str, str]:
    """A run with a report at step 5 and a revision from step 20, and a recursive-expression run."""
    run, rec = f"{prefix}-run", f"{prefix}-rec"
    create_run(api, run, {"schedule": CONSTANT, "plateau": PLATEAU})
    accepted(api, run, 5, {"val_loss": 1.0})
    response = api.post(f"/runs/{run}/revisions", json={"from_step": 20, "schedule": CONSTANT, "reason": "r"})
    assert response.status_code == 201, response.text
    create_run(api, rec, {"schedule": RECURSIVE})
    return run, rec


@pytest.fixture(scope="module")
def shared_runs(server: Server) -> tuple[str, str]:
    """Prepared once: the table's requests are all invalid, so they must leave these runs alone
    (test_an_invalid_request_changes_nothing checks that on runs of its own)."""
    with httpx.Client(base_url=server.url, timeout=30.0) as client:
        return prepare(client, f"invalid-table-{os.getpid()}")


@pytest.fixture
def ids(shared_runs: tuple[str, str], run_id: str) -> Ids:
    return Ids(*shared_runs, new=run_id)


@pytest.fixture
def own_ids(api: httpx.Client, run_id: str) -> Ids:
    return Ids(*prepare(api, run_id), new=f"{run_id}-new")


def send(api: httpx.Client, bad: Bad, ids: Ids) -> httpx.Response:
    if bad.raw is not None:
        return api.request(bad.method, ids.fill(bad.path), content=bad.raw,
                           headers={"Content-Type": "application/json"})
    return api.request(bad.method, ids.fill(bad.path), json=bad.json)


def test_the_table_is_big_enough() -> None:
    assert len(CASES) >= 40


@pytest.mark.parametrize("bad", CASES)
def test_an_invalid_request_gets_its_status_and_a_detail_naming_the_problem(
    api: httpx.Client, ids: Ids, bad: Bad
) -> None:
    response = send(api, bad, ids)

    assert response.status_code == bad.status, response.text
    detail = response.json()["detail"]
    assert isinstance(detail, str)
    for pattern in bad.detail:
        assert re.search(ids.fill(pattern, escape=True), detail, re.IGNORECASE), f"{pattern!r} not in {detail!r}"


def test_no_invalid_request_ever_gets_a_5xx(api: httpx.Client, own_ids: Ids) -> None:
    statuses = {param.id: send(api, param.values[0], own_ids).status_code for param in CASES}

    assert {case: status for case, status in statuses.items() if status >= 500} == {}


def test_an_invalid_request_changes_nothing(api: httpx.Client, own_ids: Ids) -> None:
    before = api.get(f"/runs/{own_ids.run}").json(), api.get(f"/runs/{own_ids.run}/metrics").json()

    for param in CASES:
        send(api, param.values[0], own_ids)

    assert (api.get(f"/runs/{own_ids.run}").json(), api.get(f"/runs/{own_ids.run}/metrics").json()) == before
    assert api.get(f"/runs/{own_ids.new}").status_code == 404


@pytest.mark.parametrize(
    "text",
    ["9**9**9**9", "2**2**2**2**2**2", "(step + 9) ** 9 ** 9 ** 9", "max(10 ** 10 ** 10, 1) * 0 + 0.1"],
)
def test_a_costly_expression_is_rejected_quickly(api: httpx.Client, run_id: str, text: str) -> None:
    started = time.perf_counter()
    response = api.put(f"/runs/{run_id}", json=expression(text))
    elapsed = time.perf_counter() - started

    assert response.status_code == 422, response.text
    assert elapsed < 0.5
