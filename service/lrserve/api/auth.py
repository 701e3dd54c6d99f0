"""Bearer-token auth as a pure ASGI middleware, installed only when LRSERVE_TOKEN is set.

A middleware rather than a router dependency: it guards every path in one place, so a new route cannot
be left open, and it costs nothing at all when no token is configured. Tokens of LRSERVE_TOKEN may do
everything; tokens of LRSERVE_READ_TOKEN may only read (GET, HEAD). Open: the health probes, and the
files of the /docs page and of the web UI (/ui), which hold no data: each page asks for the token before
it requests anything else (the OpenAPI document stays guarded) and sends it with every request.
"""

from __future__ import annotations

import hmac
import json

from starlette.types import ASGIApp, Receive, Scope, Send

OPEN_PATHS = frozenset({"/healthz", "/readyz", "/docs", "/ui"})
OPEN_PREFIXES = ("/docs/static/", "/ui/")
READ_METHODS = frozenset({"GET", "HEAD"})


class BearerTokenAuth:
    def __init__(self, app: ASGIApp, tokens: tuple[str, ...], read_tokens: tuple[str, ...] = ()) -> None:
        self.app = app
        self.tokens = tuple(token.encode() for token in tokens)
        self.read_tokens = tuple(token.encode() for token in read_tokens)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or _open(scope["path"]):
            await self.app(scope, receive, send)
            return
        sent = _bearer(scope)
        if sent is not None and _one_of(sent, self.tokens):
            await self.app(scope, receive, send)
            return
        if sent is not None and _one_of(sent, self.read_tokens):
            if scope["method"] in READ_METHODS:
                await self.app(scope, receive, send)
                return
            await _refuse(send, 403, f"this token may only read (GET, HEAD); {scope['method']} needs a token "
                                     "of LRSERVE_TOKEN")
            return
        await _refuse(send, 401, "missing or wrong token: send the header 'Authorization: Bearer <token>' "
                                 "with a token of LRSERVE_TOKEN (or, to read only, of LRSERVE_READ_TOKEN)")


def _open(path: str) -> bool:
    return path in OPEN_PATHS or path.startswith(OPEN_PREFIXES)


def _bearer(scope: Scope) -> bytes | None:
    for name, value in scope["headers"]:
        if name == b"authorization":
            scheme, _, token = value.partition(b" ")
            return token.strip() if scheme.lower() == b"bearer" else None
    return None


def _one_of(sent: bytes, tokens: tuple[bytes, ...]) -> bool:
    """Compares with every token in constant time, so the answer's timing tells nothing about any of them."""
    found = False
    for token in tokens:
        found |= hmac.compare_digest(sent, token)
    return found


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    if status == 401:
        headers.append((b"www-authenticate", b"Bearer"))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})
