"""A small HTTP/1.1 keep-alive load generator on raw asyncio streams, with no dependencies.

Closed loop (`load`, `run_load`): `C` connections each send one request at a time and wait for its
response, until a fixed number of requests has been sent or a duration has passed. Every request's
latency (write of the request to last byte of the response) is recorded. This finds the peak rate.
Given several ports (several server processes), connection i talks to port i mod len(ports):
round-robin by connection.

    result = load("127.0.0.1", port, lambda conn, k: Request("GET", f"/x?i={k}"),
                  connections=16, requests=20_000)
    print(result.summary())

Open loop (`run_paced`): requests fall due on a fixed schedule (`rate` per second) whatever the
server's pace, and each latency runs from its request's due time. A closed loop slows down with a
slow server and so never sees the queue it would have built (coordinated omission); this does.
"""

from __future__ import annotations

import asyncio
import math
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

__all__ = ["LoadResult", "Request", "RequestFactory", "load", "pooled", "run_load", "run_paced"]


@dataclass(frozen=True)
class Request:
    method: str
    path: str
    body: bytes | None = None


RequestFactory = Callable[[int, int], Request]
"""(connection index, request index on that connection) -> the request to send."""


@dataclass
class LoadResult:
    latencies: list[float] = field(default_factory=list)  # seconds, one per completed request
    statuses: Counter[int] = field(default_factory=Counter)
    body_bytes: int = 0
    elapsed: float = 0.0  # wall time from the first connection attempt to the last response
    unsent: int = 0  # open loop: requests that fell due but were still waiting when the schedule ended
    cpu: float = 0.0  # CPU seconds the load generator itself used meanwhile (it shares the machine)

    @property
    def count(self) -> int:
        return len(self.latencies)

    @property
    def throughput(self) -> float:
        return self.count / self.elapsed if self.elapsed else 0.0

    @property
    def cpu_share(self) -> float:
        """The load generator's CPU use while it ran, in cores."""
        return self.cpu / self.elapsed if self.elapsed else 0.0

    @property
    def errors(self) -> int:
        return sum(n for status, n in self.statuses.items() if not 200 <= status < 300)

    def percentile(self, q: float) -> float:
        """Nearest-rank percentile of the latencies, in seconds."""
        ordered = sorted(self.latencies)
        if not ordered:
            return math.nan
        return ordered[max(0, min(len(ordered) - 1, math.ceil(q / 100 * len(ordered)) - 1))]

    def summary(self) -> str:
        return (
            f"{self.count} requests in {self.elapsed:.2f}s: {self.throughput:,.0f} req/s, "
            f"p50 {self.percentile(50) * 1e3:.2f} ms, p99 {self.percentile(99) * 1e3:.2f} ms, "
            f"statuses {dict(self.statuses)}"
        )


class _Budget:
    """Hands out request slots until the count is spent or the deadline passes."""

    def __init__(self, requests: int | None, duration: float | None) -> None:
        self.remaining = requests
        self.deadline = None if duration is None else time.perf_counter() + duration

    def take(self) -> bool:
        if self.deadline is not None and time.perf_counter() >= self.deadline:
            return False
        if self.remaining is not None:
            if self.remaining <= 0:
                return False
            self.remaining -= 1
        return True


def _encode(request: Request, host_header: str) -> bytes:
    body = request.body or b""
    head = f"{request.method} {request.path} HTTP/1.1\r\nHost: {host_header}\r\n"
    if request.body is not None:
        head += f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n"
    return (head + "\r\n").encode("ascii") + body


