"""The service's Prometheus metrics, one `Telemetry` per application, and their exposition for `GET /metrics`.

Every label has a bounded set of values: routes are templates (`/runs/{run_id}/lr`, never a run id) or
`unmatched`, methods are the HTTP verbs or `other`, kinds are fixed words.

Several worker processes: when `PROMETHEUS_MULTIPROC_DIR` names a directory (it must exist, be empty when
the first worker starts, and be set before any worker starts), every process writes its values there and
`/metrics` adds them up over all of them (prometheus-client's multiprocess mode). A worker that stops
cleanly marks itself dead, so its gauges stop counting; its counters keep counting, as totals should.
"""

from __future__ import annotations

import os
import platform
from collections.abc import Callable
from pathlib import Path

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client import multiprocess

from lrserve import __version__

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CONTENT_TYPE = CONTENT_TYPE_LATEST
UNMATCHED = "unmatched"
METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "DELETE", "OPTIONS", "PATCH"})
LATENCY_BUCKETS = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


def multiprocess_dir() -> str | None:
    """The directory of multiprocess mode, or None; refuses one that is not a directory."""
    directory = os.environ.get(MULTIPROC_ENV) or None
    if directory is not None and not Path(directory).is_dir():
        raise RuntimeError(f"{MULTIPROC_ENV}={directory!r} is not a directory; create it (empty) before starting "
                           "lrserve, or unset it")
    return directory


class Telemetry:
    """The metric objects of one application; `requests` and `latency` are recorded by the request middleware,
    the domain counters by `lrserve.api.events`."""

    def __init__(self) -> None:
        disable_created_metrics()  # no `*_created` series: they double the output and nobody graphs them
        self.multiprocess_dir = multiprocess_dir()
        self.registry = CollectorRegistry(auto_describe=True)
        if self.multiprocess_dir is not None:
            self._exposed = CollectorRegistry()
            multiprocess.MultiProcessCollector(self._exposed, path=self.multiprocess_dir)
        else:
            self._exposed = self.registry
        registry = self.registry

        self.requests = Counter("lrserve_http_requests", "HTTP requests answered, by method, route template "
                                "and status", ["method", "route", "status"], registry=registry)
        self.latency = Histogram("lrserve_http_request_duration_seconds", "Time from request to the end of the "
                                 "response, by method and route template", ["method", "route"],
                                 buckets=LATENCY_BUCKETS, registry=registry)
        self.runs_created = Counter("lrserve_runs_created", "Runs created (PUT answered 201)", registry=registry)
        self.runs_deleted = Counter("lrserve_runs_deleted", "Runs deleted", registry=registry)
        self.reports_accepted = Counter("lrserve_reports_accepted", "New reports accepted and stored",
                                        registry=registry)
        self.reductions = Counter("lrserve_reductions", "Accepted reports whose plateau reduction took effect",
                                  registry=registry)
        self.repeats = Counter("lrserve_repeats", "Writes that repeated an accepted one and changed nothing, by "
                               "kind (report: the same report again; spec: the same spec PUT again)", ["kind"],
                               registry=registry)
        self.conflicts = Counter("lrserve_conflicts", "Writes refused with 409, by kind (spec, report, revision)",
                                 ["kind"], registry=registry)
        self.rewinds = Counter("lrserve_rewinds", "Runs rewound", registry=registry)
        self.revisions = Counter("lrserve_revisions", "Revisions added", registry=registry)
        self.cached_runs = Gauge("lrserve_view_cache_runs", "Runs whose view is held in memory (summed over live "
                                 "worker processes)", multiprocess_mode="livesum", registry=registry)
        self.cache_lookups = Counter("lrserve_view_cache_lookups", "Learning-rate reads by how they were answered: "
                                     "hit (from memory alone) or miss (the database was asked)", ["result"],
                                     registry=registry)
        self.cache_hit = self.cache_lookups.labels("hit")
        self.cache_miss = self.cache_lookups.labels("miss")
        build = Gauge("lrserve_build_info", "Always 1; the labels say which lrserve runs", ["version", "python"],
                      multiprocess_mode="max", registry=registry)
        build.labels(__version__, platform.python_version()).set(1)
        self._count_cached: Callable[[], int] = lambda: 0

    def count_cached_runs_with(self, count: Callable[[], int]) -> None:
        """Where `lrserve_view_cache_runs` comes from (the application's `Runs`, once it exists)."""
        self._count_cached = count
        self.refresh_cache_gauge()

    def refresh_cache_gauge(self) -> None:
        """Set the cached-runs gauge now; called on every write and cache miss, and at every scrape."""
        self.cached_runs.set(self._count_cached())

    def exposition(self) -> bytes:
        """The Prometheus text of every metric (summed over the workers in multiprocess mode)."""
        self.refresh_cache_gauge()
        return generate_latest(self._exposed)

    def close(self) -> None:
        """On a clean stop in multiprocess mode: this process's gauges no longer count."""
        if self.multiprocess_dir is not None:
            multiprocess.mark_process_dead(os.getpid(), self.multiprocess_dir)
