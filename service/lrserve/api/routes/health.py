"""Liveness and readiness, for GET and for a load balancer's HEAD; neither needs a token."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import JSONResponse, Response

from lrserve import __version__
from lrserve.api.deps import RunsDep
from lrserve.api.schemas import ErrorOut, Health, Ready
from lrserve.errors import StorageUnavailable

router = APIRouter(tags=["health"])


@router.get("/healthz", response_model=Health)
@router.head("/healthz", response_class=Response, responses={200: {"description": "The process is up"}})
async def healthz(request: Request) -> Response:
    """The process is up, and which version it runs. Touches no storage."""
    return _answer(request, {"status": "ok", "version": __version__})


@router.get("/readyz", response_model=Ready, responses={503: {"model": ErrorOut}})
@router.head("/readyz", response_class=Response,
             responses={200: {"description": "The storage answers"}, 503: {"description": "It does not"}})
def readyz(runs: RunsDep, request: Request) -> Response:
    """The storage answers: 200, else 503."""
    try:
        runs.store.ping()
    except StorageUnavailable as error:
        return _answer(request, {"detail": str(error)}, 503)
    except Exception as error:  # a driver error of any kind means "not ready", never a crash
        return _answer(request, {"detail": f"the database cannot be reached: {error}"}, 503)
    return _answer(request, {"status": "ok"})


def _answer(request: Request, body: dict[str, str], status: int = 200) -> Response:
    """The JSON answer; for HEAD the same status and headers without the body."""
    response = JSONResponse(body, status_code=status)
    if request.method == "HEAD":
        response.body = b""  # content-length stays the GET's, as HTTP wants for HEAD
    return response
