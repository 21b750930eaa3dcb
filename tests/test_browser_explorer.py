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
    from farms_viz.export import save_html

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
