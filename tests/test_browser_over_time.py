"""Explorer(monitor) and Explorer({name: model}) in a real JupyterLab (headless Chromium): the time
view draws every recorded step, the step slider scrubs the other panels, the model comparison draws."""

from __future__ import annotations

import json
import re

import pytest
from _lab import SCREENSHOTS, forget_workspaces, open_notebook, run_all_cells, stop_kernels, write_notebook
from test_browser_explorer import ALPHA, ROOT, SPECTRUM

pytestmark = [pytest.mark.browser, pytest.mark.slow]

STEPS, LAYERS = 5, 3
TRAIN = [
    "import torch, torch.nn as nn\nimport farms_viz\ntorch.manual_seed(0)\n"
    "model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 32))\n"
    "monitor = farms_viz.Monitor(model, window=16, windows_per_dim=3, background='thread', when_busy='wait')",
    "explorer = farms_viz.Explorer(monitor)\nexplorer",
    # training runs after the Explorer is on screen: it must follow live
    "optimizer = torch.optim.SGD(model.parameters(), lr=0.5)\n"
    f"for step in range({STEPS}):\n"
    "    model(torch.randn(32, 64)).square().mean().backward()\n"
    "    optimizer.step(); optimizer.zero_grad()\n"
    "    monitor.step(step * 100)\n"
    "monitor.wait(); explorer.wait()\nprint('trained', monitor.steps)",
]
COMPARE = [
    "import copy, torch, torch.nn as nn\nimport farms_viz\ntorch.manual_seed(0)\n"
    "base = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 96), nn.Linear(96, 32), nn.Linear(32, 64))\n"
    "tuned = copy.deepcopy(base)\n"
    "with torch.no_grad():\n"
    "    tuned[1].weight.mul_(2).add_(torch.randn(96, 64))\n"
    "    tuned[3].weight.add_(0.5 * torch.randn(64, 32))",
    "explorer = farms_viz.Explorer({'base': base, 'tuned': tuned}, window=16, windows_per_dim=3)\nexplorer",
]
TIMELINE = ".farms-viz .fv-chart[data-chart='timeline']"
MODELS_ALPHA = ".farms-viz .fv-chart[data-chart='models_alpha']"
MODELS_DELTA = ".farms-viz .fv-chart[data-chart='models_delta']"
MODELS_SPECTRA = ".farms-viz .fv-chart[data-chart='models_spectra']"
POINTS = f"{TIMELINE} [class*=time_layer_points] path"  # the layer panel's points (mark name + a suffix)
# JS: the transforms of the marks a selector finds, as JSON
TRANSFORMS = "(s) => JSON.stringify([...document.querySelectorAll(s)].map(p => p.getAttribute('transform')))"


@pytest.fixture
def run_notebook(browser_page, lab):
    """Write, open and run a notebook alone (no earlier notebook reopened beside it); its kernel
    is stopped afterwards."""
    names = []

    def run(name: str, cells: list[str]):
        forget_workspaces(lab)
        write_notebook(lab.root_dir / name, cells)
        names.append(name)
        open_notebook(browser_page, lab, name)
        run_all_cells(browser_page)
        return browser_page

    yield run
    for name in names:
        stop_kernels(lab, name)


def _layer_points(page) -> list[str]:
    """The time view's layer panel: one symbol per recorded step and layer (the chosen method)."""
    return page.eval_on_selector_all(POINTS, "paths => paths.map(p => p.getAttribute('transform'))")


def _alpha_points(page) -> list[str]:
    return sorted(page.eval_on_selector_all(f"{ALPHA} .mark-symbol.role-mark path",
                                            "paths => paths.map(p => p.getAttribute('transform'))"))


