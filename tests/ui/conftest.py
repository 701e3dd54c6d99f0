"""Browser fixtures: Debian's chromium driven by Playwright (its own browser downloads are never used), one
browser per module, a fresh page per test that records every console error and uncaught exception.

Screenshots go to a temporary directory, or to docs/screenshots/ with LRSERVE_SCREENSHOTS=1 (to refresh
the README's pictures), so a CI run never dirties the checkout.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

CHROMIUM = "/usr/bin/chromium"
REPO = Path(__file__).resolve().parents[2]

playwright_api = pytest.importorskip("playwright.sync_api", reason="install the dev extra (playwright)")


def ensure_chromium() -> str:
    """Debian's chromium, installed with apt-get when it is missing (CI images start without it)."""
    if not Path(CHROMIUM).exists():
        sudo = [] if os.geteuid() == 0 else ["sudo"]
        subprocess.run([*sudo, "apt-get", "update"], check=True, capture_output=True, timeout=600)
        subprocess.run([*sudo, "apt-get", "install", "-y", "--no-install-recommends", "chromium"],
                       check=True, capture_output=True, timeout=900)
    return CHROMIUM


@pytest.fixture(scope="module")
def browser() -> Iterator[object]:
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=ensure_chromium(), args=["--no-sandbox"])
        try:
            yield launched
        finally:
            launched.close()


@dataclass
class Console:
    """What the page complained about: console errors and uncaught exceptions."""

    errors: list[str] = field(default_factory=list)


@pytest.fixture
def console() -> Console:
    return Console()


@pytest.fixture
def page(browser, console: Console) -> Iterator[object]:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    opened = context.new_page()
    opened.set_default_timeout(15_000)
    opened.on("console", lambda message: message.type == "error" and console.errors.append(message.text))
    opened.on("pageerror", lambda error: console.errors.append(f"uncaught: {error}"))
    try:
        yield opened
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshots(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if os.environ.get("LRSERVE_SCREENSHOTS") == "1":
        target = REPO / "docs" / "screenshots"
        target.mkdir(parents=True, exist_ok=True)
        return target
    return tmp_path_factory.mktemp("screenshots")
