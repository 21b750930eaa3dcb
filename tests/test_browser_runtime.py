"""The Explorer's runs in a real JupyterLab, in headless Chromium: typed values checked before they
are sent, a costly run waiting for "run anyway", and Stop."""

from __future__ import annotations

import time

import pytest
from _lab import SCREENSHOTS, forget_workspaces, open_notebook, run_all_cells, stop_kernels, write_notebook

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# Cheap at k = 4; with stride 1 about 400,000 windows of 48 x 48: tens of seconds, above the budget.
NOTEBOOK = [
    "import torch, torch.nn as nn\nimport farms_viz\ntorch.manual_seed(0)\n"
    "model = nn.Sequential(nn.Linear(512, 512), nn.Linear(512, 256), nn.Linear(256, 512))",
    "explorer = farms_viz.Explorer(model, window=48, windows_per_dim=4, budget_s=1.0)\nexplorer",
]
ROOT = ".farms-viz"
STRIDE = f"{ROOT} input[name='stride']"


@pytest.fixture(scope="module")
def page(_browser, lab):
    """One notebook for the module (a kernel start is slow here); each test sets the state it needs."""
    forget_workspaces(lab)  # JupyterLab would reopen the notebooks of earlier tests beside this one
    write_notebook(lab.root_dir / "runtime.ipynb", NOTEBOOK)
    context = _browser.new_context(viewport={"width": 1400, "height": 2400})
    page = context.new_page()
    page.set_default_timeout(60_000)
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    open_notebook(page, lab, "runtime.ipynb")
    run_all_cells(page)
    page.wait_for_selector(f"{ROOT} .fv-chart[data-chart='alpha_by_layer'][data-rendered='true'] .mark-symbol path",
                           timeout=120_000)
    _wait_idle(page)
    yield page
    context.close()
    stop_kernels(lab, "runtime.ipynb")


def _wait_idle(page) -> None:
    page.wait_for_function("() => !document.querySelector('.farms-viz').classList.contains('fv-running')",
                           timeout=120_000)


def _version(page) -> int:
    return int(page.get_attribute(ROOT, "data-data-version") or 0)


def _points(page) -> list[str]:
    """The alpha-per-layer chart's points, once every chart drew the newest rows."""
    page.wait_for_function("""() => { const root = document.querySelector('.farms-viz');
        const v = Number(root.dataset.dataVersion || 0);
        return [...root.querySelectorAll('.fv-chart')].every((c) => Number(c.dataset.version) === v); }""")
    points = f"{ROOT} .fv-chart[data-chart='alpha_by_layer'] .mark-symbol.role-mark path"
    return sorted(page.eval_on_selector_all(points, "paths => paths.map(p => p.getAttribute('transform'))"))


def _type_stride(page, text: str) -> None:
    field = page.locator(STRIDE)
    field.fill(text)
    field.press("Tab")  # leaving the field commits it (a change event), as a person does


def _reset_stride(page) -> None:
    if page.locator(STRIDE).input_value() != "" or page.get_attribute(ROOT, "data-waiting") == "true":
        _type_stride(page, "")
        page.wait_for_function("() => document.querySelector('.farms-viz .fv-results-for').textContent"
                               ".includes('k 4') && document.querySelector('.farms-viz').dataset.waiting !== 'true'")
        _wait_idle(page)


def test_a_stride_of_2_5_or_0_typed_in_the_field_shows_an_error_and_runs_nothing(page):
    _reset_stride(page)
    version, status = _version(page), page.inner_text(f"{ROOT} .fv-status-text")
    error = page.locator(f"{ROOT} .fv-field:has(input[name='stride']) .fv-field-error")
    for typed, message in (("2.5", "stride must be an integer >= 1; got 2.5"),
                           ("0", "stride must be an integer >= 1 (or leave it empty")):
        _type_stride(page, typed)
        assert error.is_visible() and message in error.inner_text()
        assert "fv-invalid" in page.get_attribute(STRIDE, "class")
        page.wait_for_timeout(1500)  # anything sent would have started a run by now
        assert page.locator(STRIDE).input_value() == typed  # not rounded, not clamped, not replaced
        assert error.is_visible()
        assert _version(page) == version and page.inner_text(f"{ROOT} .fv-status-text") == status
        assert "fv-running" not in page.get_attribute(ROOT, "class")
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "explorer_invalid_stride.png"))
    _type_stride(page, "")
    assert not error.is_visible()


def test_a_run_estimated_above_the_budget_waits_for_run_anyway(page):
    _reset_stride(page)
    version = _version(page)
    _type_stride(page, "1")
    page.wait_for_selector(f"{ROOT}[data-waiting='true']")
    run = page.locator(f"{ROOT} button[name='run_anyway']")
    assert run.is_visible() and run.inner_text() == "run anyway"
    estimate = page.inner_text(f"{ROOT} .fv-estimate")
    assert "above the 1 s budget" in estimate and "windows" in estimate
    assert "budget" in page.inner_text(f"{ROOT} .fv-status-text")
    page.wait_for_timeout(1500)
    assert "fv-running" not in page.get_attribute(ROOT, "class") and _version(page) == version  # nothing ran
    assert "window 48, Q 1.00, k 4" in page.inner_text(f"{ROOT} .fv-results-for")
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "explorer_over_budget.png"))
    run.click()
    page.wait_for_selector(f"{ROOT}.fv-running")
    page.wait_for_function("() => /computing .*windows/.test(document.querySelector('.farms-viz .fv-status-text')"
                           ".textContent)", timeout=60_000)
    page.locator(f"{ROOT} button[name='stop']").click()
    _wait_idle(page)


def test_stop_during_a_long_run_is_idle_within_a_second_with_the_previous_results_kept(page):
    _reset_stride(page)
    points = _points(page)
    _type_stride(page, "1")
    page.wait_for_selector(f"{ROOT}[data-waiting='true']")
    page.locator(f"{ROOT} button[name='run_anyway']").click()
    # windows are counted within the first layer: progress moves before any layer ends
    page.wait_for_function("() => /layer 0\\/3 · [1-9][\\d,]*\\/[\\d,]+ windows/.test("
                           "document.querySelector('.farms-viz .fv-status-text').textContent)", timeout=60_000)
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "explorer_long_run.png"))
    stop = page.locator(f"{ROOT} button[name='stop']")
    started = time.perf_counter()
    stop.click()
    _wait_idle(page)
    page.wait_for_function("() => document.querySelector('.farms-viz .fv-status-text').textContent"
                           ".startsWith('stopped')")
    assert time.perf_counter() - started < 1.0
    assert "window 48, Q 1.00, k 4, median fit" in page.inner_text(f"{ROOT} .fv-status-text")
    page.wait_for_timeout(1000)
    # the charts show the previous results (a provisional stand-in shown meanwhile gave way to them)
    assert _points(page) == points and page.get_attribute(ROOT, "data-provisional") == "false"
    assert "window 48, Q 1.00, k 4" in page.inner_text(f"{ROOT} .fv-results-for")
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "explorer_stopped.png"))
    # the worker is free at once: back to the grid, a result computed before shows without a run
    _type_stride(page, "")
    page.wait_for_function("() => /^3 layers in [\\d.]+ s/.test(document.querySelector('.farms-viz .fv-status-text')"
                           ".textContent)", timeout=30_000)
    assert page.locator(f"{ROOT} .fv-field.fv-stale").count() == 0