def test_the_time_view_follows_training_and_the_step_slider_scrubs_the_panels(run_notebook):
    page = run_notebook("over_time.ipynb", TRAIN)
    page.wait_for_function(f"(n) => document.querySelector(\"{ROOT} .fv-timeline\")?.dataset.steps === String(n)",
                           arg=STEPS, timeout=90_000)
    page.wait_for_function("([s, n]) => document.querySelectorAll(s).length === n", arg=[POINTS, STEPS * LAYERS],
                           timeout=60_000)
    page.wait_for_selector(f"{ALPHA}[data-rendered='true'] .mark-symbol path", timeout=60_000)
    page.wait_for_selector(f"{SPECTRUM}[data-rendered='true'] .mark-rect path", timeout=60_000)
    assert len(set(_layer_points(page))) == STEPS * LAYERS  # one point per recorded step and layer
    timeline = page.locator(f"{ROOT} .fv-timeline")
    assert timeline.get_attribute("data-step") == str((STEPS - 1) * 100)  # it followed the newest step
    assert page.locator(f"{ROOT} input[name='follow_latest']").is_checked()
    assert page.locator(f"{ROOT} input[name='window']").is_disabled()  # the Monitor's parameters
    page.wait_for_function(f"() => !document.querySelector('{ROOT}').classList.contains('fv-running')")
    page.wait_for_timeout(300)
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "over_time_newest.png"))

    alphas, spectrum = _alpha_points(page), page.inner_html(f"{SPECTRUM} svg.marks")
    table = page.inner_text(f"{ROOT} .fv-table tbody")
    slider = page.locator(f"{ROOT} input[name='step']")
    slider.focus()
    slider.press("Home")  # the first recorded step
    page.wait_for_function(f"() => document.querySelector(\"{ROOT} .fv-timeline\").dataset.step === '0'")
    page.wait_for_function(f"(t) => document.querySelector(\"{ROOT} .fv-table tbody\").innerText !== t", arg=table)
    page.wait_for_function("([s, a]) => JSON.stringify([...document.querySelectorAll(s)]"
                           ".map(p => p.getAttribute('transform')).sort()) !== a",
                           arg=[f"{ALPHA} .mark-symbol.role-mark path", json.dumps(alphas, separators=(",", ":"))])
    page.wait_for_function(f"(s) => document.querySelector(\"{SPECTRUM} svg.marks\").innerHTML !== s", arg=spectrum)
    assert not page.locator(f"{ROOT} input[name='follow_latest']").is_checked()  # the user moved it
    assert "step 0" in page.inner_text(f"{ROOT} .fv-header")
    assert len(set(_layer_points(page))) == STEPS * LAYERS  # the time view keeps every step
    page.wait_for_timeout(300)
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "over_time_step_0.png"))
    # the other method in the time view: the layer panel redraws from the same rows
    before = _layer_points(page)
    page.locator(f"{ROOT} .fv-timeline button[value='esd']").click()
    page.wait_for_function(f"([s, b]) => ({TRANSFORMS})(s) !== b",
                           arg=[POINTS, json.dumps(before, separators=(",", ":"))])
    assert len(set(_layer_points(page))) == STEPS * LAYERS


def _count(page, selector: str) -> int:
    return page.locator(selector).count()


def test_the_model_comparison_draws_both_models_the_delta_and_the_spectra(run_notebook):
    page = run_notebook("compare.ipynb", COMPARE)
    page.wait_for_selector(f"{MODELS_ALPHA}[data-rendered='true'] .mark-symbol path", timeout=90_000)
    page.wait_for_selector(f"{MODELS_DELTA}[data-rendered='true'] .mark-rect path", state="attached",
                           timeout=60_000)  # (unchanged layers: zero-width bars)
    page.wait_for_selector(f"{MODELS_SPECTRA}[data-rendered='true'] .mark-line path", timeout=60_000)
    page.wait_for_selector(f"{ALPHA}[data-rendered='true'] .mark-symbol path", timeout=60_000)
    assert _count(page, f"{MODELS_ALPHA} .mark-symbol.role-mark path") == 2 * 4  # 4 layers x 2 models (FARMS)
    assert _count(page, f"{MODELS_DELTA} .mark-rect.role-mark path") == 4  # one bar per layer
    assert _count(page, f"{MODELS_SPECTRA} .mark-line.role-mark path") == 2  # one curve per model
    # the delta bars: non-zero exactly on the changed layers (1 and 3), largest increase on top
    bars = page.eval_on_selector_all(f"{MODELS_DELTA} .mark-rect.role-mark path",
                                     "ps => ps.map(p => [p.getAttribute('aria-label'), p.getAttribute('d')])")
    found = sorted((float(re.search(r"M[-\d.]+,([-\d.]+)", d).group(1)), re.search(r"layer: (\w+)", label).group(1),
                    float(re.search(r"delta: ([-+\d.]+)", label.replace("\u2212", "-")).group(1))) for label, d in bars)
    assert {layer for _, layer, delta in found if delta != 0} == {"1", "3"}
    assert [delta for _, _, delta in found] == sorted((delta for _, _, delta in found), reverse=True)
    page.wait_for_function(f"() => !document.querySelector('{ROOT}').classList.contains('fv-running')")
    page.wait_for_timeout(300)
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "compare_base.png"))
    # the model picker: the single-model panels show the tuned model
    table = page.inner_text(f"{ROOT} .fv-table tbody")
    page.locator(f"{ROOT} .fv-models button[value='tuned']").click()
    page.wait_for_function(f"() => document.querySelector(\"{ROOT} .fv-models\").dataset.shownModel === 'tuned'")
    page.wait_for_function(f"(t) => document.querySelector(\"{ROOT} .fv-table tbody\").innerText !== t", arg=table)
    # a layer picked in the comparison overlays that layer's spectra
    spectra = page.inner_html(f"{MODELS_SPECTRA} svg.marks")
    page.locator(f"{ROOT} .fv-table tbody tr[data-layer='3']").click()
    page.wait_for_function("([c, s]) => document.querySelector(c).innerHTML !== s",
                           arg=[f"{MODELS_SPECTRA} svg.marks", spectra])
    page.wait_for_timeout(300)
    page.locator(ROOT).screenshot(path=str(SCREENSHOTS / "compare_tuned.png"))
