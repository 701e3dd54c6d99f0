"""`/docs`: the Swagger UI page, served with its assets from the service itself, so it works offline.

The assets come from the `swagger-ui-bundle-v2` package (Swagger UI's own release files, Apache-2.0),
mounted under `/docs/static/`. The page, its assets and the OpenAPI document hold no data, so they need
no token (see `auth.OPEN_PATHS`); the page's "Authorize" button takes the bearer token for the calls
tried from it, through the `bearer` security scheme the document declares.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/static"
BEARER_SCHEME = "bearer"
# Swagger UI would otherwise ask validator.swagger.io for a badge: the one outside request the page makes.
SWAGGER_PARAMETERS = {"validatorUrl": None, "deepLinking": True}
# Operations that never need a token (the auth middleware's open paths, as the document says them).
UNGUARDED = ("/healthz", "/readyz")


def install_docs(app: FastAPI) -> None:
    """Serve the Swagger UI page at /docs and its assets under /docs/static (the app has docs_url=None)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return get_swagger_ui_html(
            openapi_url=f"{root}{app.openapi_url}",
            title=f"{app.title} API",
            swagger_js_url=f"{root}{ASSETS_PATH}/swagger-ui-bundle.js",
            swagger_css_url=f"{root}{ASSETS_PATH}/swagger-ui.css",
            swagger_favicon_url=f"{root}{ASSETS_PATH}/favicon-32x32.png",
            swagger_ui_parameters=SWAGGER_PARAMETERS,
        )


def declare_bearer_auth(document: dict[str, Any]) -> dict[str, Any]:
    """The document with a bearer security scheme required by every operation but the health probes.

    Declared whatever the settings (the document is the same with and without LRSERVE_TOKEN): it only
    tells clients, and the /docs page's "Authorize" button, how to send the token when one is set.
    """
    components = document.setdefault("components", {})
    components.setdefault("securitySchemes", {})[BEARER_SCHEME] = {
        "type": "http",
        "scheme": "bearer",
        "description": "A token of LRSERVE_TOKEN (or, to read only, of LRSERVE_READ_TOKEN); "
                       "needed only when the service has LRSERVE_TOKEN set.",
    }
    document["security"] = [{BEARER_SCHEME: []}]
    for path in UNGUARDED:
        for operation in document.get("paths", {}).get(path, {}).values():
            operation["security"] = []
    return document
