"""The Explorer, driven as its front end drives it: by setting synced traits."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import torch
from torch import nn

import farms_viz
from farms_viz.engine import analysis as engine
from farms_viz.widget import Explorer
from farms_viz.widget import explorer as widget_module

REPO = Path(__file__).resolve().parent.parent


def _model(seed: int) -> nn.Module:
    torch.manual_seed(seed)  # fresh weights: nothing in the spectrum cache yet
    return nn.Sequential(nn.Linear(96, 96), nn.Linear(96, 192), nn.Linear(192, 48), nn.LayerNorm(48))


def _farms_window(explorer: Explorer) -> set[str]:
    return {row["window"] for row in explorer._datasets["layers"] if row["method"] == "farms"}


@pytest.fixture
def counted(monkeypatch):
    """Counts of standard-ESD and FARMS eigenvalue computations."""
    calls = {"esd": 0, "farms": 0}

    def counting(name, function):
        def wrapped(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)
        return wrapped

    monkeypatch.setattr(engine, "esd_eigenvalues", counting("esd", engine.esd_eigenvalues))
    monkeypatch.setattr(engine, "farms_window_eigenvalues", counting("farms", engine.farms_window_eigenvalues))
    return calls


def test_a_window_change_reruns_farms_and_not_the_esd(counted):
    explorer = Explorer(_model(1), window=32, windows_per_dim=3)
    first = explorer.wait()
    assert counted == {"esd": 3, "farms": 3}
    explorer.set_state({"window": 24})  # what the slider sends
    assert explorer.wait().params.window == 24
    assert counted == {"esd": 3, "farms": 6}
    assert explorer.analysis.alphas("esd") == first.alphas("esd")
    assert _farms_window(explorer) == {"24 x 24"}
    explorer.close()


def test_five_rapid_changes_end_with_the_last_ones_results():
    explorer = Explorer(_model(2), window=32, windows_per_dim=3)
    explorer.wait()
    for window in (30, 28, 26, 22, 20):
        explorer.set_state({"window": window})
    result = explorer.wait()
    assert result.params.window == 20
    assert _farms_window(explorer) == {"20 x 20"}
    assert explorer.window == 20 and explorer.error == "" and not explorer._running
    assert explorer.status.startswith("3 layers, 1 skipped")
    explorer.close()


def test_an_error_inside_the_analysis_shows_and_the_next_change_works(monkeypatch):
    explorer = Explorer(_model(3), window=32, windows_per_dim=3)
    good = explorer.wait()
    real = widget_module.analyze

    def broken(*args, **kwargs):
        raise RuntimeError("weights went missing")

    monkeypatch.setattr(widget_module, "analyze", broken)
    explorer.set_state({"window": 16})
    assert explorer.wait() is good  # the last good results stay on screen
    assert explorer.error == "RuntimeError: weights went missing"
    assert "failed" in explorer.status and not explorer._running
    monkeypatch.setattr(widget_module, "analyze", real)
    explorer.set_state({"window": 20})
    assert explorer.wait().params.window == 20
    assert explorer.error == ""
    explorer.close()


def test_a_refused_value_shows_the_engines_message_and_keeps_the_results():
    explorer = Explorer(_model(4), window=32, windows_per_dim=3)
    good = explorer.wait()
    explorer.set_state({"fit": "nonsense"})
    assert "fit must be one of" in explorer.error
    assert explorer.wait() is good
    explorer.close()


def test_traits_are_the_api_and_selection_swaps_only_the_spectrum():
    explorer = Explorer(_model(5), window=32, windows_per_dim=3, fit="peak")
    analysis = explorer.wait()
    assert explorer.fit == "peak" and analysis.params.fit == "peak"
    assert explorer._limits["window_max"] == 96  # the largest layer's short side
    layers_rows = explorer._datasets["layers"]
    explorer.selected_layer = analysis.layers[2]
    assert explorer._datasets["layers"] is layers_rows
    xmin = {row["method_label"]: row["xmin"] for row in explorer._datasets["spectrum_xmin"]}
    assert xmin["FARMS"] == pytest.approx(analysis.spectrum(analysis.layers[2], "farms").fit.xmin, rel=1e-4)
    table = {row["layer"]: row for row in explorer._table}
    assert table["3"]["skipped_reason"].startswith("1-D weight")
    explorer.close()


def test_whole_matrix_windows_are_flagged():
    explorer = Explorer(_model(6), window=96, windows_per_dim=3)
    explorer.wait()
    assert "covers the whole matrix" in explorer._notice
    assert [row["layer"] for row in explorer._table if row["covers_whole_matrix"]] == ["0"]
    explorer.close()


def test_results_save_html_and_save_png(tmp_path):
    explorer = Explorer(_model(7), window=32, windows_per_dim=3)
    assert set(explorer.results["method"]) == {"esd", "farms"}
    html = explorer.save_html(tmp_path / "explorer.html").read_text()
    assert "farms-viz-bundle" in html
    assert explorer.save_png(tmp_path / "explorer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    explorer.close()


def test_explorer_is_exported_lazily():
    assert farms_viz.Explorer is Explorer
    code = "import sys, farms_viz; assert 'anywidget' not in sys.modules and 'altair' not in sys.modules"
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


# ----- allocation and sweep panels ------------------------------------------------------------
def _weighted_mean(ratios: dict[str, float], analysis) -> float:
    params = farms_viz.allocate.layer_params(analysis)
    return sum(params[k] * s for k, s in ratios.items()) / sum(params[k] for k in ratios)


def _allocation_rows(explorer: Explorer, method: str) -> dict[str, float]:
    return {row["layer"]: row["sparsity"] for row in explorer._datasets["allocation"] if row["method"] == method}


def test_allocation_follows_the_sliders_without_reanalysing(counted):
    explorer = Explorer(_model(8), window=32, windows_per_dim=3)
    analysis = explorer.wait()
    calls = dict(counted)
    explorer.set_state({"target": 0.8, "epsilon": 0.3})  # what the sliders send
    assert counted == calls and explorer.wait() is analysis  # no re-analysis
    ratios = explorer.allocation
    assert list(ratios) == analysis.layers
    assert _weighted_mean(ratios, analysis) == pytest.approx(0.8, abs=1e-9)
    assert ratios == farms_viz.allocate.sparsity_from_analysis(analysis, 0.8, 0.3, alphas_from="farms")
    assert _allocation_rows(explorer, "farms") == pytest.approx(ratios, rel=1e-4)  # what the chart draws
    esd = _allocation_rows(explorer, "esd")
    assert _weighted_mean(esd, analysis) == pytest.approx(0.8, abs=1e-4) and esd != pytest.approx(ratios)
    explorer.alphas_from = "esd"
    assert explorer.allocation == pytest.approx(esd, rel=1e-4)
    explorer.close()


def test_grouping_gives_one_ratio_per_block():
    torch.manual_seed(9)
    blocks = nn.ModuleDict({"layers": nn.ModuleList(
        nn.Sequential(nn.Linear(64, 128), nn.Linear(128, 64)) for _ in range(3))})
    explorer = Explorer(blocks, window=32, windows_per_dim=3, groups=True, target=0.6)
    ratios = explorer.allocation
    for block in range(3):
        assert ratios[f"layers.{block}.0"] == ratios[f"layers.{block}.1"]
    assert _weighted_mean(ratios, explorer.analysis) == pytest.approx(0.6, abs=1e-9)
    explorer.close()


def test_a_window_change_updates_the_farms_allocation():
    explorer = Explorer(_model(10), window=32, windows_per_dim=3, epsilon=0.5)
    before = explorer.allocation
    explorer.window = 16
    after = explorer.allocation
    assert after != before and _allocation_rows(explorer, "farms") == pytest.approx(after, rel=1e-4)
    explorer.close()


def test_a_refused_target_shows_why_and_keeps_the_last_allocation():
    explorer = Explorer(_model(11), window=32, windows_per_dim=3)
    explorer.wait()
    rows = explorer._datasets["allocation"]
    explorer.target = 1.5
    assert "target must be a number in [0, 1)" in explorer.error
    assert explorer._datasets["allocation"] == rows
    explorer.target = 0.5
    assert explorer.error == ""
    with pytest.raises(ValueError, match="alphas_from must be one of"):
        Explorer(_model(11), alphas_from="alpha")
    explorer.close()


def test_save_allocation_writes_the_ratios_as_json(tmp_path):
    import json

    explorer = Explorer(_model(12), window=32, windows_per_dim=3)
    path = explorer.save_allocation(tmp_path / "ratios.json")
    assert json.loads(path.read_text()) == pytest.approx(explorer.allocation)
    explorer.allocation_path = str(tmp_path / "button.json")
    explorer._on_custom_message(explorer, {"type": "save_allocation"}, [])  # the button
    assert json.loads((tmp_path / "button.json").read_text()) == pytest.approx(explorer.allocation)
    assert "button.json" in explorer._allocation_note
    explorer.close()


def test_default_sweep_windows_come_from_the_layer_sizes():
    explorer = Explorer(_model(13), window=40, windows_per_dim=3)
    assert explorer.sweep_windows == [8, 13, 20, 31, 40, 48]  # up to the smallest large layer (48), + the current
    assert widget_module.default_sweep_windows([384] * 36 + [2], 100) == [24, 48, 96, 100, 192, 384]
    explorer.close()


def test_run_sweep_in_the_background_draws_alpha_against_window():
    explorer = Explorer(_model(14), window=32, windows_per_dim=3)
    analysis = explorer.wait()
    explorer._on_custom_message(explorer, {"type": "run_sweep"}, [])  # the button
    frame = explorer.sweep_results
    assert sorted(frame["window"].unique()) == explorer.sweep_windows
    assert list(dict.fromkeys(frame["layer"])) == analysis.layers
    assert not explorer._sweep_running and "3 layers x 6 windows" in explorer.sweep_status
    spec = explorer._specs["sweep"]
    # the model's mean alpha per method on top, the selected layer's below, one labelled window axis
    top, bottom = spec["vconcat"]
    assert top["layer"][0]["data"] == {"name": "sweep_mean"} and bottom["layer"][0]["data"] == {"name": "sweep"}
    assert {"filter": "datum.layer === selected_layer"} in bottom["layer"][0]["transform"]
    assert top["layer"][0]["encoding"]["x"]["title"] == bottom["layer"][0]["encoding"]["x"]["title"] == "window m"
    assert len(explorer._datasets["sweep"]) == len(frame)
    means = pd.DataFrame(explorer._datasets["sweep_mean"]).set_index(["window", "method"])["alpha"]
    for window in explorer.sweep_windows:
        rows = frame[frame.window == window]
        assert means[(window, "farms")] == pytest.approx(rows["alpha"].mean(), rel=1e-4)
        assert means[(window, "esd")] == pytest.approx(rows["esd_alpha"].mean(), rel=1e-4)
    assert '"32.0"' in str(spec).replace("'", '"')  # the current window's rule
    explorer.window = 24  # the rule follows the window; the sweep stays
    explorer.wait()
    assert '"24.0"' in str(explorer._specs["sweep"]).replace("'", '"')
    explorer.run_sweep(windows=[16, 8])
    assert sorted(explorer.sweep_results["window"].unique()) == [8, 16]
    explorer.close()


def test_a_parameter_change_stops_a_running_sweep(monkeypatch):
    explorer = Explorer(_model(15), window=32, windows_per_dim=3)
    explorer.wait()
    real = widget_module.sweep

    def slow(*args, progress, **kwargs):
        def later(done, total, label):
            explorer.q = 0.5  # a slider moves while the sweep runs
            progress(done, total, label)
        return real(*args, progress=later, **kwargs)

    monkeypatch.setattr(widget_module, "sweep", slow)
    explorer.run_sweep(windows=[8, 16, 24])
    explorer.wait()
    assert explorer.sweep_results is None and "stopped" in explorer.sweep_status
    assert explorer.analysis.params.q == 0.5 and not explorer._sweep_running
    explorer.close()
