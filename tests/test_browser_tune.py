"""The Explorer's Tune tab in a real JupyterLab (headless Chromium): run a tiny tune, see its rows drawn,
apply the best setting and see the window slider move."""

from __future__ import annotations

import re

import pytest
from _lab import SCREENSHOTS, open_notebook, run_all_cells, write_notebook
from test_browser_explorer import ROOT, _show_tab

pytestmark = [pytest.mark.browser, pytest.mark.slow]

NOTEBOOK = [
    "import time, torch, torch.nn as nn\nimport farms_viz\ntorch.manual_seed(0)\n"
    "model = nn.Sequential(nn.Linear(128, 128), nn.ReLU(), nn.Linear(128, 256), nn.ReLU(), nn.Linear(256, 64),\n"
    "                      nn.ReLU(), nn.Linear(64, 10))\n"
    "inputs = torch.randn(512, 128)\n"
    "with torch.no_grad():\n    dense = model(inputs)\n"
    "def output_error(pruned):  # a slow-ish metric, so that rows arrive one by one\n"
    "    time.sleep(0.4)\n"
    "    with torch.no_grad():\n        return float((pruned(inputs) - dense).pow(2).mean())",
    "explorer = farms_viz.Explorer(model, evaluate=output_error, window=48, windows_per_dim=4)\nexplorer",
]
TUNE = f"{ROOT} .fv-tune"
TUNE_WINDOW = f"{ROOT} .fv-chart[data-chart='tune_window']"
TUNE_EPSILON = f"{ROOT} .fv-chart[data-chart='tune_epsilon']"
SETTINGS = 1 + 2 + 2 * 2  # uniform, ESD at two spreads, FARMS at two windows x two spreads


def _rows(page) -> int:
    return int(page.get_attribute(TUNE, "data-rows") or 0)


def test_tune_tab_runs_draws_rows_and_applies_the_best_window(browser_page, lab):
    page = browser_page
    write_notebook(lab.root_dir / "tune.ipynb", NOTEBOOK)
    open_notebook(page, lab, "tune.ipynb")
    run_all_cells(page)
    page.wait_for_selector(f"{ROOT} .fv-tab[data-tab='tune']", timeout=90_000)
    _show_tab(page, "tune")
    assert page.locator(f"{ROOT} .fv-tune-how").is_hidden()  # evaluate= was given
    assert page.input_value(f"{ROOT} select[name='tune_pruner']") == "magnitude"  # no calibration
    page.fill(f"{ROOT} input[name='tune_windows']", "16, 32")
    page.fill(f"{ROOT} input[name='tune_epsilons']", "0.1, 0.3")
    page.locator(f"{ROOT} button[name='run_tune']").click()
    # rows are drawn while the run goes on, with a Stop button
    page.wait_for_function(f"() => Number(document.querySelector(\"{TUNE}\").dataset.rows) >= 2", timeout=60_000)
    running = page.get_attribute(TUNE, "data-running") == "true"
    if running:
        assert _rows(page) < SETTINGS and page.locator(f"{ROOT} button[name='stop_tune']").is_visible()
        assert re.match(r"tune: \d+/7 settings", page.inner_text(f"{ROOT} .fv-tune-status"))
        page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "tune_running.png"))
    page.wait_for_function(f"() => document.querySelector(\"{TUNE}\").dataset.running === 'false'", timeout=60_000)
    assert running, "the rows were only drawn once the run had ended"
    assert _rows(page) == SETTINGS
    assert page.locator(f"{ROOT} .fv-tune-table tbody tr").count() == SETTINGS
    assert page.locator(f"{ROOT} .fv-tune-table tr.fv-best").count() == 1
    assert page.inner_text(f"{ROOT} .fv-tune-status").startswith("7 settings pruned and measured")
    # both charts: FARMS' line through its two windows, the best setting ringed
    page.wait_for_selector(f"{TUNE_WINDOW}[data-rendered='true'] .mark-line.role-mark path", state="attached")
    page.wait_for_selector(f"{TUNE_EPSILON}[data-rendered='true'] .mark-line.role-mark path", state="attached")
    best_method = page.get_attribute(f"{ROOT} .fv-tune-table tr.fv-best", "data-method")
    # FARMS' two windows, and the ring when FARMS is best (otherwise its rule is drawn thicker)
    assert page.locator(f"{TUNE_WINDOW} .mark-symbol.role-mark path").count() == 2 + (best_method == "farms")
    assert "output_error" in page.inner_text(TUNE_WINDOW)  # the metric is named after evaluate
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "tune_done.png"))

    # apply the best FARMS setting: the window slider moves to its window
    page.select_option(f"{ROOT} select[name='tune_apply_from']", "farms")
    best = page.inner_text(f"{ROOT} .fv-tune-best-text")
    window = int(re.search(r"window (\d+)", best).group(1))
    epsilon = float(re.search(r"ε ([\d.]+)", best).group(1))
    assert window in (16, 32) and page.input_value(f"{ROOT} input[name='window']") == "48"
    page.locator(f"{ROOT} button[name='apply_best_tune']").click()
    page.wait_for_function(f"(w) => document.querySelector(\"{ROOT} input[name='window']\").value === String(w)",
                           arg=window, timeout=30_000)
    page.wait_for_function(f"() => document.querySelector(\"{ROOT} .fv-tune-applied\").textContent"
                           ".startsWith('applied: FARMS')", timeout=30_000)
    page.wait_for_function(f"() => !document.querySelector(\"{ROOT}\").classList.contains('fv-running')",
                           timeout=60_000)
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "tune_applied.png"))
    _show_tab(page, "allocation")
    assert float(page.input_value(f"{ROOT} input[name='epsilon']")) == pytest.approx(epsilon)
    assert page.input_value(f"{ROOT} select[name='alphas_from']") == "farms"
    _show_tab(page, "spectra")
    assert page.locator(f"{ROOT} .fv-readout").first.inner_text() == str(window)
    page.wait_for_selector(f"{ROOT} .fv-results-for:not(.fv-stale)")
    assert f"window {window}," in page.inner_text(f"{ROOT} .fv-results-for")
