"""The Explorer in a real JupyterLab, driven in headless Chromium."""

from __future__ import annotations

import pytest
from _lab import SCREENSHOTS, open_notebook, run_all_cells, write_notebook

from farms_viz.charts import METHOD_COLORS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LAYERS = 6
NOTEBOOK = [
    "import torch, torch.nn as nn\nimport farms_viz\ntorch.manual_seed(0)\n"
    "model = nn.Sequential(nn.Linear(128, 128), nn.Linear(128, 256), nn.Linear(256, 64),\n"
    "                      nn.Linear(64, 512), nn.Linear(512, 128), nn.Embedding(1000, 64))",
    "explorer = farms_viz.Explorer(model, window=48, windows_per_dim=4)\nexplorer",
]
ROOT = ".farms-viz"
ALPHA = ".farms-viz .fv-chart[data-chart='alpha_by_layer']"
SPECTRUM = ".farms-viz .fv-chart[data-chart='spectrum']"
ESD_COLOUR = METHOD_COLORS[0]


def _points(page, method: str) -> list[str]:
    """Positions of one method's points in the alpha-per-layer chart (colour tells the method)."""
    points = page.eval_on_selector_all(
        f"{ALPHA} .mark-symbol.role-mark path",
        "paths => paths.map(p => [p.getAttribute('transform'), p.getAttribute('stroke')])")
    return sorted(t for t, stroke in points if (stroke == ESD_COLOUR) == (method == "esd"))


def _wait_drawn(page, after_version: int = 0) -> int:
    """Wait until the kernel is idle and every chart drew the newest rows; returns their version."""
    page.wait_for_function(
        """(after) => { const root = document.querySelector('.farms-viz');
             const version = Number(root.dataset.dataVersion || 0);
             return !root.classList.contains('fv-running') && version > after &&
               [...root.querySelectorAll('.fv-chart')].every((c) => Number(c.dataset.version) === version); }""",
        arg=after_version, timeout=90_000)
    return int(page.get_attribute(ROOT, "data-data-version"))


@pytest.fixture
def explorer_page(browser_page, lab):
    write_notebook(lab.root_dir / "explorer.ipynb", NOTEBOOK)
    open_notebook(browser_page, lab, "explorer.ipynb")
    run_all_cells(browser_page)
    browser_page.wait_for_selector(f"{ALPHA}[data-rendered='true'] .mark-symbol path", timeout=90_000)
    browser_page.wait_for_selector(f"{SPECTRUM}[data-rendered='true'] .mark-rect path", timeout=90_000)
    _wait_drawn(browser_page)
    return browser_page


def test_charts_render_one_mark_per_layer_and_method(explorer_page):
    assert len(_points(explorer_page, "esd")) == LAYERS
    assert len(_points(explorer_page, "farms")) == LAYERS
    assert explorer_page.locator(f"{ROOT} .fv-table tbody tr").count() == LAYERS
    explorer_page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "explorer.png"))
    offsite = [u for u in explorer_page.requested_urls if not u.startswith(("http://127.0.0.1", "ws://127.0.0.1",
                                                                             "data:", "blob:"))]
    assert offsite == []


def test_moving_the_window_slider_changes_the_farms_alphas(explorer_page):
    version = int(explorer_page.get_attribute(ROOT, "data-data-version"))
    esd, farms = _points(explorer_page, "esd"), _points(explorer_page, "farms")
    slider = explorer_page.locator(f"{ROOT} input[name='window']")
    slider.focus()
    for _ in range(16):
        slider.press("ArrowLeft")  # a burst of changes: the debounce sends only the last one
    _wait_drawn(explorer_page, version)
    assert explorer_page.locator(f"{ROOT} .fv-readout").first.inner_text() == "32"
    assert _points(explorer_page, "farms") != farms
    assert _points(explorer_page, "esd") == esd  # the standard ESD does not depend on the window
    explorer_page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "explorer_window_32.png"))


