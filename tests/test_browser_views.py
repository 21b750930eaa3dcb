"""How the Explorer reads in a real JupyterLab (headless Chromium): the page scrolls over charts,
the keyboard selects layers, the spectrum's view options switch, light and dark screenshots."""

from __future__ import annotations

import json

import pytest
from _lab import SCREENSHOTS, open_notebook, run_all_cells, write_notebook
from test_browser_explorer import ALPHA, NOTEBOOK, ROOT, SPECTRUM, _points, _show_tab, _wait_drawn

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAYERS = 6
# the scrolling element of a notebook (JupyterLab 4 windowed notebook; older: the panel itself)
SCROLLER = """(chart) => { let e = document.querySelector(chart);
  while (e && !(e.scrollHeight > e.clientHeight + 4 && /(auto|scroll)/.test(getComputedStyle(e).overflowY))) {
    e = e.parentElement; }
  return e; }"""


def _theme(page, name: str) -> None:
    """Settings > Theme > ``name`` (JupyterLab keeps it for the session's later pages)."""
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel").get_by_text(name, exact=True).click()
    light = "true" if "Light" in name else "false"
    page.wait_for_selector(f"body[data-jp-theme-light='{light}']", state="attached")


@pytest.fixture
def views_page(browser_page, lab):
    write_notebook(lab.root_dir / "views.ipynb", NOTEBOOK)
    open_notebook(browser_page, lab, "views.ipynb")
    run_all_cells(browser_page)
    browser_page.wait_for_selector(f"{ALPHA}[data-rendered='true'] .mark-symbol path", timeout=90_000)
    browser_page.wait_for_selector(f"{SPECTRUM}[data-rendered='true'] .mark-rect path", timeout=90_000)
    _wait_drawn(browser_page)
    if browser_page.get_attribute("body", "data-jp-theme-light") == "false":  # an earlier test chose dark
        _theme(browser_page, "JupyterLab Light")
        browser_page.wait_for_function(
            "() => document.querySelector(\"" + ALPHA + " svg text\").getAttribute('fill') !== '#fff'")
    return browser_page


def _scroll_top(page, chart: str) -> float:
    return page.evaluate(f"(c) => ({SCROLLER})(c).scrollTop", chart)


def _y_labels(page, chart: str) -> list[str]:
    return page.eval_on_selector_all(f"{chart} .role-axis-label text", "ts => ts.map(t => t.textContent)")


def test_wheel_over_a_chart_scrolls_the_page_and_zooms_only_with_ctrl(views_page):
    page = views_page
    page.set_viewport_size({"width": 1400, "height": 900})  # the notebook is taller than the window
    page.locator(ALPHA).scroll_into_view_if_needed()
    page.wait_for_timeout(300)
    labels, top = _y_labels(page, ALPHA), _scroll_top(page, ALPHA)
    box = page.locator(f"{ALPHA} svg.marks").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 3)
    page.mouse.wheel(0, 240)
    page.wait_for_function(f"(t) => ({SCROLLER})(\"{ALPHA}\").scrollTop > t", arg=top)
    assert _y_labels(page, ALPHA) == labels  # the chart did not zoom
    assert page.get_attribute(ALPHA, "data-zoomed") != "true"
    assert page.locator(f"{ROOT} .fv-zoom-hint:visible").count() == 1  # and says how to zoom
    page.screenshot(path=str(SCREENSHOTS / "views_wheel_scrolls.png"))
    # with Ctrl held, the wheel zooms the chart and the page stays
    page.locator(ALPHA).scroll_into_view_if_needed()
    box = page.locator(f"{ALPHA} svg.marks").bounding_box()
    page.mouse.move(box["x"] + box["width"] / 2, box["y"] + box["height"] / 3)
    top = _scroll_top(page, ALPHA)
    page.keyboard.down("Control")
    page.mouse.wheel(0, -240)
    page.keyboard.up("Control")
    page.wait_for_function(f"() => document.querySelector(\"{ALPHA}\").dataset.zoomed === 'true'")
    page.wait_for_function("(l) => JSON.stringify([...document.querySelectorAll("
                           f"\"{ALPHA} .role-axis-label text\")].map(t => t.textContent)) !== l",
                           arg=json.dumps(labels, separators=(",", ":")))
    assert abs(_scroll_top(page, ALPHA) - top) < 2
    # the visible reset control restores the axes
    page.locator(f"{ROOT} .fv-panel-alpha_by_layer .fv-reset-zoom").click()
    page.wait_for_function("(l) => JSON.stringify([...document.querySelectorAll("
                           f"\"{ALPHA} .role-axis-label text\")].map(t => t.textContent)) === l",
                           arg=json.dumps(labels, separators=(",", ":")))
    assert page.get_attribute(ALPHA, "data-zoomed") == "false"


