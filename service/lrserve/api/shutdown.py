"""A request cut by the shutdown deadline is answered 503 with a `detail`, not uvicorn's bare 500.

On SIGTERM uvicorn lets in-flight requests run for `shutdown_timeout` seconds, then cancels the tasks
still running (a client that sent half a body, a slow write). Such a request was not acknowledged: a
write in it either committed (a retry is then an exact repeat, answered with the original outcome) or
did not. 503 says exactly that, and is what the client retries; uvicorn alone would answer 500 and
log the cancellation as an application error.
"""

from __future__ import annotations

import asyncio
import json
import logging

from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger("uvicorn.error")

CUT_BODY = json.dumps({
    "detail": "the service is shutting down and cut this request at its shutdown timeout; "
              "it was not acknowledged: send it again"
}).encode()


class AnswerCutRequests:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def send_tracked(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, send_tracked)
        except asyncio.CancelledError:
            # Only uvicorn's shutdown cancels a request's task: anyio's own cancellations stay inside
            # their scopes. With the answer already begun there is nothing left to say.
            if started:
                raise
            logger.warning("cut at the shutdown timeout: %s %s", scope["method"], scope["path"])
            await send({"type": "http.response.start", "status": 503, "headers": [
                (b"content-type", b"application/json"), (b"content-length", str(len(CUT_BODY)).encode()),
                (b"connection", b"close"),
            ]})
            await send({"type": "http.response.body", "body": CUT_BODY})
