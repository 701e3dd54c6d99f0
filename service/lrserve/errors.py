"""Domain exceptions. The HTTP layer maps each class to one status code (see api/errors.py).

    LrserveError
    ├── RunNotFound         404  the run id is unknown
    ├── Conflict            409  the request contradicts what is stored
    │   ├── SpecConflict         a different spec exists under this run id
    │   ├── ReportConflict       a report contradicts the accepted history
    │   └── RevisionConflict     a revision would change history
    ├── InvalidInput        422  the request is well-formed JSON but not acceptable
    └── StorageUnavailable  503  the database cannot be reached
"""


class LrserveError(Exception):
    """Base class; `str(error)` is the message shown to the user as `detail`."""


class RunNotFound(LrserveError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run {run_id!r} does not exist; create it with PUT /runs/{run_id}.")


class Conflict(LrserveError):
    pass


class SpecConflict(Conflict):
    pass


class ReportConflict(Conflict):
    pass


class RevisionConflict(Conflict):
    pass


class InvalidInput(LrserveError):
    pass


class StorageUnavailable(LrserveError):
    pass


def describe_errors(errors: list[dict]) -> str:
    """Turn pydantic error dicts into one sentence per problem: where, what rule, what was received."""
    return "; ".join(_describe(error) for error in errors)


def _describe(error: dict) -> str:
    loc = [str(part) for part in error.get("loc", ()) if part not in ("body",)]
    where = ".".join(loc)
    message = str(error.get("msg", "invalid")).removeprefix("Value error, ")
    value = error.get("input")
    if error.get("type") == "float_type" and isinstance(value, int) and not isinstance(value, bool):
        message = "Input should be a finite number; this integer is beyond float64's range (about 1.8e308)"
    text = f"{where}: {message}" if where else message
    if "input" in error and error.get("type") not in ("missing", "value_error"):
        received = repr(error["input"])
        text += f" (received {received[:120]}{'...' if len(received) > 120 else ''})"
    return text
