"""`create_app(settings)`: the FastAPI application, built without module-level globals."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from lrserve import __version__
from lrserve.api import events
from lrserve.api.auth import BearerTokenAuth
from lrserve.api.bodies import add_body_schemas
from lrserve.api.docs import declare_bearer_auth, install_docs
from lrserve.api.errors import install_error_handlers
from lrserve.api.limits import BodySizeLimit
from lrserve.api.observe import Observe
from lrserve.api.ranges import RangeSlots
from lrserve.api.routes import display, health, history, lr, lr_finder, operations, runs
from lrserve.api.shutdown import AnswerCutRequests
from lrserve.api.telemetry import Telemetry
from lrserve.logs import configure_logging
from lrserve.runs import Runs
from lrserve.settings import Settings
from lrserve.spec import Revision, RunSpec
from lrserve.store import open_store
from lrserve.ui import mount_ui

DESCRIPTION = (
    "Serves learning rates to training jobs: one validated schedule and one ReduceLROnPlateau decision "
    "per run, shared by every worker, durable across restarts."
)


def create_app(settings: Settings | None = None) -> FastAPI:
    """The app for `settings`, by default those of the environment (as `uvicorn --factory` and every
    worker of `lrserve serve` call it)."""
    settings = settings if settings is not None else Settings.from_env()
    telemetry = Telemetry()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging()
        store = open_store(settings.database_url)
        runs = Runs(store, cache_seconds=settings.cache_seconds)
        runs.events.start()
        app.state.runs = runs
        app.state.range_slots = RangeSlots()
        telemetry.count_cached_runs_with(lambda: runs.cached_count)
        events.started(settings)
        try:
            yield
        finally:
            runs.events.stop()
            store.close()
            telemetry.close()
            events.stopped()

    # /docs from assets the service serves itself (no CDN); no ReDoc, whose page would load from one.
    app = FastAPI(title="lrserve", version=__version__, description=DESCRIPTION, lifespan=lifespan,
                  docs_url=None, redoc_url=None)
    app.state.telemetry = telemetry
    install_error_handlers(app)
    app.include_router(lr.router)  # first: the hot path matches sooner
    app.include_router(health.router)
    app.include_router(runs.router)
    app.include_router(history.router)
    app.include_router(lr_finder.router)
    app.include_router(operations.router)
    app.include_router(display.router)
    mount_ui(app)
    install_docs(app)
    app.openapi = lambda: app.openapi_schema or _with_body_schemas(app)  # type: ignore[method-assign]
    app.add_middleware(BodySizeLimit, max_bytes=settings.max_body_bytes)
    if settings.auth:
        app.add_middleware(BearerTokenAuth, tokens=settings.tokens, read_tokens=settings.read_tokens)
    app.add_middleware(AnswerCutRequests)  # it sees every request the deadline cuts
    app.add_middleware(Observe, telemetry=telemetry)  # added last, so outermost: it sees every answer
    return app


def _with_body_schemas(app: FastAPI) -> dict:
    """The OpenAPI document, with the schemas of the bodies validated off the event loop and the bearer
    token declared."""
    document = FastAPI.openapi(app)
    app.openapi_schema = declare_bearer_auth(add_body_schemas(document, [RunSpec, Revision]))
    return app.openapi_schema
