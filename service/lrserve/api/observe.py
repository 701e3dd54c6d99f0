"""What every request leaves behind: its id, its count and latency, and a log line when it failed.

A pure ASGI middleware, the outermost one, so that it sees every answer, the 401 and 413 of the other
middlewares included. It costs a few microseconds on the hot path: the route template is read from the
scope after the application ran (Starlette puts the matched route there), the label children are looked
up in plain dicts, and a response body is only looked at when the status is an error.

Request id: the `X-Request-ID` header when it is 1 to 128 printable ASCII characters, else a new random
uuid4 in hex; echoed in the response's `X-Request-ID` and carried by every log line of the request.
"""

from __future__ import annotations

import json
import logging
import re
from contextvars import ContextVar
from dataclasses import dataclass
from random import getrandbits
from time import perf_counter
from typing import Any

from prometheus_client import Counter, Histogram
from starlette.routing import compile_path
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lrserve.api.telemetry import METHODS, UNMATCHED, Telemetry
from lrserve.logs import REQUEST_ID, log_event

HEADER = b"x-request-id"
MAX_REQUEST_ID = 128
_KEPT_ERROR_BYTES = 4096
_INTERNAL_ERROR = json.dumps({"detail": "internal server error: this is a bug in lrserve; the service's log "
                                        "has the traceback under this request's X-Request-ID"}).encode()


@dataclass
class RequestContext:
    """What the code serving one request may tell its observer."""

    telemetry: Telemetry
    error_logged: bool = False
    """A domain event already logged this request's failure (a 409 conflict)."""


_CONTEXT: ContextVar[RequestContext] = ContextVar("lrserve_request_context")
_NO_DEFAULT: Any = object()


def current(default: Any = _NO_DEFAULT) -> RequestContext:
    """The context of the request being served (it follows the request into the thread pool)."""
    return _CONTEXT.get() if default is _NO_DEFAULT else _CONTEXT.get(default)


def request_id_of(headers: list[tuple[bytes, bytes]]) -> str:
    """The client's X-Request-ID when it is acceptable, else a fresh one."""
    for name, value in headers:
        if name == HEADER:
            text = value.decode("latin-1")
            if 0 < len(text) <= MAX_REQUEST_ID and text.isascii() and text.isprintable():
                return text
            break
    return new_request_id()


_UUID4_CLEAR = ~(0xF000 << 64) & ~(0xC000 << 48)
_UUID4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_request_id() -> str:
    """A random uuid4 in hex, from the process's Mersenne Twister (reseeded in forked children), not from
    the system's randomness: the id only has to be unique, and a system call per request costs
    microseconds on the hot path."""
    return f"{getrandbits(128) & _UUID4_CLEAR | _UUID4_SET:032x}"


class Observe:
    def __init__(self, app: ASGIApp, telemetry: Telemetry) -> None:
        self.app = app
        self.telemetry = telemetry
        self._counted: dict[tuple[str, str, int], Counter] = {}
        self._timed: dict[tuple[str, str], Histogram] = {}
        self._templates: list[tuple[re.Pattern[str], str]] | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        request_id = request_id_of(scope["headers"])
        echoed = (HEADER, request_id.encode())
        context = RequestContext(self.telemetry)
        id_token, context_token = REQUEST_ID.set(request_id), _CONTEXT.set(context)
        status = 0
        error_body: list[bytes] | None = None
        finished = False

        def finish() -> None:
            """Count and time the request, and log its error; done before the last byte is sent, so a
            client that has the answer can already see it in /metrics and in the log."""
            nonlocal finished
            finished = True
            route = self._record(scope, status, perf_counter() - started)
            if error_body is not None and not context.error_logged:
                log_event("request_error", logging.WARNING if status < 500 else logging.ERROR,
                          method=scope["method"], path=scope["path"], route=route, status=status,
                          detail=_detail(b"".join(error_body)), run_id=scope.get("path_params", {}).get("run_id"))

        async def send_observed(message: Message) -> None:
            nonlocal status, error_body
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
                if status >= 400:
                    error_body = []
            elif message["type"] == "http.response.body":
                if error_body is not None:
                    error_body.append(message.get("body", b"")[:_KEPT_ERROR_BYTES])
                if not message.get("more_body", False):
                    finish()
            await send(message)

        try:
            try:
                await self.app(scope, receive, send_observed)
            except Exception:
                log_event("request_failed", logging.ERROR, exc_info=True, method=scope["method"],
                          path=scope["path"], route=self._route(scope), status=500)
                context.error_logged = True
                if status:  # the answer had begun: nothing else can be sent
                    if not finished:
                        status = 500
                        finish()
                    raise
                await send_observed({"type": "http.response.start", "status": 500, "headers": [
                    (b"content-type", b"application/json"),
                    (b"content-length", str(len(_INTERNAL_ERROR)).encode())]})
                await send_observed({"type": "http.response.body", "body": _INTERNAL_ERROR})
            if not finished:  # the application never finished an answer (the client went away)
                finish()
        finally:
            REQUEST_ID.reset(id_token)
            _CONTEXT.reset(context_token)

    def _record(self, scope: Scope, status: int, seconds: float) -> str:
        method = scope["method"] if scope["method"] in METHODS else "other"
        route = self._route(scope)
        counted = self._counted.get((method, route, status))
        if counted is None:
            counted = self._counted[method, route, status] = self.telemetry.requests.labels(method, route, status)
        counted.inc()
        timed = self._timed.get((method, route))
        if timed is None:
            timed = self._timed[method, route] = self.telemetry.latency.labels(method, route)
        timed.observe(seconds)
        return route

    def _route(self, scope: Scope) -> str:
        """The matched route's template; for a request the router never saw (a 401 or 413 of a middleware),
        the template its path fits; else `unmatched`."""
        route = scope.get("route")
        if route is not None:
            return getattr(route, "path", UNMATCHED)
        if self._templates is None:
            self._templates = _templates(scope["app"])
        path = scope["path"]
        return next((template for regex, template in self._templates if regex.match(path)), UNMATCHED)


def _templates(app: Any) -> list[tuple[re.Pattern[str], str]]:
    documented = list(app.openapi().get("paths", {}))
    served = [url for url in (app.openapi_url, app.docs_url, app.redoc_url) if url]
    return [(compile_path(template)[0], template) for template in [*documented, *served]]


def _detail(body: bytes) -> Any:
    try:
        return json.loads(body)["detail"]
    except (ValueError, KeyError, TypeError):
        return body.decode("utf-8", "replace")
