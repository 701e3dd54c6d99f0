"""One table from domain exceptions to HTTP statuses, and the JSON error body `{"detail": ...}`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError

from lrserve.api import events
from lrserve.errors import (
    Conflict,
    InvalidInput,
    LrserveError,
    RunNotFound,
    StorageUnavailable,
    describe_errors,
)

STATUS_OF: dict[type[LrserveError], int] = {
    RunNotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    StorageUnavailable: 503,
}


def status_of(error: LrserveError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(LrserveError)
    async def domain_error(request: Request, error: LrserveError) -> JSONResponse:
        if isinstance(error, Conflict):
            events.conflict(request.path_params.get("run_id"), error)
        return JSONResponse({"detail": str(error)}, status_code=status_of(error))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe_errors(list(error.errors()))}, status_code=422)

    @app.exception_handler(ValidationError)
    async def invalid_document(request: Request, error: ValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe_errors(error.errors())}, status_code=422)
