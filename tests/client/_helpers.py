"""Helpers of the client tests: request counting around the real transport, servers on a chosen port, specs."""

from __future__ import annotations

import threading
from collections.abc import Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field

import httpx

from conftest import Server, free_port, running_server

__all__ = [
    "HALVING",
    "PIECEWISE",
    "AsyncCountingTransport",
    "CountingTransport",
    "Server",
    "free_port",
    "running_server",
    "serve_on",
]

# constant 0.1; a Keras plateau (patience 1) halves it on every report that does not improve val_loss.
HALVING = {"schedule": {"type": "constant", "learning_rate": 0.1},
           "plateau": {"monitor": "val_loss", "factor": 0.5, "patience": 1}}
# a boundary step keeps the earlier value: 0.3 for steps 0-2, 0.2 for 3-4, 0.1 from 5 on.
PIECEWISE = {"schedule": {"type": "piecewise_constant", "boundaries": [2, 4], "values": [0.3, 0.2, 0.1]}}


@dataclass
class CountingTransport(httpx.BaseTransport):
    """The real HTTP transport, recording every request it is handed and every connection failure."""

    inner: httpx.BaseTransport = field(default_factory=httpx.HTTPTransport)
    requests: list[tuple[str, str]] = field(default_factory=list)
    local_ports: list[int] = field(default_factory=list)
    failures: int = 0
    failed: threading.Event = field(default_factory=threading.Event)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        try:
            response = self.inner.handle_request(request)
        except httpx.TransportError:
            self.failures += 1
            self.failed.set()
            raise
        stream = response.extensions.get("network_stream")
        if stream is not None:
            self.local_ports.append(stream.get_extra_info("client_addr")[1])
        return response

    def paths(self, suffix: str) -> int:
        """How many requests went to a path ending with `suffix`."""
        return sum(path.endswith(suffix) for _, path in self.requests)

    def close(self) -> None:
        self.inner.close()


@dataclass
class AsyncCountingTransport(httpx.AsyncBaseTransport):
    inner: httpx.AsyncBaseTransport = field(default_factory=httpx.AsyncHTTPTransport)
    requests: list[tuple[str, str]] = field(default_factory=list)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.requests.append((request.method, request.url.path))
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        await self.inner.aclose()


def serve_on(port: int, database_url: str, env: Mapping[str, str] | None = None) -> AbstractContextManager[Server]:
    """`lrserve serve` on exactly `port` (unlike a free one), so a client can outlive one server."""
    return running_server(database_url, env=env, port=port)
