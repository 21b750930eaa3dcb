"""The offline HTML report from `farms-viz report`, opened in headless Chromium with no network."""

from __future__ import annotations

import pytest
from _lab import SCREENSHOTS

from farms_viz import cli
from farms_viz.demo import DEMOS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

CHARTS = ("alpha_by_layer", "alpha_vs_aspect", "spectrum")


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    out = tmp_path_factory.mktemp("report") / "report.html"
    assert cli.main(["report", "demo", "--out", str(out), "--window", "64", "--windows-per-dim", "2",
                     "--no-progress"]) == 0
    return out


@pytest.fixture
def offline_page(browser_page):
    """A page that may load file:// URLs only: every other request is aborted and recorded."""
    page = browser_page
    page.blocked_urls = []
    page.page_errors = []

    def only_files(route):
        if route.request.url.startswith("file://"):
            route.continue_()
        else:
            page.blocked_urls.append(route.request.url)
            route.abort()

    page.context.set_offline(True)
    page.route("**/*", only_files)
    page.on("pageerror", lambda error: page.page_errors.append(str(error)))
    return page


def test_report_renders_every_chart_offline(report, offline_page):
    page = offline_page
    page.goto(report.as_uri())
    page.wait_for_selector("body[data-farms-viz-ready='true']")
    for name in CHARTS:
        page.wait_for_selector(f".fv-chart[data-chart='{name}'][data-rendered='true'] svg .role-mark",
                               state="attached")  # the first mark may be an empty layer (no rules)
    charts = page.eval_on_selector_all(".fv-chart", "els => els.map(e => [e.dataset.chart, e.dataset.rendered])")
    assert sorted(charts) == sorted([name, "true"] for name in CHARTS)  # every chart the page has
    points = page.locator(".fv-chart[data-chart='alpha_by_layer'] .mark-symbol.role-mark path")
    assert points.count() == 2 * len(list(DEMOS["demo"]().children()))  # ESD and FARMS per layer
    assert page.locator(".fv-table tbody tr").count() == 7
    page.screenshot(path=str(SCREENSHOTS / "report.png"), full_page=True)
    assert page.page_errors == []
    assert page.blocked_urls == []
    assert all(url.startswith(("file://", "blob:", "data:")) for url in page.requested_urls)


def test_clicking_a_layer_shows_its_spectrum_offline(report, offline_page):
    page = offline_page
    page.goto(report.as_uri())
    page.wait_for_selector(".fv-chart[data-chart='spectrum'][data-rendered='true'] svg .role-mark", state="attached")
    page.locator(".fv-table tbody tr[data-layer='tall_2048x512']").click()
    page.wait_for_function(
        "() => document.querySelector('.fv-spectrum-title').textContent.includes('tall_2048x512')")
    assert page.blocked_urls == [] and page.page_errors == []
