"""Every decision of the client, without I/O: settings, requests, parsing and errors (the retry policy is
`lrclient._retry`).

`Client` and `AsyncClient` only send the `Call`s built here and sleep between attempts, so both
behave the same by construction.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from importlib import metadata
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from ._exceptions import (
    APIError,
    Conflict,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    ServerError,
    ServiceUnavailable,
    TransportError,
    Unauthorized,
)
from ._retry import RETRYABLE_ERRORS, RetryPolicy  # re-exported: RETRYABLE_ERRORS was defined here
from ._types import (
    LrFinderPoint,
    LrFinderResult,
    LrRange,
    ReportEntry,
    ReportOutcome,
    ReportPage,
    Revision,
    Run,
    RunPage,
    RunSummary,
    TrackerState,
)

T = TypeVar("T")

DEFAULT_BASE_URL = "http://127.0.0.1:8000"
BASE_URL_ENV = "LRSERVE_URL"
TOKEN_ENV = "LRSERVE_TOKEN"
VERSION_HEADER = "X-Run-Version"

STATUS_ERRORS: dict[int, type[APIError]] = {
    401: Unauthorized,
    404: NotFound,
    409: Conflict,
    413: PayloadTooLarge,
    422: InvalidRequest,
    503: ServiceUnavailable,
}

NON_FINITE = {"NaN": math.nan, "Infinity": math.inf, "-Infinity": -math.inf}


def _user_agent() -> str:
    try:
        return f"lrclient/{metadata.version('lrserve')}"
    except metadata.PackageNotFoundError:
        return "lrclient"


# -- settings ---------------------------------------------------------------------------------------


def resolve_base_url(base_url: str | None, env: Mapping[str, str] = os.environ) -> str:
    """The argument, else $LRSERVE_URL, else http://127.0.0.1:8000; without a trailing slash."""
    url = base_url or env.get(BASE_URL_ENV) or DEFAULT_BASE_URL
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"base_url must start with http:// or https://. Received: base_url={url!r}")
    return url.rstrip("/")


def resolve_token(token: str | None, env: Mapping[str, str] = os.environ) -> str | None:
    """The argument, else $LRSERVE_TOKEN; an empty string means no token, as on the service."""
    return token or env.get(TOKEN_ENV) or None


def default_headers(token: str | None) -> dict[str, str]:
    headers = {"User-Agent": _user_agent(), "Accept": "application/json"}
    if token:
        headers["Authorization"] = f"Bearer {token}"
    return headers


# -- requests ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Call(Generic[T]):
    """One request and how to read its answer. `parse` sees only non-error answers unless `check` is False."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    params: Mapping[str, Any] | None = None
    json: Any = None
    headers: Mapping[str, str] | None = None
    check: bool = True
    timeout: float | None = None
    """Seconds this request may take, when not the client's timeout (a request the service holds on purpose)."""


WAIT_FOR_REPORT = 5.0
"""Seconds a request waiting for a report asks the service to hold it (the service allows up to 10)."""
WAIT_MARGIN = 10.0
"""Added to a held request's wait for its timeout: the answer itself may take as long as any other."""


def run_path(run_id: str, *rest: str) -> str:
    # quote() leaves dots alone; "." and ".." would be collapsed as dot segments of the URL path.
    segment = quote(run_id, safe="")
    if segment.strip(".") == "":
        segment = segment.replace(".", "%2E")
    return "/".join(("/runs", segment, *rest))


def create_run(run_id: str, spec: Mapping[str, Any]) -> Call[Run]:
    return Call("PUT", run_path(run_id), _parse_run, json=dict(spec))


def get_run(run_id: str, wait_for_step: int | None = None, wait: float = WAIT_FOR_REPORT) -> Call[Run]:
    if wait_for_step is None:
        return Call("GET", run_path(run_id), _parse_run)
    return Call("GET", run_path(run_id), _parse_run, params={"wait_for_step": wait_for_step, "wait": wait},
                timeout=wait + WAIT_MARGIN)


def get_run_if_changed(run_id: str, etag: str, wait_for_step: int | None = None,
                       wait: float = WAIT_FOR_REPORT) -> Call[Run | None]:
    """With `wait_for_step`, the service holds the answer until the run has a report at that step or
    later, or for `wait` seconds (it may answer sooner; compare `latest_step`)."""
    if wait_for_step is None:
        return Call("GET", run_path(run_id), _parse_run_or_none, headers={"If-None-Match": etag})
    return Call("GET", run_path(run_id), _parse_run_or_none, headers={"If-None-Match": etag},
                params={"wait_for_step": wait_for_step, "wait": wait}, timeout=wait + WAIT_MARGIN)


