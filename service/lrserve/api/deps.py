"""Dependencies shared by the routers: the `Runs` service, path and query types, and the bearer token."""

from __future__ import annotations

import hmac
from typing import Annotated

from fastapi import Depends, HTTPException, Path, Request

from lrserve.runs import Runs
from lrserve.settings import Settings
from lrserve.spec import RUN_ID_PATTERN


VERSION_HEADER = "X-Run-Version"
"""Every run-scoped response carries the run's version; it grows with each accepted write."""


def get_runs(request: Request) -> Runs:
    return request.app.state.runs


def get_settings(request: Request) -> Settings:
    return request.app.state.settings


RunsDep = Annotated[Runs, Depends(get_runs)]
RunId = Annotated[
    str,
    Path(min_length=1, max_length=128, pattern=RUN_ID_PATTERN,
         description="1 to 128 characters of A-Z a-z 0-9 . _ -"),
]


def require_token(request: Request) -> None:
    """When LRSERVE_TOKEN is set, every run endpoint needs `Authorization: Bearer <token>`."""
    token = request.app.state.settings.token
    if token is None:
        return
    header = request.headers.get("authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(given.strip().encode(), token.encode()):
        raise HTTPException(
            status_code=401,
            detail="missing or wrong token: send the header 'Authorization: Bearer <LRSERVE_TOKEN>'",
            headers={"WWW-Authenticate": "Bearer"},
        )
