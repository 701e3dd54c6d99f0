"""/docs works offline and with auth on: the page and its assets come from the service itself and need no
token; the OpenAPI document stays guarded, so the page asks for the token before fetching it, and the
document declares the bearer scheme the page sends it with. (tests/ui/ opens the page in a real browser.)"""

from __future__ import annotations

import http.client
import re
from collections.abc import Iterator
from html.parser import HTMLParser
from urllib.parse import urlsplit

import httpx
import pytest

from support import HALVING_PLATEAU, Server, running_server

TOKEN = "d0cs-t0ken"
CONTENT_TYPES = {".js": "text/javascript", ".css": "text/css", ".png": "image/png"}


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database = f"sqlite:///{tmp_path_factory.mktemp('docs') / 'lrserve.db'}"
    with running_server(database, env={"LRSERVE_TOKEN": TOKEN}) as server:
        created = httpx.put(f"{server.url}/runs/docs-secret", json=HALVING_PLATEAU,
                            headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
        assert created.status_code == 201, created.text
        yield server


class References(HTMLParser):
    """Every URL the page makes the browser load: src and href attributes, and `url:` in its script."""

    def __init__(self) -> None:
        super().__init__()
        self.urls: list[str] = []
        self.scripts: list[str] = []
        self._in_script = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.urls += [value for name, value in attrs if name in ("src", "href") and value]
        self._in_script = tag == "script"

    def handle_endtag(self, tag: str) -> None:
        self._in_script = False

    def handle_data(self, data: str) -> None:
        if self._in_script:
            self.scripts.append(data)


def page_references(html: str) -> References:
    parser = References()
    parser.feed(html)
    return parser


@pytest.mark.parametrize("auth", ["off", "on"])
def test_the_docs_page_loads_only_from_the_service_without_a_token(
    server: Server, guarded: Server, auth: str
) -> None:
    served = guarded if auth == "on" else server
    page = httpx.get(f"{served.url}/docs", timeout=10)

    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert re.findall(r"https?://", page.text) == [], "the page names another host: it would not load offline"
    found = page_references(page.text)
    assert any(u.endswith(".js") for u in found.urls) and any(u.endswith(".css") for u in found.urls)
    script = "".join(found.scripts)
    assert 'const OPENAPI_URL = "/openapi.json"' in script and "sessionStorage" in script
    for url in found.urls:
        assert not urlsplit(url).netloc and url.startswith("/docs/static/"), url
        asset = httpx.get(served.url + url, timeout=10)
        assert asset.status_code == 200, (url, asset.status_code)
        suffix = url[url.rindex("."):]
        assert asset.headers["content-type"].startswith(CONTENT_TYPES[suffix]), (url, asset.headers)
        assert len(asset.content) > 500, url


def test_the_swagger_bundle_is_the_real_one(guarded: Server) -> None:
    bundle = httpx.get(f"{guarded.url}/docs/static/swagger-ui-bundle.js", timeout=10)

    assert bundle.status_code == 200
    assert "SwaggerUIBundle" in bundle.text and len(bundle.content) > 1_000_000


def test_with_a_token_set_the_openapi_document_needs_it_and_declares_the_bearer_scheme(guarded: Server) -> None:
    assert httpx.get(f"{guarded.url}/openapi.json", timeout=10).status_code == 401
    served = httpx.get(f"{guarded.url}/openapi.json", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)

    assert served.status_code == 200
    document = served.json()
    assert document["components"]["securitySchemes"]["bearer"]["scheme"] == "bearer"
    assert document["components"]["securitySchemes"]["bearer"]["type"] == "http"
    assert document["security"] == [{"bearer": []}]
    assert document["paths"]["/healthz"]["get"]["security"] == []
    assert "security" not in document["paths"]["/runs/{run_id}/lr"]["get"]  # the global one applies


def test_the_open_docs_paths_open_nothing_else(guarded: Server) -> None:
    """A path that starts like an asset but climbs out of /docs/static/ (sent as is: httpx would resolve
    the dots) must not reach the API without a token; nor may an unknown asset."""
    host, port = urlsplit(guarded.url).netloc.split(":")
    connection = http.client.HTTPConnection(host, int(port), timeout=10)
    try:
        connection.request("GET", "/docs/static/../../runs")
        climbed = connection.getresponse()
        body = climbed.read()
    finally:
        connection.close()

    assert climbed.status in (401, 404), climbed.status
    assert b"docs-secret" not in body
    assert httpx.get(f"{guarded.url}/docs/static/no-such-asset.js", timeout=10).status_code == 404
    assert httpx.get(f"{guarded.url}/runs", timeout=10).status_code == 401
    assert httpx.get(f"{guarded.url}/docs/../runs", timeout=10).status_code == 401  # httpx resolves: /runs


def test_redoc_is_not_served(server: Server) -> None:
    """ReDoc's page would load its script from a CDN, so the service does not offer one."""
    assert httpx.get(f"{server.url}/redoc", timeout=10).status_code == 404
