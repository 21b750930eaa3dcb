"""The notebooks run top to bottom: headless with nbclient, and with Run All in a real JupyterLab."""

from __future__ import annotations

import json
import os
import shutil
import time
import urllib.request
from pathlib import Path

import pytest
from _lab import SCREENSHOTS, open_notebook

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = ROOT / "notebooks"
# The README's screenshot is regenerated only when asked (FARMS_VIZ_UPDATE_DOCS=1): tests never
# rewrite tracked files.
DOCS_SCREENSHOT = ROOT / "docs" / "explorer.png"
UPDATE_DOCS = os.environ.get("FARMS_VIZ_UPDATE_DOCS") == "1"

# notebook -> (Explorer widgets, at least this many altair charts drawn as SVG outputs)
EXPECTED = {
    "01_aspect_ratio_bias.ipynb": (1, 4),
    "02_explore_a_trained_model.ipynb": (2, 2),
    "03_tune_before_pruning.ipynb": (0, 4),
    "04_watch_training.ipynb": (1, 5),
}
CHARTS_PER_EXPLORER = 3  # alpha per layer, alpha vs aspect ratio, spectrum
WALL_TIME_LIMIT = 300.0  # seconds per notebook, on a CPU
CELL_TIMEOUT = 240  # seconds


def test_every_notebook_is_listed():
    assert sorted(p.name for p in NOTEBOOKS.glob("*.ipynb")) == sorted(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_is_stored_without_outputs(name):
    nbformat = pytest.importorskip("nbformat")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    nbformat.validate(notebook)
    assert notebook.metadata.kernelspec.name == "python3"
    for cell in notebook.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, f"{name}: clear the outputs before committing"


def _problems(notebook) -> list[str]:
    """Error outputs, tracebacks on stderr, and charts that would need a CDN to draw."""
    found = []
    for index, cell in enumerate(notebook.cells):
        for output in cell.get("outputs", []):
            if output.output_type == "error":
                found.append(f"cell {index}: {output.ename}: {output.evalue}")
            elif output.output_type == "stream" and output.name == "stderr" and "Traceback" in output.text:
                found.append(f"cell {index}: traceback on stderr:\n{output.text[-1500:]}")
            elif "cdn.jsdelivr.net" in str(output.get("data", {}).get("text/html", "")):
                found.append(f"cell {index}: an HTML chart that loads vega from a CDN (offline it stays blank)")
    return found


PROBE = "FARMS_VIZ_PROBE "


def _probe_cell(expression: str) -> str:
    """Code for one more cell, run after the notebook's own: prints ``expression`` as JSON (and the
    kernel's CPU seconds, its children's included), for the checks below."""
    return ("import json as _json, resource as _resource\n"
            "_cpu = sum(getattr(_resource.getrusage(who), f) for who in (_resource.RUSAGE_SELF, "
            "_resource.RUSAGE_CHILDREN) for f in ('ru_utime', 'ru_stime'))\n"
            f"print({PROBE!r} + _json.dumps({{'cpu_seconds': _cpu, **({expression})}}, default=float))")


def _check_watch_training(found: dict) -> None:
    """Notebook 04: the Monitor recorded every epoch, compare() saw training move every alpha, and both
    learning-rate arms trained the digits MLP on every seed."""
    epochs = found["epochs"]
    assert found["steps"] == list(range(epochs + 1))  # the initialisation and every epoch
    assert found["rows_per_step"] == [found["layers"] * 2] * (epochs + 1)  # every layer, both methods
    assert len(found["delta"]) == found["layers"] * 2 and all(abs(d) > 1e-3 for d in found["delta"])
    assert found["monitor_vs_compare"] < 1e-9  # compare() and the Monitor read the same weights alike
    runs = found["runs"]
    arms = {run["arm"] for run in runs}
    assert {"fixed", "TempBalance (FARMS)"} <= arms and len(found["seeds"]) >= 3
    assert sorted((run["arm"], run["seed"]) for run in runs) == sorted(
        (arm, seed) for arm in arms for seed in found["seeds"])  # same seeds in every arm
    for run in runs:
        assert run["accuracy"] > 0.9 and 0 < run["loss"] < 0.5, run
    by_arm = {arm: [(r["seed"], r["loss"]) for r in sorted(runs, key=lambda r: r["seed"]) if r["arm"] == arm]
              for arm in arms}
    assert by_arm["TempBalance (FARMS)"] != by_arm["fixed"]  # the per-layer rates changed the training
    assert all(0.5 - 1e-9 <= r <= 1.5 + 1e-9 for r in found["rate_ratios"])  # TempBalance's 0.5x..1.5x


# notebook -> (what its probe cell prints, the check of it)
PROBES = {
    "04_watch_training.ipynb": (
        "{'epochs': EPOCHS, 'steps': monitor.steps, 'rows_per_step': history.groupby('step').size().tolist(), "
        "'layers': history.layer.nunique(), 'delta': delta['delta'].tolist(), 'monitor_vs_compare': gap, "
        "'runs': runs.to_dict('records'), 'seeds': SEEDS, 'rate_ratios': logs['ratio'].tolist()}",
        _check_watch_training),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_top_to_bottom(name, tmp_path):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    if name in PROBES:  # one more cell, after the notebook's last (which runs whatever it shows)
        notebook.cells.append(nbformat.v4.new_code_cell(_probe_cell(PROBES[name][0])))
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT, allow_errors=True,
                                     resources={"metadata": {"path": str(tmp_path)}})
    started = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - started
    print(f"{name}: {seconds:.1f} s")
    if name in PROBES:
        probe = notebook.cells.pop()
        printed = "".join(o.get("text", "") for o in probe.outputs if o.output_type == "stream")
        assert PROBE in printed, f"{name}: the probe cell printed no results: {probe.outputs}"
        found = json.loads(printed.split(PROBE, 1)[1])
        print(f"{name}: {found['cpu_seconds']:.1f} CPU seconds in the kernel and its children")
        PROBES[name][1](found)
    assert not _problems(notebook), "\n".join(_problems(notebook))
    svg = sum("image/svg+xml" in output.get("data", {})
              for cell in notebook.cells for output in cell.get("outputs", []))
    assert svg >= EXPECTED[name][1]
    assert seconds < WALL_TIME_LIMIT, f"{name} took {seconds:.0f} s (limit {WALL_TIME_LIMIT:.0f} s on a CPU)"


# ---- in a real JupyterLab ----------------------------------------------------------------

ERRORS_JS = """() => [...document.querySelectorAll(
        '.jp-OutputArea-output[data-mime-type="application/vnd.jupyter.stderr"]')]
    .map((e) => e.textContent).filter((t) => /Traceback|Error/.test(t))"""
RENDERED_CHARTS_JS = """() => [...document.querySelectorAll('.farms-viz')].map((root) =>
    [...root.querySelectorAll('.fv-chart')].filter((c) => c.dataset.rendered === 'true'
        && c.querySelector('svg, canvas')).length)"""

SVG_OUTPUT = ".jp-OutputArea-output[data-mime-type='image/svg+xml']"
# JupyterLab shows an SVG output as an <img>: count the ones that decoded to a picture
DRAWN_SVG_OUTPUTS_JS = f"""() => [...document.querySelectorAll("{SVG_OUTPUT}")].filter((output) =>
    [...output.querySelectorAll('img')].some((img) => img.complete && img.naturalWidth > 0)
    || output.querySelector('svg')).length"""


def _wait_for_explorers(page, count: int, timeout: float = 120_000) -> None:
    """Every Explorer has drawn its charts and finished its last analysis."""
    page.wait_for_function(
        f"""() => {{ const roots = [...document.querySelectorAll('.farms-viz')];
                    return roots.length === {count} && roots.every((root) =>
                      !root.classList.contains('fv-running') &&
                      [...root.querySelectorAll('.fv-chart')].filter((c) => c.dataset.rendered === 'true'
                        && c.querySelector('svg, canvas')).length === {CHARTS_PER_EXPLORER}); }}""",
        timeout=timeout)


def _api(lab, method: str, path: str):
    request = urllib.request.Request(f"{lab.url}{path}?token={lab.token}", method=method)
    with urllib.request.urlopen(request, timeout=30) as response:
        body = response.read()
    return json.loads(body) if body else None


@pytest.fixture
def fresh_lab(lab):
    """The shared server with no saved workspace (JupyterLab would reopen the notebooks of earlier
    tests as hidden tabs) and, afterwards, no kernel left running."""
    for workspace in _api(lab, "GET", "lab/api/workspaces").get("workspaces", {}).get("ids", []):
        _api(lab, "DELETE", f"lab/api/workspaces/{workspace}")
    yield lab
    for session in _api(lab, "GET", "api/sessions"):
        _api(lab, "DELETE", f"api/sessions/{session['id']}")


def _run_all_cells(page, timeout: float) -> None:
    """Run > Run All Cells, then wait until every code cell shows its execution count."""
    started = """() => [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')]
                     .some((e) => /\\[(\\*|\\d+)\\]/.test(e.textContent))"""
    for attempt in range(3):  # a click on a menu that is still settling can be lost: retry
        page.locator(".lm-MenuBar-itemLabel", has_text="Run").first.click()
        page.locator(".lm-Menu-itemLabel").get_by_text("Run All Cells", exact=True).click()
        try:
            page.wait_for_function(started, timeout=20_000)
            break
        except Exception:
            if attempt == 2:
                raise
            page.keyboard.press("Escape")
    # markdown cells have an empty prompt: look at code cells only
    page.wait_for_function(
        """() => { const p = [...document.querySelectorAll('.jp-CodeCell .jp-InputPrompt')];
                   return p.length > 0 && p.every((e) => /\\[\\d+\\]/.test(e.textContent)); }""",
        timeout=timeout)


@pytest.mark.browser
@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_run_all_in_jupyterlab(name, fresh_lab, browser_page):
    page, lab = browser_page, fresh_lab
    shutil.copy(NOTEBOOKS / name, lab.root_dir / name)
    open_notebook(page, lab, name)
    stem = name.removesuffix(".ipynb")
    started = time.perf_counter()
    try:
        _run_all_cells(page, timeout=WALL_TIME_LIMIT * 1000)
    except Exception:
        page.screenshot(path=str(SCREENSHOTS / f"{stem}_FAILED.png"))
        raise
    seconds = time.perf_counter() - started
    print(f"{name}: Run All took {seconds:.1f} s in JupyterLab")

    assert page.evaluate(ERRORS_JS) == []
    assert page.locator(".jp-OutputArea-output[data-mime-type='application/vnd.jupyter.error']").count() == 0
    explorers, charts = EXPECTED[name]
    _wait_for_explorers(page, explorers)
    assert page.evaluate(RENDERED_CHARTS_JS) == [CHARTS_PER_EXPLORER] * explorers
    assert page.evaluate(DRAWN_SVG_OUTPUTS_JS) >= charts
    assert page.locator(".farms-viz .fv-error:not([hidden])").count() == 0
    offline = ("http://127.0.0.1", "ws://127.0.0.1", "data:", "blob:", "about:")
    assert [url for url in page.requested_urls if not url.startswith(offline)] == []

    roots = page.locator(".farms-viz")
    for index in range(explorers):
        roots.nth(index).scroll_into_view_if_needed()
        roots.nth(index).screenshot(path=str(SCREENSHOTS / f"{stem}_explorer_{index + 1}.png"))
    charts_drawn = page.locator(SVG_OUTPUT)
    for index in range(charts_drawn.count()):
        charts_drawn.nth(index).scroll_into_view_if_needed()
        charts_drawn.nth(index).screenshot(path=str(SCREENSHOTS / f"{stem}_chart_{index + 1}.png"))
    # the page as a reader sees it: the first Explorer, or else the last chart, in view
    (roots.first if explorers else page.locator(SVG_OUTPUT).last).scroll_into_view_if_needed()
    page.screenshot(path=str(SCREENSHOTS / f"{stem}.png"))
    if name.startswith("01_"):
        roots.first.screenshot(path=str(DOCS_SCREENSHOT if UPDATE_DOCS else SCREENSHOTS / "explorer_readme.png"))
