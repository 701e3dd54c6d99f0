"""What the robustness tests feed the service: a valid example of every schedule type, numbers at the edges,
and hypothesis strategies of arbitrary JSON documents and of valid specs with arbitrary mutations."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

OPENAPI = json.loads((Path(__file__).parents[1] / "openapi.json").read_text())
SCHEMAS: dict[str, Any] = OPENAPI["components"]["schemas"]
SCHEDULE_TYPES: dict[str, str] = {
    kind: ref.rsplit("/", 1)[1]
    for kind, ref in SCHEMAS["RunSpec"]["properties"]["schedule"]["discriminator"]["mapping"].items()
}
FIELD_NAMES = sorted({name for schema in SCHEMAS.values() for name in schema.get("properties", {})})

EDGES: dict[str, Any] = {
    "10**400": 10**400, "-10**400": -(10**400), "2**63": 2**63, "2**64": 2**64, "2**53+1": 2**53 + 1,
    "1e308": 1e308, "5e-324": 5e-324, "0": 0, "-0.0": -0.0, "true": True, "false": False,
}
CONSTANT = {"type": "constant", "learning_rate": 0.1}
EXAMPLES: dict[str, dict[str, Any]] = {
    "constant": CONSTANT,
    "exponential_decay": {"type": "exponential_decay", "initial_learning_rate": 0.1, "decay_steps": 1000,
                          "decay_rate": 0.96, "staircase": True, "transition_begin": 5,
                          "end_learning_rate": 0.01},
    "inverse_time_decay": {"type": "inverse_time_decay", "initial_learning_rate": 0.1, "decay_steps": 1,
                           "decay_rate": 0.5},
    "polynomial_decay": {"type": "polynomial_decay", "initial_learning_rate": 0.1, "decay_steps": 10000,
                         "end_learning_rate": 0.001, "power": 2.0},
    "piecewise_constant": {"type": "piecewise_constant", "boundaries": [100, 200], "values": [0.1, 0.01, 0.001]},
    "cosine_decay": {"type": "cosine_decay", "initial_learning_rate": 0.0, "decay_steps": 1000, "alpha": 0.01,
                     "warmup_target": 0.1, "warmup_steps": 100, "exponent": 2.0},
    "cosine_decay_restarts": {"type": "cosine_decay_restarts", "initial_learning_rate": 0.1,
                              "first_decay_steps": 100, "t_mul": 2.0, "m_mul": 0.9, "alpha": 0.0},
    "step_decay": {"type": "step_decay", "initial_learning_rate": 0.1, "step_size": 30, "gamma": 0.1},
    "multistep_decay": {"type": "multistep_decay", "initial_learning_rate": 0.1, "milestones": [30, 80],
                        "gamma": 0.1},
    "linear": {"type": "linear", "initial_learning_rate": 0.0, "end_learning_rate": 0.1, "transition_steps": 500,
               "transition_begin": 10},
    "one_cycle": {"type": "one_cycle", "max_lr": 0.1, "total_steps": 1000, "pct_start": 0.3, "div_factor": 25.0,
                  "final_div_factor": 1e4, "base_momentum": 0.8, "max_momentum": 0.9},
    "cyclic": {"type": "cyclic", "base_lr": 0.001, "max_lr": 0.1, "step_size_up": 2000, "step_size_down": 1000,
               "mode": "exp_range", "gamma": 0.99},
    "inverse_sqrt": {"type": "inverse_sqrt", "initial_learning_rate": 0.001, "warmup_steps": 4000,
                     "timescale": 100},
    "warmup_stable_decay": {"type": "warmup_stable_decay", "initial_learning_rate": 0.001, "warmup_steps": 1000,
                            "stable_steps": 8000, "decay_steps": 1000, "min_lr_ratio": 0.1, "num_cycles": 0.5},
    "sequence": {"type": "sequence", "boundaries": [500], "schedules": [CONSTANT, CONSTANT]},
    "product": {"type": "product", "schedules": [CONSTANT, CONSTANT]},
    "expression": {"type": "expression", "expression": "lr * 0.99 if epoch % 3 else lr", "recursive": True,
                   "initial_learning_rate": 0.01},
}
PLATEAUS: dict[str, dict[str, Any]] = {
    "KerasPlateau": {"monitor": "val_loss", "factor": 0.5, "patience": 3, "cooldown": 1, "min_lr": 0.0,
                     "min_delta": 1e-4},
    "TorchPlateau": {"monitor": "val_loss", "factor": 0.5, "patience": 3, "cooldown": 1, "min_lr": 0.0,
                     "semantics": "torch", "threshold": 1e-4, "eps": 1e-8},
}

_WORDS = st.sampled_from([*SCHEDULE_TYPES, *FIELD_NAMES, "NaN", "Infinity", "-Infinity", "step", "lr",
                          "lr * 2", "step ** step", "1 or 2", "", "keras", "torch", "min", "max", "auto",
                          "epoch", "batch", "cos", "linear", "triangular2", "exp_range", "1-sqrt", "rel"])
NUMBERS = st.one_of(
    st.sampled_from(list(EDGES.values())),
    st.integers(),
    st.integers(-5, 5_000),
    st.floats(),
    st.floats(0, 2, exclude_min=False),
)
LEAVES = st.one_of(st.none(), st.booleans(), NUMBERS, st.text(max_size=12), _WORDS)
JSON = st.recursive(
    LEAVES,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(_WORDS | st.text(max_size=8), children,
                                                                      max_size=4),
    max_leaves=12,
)


def _paths(document: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    """Every place in a document: dict keys and list indices, at any depth."""
    found = [prefix] if prefix else []
    if isinstance(document, dict):
        for key, value in document.items():
            found += _paths(value, (*prefix, key))
    elif isinstance(document, list):
        for index, value in enumerate(document):
            found += _paths(value, (*prefix, index))
    return found


def _parent(document: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        document = document[part]
    return document


@st.composite
def mutated_specs(draw: st.DrawFn) -> dict[str, Any]:
    """A valid run spec of any schedule type (with or without a plateau, maybe in a sequence), then up to four
    mutations: a number set to one at the edges or nudged, a value replaced by any JSON, a key removed or
    added, a schedule wrapped in a sequence."""
    spec: dict[str, Any] = {"schedule": copy.deepcopy(EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))])}
    if draw(st.booleans()):
        spec["plateau"] = copy.deepcopy(PLATEAUS[draw(st.sampled_from(sorted(PLATEAUS)))])
    if draw(st.booleans()):
        spec["step_unit"] = draw(st.sampled_from(["epoch", "batch"]))
    for _ in range(draw(st.integers(1, 4))):
        paths = _paths(spec)
        if not paths:
            break
        path = draw(st.sampled_from(paths))
        numbers = [p for p in paths if isinstance(_parent(spec, p)[p[-1]], (int, float))]
        action = draw(st.sampled_from(["edge", "edge", "replace", "nudge", "remove", "add", "wrap"]))
        if action in ("edge", "nudge") and numbers:
            path = draw(st.sampled_from(numbers))
        parent, key = _parent(spec, path), path[-1]
        if action == "edge":
            parent[key] = draw(st.sampled_from(list(EDGES.values())))
        elif action == "replace":
            parent[key] = draw(JSON | NUMBERS)
        elif action == "nudge" and isinstance(parent[key], float):
            parent[key] *= draw(st.sampled_from([-1.0, 0.0, 0.5, 2.0, 1e10, 1e300, 1e-300]))
        elif action == "nudge" and isinstance(parent[key], int) and not isinstance(parent[key], bool):
            parent[key] = parent[key] * draw(st.sampled_from([-1, 0, 2, 10**10, 2**53, 10**300])) + draw(
                st.integers(-1, 1))
        elif action == "remove" and isinstance(parent, dict):
            del parent[key]
        elif action == "add" and isinstance(parent, dict):
            parent[draw(st.sampled_from(FIELD_NAMES))] = draw(JSON | NUMBERS)
        elif action == "wrap" and isinstance(spec.get("schedule"), dict):
            other = copy.deepcopy(EXAMPLES[draw(st.sampled_from(sorted(EXAMPLES)))])
            spec["schedule"] = {"type": "sequence", "boundaries": [draw(st.integers(0, 20))],
                                "schedules": [spec["schedule"], other]}
    return spec
