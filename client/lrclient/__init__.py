"""lrclient: the thin Python client of lrserve, the service that serves learning rates to training jobs.

    import lrclient

    with lrclient.Client() as client:              # $LRSERVE_URL or http://127.0.0.1:8000
        client.create_run("resnet-1", {"schedule": {"type": "constant", "learning_rate": 0.1}})
        client.lr("resnet-1", 0)

The Keras callback and the PyTorch scheduler live in `lrclient.keras` and `lrclient.torch`
(imported on demand, so the base install needs only httpx).
"""

from ._async_client import AsyncClient
from ._client import Client
from ._exceptions import (
    APIError,
    Conflict,
    InvalidRequest,
    InvalidSpec,
    LrserveError,
    NotFound,
    PayloadTooLarge,
    ReportsAhead,
    ServerError,
    ServiceUnavailable,
    ServiceUnreachable,
    TransportError,
    Unauthorized,
)
from ._rates import LearningRates
from ._retry import RetryPolicy
from ._types import (
    LrFinderPoint,
    LrFinderResult,
    LrRange,
    ReportEntry,
    ReportOutcome,
    ReportPage,
    Revision,
    Run,
    RunPage,
    RunSummary,
    TrackerState,
)

__all__ = [
    "APIError",
    "AsyncClient",
    "Client",
    "Conflict",
    "InvalidRequest",
    "InvalidSpec",
    "LearningRates",
    "LrFinderPoint",
    "LrFinderResult",
    "LrRange",
    "LrserveError",
    "NotFound",
    "PayloadTooLarge",
    "ReportEntry",
    "ReportOutcome",
    "ReportPage",
    "ReportsAhead",
    "RetryPolicy",
    "Revision",
    "Run",
    "RunPage",
    "RunSummary",
    "ServerError",
    "ServiceUnavailable",
    "ServiceUnreachable",
    "TrackerState",
    "TransportError",
    "Unauthorized",
]
