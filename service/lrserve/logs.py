"""Structured logs: one JSON object per line on stderr, each carrying the id of the request it belongs to.

    {"time": "2026-12-01T09:30:00.123Z", "level": "info", "event": "report_accepted",
     "request_id": "5f0c...", "run_id": "resnet-42", "step": 7, "reduced": false, "next_lr": 0.05}

The request id lives in a context variable, set by the request middleware (`lrserve.api.observe`): it
follows the request into the thread pool, so a line logged anywhere on the request's behalf carries it.
Only the `lrserve` logger is formatted here; uvicorn keeps its own.
"""

from __future__ import annotations

import logging
import sys
import time
from contextvars import ContextVar
from typing import IO, Any

import orjson

LOGGER_NAME = "lrserve"
REQUEST_ID: ContextVar[str | None] = ContextVar("lrserve_request_id", default=None)

_log = logging.getLogger(LOGGER_NAME)


class JsonFormatter(logging.Formatter):
    """`time`, `level`, `event`, `request_id` (inside a request), the event's own fields, `traceback`."""

    def format(self, record: logging.LogRecord) -> str:
        seconds = int(record.created)
        entry: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{record.msecs:03.0f}Z",
            "level": record.levelname.lower(),
            "event": record.getMessage(),
        }
        request_id = getattr(record, "request_id", None)
        if request_id is not None:
            entry["request_id"] = request_id
        entry.update(getattr(record, "fields", {}))
        if record.exc_info:
            entry["traceback"] = self.formatException(record.exc_info)
        # orjson: NaN and infinities become null, so every line stays valid JSON whatever a field holds
        return orjson.dumps(entry, default=str).decode()


def configure_logging(stream: IO[str] | None = None) -> None:
    """Send the `lrserve` logger's INFO and above to stderr as JSON lines; calling it again changes nothing."""
    if any(getattr(handler, "lrserve_json", False) for handler in _log.handlers):
        return
    handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(JsonFormatter())
    handler.lrserve_json = True  # type: ignore[attr-defined]
    _log.addHandler(handler)
    _log.setLevel(logging.INFO)
    _log.propagate = False


def log_event(event: str, level: int = logging.INFO, exc_info: Any = None, **fields: Any) -> None:
    """One line for `event`, with the current request's id and `fields`."""
    if _log.isEnabledFor(level):
        _log.log(level, event, exc_info=exc_info,
                 extra={"fields": fields, "request_id": REQUEST_ID.get()})