def test_clicking_a_layer_changes_the_spectrum(explorer_page):
    selected = explorer_page.get_attribute(ROOT, "data-selected-layer")
    version = int(explorer_page.get_attribute(ROOT, "data-data-version"))
    spectrum_before = explorer_page.inner_html(SPECTRUM)
    points = explorer_page.locator(f"{ALPHA} .mark-symbol.role-mark path")
    layers = explorer_page.eval_on_selector_all(f"{ROOT} .fv-table tbody tr", "rows => rows.map(r => r.dataset.layer)")
    target = layers.index(selected) - 1 if layers.index(selected) > 0 else 1
    points.nth(2 * target).click(force=True)  # points come in model order, two per layer
    _wait_drawn(explorer_page, version)
    assert explorer_page.get_attribute(ROOT, "data-selected-layer") == layers[target]
    assert explorer_page.inner_html(SPECTRUM) != spectrum_before
    assert explorer_page.locator(f"{ROOT} .fv-table tr.fv-selected").get_attribute("data-layer") == layers[target]
    explorer_page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "explorer_clicked.png"))


def test_exported_html_renders_offline(browser_page, tmp_path):
    import torch
    from torch import nn

    import farms_viz
    from farms_viz.widget.export import save_html

    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 128), nn.Linear(128, 256), nn.LayerNorm(128))
    path = save_html(farms_viz.analyze(model, window=32, progress=False), tmp_path / "report.html")
    browser_page.goto(path.as_uri())
    browser_page.wait_for_selector("body[data-farms-viz-ready='true']")
    browser_page.wait_for_selector(f"{SPECTRUM}[data-rendered='true'] .mark-rect path")
    assert len(_points(browser_page, "farms")) == 2
    assert browser_page.locator(f"{ROOT} tr.fv-skipped").count() == 1
    before = browser_page.inner_html(SPECTRUM)
    browser_page.locator(f"{ROOT} .fv-table tbody tr").nth(0 if browser_page.get_attribute(
        ROOT, "data-selected-layer") != "0" else 1).click()
    browser_page.wait_for_function(f"(b) => document.querySelector(\"{SPECTRUM}\").innerHTML !== b", arg=before)
    browser_page.screenshot(path=str(SCREENSHOTS / "report_html.png"), full_page=True)
    assert all(u.startswith(("file:", "blob:", "data:")) for u in browser_page.requested_urls)


# ----- allocation, sweep, layout, dark theme, Notebook 7 ------------------------------------------
ALLOCATION = ".farms-viz .fv-chart[data-chart='allocation']"
SWEEP = ".farms-viz .fv-chart[data-chart='sweep']"


def _bars(page) -> list[str]:
    """The allocation chart's sparsity bars (their outlines: position and height)."""
    return page.eval_on_selector_all(f"{ALLOCATION} .mark-rect.role-mark path",
                                     "paths => paths.map(p => p.getAttribute('d'))")


def _show_tab(page, name: str) -> None:
    page.locator(f"{ROOT} .fv-tab[data-tab='{name}']").click()
    page.wait_for_selector(f"{ROOT}[data-tab='{name}']")


def test_allocation_bars_follow_the_target_slider(explorer_page):
    page = explorer_page
    _show_tab(page, "allocation")
    page.wait_for_selector(f"{ALLOCATION}[data-rendered='true'] .mark-rect.role-mark path")
    before = _bars(page)
    assert len(before) == 2 * LAYERS  # a bar per layer and method
    version = int(page.get_attribute(ROOT, "data-data-version"))
    slider = page.locator(f"{ROOT} input[name='target']")
    slider.focus()
    for _ in range(10):
        slider.press("ArrowRight")  # 0.70 -> 0.80
    _wait_drawn(page, version)
    page.wait_for_function("(b) => JSON.stringify([...document.querySelectorAll("
                           "\"" + ALLOCATION + " .mark-rect.role-mark path\")].map(p => p.getAttribute('d'))) !== b",
                           arg=__import__("json").dumps(before))
    after = _bars(page)
    assert len(after) == 2 * LAYERS and after != before
    assert "weighted mean sparsity 0.800" in page.inner_text(f"{ROOT} .fv-allocation-note")
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "explorer_allocation.png"))


