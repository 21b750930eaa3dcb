"""Shared fixtures: a real JupyterLab server and a headless Chromium page."""

from __future__ import annotations

import pytest
from _lab import SCREENSHOTS, chromium_available, launch_browser, start_lab, stop_lab


@pytest.fixture(scope="session")
def lab(tmp_path_factory):
    """A JupyterLab server for the session: ``.url``, ``.token``, ``.root_dir``."""
    server = start_lab(tmp_path_factory.mktemp("lab"))
    yield server
    stop_lab(server)


@pytest.fixture(scope="session")
def _browser():
    if not chromium_available():
        pytest.skip("no Chromium at /usr/bin/chromium (install it with apt-get install chromium)")
    sync_api = pytest.importorskip("playwright.sync_api", reason="playwright is not installed")
    with sync_api.sync_playwright() as playwright:
        browser = launch_browser(playwright)
        yield browser
        browser.close()


@pytest.fixture
def browser_page(_browser):
    """A fresh 1400x2400 page (tall: element screenshots of a whole widget).

    The requests it makes are listed in ``page.requested_urls``.
    """
    context = _browser.new_context(viewport={"width": 1400, "height": 2400})
    page = context.new_page()
    page.requested_urls = []
    page.on("request", lambda request: page.requested_urls.append(request.url))
    page.set_default_timeout(60_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    yield page
    context.close()
