"""The client's retry policy: which failures are tried again, and how long to wait before each attempt.

Pure: `Client` and `AsyncClient` ask `RetryPolicy.next_delay` after each failed attempt and sleep (each in its
own way) for what it answers.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass, field

import httpx

# Failures where the request may simply be tried again. Every write of the service is safe to
# repeat: an exact repeat of a report returns the original outcome, PUT of the same spec is 200.
RETRYABLE_ERRORS: tuple[type[Exception], ...] = (
    httpx.ConnectError,
    httpx.TimeoutException,
    httpx.ReadError,
    httpx.WriteError,
    httpx.RemoteProtocolError,  # e.g. a kept-alive connection closed by a restarted server
)


@dataclass(frozen=True)
class RetryPolicy:
    """Bounded exponential backoff with jitter, on connection errors, timeouts and 5xx only.

    After failed attempt `a` (0-based) the client waits `min(backoff * 2**a, max_backoff)`, less a
    random share of up to `jitter` of it (so that many workers do not retry in lockstep), and tries
    again, at most `retries` times. A 4xx is never retried: the same request would fail the same way.
    """

    retries: int = 3
    backoff: float = 0.2
    max_backoff: float = 5.0
    jitter: float = 0.25
    random: Callable[[], float] = field(default=random.random, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.retries, bool) or not isinstance(self.retries, int) or self.retries < 0:
            raise ValueError(f"retries must be an int >= 0. Received: retries={self.retries!r}")
        if not self.backoff >= 0 or not self.max_backoff >= 0:
            raise ValueError(f"backoff and max_backoff must be >= 0. Received: backoff={self.backoff!r}, "
                             f"max_backoff={self.max_backoff!r}")
        if not 0 <= self.jitter <= 1:
            raise ValueError(f"jitter must be between 0 and 1. Received: jitter={self.jitter!r}")

    def window(self) -> tuple[float, float]:
        """The shortest and the longest time spent waiting between attempts before giving up (jitter aside,
        the longest): a service that is back within the shortest is never noticed."""
        longest = sum(min(self.backoff * 2.0**attempt, self.max_backoff) for attempt in range(self.retries))
        return longest * (1.0 - self.jitter), longest

    def delay(self, attempt: int) -> float:
        """Seconds to wait after failed attempt `attempt` (0-based) before the next one."""
        ceiling = min(self.backoff * 2.0**attempt, self.max_backoff)
        return ceiling * (1.0 - self.jitter * self.random())

    @staticmethod
    def retryable(*, status: int | None = None, error: BaseException | None = None) -> bool:
        """Whether a failure is worth another attempt: connection trouble or a 5xx, never a 4xx."""
        if error is not None:
            return isinstance(error, RETRYABLE_ERRORS)
        return status is not None and 500 <= status <= 599

    def next_delay(self, attempt: int, *, status: int | None = None, error: BaseException | None = None,
                   retries: int | None = None) -> float | None:
        """Seconds to sleep before another attempt, or None to give up (or succeed) now."""
        budget = self.retries if retries is None else retries
        if attempt >= budget or not self.retryable(status=status, error=error):
            return None
        return self.delay(attempt)