def delete_run(run_id: str) -> Call[None]:
    return Call("DELETE", run_path(run_id), _parse_nothing)


def list_runs(limit: int = 100, cursor: str | None = None, prefix: str | None = None) -> Call[RunPage]:
    params: dict[str, Any] = {"limit": limit}
    if cursor is not None:
        params["cursor"] = cursor
    if prefix is not None:
        params["prefix"] = prefix
    return Call("GET", "/runs", _parse_run_page, params=params)


def lr(run_id: str, step: int) -> Call[float]:
    return Call("GET", run_path(run_id, "lr"), _parse_lr, params={"step": step})


def lr_point(run_id: str, step: int) -> Call[tuple[float, float | None]]:
    """The lr of `step` and its momentum (None unless the schedule in effect cycles it)."""
    return Call("GET", run_path(run_id, "lr"), _parse_lr_point, params={"step": step})


def lr_range(run_id: str, start: int, stop: int, every: int = 1) -> Call[LrRange]:
    return Call("GET", run_path(run_id, "lr", "range"), _parse_lr_range,
                params={"start": start, "stop": stop, "every": every})


def lr_finder(run_id: str, monitor: str = "loss", *, skip_begin: int = 10, skip_end: int = 1, beta: float = 0.98,
              early_stop_threshold: float | None = 4.0) -> Call[LrFinderResult]:
    threshold = "null" if early_stop_threshold is None else early_stop_threshold
    return Call("GET", run_path(run_id, "lr-finder"), _parse_lr_finder,
                params={"monitor": monitor, "skip_begin": skip_begin, "skip_end": skip_end, "beta": beta,
                        "early_stop_threshold": threshold})


def report(run_id: str, step: int, metrics: Mapping[str, float | int | str]) -> Call[ReportOutcome]:
    return Call("POST", run_path(run_id, "metrics"), _parse_outcome,
                json={"step": step, "metrics": encode_metrics(metrics)})


def report_page(run_id: str, after_step: int | None = None, limit: int | None = None) -> Call[ReportPage]:
    params: dict[str, Any] = {}
    if after_step is not None:
        params["after_step"] = after_step
    if limit is not None:
        params["limit"] = limit
    return Call("GET", run_path(run_id, "metrics"), _parse_report_page, params=params)


REPORT_PAGE = 1000
"""How many reports a walk asks for at a time: the service's default page."""
MAX_REPORT_PAGE = 10_000
"""The most reports the service puts in one page."""


@dataclass
class ReportWalk:
    """Where a walk over a run's reports stands: which page to ask for next, and when to stop.

    It starts after `after_step` (None: at the first report) and yields at most `limit` reports (None:
    every one), `page_size` per request. Each page starts where the previous one ended, so a report
    accepted during the walk is met if it comes after the pages already read.
    """

    run_id: str
    after_step: int | None = None
    limit: int | None = None
    page_size: int = REPORT_PAGE
    done: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        if self.limit is not None and not (_is_int(self.limit) and self.limit >= 1):
            raise ValueError(f"limit must be an int >= 1, or None for every report. "
                             f"Received: limit={self.limit!r}")
        if not (_is_int(self.page_size) and 1 <= self.page_size <= MAX_REPORT_PAGE):
            raise ValueError(f"page_size must be an int from 1 to {MAX_REPORT_PAGE}. "
                             f"Received: page_size={self.page_size!r}")

    def next_call(self) -> Call[ReportPage] | None:
        """The request for the next page, or None when the walk is over."""
        if self.done:
            return None
        size = self.page_size if self.limit is None else min(self.page_size, self.limit)
        return report_page(self.run_id, self.after_step, size)

    def take(self, page: ReportPage) -> tuple[ReportEntry, ...]:
        """The page's reports, moving the walk past them."""
        if self.limit is not None:
            self.limit -= len(page.reports)
        self.after_step = page.next_after_step
        self.done = page.next_after_step is None or not page.reports or self.limit == 0
        return page.reports


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def rewind(run_id: str, step: int) -> Call[Run]:
    return Call("POST", run_path(run_id, "rewind"), _parse_run, json={"step": step})


