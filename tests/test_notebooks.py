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
# notebook -> charts of its Explorers beyond those (the time view of an Explorer over a Monitor)
EXTRA_CHARTS = {"04_watch_training.ipynb": 1}
WALL_TIME_LIMIT = 300.0  # seconds per notebook, on a CPU
CELL_TIMEOUT = 240  # seconds
# Notebooks that use the trained language model: it is trained (2-3 minutes on 2 cores) and cached
# once per session before they run, so their time limit measures the notebook, not the training.
NEEDS_LANGUAGE_MODEL = {"03_tune_before_pruning.ipynb"}
CHECK_MARK = "FARMS_VIZ_CHECK "
# Appended to a notebook before the headless run: prints the values its test reads back.
CHECKS = {
    "03_tune_before_pruning.ipynb": """
import json, resource
usage = resource.getrusage(resource.RUSAGE_SELF)
reloaded = lm.load_language_model()
frames = {"layers": per_layer, "blocks": per_block}
print(CHECK_MARK + json.dumps({
    "dense": dense, "target": TARGET, "epsilons": EPSILONS, "windows": TUNE_WINDOWS,
    "vocab": splits.tokenizer.vocab_size,
    "frames": {name: {"rows": len(f), "planned": f.attrs["planned"], "methods": f["method"].tolist(),
                      "groups": [g if isinstance(g, str) else None for g in f["groups"]],
                      "window": [None if w is pd.NA else int(w) for w in f["window"]],
                      "metric": f["metric"].tolist(), "sparsity": f["sparsity"].tolist(), "best": f["best"].tolist()}
               for name, f in frames.items()},
    "results": results.reset_index().to_dict("list"), "winner": winner, "conclusion": conclusion,
    "model_unchanged": all(torch.equal(a, b) for a, b in zip(model.state_dict().values(),
                                                             reloaded.state_dict().values())),
    "sweep_windows": sorted(sweep["window"].unique().tolist()), "sweep_layers": sweep["layer"].nunique(),
    "layers": len(layers), "kernel_cpu_seconds": usage.ru_utime + usage.ru_stime,
    "block_ratios": blocks["sparsity, FARMS per block"].tolist(), "block_alphas": blocks["FARMS alpha (mean)"].tolist(),
    "allocated_means": [float(np.average(rows["sparsity"], weights=rows["params"]))
                        for _, rows in allocations.groupby("method")],
}))
""",
    "04_watch_training.ipynb": """
import json, resource
usage = [resource.getrusage(who) for who in (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)]
print(CHECK_MARK + json.dumps({
    "epochs": EPOCHS, "steps": monitor.steps, "rows_per_step": history.groupby("step").size().tolist(),
    "layers": history.layer.nunique(), "delta": delta["delta"].tolist(), "monitor_vs_compare": gap,
    "runs": runs.to_dict("records"), "seeds": SEEDS, "rate_ratios": logs["ratio"].tolist(),
    "kernel_cpu_seconds": sum(u.ru_utime + u.ru_stime for u in usage),
}, default=float))
""",
}


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


@pytest.fixture(scope="session")
def _language_model_cached():
    """The trained language model in the cache (trained now on a fresh machine: 2-3 minutes)."""
    language_model = pytest.importorskip("farms_viz.sources.language_model")
    language_model.load_language_model()


def _checked_values(notebook) -> dict:
    for output in notebook.cells[-1].get("outputs", []):
        if output.output_type == "stream" and CHECK_MARK in output.text:
            return json.loads(output.text.split(CHECK_MARK, 1)[1])
    raise AssertionError("the check cell printed nothing: " + str(notebook.cells[-1].get("outputs")))


