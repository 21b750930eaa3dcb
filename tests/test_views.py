"""The Explorer's views from Python: what the table, the alpha charts and the allocation note say."""

from __future__ import annotations

import json

import pytest
import torch
from torch import nn

from farms_viz.charts import theme
from farms_viz.charts.style import METHOD_COLORS
from farms_viz.widget import Explorer
from farms_viz.widget.state import explorer_state


@pytest.fixture(scope="module")
def digits_like():
    """A small MLP whose 10-way output layer is narrower than the window (clamped, thinly covered)."""
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 256), nn.ReLU(), nn.Linear(256, 128), nn.ReLU(), nn.Linear(128, 10))


def test_the_table_marks_the_clamped_layer_and_carries_the_baselines(digits_like):
    explorer = Explorer(digits_like, window=32, windows_per_dim=5)
    explorer.wait()
    rows = {row["layer"]: row for row in explorer._table}
    assert rows["4"]["sampling_note"] == "windows cover 39% of the matrix; window clamped to 10 x 10"
    assert rows["0"]["sampling_note"] == ""
    for row in rows.values():
        assert row["baseline_esd"] > 1 and row["baseline_farms"] > 1
    # 32 x 32 windows pooled: a finite-size baseline, below the large-matrix limit 2.122
    assert rows["0"]["baseline_farms"] < 2.12
    explorer.close()


def test_the_alpha_rules_follow_the_fit(digits_like):
    explorer = Explorer(digits_like, window=32, windows_per_dim=5)
    explorer.wait()
    assert explorer._datasets["alpha_rules"] == []
    assert all(row["baseline_shown"] is not None for row in explorer._datasets["layers"])
    explorer.fit = "ks"
    explorer.wait()
    assert [r["alpha"] for r in explorer._datasets["alpha_rules"]] == [2.0, 6.0]
    assert all(row["baseline_shown"] is None for row in explorer._datasets["layers"])
    explorer.close()


def test_an_allocation_at_the_clip_says_how_many_layers_it_clipped():
    torch.manual_seed(3)
    blocks = nn.ModuleDict({"layers": nn.ModuleList(
        nn.Sequential(nn.Linear(64, 128), nn.Linear(128, 64), nn.Linear(64, 64)) for _ in range(3))})
    explorer = Explorer(blocks, window=32, windows_per_dim=3, target=0.7, epsilon=0.2)
    explorer.wait()
    assert not explorer._allocation_note.startswith("⚠")
    explorer.set_state({"target": 0.95, "epsilon": 0.8})
    clipped = [name for name, s in explorer.allocation.items() if s >= 0.99 - 1e-9]
    assert clipped
    assert explorer._allocation_note.startswith(f"⚠ {len(clipped)} of 9 layers clipped at the maximum sparsity 0.99")
    explorer.groups = True  # block boundaries: the first layer of every block after the first
    starts = [row["layer"] for row in explorer._datasets["allocation"]
              if row["group_start"] and row["method"] == "farms"]
    assert starts == ["layers.1.0", "layers.2.0"]
    explorer.close()


def test_the_spectrum_view_is_a_trait_and_reaches_the_exports(digits_like, tmp_path):
    explorer = Explorer(digits_like, window=32, windows_per_dim=5, spectrum_units="raw")
    explorer.wait()
    assert explorer.spectrum_units == "raw" and explorer.spectrum_methods == "both"
    explorer.spectrum_methods = "farms"
    with pytest.raises(Exception, match="spectrum_units"):
        explorer.spectrum_units = "log"
    page = explorer.save_html(tmp_path / "report.html").read_text(encoding="utf-8")
    state = json.loads(page.split('id="farms-viz-state">')[1].split("</script>")[0])
    assert (state["spectrum_units"], state["spectrum_methods"]) == ("raw", "farms")
    state = explorer_state(explorer.analysis)
    assert (state["spectrum_units"], state["spectrum_methods"]) == ("normalised", "both")
    explorer.close()


@pytest.fixture
def default_altair_theme():
    import altair as alt

    yield
    alt.theme.enable("default")  # other tests compare specs without a theme's config


def test_notebook_theme_reads_jupyterlabs_theme_and_keeps_method_colours_out_of_categories(
        tmp_path, monkeypatch, default_altair_theme):
    settings = tmp_path / "@jupyterlab" / "apputils-extension" / "themes.jupyterlab-settings"
    settings.parent.mkdir(parents=True)
    settings.write_text('{\n  // written by JupyterLab\n  "theme": "JupyterLab Dark"\n}', encoding="utf-8")
    monkeypatch.setenv("JUPYTERLAB_SETTINGS_DIR", str(tmp_path))
    assert theme.use_theme("auto") == "dark"
    config = theme.theme_config("dark")["config"]
    assert config["background"] == "transparent" and config["axis"]["labelColor"] == "#b0b0b0"
    assert not set(METHOD_COLORS) & {c.upper() for c in config["range"]["category"]}
    settings.write_text('{"theme": "JupyterLab Light"}', encoding="utf-8")
    assert theme.use_theme("auto") == "light"
    with pytest.raises(ValueError, match="mode must be one of"):
        theme.use_theme("sepia")
