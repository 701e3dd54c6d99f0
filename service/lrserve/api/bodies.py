"""Request bodies validated in the thread pool, for the bodies whose validation costs real time.

FastAPI validates a declared body model on the event loop, before the endpoint runs: a spec of 64
expression schedules takes tens of milliseconds to parse, and six at once would hold every other
request (health probes, reports) for that long. `validated(Model)` declares the body as plain JSON
(decoded on the loop, which is cheap) and validates it in a synchronous dependency, which FastAPI runs
in the thread pool. The OpenAPI document still names the model (`openapi_body`, `add_body_schemas`).
"""

from __future__ import annotations

from typing import Annotated, Any, TypeVar

from fastapi import Body, Depends
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, ValidationError

from lrserve.heavy import HEAVY_WORK

M = TypeVar("M", bound=BaseModel)
BODY_MODELS: dict[str, type[BaseModel]] = {}
"""The models of `validated` bodies by name, for messages about bodies FastAPI refused before validation."""


class BodyValidationError(RequestValidationError):
    """A body that is not a valid `model`; the message lists the model's fields for a typo."""

    def __init__(self, errors: list[dict], model: type[BaseModel]) -> None:
        super().__init__(errors)
        self.model = model


def validated(model: type[M]) -> Any:
    """A dependency that validates the request's JSON body as `model`, off the event loop."""
    BODY_MODELS[model.__name__] = model

    def validate(body: Annotated[Any, Body()]) -> M:
        try:
            with HEAVY_WORK:
                return model.model_validate(body)
        except ValidationError as error:
            errors = [{**e, "loc": ("body", *e["loc"])} for e in error.errors()]
            raise BodyValidationError(errors, model) from None

    return Depends(validate)


def openapi_body(model: type[BaseModel]) -> dict[str, Any]:
    """The `openapi_extra` of a route whose body is `validated(model)`."""
    return {"requestBody": {"required": True, "content": {"application/json": {
        "schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}}}


def add_body_schemas(document: dict[str, Any], models: list[type[BaseModel]]) -> dict[str, Any]:
    """Put the models' JSON schemas (and the schemas they refer to) into the document's components."""
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for model in models:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}", mode="validation")
        for name, definition in schema.pop("$defs", {}).items():
            schemas.setdefault(name, definition)
        schemas[model.__name__] = schema
    return document