def test_the_sweep_runs_on_demand_and_marks_the_current_window(explorer_page):
    page = explorer_page
    _show_tab(page, "sweep")
    assert page.locator(f"{SWEEP} svg").count() == 0  # nothing until asked
    page.locator(f"{ROOT} button[name='run_sweep']").click()
    # the standard ESD's mean is flat (it does not depend on the window): a path of no height
    page.wait_for_selector(f"{SWEEP}[data-rendered='true'] .mark-line.role-mark path", state="attached",
                           timeout=180_000)
    # the model's mean alpha per method on top, the picked layer below: three lines, the window marked in both
    assert page.locator(f"{SWEEP} .mark-line.role-mark path").count() == 3
    assert page.locator(f"{SWEEP} .mark-rule.role-mark line").count() >= 2
    assert "6 layers x" in page.inner_text(f"{ROOT} .fv-sweep-status")
    picker = page.locator(f"{ROOT} select[name='sweep_layer']")
    assert picker.locator("option").count() == LAYERS
    before = page.inner_html(SWEEP)
    other = next(v for v in picker.locator("option").all_inner_texts() if v != picker.input_value())
    picker.select_option(other)
    page.wait_for_function(f"(b) => document.querySelector(\"{SWEEP}\").innerHTML !== b", arg=before)
    assert page.get_attribute(ROOT, "data-selected-layer") == other
    assert f"one layer: {other}" in page.inner_text(SWEEP)
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "explorer_sweep.png"))


def _boxes(page, *names: str) -> dict[str, dict]:
    return {name: page.locator(f"{ROOT} .fv-panel-{name}").bounding_box() for name in names}


def _fits(page) -> None:
    """No chart is wider than its panel (widths follow the container)."""
    overflow = page.eval_on_selector_all(
        f"{ROOT} .fv-chart[data-rendered='true']",
        "cs => cs.filter(c => c.offsetWidth > 0).map(c => [c.dataset.chart,"
        " c.querySelector('.vega-embed').getBoundingClientRect().width - c.clientWidth])")
    # a few px: axis labels differ per redraw
    assert [name for name, extra in overflow if extra > 8] == [], overflow


def _resize(page, width: int) -> float:
    """Set the viewport width; wait until the charts were sized for it; returns the widget's width."""
    page.set_viewport_size({"width": width, "height": 2400})
    page.wait_for_timeout(300)
    page.wait_for_function(
        """() => [...document.querySelectorAll('.farms-viz .fv-chart[data-rendered="true"]')]
                 .filter((c) => c.offsetWidth > 0)
                 .every((c) => Math.abs(c.querySelector('.vega-embed').getBoundingClientRect().width
                                        - c.clientWidth) < 14)""",
        timeout=30_000)
    return page.evaluate("() => document.querySelector('.farms-viz').clientWidth")


def test_layout_follows_the_output_width(explorer_page):
    page = explorer_page
    # a 1400 px window with JupyterLab's file browser open: a ~970 px output area, the usual case
    width = _resize(page, 1400)
    assert 850 < width < 1100
    boxes = _boxes(page, "alpha_by_layer", "alpha_vs_aspect", "spectrum", "table")
    assert abs(boxes["alpha_by_layer"]["y"] - boxes["alpha_vs_aspect"]["y"]) < 2  # side by side
    assert boxes["spectrum"]["width"] == pytest.approx(boxes["table"]["width"], abs=2)  # full width
    _fits(page)
    spectrum_svg = page.locator(f"{SPECTRUM} svg.marks").bounding_box()
    assert spectrum_svg["width"] > 0.9 * boxes["spectrum"]["width"] - 30  # log-log and lin-lin fill the row
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / f"explorer_output_{width}px.png"))
    # a wide screen: ~1400 px of output
    width = _resize(page, 1830)
    assert width > 1300
    boxes = _boxes(page, "alpha_by_layer", "alpha_vs_aspect")
    assert abs(boxes["alpha_by_layer"]["y"] - boxes["alpha_vs_aspect"]["y"]) < 2
    _fits(page)
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / f"explorer_output_{width}px.png"))
    # narrow: the panels stack, every chart still fits
    width = _resize(page, 1000)
    boxes = _boxes(page, "alpha_by_layer", "alpha_vs_aspect")
    assert boxes["alpha_vs_aspect"]["y"] > boxes["alpha_by_layer"]["y"] + 100
    _fits(page)
    assert len(_points(page, "farms")) == LAYERS
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / f"explorer_output_{width}px.png"))