def _assert_tune_notebook(values: dict) -> None:
    """Notebook 03: the tune frames, the held-out results and the conclusion are there and sane."""
    dense, target, vocab = values["dense"], values["target"], values["vocab"]
    assert 1 < dense["calibration"] < 10 and 1 < dense["held-out"] < 10  # a trained model, far below 63
    assert values["sweep_layers"] == values["layers"] == 24
    assert set(values["windows"]) <= set(values["sweep_windows"])
    epsilons, windows = len(values["epsilons"]), len(values["windows"])
    per_layer, per_block = values["frames"]["layers"], values["frames"]["blocks"]
    # one row per setting: uniform once, ESD per epsilon, FARMS per window and epsilon (no uniform per block)
    assert per_layer["rows"] == per_layer["planned"] == 1 + epsilons + windows * epsilons
    assert per_block["rows"] == per_block["planned"] == epsilons + windows * epsilons
    assert per_layer["methods"].count("uniform") == 1 and "uniform" not in per_block["methods"]
    assert set(per_block["groups"]) == {"blocks"} and set(per_layer["groups"]) - {None} == {"layers"}
    for frame in (per_layer, per_block):
        assert sorted(w for w in frame["window"] if w is not None) == sorted(values["windows"] * epsilons)
        assert sum(frame["best"]) == 1 and frame["metric"][frame["best"].index(True)] == min(frame["metric"])
        assert all(dense["calibration"] < m < vocab for m in frame["metric"])  # 80% hurts; the model still reads
        assert all(abs(s - target) < 0.005 for s in frame["sparsity"])
    assert values["allocated_means"] == pytest.approx([target, target], abs=1e-6)  # ESD's and FARMS' ratios
    results = values["results"]
    assert results["allocation"] == ["uniform", "standard ESD per layer", "FARMS per layer",
                                     "standard ESD per block", "FARMS per block"]
    held_out = dict(zip(results["allocation"], results["held-out perplexity"]))
    assert all(dense["held-out"] < p < vocab for p in held_out.values())
    assert all(abs(s - target) < 0.005 for s in results["sparsity"])
    # each allocation's calibration perplexity is its best row's in the frame it came from
    for label, calibration in zip(results["allocation"], results["calibration perplexity"]):
        frame = per_block if label.endswith("per block") else per_layer
        method = {"uniform": "uniform", "standard": "esd", "FARMS": "farms"}[label.split()[0]]
        assert calibration == pytest.approx(min(m for m, k in zip(frame["metric"], frame["methods"]) if k == method))
    assert values["winner"] == min(held_out, key=held_out.get)
    conclusion = values["conclusion"]
    assert f"Best on held-out text: {values['winner']}." in conclusion
    assert all(f"{p:.3f}" in conclusion for p in held_out.values())
    # the per-block ratios: one per block, mean at the target (blocks have equal sizes), the smallest alpha spared most
    ratios, alphas = values["block_ratios"], values["block_alphas"]
    assert len(ratios) == 4 and sum(ratios) / 4 == pytest.approx(target, abs=1e-6)
    assert ratios.index(min(ratios)) == alphas.index(min(alphas))
    assert values["model_unchanged"]  # tune and wanda left the trained model bit-for-bit as loaded


def _assert_watch_training(found: dict) -> None:
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


# notebook -> the check of the values its CHECKS cell printed
CHECKERS = {"03_tune_before_pruning.ipynb": _assert_tune_notebook, "04_watch_training.ipynb": _assert_watch_training}


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_notebook_runs_top_to_bottom(name, tmp_path, request):
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    if name in NEEDS_LANGUAGE_MODEL:
        request.getfixturevalue("_language_model_cached")
    notebook = nbformat.read(NOTEBOOKS / name, as_version=4)
    if name in CHECKS:
        notebook.cells.append(nbformat.v4.new_code_cell(f"CHECK_MARK = {CHECK_MARK!r}\n" + CHECKS[name]))
    client = nbclient.NotebookClient(notebook, kernel_name="python3", timeout=CELL_TIMEOUT, allow_errors=True,
                                     resources={"metadata": {"path": str(tmp_path)}})
    started = time.perf_counter()
    client.execute()
    seconds = time.perf_counter() - started
    print(f"{name}: {seconds:.1f} s")
    assert not _problems(notebook), "\n".join(_problems(notebook))
    svg = sum("image/svg+xml" in output.get("data", {})
              for cell in notebook.cells for output in cell.get("outputs", []))
    assert svg >= EXPECTED[name][1]
    assert seconds < WALL_TIME_LIMIT, f"{name} took {seconds:.0f} s (limit {WALL_TIME_LIMIT:.0f} s on a CPU)"
    if name in CHECKERS:
        values = _checked_values(notebook)
        print(f"{name}: the kernel used {values['kernel_cpu_seconds']:.1f} CPU-seconds")
        CHECKERS[name](values)


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


def _wait_for_explorers(page, count: int, charts: int = CHARTS_PER_EXPLORER, timeout: float = 120_000) -> None:
    """Every Explorer has drawn its ``charts`` charts and finished its last analysis."""
    page.wait_for_function(
        f"""() => {{ const roots = [...document.querySelectorAll('.farms-viz')];
                    return roots.length === {count} && roots.every((root) =>
                      !root.classList.contains('fv-running') &&
                      [...root.querySelectorAll('.fv-chart')].filter((c) => c.dataset.rendered === 'true'
                        && c.querySelector('svg, canvas')).length === {charts}); }}""",
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
def test_notebook_run_all_in_jupyterlab(name, fresh_lab, browser_page, request):
    page, lab = browser_page, fresh_lab
    if name in NEEDS_LANGUAGE_MODEL:
        request.getfixturevalue("_language_model_cached")
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
    _wait_for_explorers(page, explorers, CHARTS_PER_EXPLORER + EXTRA_CHARTS.get(name, 0))
    assert page.evaluate(RENDERED_CHARTS_JS) == [CHARTS_PER_EXPLORER + EXTRA_CHARTS.get(name, 0)] * explorers
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
