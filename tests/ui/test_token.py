"""With LRSERVE_TOKEN set, the UI's files load without a token (they hold no data), but the page renders
no data until the user gives the token; then every request carries it as a header, never in a URL."""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest

from support import HALVING_PLATEAU, Server, running_server

TOKEN = "ui-s3cret"
RUN = "guarded-ui-run"


@pytest.fixture(scope="module")
def guarded(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    database = f"sqlite:///{tmp_path_factory.mktemp('ui-auth') / 'lrserve.db'}"
    with running_server(database, env={"LRSERVE_TOKEN": TOKEN}) as server:
        headers = {"Authorization": f"Bearer {TOKEN}"}
        assert httpx.put(f"{server.url}/runs/{RUN}", json=HALVING_PLATEAU, headers=headers).status_code == 201
        yield server


def test_the_ui_files_need_no_token(guarded: Server) -> None:
    assert httpx.get(f"{guarded.url}/ui/").status_code == 200
    assert httpx.get(f"{guarded.url}/ui/js/api.js").status_code == 200
    assert httpx.get(f"{guarded.url}/runs").status_code == 401


def test_nothing_renders_before_the_token_is_given(page, guarded: Server, console) -> None:
    answers: list[tuple[str, int]] = []
    page.on("response", lambda r: "/ui/" not in r.url and answers.append((r.url, r.status)))
    sent: list[tuple[str, str | None]] = []
    page.on("request", lambda r: "/ui/" not in r.url and sent.append((r.url, r.headers.get("authorization"))))

    page.goto(f"{guarded.url}/ui/#/runs")
    page.wait_for_selector("form.token-form")

    assert RUN not in page.content()
    assert answers and all(status == 401 for _, status in answers)

    page.fill("#token", TOKEN)
    page.click("form.token-form button")
    page.wait_for_selector(f"a.run-id:text('{RUN}')")

    assert all(TOKEN not in url for url, _ in sent)
    assert sent[-1][1] == f"Bearer {TOKEN}"
    assert [e for e in console.errors if "401" not in e] == []  # the browser logs each refused request
    page.goto(f"{guarded.url}/ui/#/runs/{RUN}")
    page.wait_for_function("window.lrserveUi.ready === true")
    assert page.locator("h1 .run-id").inner_text() == RUN  # the token lives on in the tab's session


def test_a_wrong_token_is_asked_for_again(page, guarded: Server) -> None:
    page.goto(f"{guarded.url}/ui/#/runs")
    page.fill("#token", "not-it")
    page.click("form.token-form button")

    page.wait_for_selector("text=That token was refused")
    assert RUN not in page.content()
