"""The web UI: static pages under /ui that read the public API, shipped inside the package.

The pages are plain HTML, ES modules and CSS with a vendored chart library (`static/vendor/`): no build
step, nothing fetched from the network. The files hold no data and are served without a token; every
data request the page makes carries the token the user typed into it (kept in sessionStorage).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

STATIC = Path(__file__).parent / "static"
PREFIX = "/ui"


def mount_ui(app: FastAPI) -> None:
    """Serve `STATIC` at /ui (index.html at /ui/); not part of the OpenAPI document."""
    app.mount(PREFIX, StaticFiles(directory=STATIC, html=True), name="ui")