async def _read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bool]:
    """(status, body, keep_alive) of one HTTP/1.1 response."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split(" ", 2)[1])
    headers: dict[str, str] = {}
    for line in lines[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    if headers.get("transfer-encoding", "").lower() == "chunked":
        chunks = []
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            chunks.append(await reader.readexactly(size + 2))
            if size == 0:
                break
        body = b"".join(c[:-2] for c in chunks)
    else:
        body = await reader.readexactly(int(headers.get("content-length", "0")))
    return status, body, headers.get("connection", "").lower() != "close"


async def _round_trip(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, payload: bytes, result: LoadResult, since: float
) -> None:
    """Send one request and read its whole response; record its latency as the time since `since`."""
    writer.write(payload)
    await writer.drain()
    status, body, keep_alive = await _read_response(reader)
    result.latencies.append(time.perf_counter() - since)
    result.statuses[status] += 1
    result.body_bytes += len(body)
    if not keep_alive:
        raise RuntimeError(f"the server closed the keep-alive connection after status {status}")


async def _close(writer: asyncio.StreamWriter) -> None:
    writer.close()
    try:
        await writer.wait_closed()
    except ConnectionError:
        pass


async def _connection(
    host: str, port: int, index: int, make_request: RequestFactory, budget: _Budget, result: LoadResult
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    host_header = f"{host}:{port}"
    try:
        k = 0
        while budget.take():
            payload = _encode(make_request(index, k), host_header)
            await _round_trip(reader, writer, payload, result, time.perf_counter())
            k += 1
    finally:
        await _close(writer)


def _check_loopback(host: str) -> None:
    if host not in {"127.0.0.1", "localhost", "::1"}:
        raise ValueError(f"benchmarks only talk to the loopback interface, not {host!r}")


async def run_load(
    host: str,
    port: int | Sequence[int],
    make_request: RequestFactory,
    *,
    connections: int,
    requests: int | None = None,
    duration: float | None = None,
    hard_timeout: float = 300.0,
) -> LoadResult:
    """Drive `connections` keep-alive connections until `requests` are done or `duration` passed.

    With several ports, the connections are spread over them round-robin.
    """
    ports = [port] if isinstance(port, int) else list(port)
    if requests is None and duration is None:
        raise ValueError("give a request count or a duration, so that the load stops by itself")
    _check_loopback(host)
    budget, result = _Budget(requests, duration), LoadResult()
    started, cpu_started = time.perf_counter(), time.process_time()
    workers = [_connection(host, ports[i % len(ports)], i, make_request, budget, result)
               for i in range(connections)]
    await asyncio.wait_for(asyncio.gather(*workers), timeout=hard_timeout)
    result.elapsed = time.perf_counter() - started
    result.cpu = time.process_time() - cpu_started
    return result


_DONE = -1.0  # the due time that tells a paced connection to stop


async def _paced_connection(
    host: str, port: int, index: int, make_request: RequestFactory,
    due: asyncio.Queue[tuple[int, float]], result: LoadResult,
) -> None:
    reader, writer = await asyncio.open_connection(host, port)
    host_header = f"{host}:{port}"
    try:
        while True:
            k, due_at = await due.get()
            if due_at == _DONE:
                return
            await _round_trip(reader, writer, _encode(make_request(index, k), host_header), result, due_at)
    finally:
        await _close(writer)


async def run_paced(
    host: str,
    port: int,
    make_request: RequestFactory,
    *,
    rate: float,
    duration: float,
    connections: int,
    result: LoadResult | None = None,
    hard_timeout: float = 60.0,
) -> LoadResult:
    """Open loop: request k falls due at start + k / rate, for `duration` seconds.

    A due request goes to whichever of the `connections` keep-alive connections is free, or waits in
    a queue until one is; its latency runs from its due time, so waiting counts. When the schedule
    ends, requests still waiting are not sent but counted (`unsent`: how far behind the server
    fell), and those in flight get `hard_timeout` seconds to finish. Pass a `result` to read the
    figures while the load runs (latencies are appended as responses arrive).
    """
    if rate <= 0 or duration <= 0:
        raise ValueError(f"rate and duration must be positive; received rate={rate}, duration={duration}")
    _check_loopback(host)
    result = LoadResult() if result is None else result
    due: asyncio.Queue[tuple[int, float]] = asyncio.Queue()
    workers = [asyncio.ensure_future(_paced_connection(host, port, i, make_request, due, result))
               for i in range(connections)]
    started = time.perf_counter()
    try:
        k = 0
        while (due_at := started + k / rate) < started + duration:
            wait = due_at - time.perf_counter()
            if wait > 0:
                await asyncio.sleep(wait)  # a late wake-up catches up at once: the schedule holds
                if any(w.done() for w in workers):
                    break  # a connection failed; gather below raises its error
            due.put_nowait((k, due_at))
            k += 1
        await asyncio.sleep(0)  # idle connections take what just fell due
        result.unsent += due.qsize()
        while not due.empty():
            due.get_nowait()
        for _ in workers:
            due.put_nowait((-1, _DONE))
        await asyncio.wait_for(asyncio.gather(*workers), timeout=hard_timeout)
    finally:
        for w in workers:
            w.cancel()
    result.elapsed = time.perf_counter() - started
    return result


def pooled(results: list[LoadResult]) -> LoadResult:
    """Several rounds as one: every latency and status, the summed wall and CPU time and unsent count."""
    total = LoadResult()
    for r in results:
        total.latencies.extend(r.latencies)
        total.statuses.update(r.statuses)
        total.body_bytes += r.body_bytes
        total.elapsed += r.elapsed
        total.cpu += r.cpu
        total.unsent += r.unsent
    return total


def load(host: str, port: int | Sequence[int], make_request: RequestFactory, **options: object) -> LoadResult:
    """Synchronous wrapper of `run_load`."""
    return asyncio.run(run_load(host, port, make_request, **options))  # type: ignore[arg-type]
