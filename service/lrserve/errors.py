"""Domain exceptions. The HTTP layer maps each class to one status code (see api/errors.py).

    ServiceError
    ├── RunNotFound         404  the run id is unknown
    ├── Conflict            409  the request contradicts what is stored
    │   ├── SpecConflict         a different spec exists under this run id
    │   ├── ReportConflict       a report contradicts the accepted history
    │   └── RevisionConflict     a revision would change history
    ├── InvalidInput        422  the request is well-formed JSON but not acceptable
    └── StorageUnavailable  503  the database cannot be reached
"""


class ServiceError(Exception):
    """Base class; `str(error)` is the message shown to the user as `detail`. (Not `LrserveError`: that is
    the client's public base class, `lrclient.LrserveError`, a different hierarchy.)"""


class RunNotFound(ServiceError):
    def __init__(self, run_id: str) -> None:
        super().__init__(f"Run {run_id!r} does not exist; create it with PUT /runs/{run_id}.")


class Conflict(ServiceError):
    pass


class SpecConflict(Conflict):
    pass


class ReportConflict(Conflict):
    pass


class RevisionConflict(Conflict):
    pass


class InvalidInput(ServiceError):
    pass


class StorageUnavailable(ServiceError):
    pass


def describe_errors(errors: list[dict], body: type | None = None) -> str:
    """Turn pydantic error dicts into one sentence per problem (see `lrserve.messages`)."""
    from lrserve.messages import describe_errors as describe

    return describe(errors, body)
