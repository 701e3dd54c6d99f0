"""A pure ASGI middleware that answers 413 for request bodies over the configured size, whatever the framing.

A declared Content-Length over the limit is refused before reading; a chunked body is read up to the
limit and refused as soon as it passes it, else replayed to the application unchanged. A request that
declares both a Content-Length and a Transfer-Encoding (the classic way to smuggle a body past a
length check) is refused with 400.
"""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

_BODYLESS = ("GET", "HEAD", "DELETE", "OPTIONS")


class BodySizeLimit:
    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] in _BODYLESS:
            await self.app(scope, receive, send)
            return
        lengths = [value for name, value in scope["headers"] if name == b"content-length"]
        encodings = [value for name, value in scope["headers"] if name == b"transfer-encoding"]
        if lengths and encodings:
            await _answer(send, 400, "send either Content-Length or Transfer-Encoding, not both")
            return
        declared = lengths[0].strip() if lengths else None  # the HTTP parser already refused malformed ones
        if declared is not None and declared.isdigit() and int(declared) > self.max_bytes:
            await self._reject(send)
            return
        if declared is not None:
            await self.app(scope, receive, send)  # h11 never delivers more than the declared length
            return
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_bytes:
                await self._reject(send)
                return
            chunks.append(chunk)
            more = message.get("more_body", False)
        await self.app(scope, _replay(b"".join(chunks), receive), send)

    async def _reject(self, send: Send) -> None:
        await _answer(send, 413, f"request body is larger than {self.max_bytes} bytes; send less "
                                 "(the limit is set with LRSERVE_MAX_BODY_BYTES)")


async def _answer(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode()),
                            (b"connection", b"close")]})
    await send({"type": "http.response.body", "body": body})


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