def revise(run_id: str, from_step: int, schedule: Mapping[str, Any] | None = None, reason: str = "",
           plateau: Mapping[str, Any] | None = None) -> Call[Revision]:
    body: dict[str, Any] = {"from_step": from_step, "reason": reason}
    if schedule is not None:
        body["schedule"] = dict(schedule)
    if plateau is not None:
        body["plateau"] = dict(plateau)
    return Call("POST", run_path(run_id, "revisions"), _parse_revision, json=body)


def health() -> Call[bool]:
    return Call("GET", "/healthz", _is_ok, check=False)


def ready() -> Call[bool]:
    return Call("GET", "/readyz", _is_ok, check=False)


# -- metrics ----------------------------------------------------------------------------------------


def encode_metric(name: str, value: float | int | str) -> float | str:
    """A metric as the service wants it: a finite float, or "NaN", "Infinity", "-Infinity".

    Anything float() accepts counts (NumPy scalars, 0-d tensors); strings pass through for the
    service to judge.
    """
    if isinstance(value, str):
        return value
    if isinstance(value, bool):
        raise TypeError(f"metrics[{name!r}] must be a number, not a bool. Received: {value!r}")
    try:
        number = float(value)
    except (TypeError, ValueError):
        raise TypeError(f"metrics[{name!r}] must be a number. Received: {value!r}") from None
    if math.isnan(number):
        return "NaN"
    if math.isinf(number):
        return "Infinity" if number > 0 else "-Infinity"
    return number


def encode_metrics(metrics: Mapping[str, float | int | str]) -> dict[str, float | str]:
    """The metrics of `Client.report`, each checked and encoded by `encode_metric` (the adapters, which report
    whatever a framework logged, keep only its numbers instead: `lrclient._adapter.numeric_metrics`)."""
    return {str(name): encode_metric(str(name), value) for name, value in metrics.items()}


def decode_metric(value: float | str) -> float:
    return NON_FINITE[value] if isinstance(value, str) and value in NON_FINITE else float(value)


# -- answers ----------------------------------------------------------------------------------------


def error_for(response: httpx.Response) -> APIError:
    """The exception for an error answer, carrying the service's `detail`."""
    status = response.status_code
    cls = STATUS_ERRORS.get(status) or (ServerError if status >= 500 else APIError)
    request = response.request
    return cls(status, _detail(response), method=request.method, url=str(request.url))


def _detail(response: httpx.Response) -> str:
    try:
        detail = response.json()["detail"]
    except (ValueError, KeyError, TypeError):
        return response.text[:2000] or response.reason_phrase
    return detail if isinstance(detail, str) else str(detail)


def is_outage(error: BaseException) -> bool:
    """No answer, or a 502/503/504: the service (or its storage) is down rather than refusing the request."""
    return isinstance(error, TransportError) or (isinstance(error, APIError) and error.status in (502, 503, 504))


def transport_error(base_url: str, call: Call[Any], error: Exception, attempts: int) -> TransportError:
    tries = f"after {attempts} attempts" if attempts > 1 else "in 1 attempt"
    return TransportError(
        f"lrserve at {base_url} did not answer {call.method} {call.path} {tries}: "
        f"{type(error).__name__}: {error}",
        cause=error,
    )


def result(call: Call[T], response: httpx.Response) -> T:
    """The parsed answer, or the APIError for an error status."""
    if call.check and response.status_code >= 400:
        raise error_for(response)
    return call.parse(response)


def response_version(response: httpx.Response) -> int:
    """The run version the answer reflects (-1 if the header is missing: never equal to a real one)."""
    value = response.headers.get(VERSION_HEADER, "")
    return int(value) if value.isdigit() else -1


def _state(body: Mapping[str, Any] | None) -> TrackerState | None:
    if body is None:
        return None
    return TrackerState(best=body["best"], wait=body["wait"], cooldown_counter=body["cooldown_counter"],
                        reductions=body["reductions"])


def _run(body: Mapping[str, Any], created: bool, etag: str | None) -> Run:
    run_id = body["run_id"]
    revisions = tuple(_revision(run_id, r) for r in body["revisions"])
    return Run(run_id=run_id, spec=body["spec"], state=_state(body["state"]), latest_step=body["latest_step"],
               reports=body["reports"], revisions=revisions, created_at=body["created_at"],
               version=body["version"], created=created, warnings=tuple(body.get("warnings", ())), etag=etag)


def _revision(run_id: str, body: Mapping[str, Any], created: bool = False) -> Revision:
    return Revision(run_id=run_id, from_step=body["from_step"], schedule=body["schedule"], reason=body["reason"],
                    created_at=body["created_at"], plateau=body.get("plateau"), created=created,
                    warnings=tuple(body.get("warnings", ())))


