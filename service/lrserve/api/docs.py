"""`/docs`: the Swagger UI page, served with its assets from the service itself, so it works offline.

The assets come from the `swagger-ui-bundle-v2` package (Swagger UI's own release files, Apache-2.0),
mounted under `/docs/static/`. The page and its assets hold no data and need no token; the OpenAPI
document stays behind the token like every other path (the contract). So the page fetches the document
itself: with auth on it first asks for the token (kept in the tab's sessionStorage under the key the
web UI uses too, never in a URL), then hands Swagger UI the document and a request interceptor that
sends the token with every call tried from the page.
"""

from __future__ import annotations

import json
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from swagger_ui_bundle import swagger_ui_path

DOCS_PATH = "/docs"
ASSETS_PATH = "/docs/static"
BEARER_SCHEME = "bearer"
TOKEN_KEY = "lrserve.token"
"""The sessionStorage key of the token, shared by /docs and the web UI (/ui)."""
# Operations that never need a token (the auth middleware's open paths, as the document says them).
UNGUARDED = ("/healthz", "/readyz")

PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<title>{title}</title>
<link rel="icon" type="image/png" href="{assets}/favicon-32x32.png">
<link rel="stylesheet" href="{assets}/swagger-ui.css">
<style>
  #token-form {{ font-family: sans-serif; max-width: 40rem; margin: 3rem auto; }}
  #token-form input {{ width: 24rem; padding: .3rem; }}
  #token-error {{ color: #b00020; }}
</style>
</head>
<body>
<form id="token-form" hidden>
  <h2>{title}</h2>
  <p>This service needs a token (LRSERVE_TOKEN or LRSERVE_READ_TOKEN) to show its API.</p>
  <label>Token <input id="token" type="password" autocomplete="off" required></label>
  <button type="submit">Open</button>
  <p id="token-error" role="alert"></p>
</form>
<div id="swagger-ui"></div>
<script src="{assets}/swagger-ui-bundle.js"></script>
<script>
const OPENAPI_URL = {openapi_url};
const TOKEN_KEY = {token_key};
const form = document.getElementById("token-form");

function withToken(headers) {{
  const token = sessionStorage.getItem(TOKEN_KEY);
  return token ? {{...headers, Authorization: "Bearer " + token}} : headers;
}}

async function open() {{
  const answer = await fetch(OPENAPI_URL, {{headers: withToken({{}})}});
  if (answer.status === 401) {{
    const hadToken = sessionStorage.getItem(TOKEN_KEY) !== null;
    sessionStorage.removeItem(TOKEN_KEY);
    document.getElementById("token-error").textContent = hadToken ? "That token was refused." : "";
    form.hidden = false;
    return;
  }}
  form.hidden = true;
  window.ui = SwaggerUIBundle({{
    spec: await answer.json(),
    dom_id: "#swagger-ui",
    deepLinking: true,
    validatorUrl: null,
    presets: [SwaggerUIBundle.presets.apis, SwaggerUIBundle.SwaggerUIStandalonePreset],
    layout: "BaseLayout",
    requestInterceptor: (request) => {{
      if (!request.headers.Authorization) request.headers = withToken(request.headers);
      return request;
    }},
  }});
}}

form.addEventListener("submit", (event) => {{
  event.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, document.getElementById("token").value.trim());
  open();
}});
open();
</script>
</body>
</html>
"""


def install_docs(app: FastAPI) -> None:
    """Serve the Swagger UI page at /docs and its assets under /docs/static (the app has docs_url=None)."""
    app.mount(ASSETS_PATH, StaticFiles(directory=str(swagger_ui_path)), name="docs-assets")

    @app.get(DOCS_PATH, include_in_schema=False)
    async def docs(request: Request) -> HTMLResponse:
        root = request.scope.get("root_path", "")
        return HTMLResponse(PAGE.format(title=f"{app.title} API", assets=f"{root}{ASSETS_PATH}",
                                        openapi_url=json.dumps(f"{root}{app.openapi_url}"),
                                        token_key=json.dumps(TOKEN_KEY)))


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