def test_dark_theme_from_jupyterlabs_menu(explorer_page):
    page = explorer_page
    page.locator(".lm-MenuBar-itemLabel", has_text="Settings").first.click()
    page.locator(".lm-Menu-itemLabel", has_text="Theme").first.hover()
    page.locator(".lm-Menu-itemLabel").get_by_text("JupyterLab Dark", exact=True).click()
    page.wait_for_selector("body[data-jp-theme-light='false']", state="attached")
    page.wait_for_function("() => document.querySelector(\"" + ALPHA + " svg text\").getAttribute('fill') === '#fff'")
    assert len(_points(page, "farms")) == LAYERS
    background = page.evaluate("() => getComputedStyle(document.querySelector('.farms-viz .fv-panel')).backgroundColor")
    assert background not in ("rgb(255, 255, 255)", "rgba(0, 0, 0, 0)")  # JupyterLab's dark layout colour
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "explorer_dark.png"))
    _show_tab(page, "allocation")
    page.wait_for_selector(f"{ALLOCATION}[data-rendered='true'] .mark-rect.role-mark path")
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "explorer_dark_allocation.png"))


MANY = [
    "import torch, torch.nn as nn\nimport farms_viz\ntorch.manual_seed(0)\n"
    "attention = lambda: nn.ModuleDict({n: nn.Linear(64, 64) for n in ('query', 'key', 'value', 'output')})\n"
    "block = lambda: nn.ModuleDict({'attention': attention(),\n"
    "                              'intermediate': nn.Linear(64, 256), 'output': nn.Linear(256, 64)})\n"
    "encoder = nn.ModuleDict({'layer': nn.ModuleList(block() for _ in range(8))})\n"
    "model = nn.ModuleDict({'embeddings': nn.Embedding(500, 64), 'encoder': encoder})",
    "explorer = farms_viz.Explorer(model, window=32, windows_per_dim=3)\nexplorer",
]
MANY_LAYERS = 1 + 8 * 6


@pytest.fixture(scope="module")
def notebook7(tmp_path_factory):
    from _lab import start_lab, stop_lab

    server = start_lab(tmp_path_factory.mktemp("notebook7"), app="notebook")
    yield server
    stop_lab(server)


def test_many_layers_in_notebook_7(browser_page, notebook7):
    page = browser_page
    page.set_viewport_size({"width": 1100, "height": 2400})
    write_notebook(notebook7.root_dir / "many.ipynb", MANY)
    open_notebook(page, notebook7, "many.ipynb")
    assert "/notebooks/" in page.url and page.locator("#jp-top-panel, .jp-NotebookPanel").count() > 0
    run_all_cells(page)
    page.wait_for_selector(f"{ALPHA}[data-rendered='true'] .mark-symbol path", timeout=120_000)
    _wait_drawn(page)
    assert len(_points(page, "farms")) == MANY_LAYERS
    labels = page.eval_on_selector_all(f"{ALPHA} .role-axis[aria-label^='X-axis'] .role-axis-label text",
                                       "ts => ts.map(t => t.textContent)")
    layer_labels = [t for t in labels if "." in t or t.startswith("\u2026")]
    assert 0 < len(layer_labels) <= MANY_LAYERS  # names shortened and thinned, never overprinted
    _fits(page)
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "explorer_notebook7_many_layers.png"))
    _show_tab(page, "allocation")
    page.locator(f"{ROOT} input[name='groups']").check()
    page.wait_for_function(
        "() => document.querySelector('.farms-viz .fv-allocation-note').textContent.includes('0.700')")
    page.wait_for_selector(f"{ALLOCATION}[data-rendered='true'] .mark-rect.role-mark path")
    page.wait_for_timeout(800)
    assert page.locator(f"{ALLOCATION} .mark-rect.role-mark path").count() == 2 * MANY_LAYERS
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "explorer_notebook7_allocation_grouped.png"))
