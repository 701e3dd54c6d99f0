"""`AsyncClient`: the asynchronous twin of `Client`. It sends the calls `_base` builds and sleeps between retries."""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from types import TracebackType
from typing import Any, TypeVar

import anyio
import httpx

from . import _base
from ._exceptions import TransportError
from ._types import LrFinderResult, LrRange, ReportEntry, ReportOutcome, ReportPage, Revision, Run, RunPage, RunSummary

T = TypeVar("T")


class AsyncClient(_base.BaseClient):
    """An asyncio (or trio) client of one lrserve service, over one reused connection pool.

        async with lrclient.AsyncClient("http://127.0.0.1:8000") as client:
            await client.create_run("resnet-1", {"schedule": {"type": "constant", "learning_rate": 0.1}})
            lr = await client.lr("resnet-1", step=0)

    `base_url` defaults to $LRSERVE_URL, then http://127.0.0.1:8000; `token` to $LRSERVE_TOKEN.
    Connection errors, timeouts and 5xx answers are retried `retries` times with jittered
    exponential backoff starting at `backoff` seconds; 4xx answers raise at once. `retry` is the
    `RetryPolicy` in use: replace it to tune `max_backoff` or `jitter`.
    """

    def __init__(
        self,
        base_url: str | None = None,
        token: str | None = None,
        timeout: float | httpx.Timeout = 10.0,
        retries: int = 3,
        backoff: float = 0.2,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        super().__init__(base_url, token, timeout, retries, backoff)
        self._http = httpx.AsyncClient(base_url=self.base_url, headers=self._headers, timeout=timeout,
                                  transport=transport)

    async def _send(self, call: _base.Call[T], retries: int | None = None) -> T:
        request = self._http.build_request(call.method, call.path, params=call.params, json=call.json,
                                           timeout=httpx.USE_CLIENT_DEFAULT if call.timeout is None else call.timeout,
                                           headers=call.headers)
        attempt = 0
        while True:
            try:
                response = await self._http.send(request)
            except httpx.RequestError as error:
                delay = self._next_delay(attempt, retries, error=error)
                if delay is None:
                    raise self._transport_error(call, error, attempt + 1) from error
            else:
                delay = self._next_delay(attempt, retries, status=response.status_code)
                if delay is None:
                    return _base.result(call, response)
            await anyio.sleep(delay)
            attempt += 1

    # runs

    async def create_run(self, run_id: str, spec: Mapping[str, Any]) -> Run:
        """Create the run (`.created` is True), or return it if it exists with the same spec; 409 otherwise."""
        return await self._send(_base.create_run(run_id, spec))

    async def get_run(self, run_id: str) -> Run:
        """The run: normalized spec, plateau state, latest report step, revisions, version."""
        return await self._send(_base.get_run(run_id))

    async def get_run_if_changed(self, run_id: str, etag: str, wait_for_step: int | None = None) -> Run | None:
        """The run, or None while it still matches `etag` (a `Run.etag`; the service answered 304).

        With `wait_for_step`, the service answers once the run has a report at that step or later, or after
        about five seconds: one request however long the report takes (compare the run's `latest_step`).
        """
        return await self._send(_base.get_run_if_changed(run_id, etag, wait_for_step))

    async def delete_run(self, run_id: str) -> None:
        """Delete the run and its whole history."""
        await self._send(_base.delete_run(run_id))

    async def list_runs(self, limit: int = 100, cursor: str | None = None, prefix: str | None = None) -> RunPage:
        """One page of runs, oldest first; only ids starting with `prefix` (taken literally) if given.
        Pass `next_cursor` back as `cursor`, with the same `prefix`, for the next page."""
        return await self._send(_base.list_runs(limit, cursor, prefix))

    async def iter_runs(self, page_size: int = 100, prefix: str | None = None) -> AsyncIterator[RunSummary]:
        """Every run (whose id starts with `prefix`, if given), oldest first, fetching `page_size` at a time
        (`async for run in client.iter_runs()`)."""
        cursor: str | None = None
        while True:
            page = await self.list_runs(page_size, cursor, prefix)
            for run in page.runs:
                yield run
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    # learning rates

    async def lr(self, run_id: str, step: int) -> float:
        """The learning rate to train `step` with."""
        return await self._send(_base.lr(run_id, step))

    async def lr_range(self, run_id: str, start: int, stop: int, every: int = 1) -> LrRange:
        """Learning rates of steps start, start+every, ... < stop in one request."""
        return await self._send(_base.lr_range(run_id, start, stop, every))

    async def lr_finder(self, run_id: str, monitor: str = "loss", *, skip_begin: int = 10, skip_end: int = 1,
                        beta: float = 0.98, early_stop_threshold: float | None = 4.0) -> LrFinderResult:
        """The range test over the run's reports of `monitor` (PyTorch Lightning's `lr_find` rule): points,
        `suggestion` and `diverged_at`. `early_stop_threshold=None` never stops early."""
        return await self._send(_base.lr_finder(run_id, monitor, skip_begin=skip_begin, skip_end=skip_end,
                                                beta=beta, early_stop_threshold=early_stop_threshold))

    # history

    async def report(self, run_id: str, step: int, metrics: Mapping[str, float | int | str]) -> ReportOutcome:
        """Report metrics measured at the end of `step`. NaN and infinities are sent as the contract says."""
        return await self._send(_base.report(run_id, step, metrics))

    async def reports(self, run_id: str, after_step: int | None = None,
                      limit: int | None = None) -> list[ReportEntry]:
        """The accepted reports on steps after `after_step` (None: all), oldest first, each with its outcome;
        at most `limit` of them (None: every one, however many pages that takes)."""
        return [entry async for entry in self._walk(_base.ReportWalk(run_id, after_step, limit))]

    async def report_page(self, run_id: str, after_step: int | None = None, limit: int | None = None) -> ReportPage:
        """One page of reports after `after_step`: at most `limit` (None: the service's 1,000, up to 10,000).
        Pass `next_after_step` back as `after_step` for the next page; None means this was the last."""
        return await self._send(_base.report_page(run_id, after_step, limit))

    def iter_reports(self, run_id: str, after_step: int | None = None,
                     page_size: int = _base.REPORT_PAGE) -> AsyncIterator[ReportEntry]:
        """Every report after `after_step` (None: all), oldest first, fetching `page_size` at a time
        (`async for entry in client.iter_reports(run_id)`)."""
        return self._walk(_base.ReportWalk(run_id, after_step, page_size=page_size))

    async def _walk(self, walk: _base.ReportWalk) -> AsyncIterator[ReportEntry]:
        while (call := walk.next_call()) is not None:
            for entry in walk.take(await self._send(call)):
                yield entry

    async def rewind(self, run_id: str, step: int) -> Run:
        """Forget every report after `step` (-1 forgets them all), e.g. to resume from a checkpoint."""
        return await self._send(_base.rewind(run_id, step))

    async def revise(self, run_id: str, from_step: int, schedule: Mapping[str, Any] | None = None,
                     reason: str = "", *, plateau: Mapping[str, Any] | None = None) -> Revision:
        """From `from_step` on, follow `schedule` (which sees `step - from_step`) and/or the plateau settings
        `plateau` changes; `.created` is False when an accepted revision with the same body was found."""
        return await self._send(_base.revise(run_id, from_step, schedule, reason, plateau))

    # service

    async def health(self) -> bool:
        """True when the service process answers /healthz. One attempt, never raises for a status."""
        try:
            return await self._send(_base.health(), retries=0)
        except TransportError:
            return False

    async def ready(self) -> bool:
        """True when the service can reach its storage (/readyz). One attempt, never raises for a status."""
        try:
            return await self._send(_base.ready(), retries=0)
        except TransportError:
            return False

    async def close(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def __aenter__(self) -> AsyncClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        await self.close()
