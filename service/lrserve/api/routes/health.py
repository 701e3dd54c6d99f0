"""Liveness and readiness; neither needs a token."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from lrserve.api.deps import RunsDep
from lrserve.api.schemas import ErrorOut, Health
from lrserve.errors import StorageUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
async def healthz() -> dict[str, str]:
    """The process is up. Touches no storage."""
    return {"status": "ok"}


@router.get("/readyz", response_model=Health, responses={503: {"model": ErrorOut}})
def readyz(runs: RunsDep) -> JSONResponse:
    """The storage answers: 200, else 503."""
    try:
        runs.store.ping()
    except StorageUnavailable as error:
        return JSONResponse({"detail": str(error)}, status_code=503)
    except Exception as error:  # a driver error of any kind means "not ready", never a crash
        return JSONResponse({"detail": f"the database cannot be reached: {error}"}, status_code=503)
    return JSONResponse({"status": "ok"})
