"""Validation errors in the user's words: where (the field as the user wrote it), what was wrong, what
is allowed, and, for a typo, the nearest known name.

pydantic reports a tagged union's branch in the error location (`plateau.keras.patiance`,
`schedule.constant.learnin_rate`); the user never wrote `keras` or `constant` there, so those parts are
dropped, and the branch's model supplies the list of fields a "did you mean" is chosen from.
"""

from __future__ import annotations

import difflib
import functools
import typing
from typing import Any

from pydantic import BaseModel

EXAMPLES = {
    "RunSpec": '{"schedule": {"type": "constant", "learning_rate": 0.001}}',
    "Report": '{"step": 0, "metrics": {"val_loss": 0.5}}',
    "Rewind": '{"step": 0}',
    "Revision": '{"from_step": 100, "schedule": {"type": "constant", "learning_rate": 0.0001}}',
}


@functools.cache
def schedule_models() -> dict[str, type[BaseModel]]:
    """Every schedule `type` and its parameter model, in the catalog's order."""
    from lrserve.schedules import Schedule

    union = typing.get_args(Schedule)[0]
    return {typing.get_args(model.model_fields["type"].annotation)[0]: model for model in typing.get_args(union)}


@functools.cache
def _branch_models() -> dict[str, type[BaseModel]]:
    from lrserve.plateau import KerasPlateau, TorchPlateau

    return {**schedule_models(), "keras": KerasPlateau, "torch": TorchPlateau}


def describe_errors(errors: list[dict], body: type[BaseModel] | None = None) -> str:
    """One sentence per problem, joined with "; "; `body` is the request body's model, when known."""
    return "; ".join(dict.fromkeys(describe(error, body) for error in errors))


def describe(error: dict, body: type[BaseModel] | None = None) -> str:
    raw_loc = [part for part in error.get("loc", ()) if part != "body"]
    loc, owner = _user_location(raw_loc)
    where = ".".join(str(part) for part in loc)
    kind = error.get("type", "")
    example = f", e.g. {EXAMPLES[body.__name__]}" if body is not None and body.__name__ in EXAMPLES else ""
    if body is not None and owner is None and len(loc) == 1:
        owner = body
    if kind == "json_invalid":
        reason = (error.get("ctx") or {}).get("error", "invalid JSON")
        return f"body: is not valid JSON ({reason}); send a JSON object{example}"
    if kind == "missing" and not loc:
        return f"body: is empty; send a JSON object{example}"
    if kind in ("model_attributes_type", "model_type", "dict_type") and not loc:
        if isinstance(error.get("input"), (bytes, str)):
            return f"body: is not JSON: send the header 'Content-Type: application/json' with a JSON object{example}"
        return f"body: must be a JSON object{example}{_received(error)}"
    if kind == "union_tag_not_found":
        return f"{_join(where, 'type')}: is missing; say which schedule, one of: {', '.join(schedule_models())}"
    if kind == "union_tag_invalid":
        tag = (error.get("ctx") or {}).get("tag", "")
        return (f"{_join(where, 'type')}: unknown type {tag!r}{_did_you_mean(str(tag), schedule_models())}; "
                f"one of: {', '.join(schedule_models())}")
    if kind == "extra_forbidden":
        name = str(loc[-1]) if loc else ""
        known = list(owner.model_fields) if owner is not None else []
        listing = f"; known fields here: {', '.join(known)}" if known else ""
        return f"{where}: unknown field{_did_you_mean(name, known)}{listing}"
    if kind == "missing":
        return f"{where}: is required"
    if kind == "float_type" and isinstance(error.get("input"), int) and not isinstance(error.get("input"), bool):
        return f"{where}: must be a finite number; this integer is beyond float64's range (about 1.8e308)"
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    text = f"{where}: {message}" if where else message
    if "input" in error and kind != "value_error":
        text += _received(error)
    return text


def _user_location(loc: list[Any]) -> tuple[list[Any], type[BaseModel] | None]:
    """The location without the union-branch names pydantic inserts, and the branch model that owns the
    last part (None where the owner is not a union branch)."""
    branches = _branch_models()

    def is_branch(index: int) -> bool:
        part, before = loc[index], loc[index - 1] if index > 0 else None
        return isinstance(part, str) and part in branches and (before in ("schedule", "plateau")
                                                                or isinstance(before, int))

    kept = [part for index, part in enumerate(loc) if not is_branch(index)]
    owner = branches[loc[-2]] if len(loc) >= 2 and is_branch(len(loc) - 2) else None
    return kept, owner


def _join(where: str, field: str) -> str:
    return f"{where}.{field}" if where else field


def _did_you_mean(name: str, known: typing.Iterable[str]) -> str:
    close = difflib.get_close_matches(name, list(known), n=1, cutoff=0.6)
    return f" (did you mean {close[0]!r}?)" if close else ""


def _received(error: dict) -> str:
    received = repr(error.get("input"))
    return f" (received {received[:120]}{'...' if len(received) > 120 else ''})"
