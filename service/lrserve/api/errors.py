"""One table from domain exceptions to HTTP statuses, and the JSON error body `{"detail": ...}`."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from pydantic import ValidationError
from starlette.exceptions import HTTPException as StarletteHTTPException

from lrserve.api import events
from lrserve.api.bodies import BODY_MODELS, BodyValidationError
from lrserve.errors import (
    Conflict,
    InvalidInput,
    RunNotFound,
    ServiceError,
    StorageUnavailable,
    describe_errors,
)

STATUS_OF: dict[type[ServiceError], int] = {
    RunNotFound: 404,
    Conflict: 409,
    InvalidInput: 422,
    StorageUnavailable: 503,
}


def status_of(error: ServiceError) -> int:
    for cls in type(error).__mro__:
        if cls in STATUS_OF:
            return STATUS_OF[cls]
    return 500


def _body_model(request: Request, error: RequestValidationError) -> type | None:
    """The model of the request's JSON body, for messages that list its fields."""
    if isinstance(error, BodyValidationError):
        return error.model
    extra = getattr(request.scope.get("route"), "openapi_extra", None) or {}
    reference = extra.get("requestBody", {}).get("content", {}).get("application/json", {}).get("schema", {})
    if "$ref" in reference:  # a `validated` body, refused by FastAPI before validation (not JSON)
        return BODY_MODELS.get(reference["$ref"].rsplit("/", 1)[-1])
    body_field = getattr(request.scope.get("route"), "body_field", None)
    return getattr(getattr(body_field, "field_info", None), "annotation", None)


def install_error_handlers(app: FastAPI) -> None:
    @app.exception_handler(ServiceError)
    async def domain_error(request: Request, error: ServiceError) -> JSONResponse:
        if isinstance(error, Conflict):
            events.conflict(request.path_params.get("run_id"), error)
        return JSONResponse({"detail": str(error)}, status_code=status_of(error))

    @app.exception_handler(RequestValidationError)
    async def invalid_request(request: Request, error: RequestValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe_errors(list(error.errors()), _body_model(request, error))}, status_code=422)

    @app.exception_handler(StarletteHTTPException)
    async def no_such_endpoint(request: Request, error: StarletteHTTPException) -> JSONResponse:
        detail = str(error.detail)
        if error.status_code == 404:
            detail = (f"no endpoint at {request.url.path}; run ids are 1 to 128 characters of A-Z a-z 0-9 . _ - "
                      "(no '/'), and the endpoints are listed at /docs")
        elif error.status_code == 405:
            allowed = (error.headers or {}).get("Allow", "")
            detail = f"{request.method} is not allowed on {request.url.path}; allowed: {allowed}"
        return JSONResponse({"detail": detail}, status_code=error.status_code, headers=error.headers)

    @app.exception_handler(ValidationError)
    async def invalid_document(request: Request, error: ValidationError) -> JSONResponse:
        return JSONResponse({"detail": describe_errors(error.errors())}, status_code=422)