def _parse_run(response: httpx.Response) -> Run:
    return _run(response.json(), created=response.status_code == 201, etag=response.headers.get("ETag"))


def _parse_run_or_none(response: httpx.Response) -> Run | None:
    return None if response.status_code == 304 else _parse_run(response)


def _parse_nothing(response: httpx.Response) -> None:
    return None


def _parse_run_page(response: httpx.Response) -> RunPage:
    body = response.json()
    runs = tuple(RunSummary(run_id=r["run_id"], spec=r["spec"], created_at=r["created_at"],
                            latest_step=r["latest_step"], version=r["version"]) for r in body["runs"])
    return RunPage(runs=runs, next_cursor=body["next_cursor"])


def _parse_lr(response: httpx.Response) -> float:
    return float(response.json()["lr"])


def _parse_lr_point(response: httpx.Response) -> tuple[float, float | None]:
    body = response.json()
    momentum = body.get("momentum")
    return float(body["lr"]), None if momentum is None else float(momentum)


def _parse_lr_range(response: httpx.Response) -> LrRange:
    body = response.json()
    momentum = body.get("momentum")
    return LrRange(run_id=body["run_id"], start=body["start"], stop=body["stop"], every=body["every"],
                   lr=tuple(map(float, body["lr"])), version=response_version(response),
                   momentum=None if momentum is None else tuple(None if m is None else float(m) for m in momentum))


def _parse_lr_finder(response: httpx.Response) -> LrFinderResult:
    body = response.json()
    points = tuple(LrFinderPoint(step=p["step"], lr=float(p["lr"]), loss=decode_metric(p["loss"]),
                                 smoothed=decode_metric(p["smoothed"])) for p in body["points"])
    suggestion = body["suggestion"]
    return LrFinderResult(run_id=body["run_id"], monitor=body["monitor"], points=points,
                          suggestion=None if suggestion is None else float(suggestion),
                          diverged_at=body["diverged_at"], version=response_version(response))


def _parse_outcome(response: httpx.Response) -> ReportOutcome:
    body = response.json()
    return ReportOutcome(run_id=body["run_id"], step=body["step"], next_lr=float(body["next_lr"]),
                         reduced=body["reduced"], state=_state(body["state"]), version=response_version(response),
                         warnings=tuple(body.get("warnings", ())))


def _report_entry(body: Mapping[str, Any]) -> ReportEntry:
    return ReportEntry(step=body["step"], metrics={k: decode_metric(v) for k, v in body["metrics"].items()},
                       reduced=body["reduced"], next_lr=float(body["next_lr"]), state=_state(body["state"]),
                       received_at=body["received_at"])


def _parse_report_page(response: httpx.Response) -> ReportPage:
    body = response.json()
    # A service from before pages answers every report at once and no next_after_step: one last page.
    return ReportPage(run_id=body["run_id"], reports=tuple(map(_report_entry, body["reports"])),
                      next_after_step=body.get("next_after_step"), version=response_version(response))


def _parse_revision(response: httpx.Response) -> Revision:
    body = response.json()
    return _revision(body["run_id"], body, created=response.status_code == 201)


def _is_ok(response: httpx.Response) -> bool:
    return response.status_code == 200


# -- the part both twins share ----------------------------------------------------------------------


class BaseClient:
    """Settings and decisions shared by `Client` and `AsyncClient`."""

    def __init__(self, base_url: str | None, token: str | None, timeout: float | httpx.Timeout,
                 retries: int, backoff: float) -> None:
        if not isinstance(timeout, httpx.Timeout) and not (timeout is None or timeout > 0):
            raise ValueError(f"timeout must be a number of seconds > 0. Received: timeout={timeout!r}")
        self.base_url = resolve_base_url(base_url)
        self.timeout = timeout
        self.retry = RetryPolicy(retries=retries, backoff=backoff)
        self._headers = default_headers(resolve_token(token))

    def __repr__(self) -> str:
        return f"{type(self).__name__}(base_url={self.base_url!r})"

    def _next_delay(self, attempt: int, retries: int | None, *, status: int | None = None,
                    error: BaseException | None = None) -> float | None:
        return self.retry.next_delay(attempt, status=status, error=error, retries=retries)

    def _transport_error(self, call: Call[Any], error: Exception, attempts: int) -> TransportError:
        return transport_error(self.base_url, call, error, attempts)
