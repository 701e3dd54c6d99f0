"""The exceptions lrclient raises. Catch `LrserveError` to catch them all.

    LrserveError
    ├── TransportError          no answer: connection refused, reset or timed out (after retries)
    │   └── ServiceUnreachable  LearningRates(on_error="raise") could not reach the service for its run
    ├── ReportsAhead            (also a ValueError) an adapter would report steps the run already has
    └── APIError                the service answered with an error status; `.status`, `.detail`
        ├── Unauthorized        401  missing or wrong token (LRSERVE_TOKEN)
        ├── NotFound            404  unknown run
        ├── Conflict            409  a different spec under this id, or a report/revision contradicting history
        ├── PayloadTooLarge     413  request body over the service's limit
        ├── InvalidRequest      422  invalid spec, step, metrics or query (the detail names the field);
        │                            also named InvalidSpec, its older name
        ├── ServiceUnavailable  503  the service cannot reach its storage (after retries)
        └── ServerError         other 5xx (after retries); a bug in the service or a proxy in front of it
"""

from __future__ import annotations

__all__ = [
    "APIError",
    "Conflict",
    "InvalidRequest",
    "InvalidSpec",
    "LrserveError",
    "NotFound",
    "PayloadTooLarge",
    "ReportsAhead",
    "ServerError",
    "ServiceUnavailable",
    "ServiceUnreachable",
    "TransportError",
    "Unauthorized",
]


class LrserveError(Exception):
    """Base class of every lrclient exception."""


class TransportError(LrserveError):
    """The service did not answer; `cause` is the last underlying error."""

    def __init__(self, message: str, *, cause: BaseException | None = None) -> None:
        super().__init__(message)
        self.cause = cause


class ServiceUnreachable(TransportError):
    """`LearningRates` could not get a learning rate: the service is down or unreachable after retries."""


class ReportsAhead(LrserveError, ValueError):
    """A training job would report steps its run already has reports for: raised before it trains, instead of
    the 409 its first report would meet. The message names the three ways out."""


class APIError(LrserveError):
    """The service answered with an error status. `detail` is the service's own explanation."""

    status: int

    def __init__(self, status: int, detail: str, *, method: str = "", url: str = "") -> None:
        where = f" ({method} {url})" if method else ""
        super().__init__(f"{status}: {detail}{where}")
        self.status = status
        self.detail = detail
        self.method = method
        self.url = url


class Unauthorized(APIError):
    """401: the service has a token (LRSERVE_TOKEN) and the request did not carry it."""


class NotFound(APIError):
    """404: the run does not exist."""


class Conflict(APIError):
    """409: the request contradicts what the run already holds (spec, report or revision)."""


class PayloadTooLarge(APIError):
    """413: the request body is larger than the service accepts."""


class InvalidRequest(APIError):
    """422: the spec, step, metrics or query parameters are not acceptable; `detail` names the field."""


InvalidSpec = InvalidRequest
"""The older name of `InvalidRequest` (the same class): every 422 raises it, not only a bad spec."""


class ServiceUnavailable(APIError):
    """503: the service is up but cannot reach its storage."""


class ServerError(APIError):
    """A 5xx other than 503: a bug in the service, or a proxy in front of it that cannot reach it."""