def test_keyboard_selection_of_a_table_row_changes_the_spectrum(views_page):
    page = views_page
    selected = page.get_attribute(ROOT, "data-selected-layer")
    layers = page.eval_on_selector_all(f"{ROOT} .fv-table tbody tr", "rows => rows.map(r => r.dataset.layer)")
    row = page.locator(f"{ROOT} .fv-table tbody tr[tabindex='0']")
    assert row.get_attribute("data-layer") == selected  # the selected row is the table's tab stop
    version = int(page.get_attribute(ROOT, "data-data-version"))
    spectrum_before = page.inner_html(SPECTRUM)
    row.focus()
    key = "ArrowDown" if layers.index(selected) < len(layers) - 1 else "ArrowUp"
    page.keyboard.press(key)
    expected = layers[layers.index(selected) + (1 if key == "ArrowDown" else -1)]
    _wait_drawn(page, version)
    assert page.get_attribute(ROOT, "data-selected-layer") == expected
    assert page.inner_html(SPECTRUM) != spectrum_before
    assert page.evaluate("() => document.activeElement.dataset.layer") == expected  # focus followed
    assert page.locator(f"{ROOT} .fv-table tr.fv-selected").get_attribute("aria-selected") == "true"
    assert expected in page.inner_text(f"{ROOT} .fv-spectrum-title")
    page.locator(f"{ROOT} .fv-panel-table").screenshot(path=str(SCREENSHOTS / "views_table_keyboard.png"))
    # the alpha chart is a tab stop too: the arrow keys step through the layers
    page.locator(ALPHA).focus()
    version = int(page.get_attribute(ROOT, "data-data-version"))
    page.keyboard.press("ArrowLeft")
    _wait_drawn(page, version)
    assert page.get_attribute(ROOT, "data-selected-layer") == layers[layers.index(expected) - 1]


def test_the_spectrum_compares_methods_normalised_raw_or_one_at_a_time(views_page):
    page = views_page
    svg = f"{SPECTRUM} svg.marks"
    normalised = page.inner_html(svg)
    assert "÷ mean" in page.inner_text(SPECTRUM)
    page.locator(f"{ROOT} .fv-spectrum-title").scroll_into_view_if_needed()
    page.locator(f"{ROOT} .fv-panel-spectrum").screenshot(path=str(SCREENSHOTS / "views_spectrum_normalised.png"))
    page.locator(f"{ROOT} button[name='spectrum_units'][value='raw']").click()
    page.wait_for_function(f"(b) => document.querySelector(\"{svg}\").innerHTML !== b", arg=normalised)
    assert "raw eigenvalues" in page.inner_text(SPECTRUM)
    page.locator(f"{ROOT} .fv-panel-spectrum").screenshot(path=str(SCREENSHOTS / "views_spectrum_raw.png"))
    both = page.locator(f"{SPECTRUM} .mark-rect.role-mark path").count()
    page.locator(f"{ROOT} button[name='spectrum_methods'][value='farms']").click()
    page.wait_for_function(f"(n) => document.querySelectorAll(\"{SPECTRUM} .mark-rect.role-mark path\").length < n",
                           arg=both)
    page.locator(f"{ROOT} button[name='spectrum_units'][value='normalised']").click()
    page.wait_for_function(f"() => document.querySelector(\"{SPECTRUM}\").textContent.includes('÷ mean')")
    # the kernel holds the same choice (a synced trait)
    page.locator(f"{ROOT} .fv-panel-spectrum").screenshot(path=str(SCREENSHOTS / "views_spectrum_farms_only.png"))


def _dark(page) -> None:
    _theme(page, "JupyterLab Dark")
    page.wait_for_function("() => document.querySelector(\"" + ALPHA + " svg text\").getAttribute('fill') === '#fff'")


def test_light_and_dark_screenshots(views_page):
    page = views_page
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "views_light.png"))
    _show_tab(page, "allocation")
    page.wait_for_selector(f"{ROOT} .fv-chart[data-chart='allocation'][data-rendered='true'] .mark-rect path")
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "views_light_allocation.png"))
    _show_tab(page, "spectra")
    _dark(page)
    assert len(_points(page, "farms")) == LAYERS
    # the selected point's outline is drawn in the theme's ink, not in near-black
    ink = page.evaluate("() => getComputedStyle(document.querySelector('.farms-viz')).color")
    assert ink != "rgb(31, 31, 31)"
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "views_dark.png"))
    page.locator(f"{ROOT} .fv-panel-spectrum").screenshot(path=str(SCREENSHOTS / "views_dark_spectrum.png"))
    _show_tab(page, "sweep")
    page.locator(f"{ROOT} button[name='run_sweep']").click()
    page.wait_for_selector(f"{ROOT} .fv-chart[data-chart='sweep'][data-rendered='true'] .mark-line.role-mark path",
                           state="attached", timeout=180_000)  # the ESD's mean is a flat line: no height
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "views_dark_sweep.png"))


THEMED = [
    "import altair as alt, pandas as pd\nfrom farms_viz.charts.theme import use_theme\n"
    "alt.renderers.enable('svg')\nmode = use_theme()\nprint('theme', mode)\n"
    "alt.Chart(pd.DataFrame({'x': [1, 2, 3], 'y': [2.1, 3.5, 2.7]})).mark_line(point=True).encode(x='x', y='y')"
    ".properties(title='a notebook chart', width=240, height=120)",
]


def test_notebook_charts_follow_jupyterlabs_dark_theme(browser_page, lab):
    page = browser_page
    write_notebook(lab.root_dir / "themed.ipynb", THEMED)
    open_notebook(page, lab, "themed.ipynb")
    if page.get_attribute("body", "data-jp-theme-light") != "false":
        _theme(page, "JupyterLab Dark")
    page.wait_for_timeout(1500)  # JupyterLab saves the setting
    run_all_cells(page)
    page.wait_for_selector(".jp-OutputArea-output[data-mime-type='image/svg+xml']", timeout=60_000)
    assert "theme dark" in page.inner_text(".jp-OutputArea")
    svg = page.evaluate("""() => {
        const o = document.querySelector(".jp-OutputArea-output[data-mime-type='image/svg+xml']");
        const img = o.querySelector('img'); return img ? decodeURIComponent(img.src) : o.innerHTML; }""")
    assert "#e6e6e6" in svg and "#4D9A57" in svg  # light text on the dark output area; a non-method green line
    page.locator(".jp-Notebook").screenshot(path=str(SCREENSHOTS / "views_dark_notebook_chart.png"))
