"""/docs in a real browser: Swagger UI renders the API from the service's own files, offline, and with
LRSERVE_TOKEN set it asks for the token before it loads the guarded OpenAPI document, then sends the
token with the calls tried from the page."""

from __future__ import annotations

from collections.abc import Iterator
from urllib.parse import urlsplit

import pytest

from support import Server, running_server

TOKEN = "d0cs-br0wser"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database = f"sqlite:///{tmp_path_factory.mktemp('docs-browser') / 'lrserve.db'}"
    with running_server(database, env={"LRSERVE_TOKEN": TOKEN}) as server:
        yield server


def test_the_docs_render_every_operation_from_the_service_alone(page, server: Server, console) -> None:
    hosts: set[str] = set()
    page.on("request", lambda request: hosts.add(urlsplit(request.url).netloc))

    page.goto(f"{server.url}/docs")
    page.wait_for_selector(".opblock-summary-path[data-path='/runs/{run_id}/lr']")

    assert page.locator(".opblock").count() >= 15
    assert hosts == {urlsplit(server.url).netloc}, "the page loaded something from another host"
    assert page.locator("#token-form").is_hidden()
    assert console.errors == []


def test_with_a_token_set_the_docs_ask_for_it_first_and_send_it_with_each_call(page, guarded: Server,
                                                                              console) -> None:
    answers: dict[str, int] = {}
    page.on("response", lambda response: answers.update({urlsplit(response.url).path: response.status}))
    sent: list[tuple[str, str | None]] = []
    page.on("request", lambda request: sent.append((request.url, request.headers.get("authorization"))))

    page.goto(f"{guarded.url}/docs")
    page.wait_for_selector("#token-form:not([hidden])")
    assert answers["/openapi.json"] == 401
    assert page.locator(".opblock").count() == 0

    page.fill("#token", TOKEN)
    page.click("#token-form button")
    runs = page.locator(".opblock-summary-path[data-path='/runs']").first
    runs.wait_for()
    assert answers["/openapi.json"] == 200

    runs.click()
    page.click(".opblock.is-open button.try-out__btn")
    with page.expect_response(lambda response: urlsplit(response.url).path == "/runs") as listed:
        page.click(".opblock.is-open button.execute")
    assert listed.value.status == 200
    assert all(TOKEN not in url for url, _ in sent)
    assert [header for url, header in sent if urlsplit(url).path == "/runs"] == [f"Bearer {TOKEN}"]
    assert [error for error in console.errors if "401" not in error] == []  # the browser logs the refused fetch
