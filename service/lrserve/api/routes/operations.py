"""`/metrics`: the service's Prometheus metrics (not a run's reports: those are `/runs/{run_id}/metrics`)."""

from __future__ import annotations

from fastapi import APIRouter, Request, Response

from lrserve.api.telemetry import CONTENT_TYPE, Telemetry

router = APIRouter(tags=["operations"])


@router.get("/metrics", response_class=Response, responses={
    200: {"content": {"text/plain": {}}, "description": "Prometheus text exposition format"}})
def prometheus_metrics(request: Request) -> Response:
    """Requests, latencies, reports, reductions, conflicts, rewinds, revisions and the run-view cache, for
    Prometheus to scrape; summed over the worker processes when `PROMETHEUS_MULTIPROC_DIR` is set."""
    telemetry: Telemetry = request.app.state.telemetry
    return Response(telemetry.exposition(), media_type=CONTENT_TYPE)
