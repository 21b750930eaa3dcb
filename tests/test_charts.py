"""Chart builders, the Marchenko-Pastur density and the static exports."""

from __future__ import annotations

import json
import re

import numpy as np
import pandas as pd
import pytest
import torch
from scipy.integrate import quad
from spec_tables import table
from torch import nn

import farms_viz
from farms_viz import charts
from farms_viz.charts.data import LOG_START_QUANTILE, layer_frame, spectrum_frames, table_frame
from farms_viz.charts.reference import with_plot_columns
from farms_viz.engine.marchenko_pastur import mp_density, mp_edges, mp_variance
from farms_viz.widget.export import analysis_html, save_html, save_png


@pytest.fixture(scope="module")
def analysis():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(128, 128), nn.Linear(128, 512), nn.Linear(512, 64), nn.LayerNorm(64))
    return farms_viz.analyze(model, window=32, windows_per_dim=4, progress=False)


# ----- Marchenko-Pastur (docs/spec.md, section 5) -------------------------------------------------
@pytest.mark.parametrize("rows, cols", [(100, 100), (100, 400), (384, 1536), (1536, 384)])
def test_mp_density_integrates_to_one_on_its_support(rows, cols):
    low, high = mp_edges(2.0, rows, cols)
    total, _ = quad(lambda x: mp_density(np.array([x]), 2.0, rows, cols)[0], low, high, limit=200)
    assert total == pytest.approx(1.0, abs=1e-6)
    assert mp_density(np.array([low * 0.9, high * 1.1]), 2.0, rows, cols).tolist() == [0.0, 0.0]


@pytest.mark.parametrize("row", table("mp-edges"))
def test_mp_edges_worked_value(row):
    # s^2 (sqrt(w) +- sqrt(m))^2: docs/spec.md section 5
    assert mp_edges(row["variance"], row["rows"], row["cols"]) == (row["lower edge"], row["upper edge"])


def test_mp_describes_a_gaussian_matrix():
    rng = np.random.default_rng(0)
    eigenvalues = np.linalg.eigvalsh((w := rng.normal(0, 0.5, (200, 800))) @ w.T)
    variance = mp_variance(eigenvalues, 200, 800)
    assert variance == pytest.approx(0.25, rel=0.02)
    low, high = mp_edges(variance, 200, 800)
    assert eigenvalues.min() == pytest.approx(low, rel=0.05) and eigenvalues.max() == pytest.approx(high, rel=0.05)


# ----- data for the charts ------------------------------------------------------------------
def test_layer_frame_has_one_row_per_layer_and_method(analysis):
    frame = layer_frame(analysis)
    assert len(frame) == 2 * len(analysis.layers)
    assert frame["order"].tolist() == sorted(frame["order"])
    assert set(frame["method_label"]) == {"standard ESD", "FARMS"}


def test_table_lists_skipped_layers_with_their_reason(analysis):
    table = table_frame(analysis)
    assert table["layer"].tolist() == ["0", "1", "2", "3"]
    assert table.iloc[-1]["skipped_reason"].startswith("1-D weight")
    assert table.iloc[1]["aspect_ratio"] == 4.0


def test_spectrum_histograms_are_densities(analysis):
    frames = spectrum_frames(analysis, "1")
    linear = frames["histogram"][frames["histogram"]["scale"] == "linear"]
    methods = {"standard ESD": "esd", "FARMS": "farms"}
    for label, rows in linear.groupby("method_label"):
        # densities of the whole ESD: the linear view, cut at the 99th percentile, holds that share
        x = analysis.eigenvalues("1", methods[label])
        inside = np.mean(x <= rows["bin_end"].max())
        assert 0.98 <= inside < 1.0
        assert float(((rows["bin_end"] - rows["bin_start"]) * rows["density"]).sum()) == pytest.approx(inside)
    xmin = frames["xmin"].set_index("method_label")
    fit = analysis.spectrum("1", "farms").fit
    assert xmin.loc["FARMS", "xmin"] == fit.xmin and xmin.loc["FARMS", "alpha"] == fit.alpha
    curves = frames["curves"]
    tail = curves[(curves["curve"] == "power-law fit") & (curves["method_label"] == "FARMS")]
    assert tail["eigenvalue"].min() == pytest.approx(fit.xmin)
    # the power-law line falls with slope -alpha on log-log axes
    log_tail = tail[tail["scale"] == "log"]
    slope = np.diff(np.log(log_tail["density"])) / np.diff(np.log(log_tail["eigenvalue"]))
    assert slope == pytest.approx(-fit.alpha)


def test_mp_curve_uses_the_window_shape_for_farms(analysis):
    frames = spectrum_frames(analysis, "1")
    curves = frames["curves"]
    mp = curves[(curves["curve"] == "Marchenko-Pastur") & (curves["method_label"] == "FARMS") & (curves["density"] > 0)]
    farms = analysis.spectrum("1", "farms")
    low, high = mp_edges(mp_variance(farms.eigenvalues, 32, 32), 32, 32)
    assert mp["eigenvalue"].max() <= high and mp["eigenvalue"].min() >= low


# ----- the charts ---------------------------------------------------------------------------
def test_alpha_per_layer_chart_draws_the_random_baseline_beside_each_point(analysis):
    spec = charts.layer_alpha_chart(layer_frame(analysis), "1").to_dict()
    rows = spec["datasets"]["layers"]
    assert len(rows) == 6
    assert spec["datasets"]["alpha_rules"] == []  # 2 and 6 belong to the KS fit: not drawn for the median fit
    *_, baseline, points = spec["layer"]
    assert points["mark"]["type"] == "point" and points["encoding"]["y"]["field"] == "alpha_shown"
    assert baseline["mark"]["type"] == "tick" and baseline["encoding"]["y"]["field"] == "baseline_shown"
    assert baseline["encoding"]["xOffset"] == points["encoding"]["xOffset"]  # beside its own point
    assert all(r["baseline_shown"] == pytest.approx(r["alpha_baseline"]) for r in rows)
    tooltip = {t["field"] for t in points["encoding"]["tooltip"]}
    assert {"layer", "shape", "aspect_ratio", "alpha", "alpha_baseline", "D", "num_windows", "coverage",
            "sampling_note"} <= tooltip
    assert points["encoding"]["x"]["sort"] == {"field": "order"}
    assert points["encoding"]["shape"]["scale"]["range"] == ["square", "circle"]  # the methods apart without colour
    assert points["encoding"]["description"]["field"] == "aria"  # each point has a spoken label
    assert {"name": "selected_layer", "value": "1"} in spec["params"]


def test_the_ks_fit_draws_the_2_and_6_rules_and_no_baseline():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(96, 96), nn.Linear(96, 192))
    ks = farms_viz.analyze(model, window=32, windows_per_dim=4, fit="ks", progress=False)
    spec = charts.layer_alpha_chart(layer_frame(ks)).to_dict()
    assert [r["alpha"] for r in spec["datasets"]["alpha_rules"]] == [2.0, 6.0]
    assert all(r["baseline_shown"] is None for r in spec["datasets"]["layers"])
    assert all(r["alpha_baseline"] > 1 for r in spec["datasets"]["layers"])  # still in the data and tooltips


def test_an_outlier_is_held_at_the_edge_and_marked():
    frame = pd.DataFrame({"alpha": [2.1, 2.6, 3.0, 3.4, 4.2, 5.0, 38.0], "alpha_baseline": 2.12})
    shown = with_plot_columns(frame, "ks")
    low, high = shown["y_low"].iloc[0], shown["y_high"].iloc[0]
    assert high < 12 and low == 2.1  # one layer at 38 does not squash the others
    assert shown["alpha_clip"].tolist() == [None] * 6 + ["above"]
    assert shown["alpha_shown"].iloc[-1] == high
    assert shown["alpha_shown"].iloc[:6].tolist() == frame["alpha"][:6].tolist()
    points = charts.layer_alpha_chart(layer_frame_like(shown)).to_dict()["layer"][-1]
    assert {"test": "datum.alpha_clip === 'above'", "value": "triangle-up"} in points["encoding"]["shape"]["condition"]


def layer_frame_like(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.assign(layer=[str(i) for i in range(len(frame))], order=range(len(frame)), method="esd",
                        method_label="standard ESD", fit="ks")


def test_alpha_vs_aspect_chart_draws_each_methods_baseline_against_the_aspect_ratio(analysis):
    spec = charts.alpha_aspect_chart(layer_frame(analysis)).to_dict()
    _rules, baseline, points = spec["layer"]
    assert points["encoding"]["x"]["scale"]["type"] == "log"
    assert baseline["mark"]["type"] == "line" and baseline["encoding"]["y"]["field"] == "baseline"
    assert baseline["transform"][-1]["groupby"] == ["method_label", "aspect_ratio"]
    assert baseline["encoding"]["strokeDash"]["scale"]["range"] == [[6, 3], [1, 0]]
    # the standard ESD's baseline rises with the aspect ratio; FARMS' stays flat
    rows = pd.DataFrame(spec["datasets"]["layers"])
    esd = rows[rows.method == "esd"].sort_values("aspect_ratio")
    assert esd.groupby("aspect_ratio")["alpha_baseline"].mean().is_monotonic_increasing
    assert rows[rows.method == "farms"]["alpha_baseline"].std() < 0.05


def test_spectrum_chart_has_log_log_and_lin_lin_views(analysis):
    spec = charts.spectrum_chart(spectrum_frames(analysis, "1"), "1").to_dict()
    log_view, linear_view = spec["hconcat"]
    assert log_view["layer"][0]["encoding"]["x"]["scale"]["type"] == "log"
    assert log_view["layer"][0]["encoding"]["y"]["scale"]["type"] == "log"
    assert linear_view["layer"][0]["encoding"]["x"]["scale"]["type"] == "linear"
    assert set(spec["datasets"]) == {"spectrum_histogram", "spectrum_curves", "spectrum_xmin"}
    params = {p["name"]: p["value"] for p in spec["params"] if "value" in p}
    assert params["spectrum_units"] == "normalised" and params["spectrum_methods"] == "both"
    # every view divides by the method's unit unless raw, and shows the chosen methods
    steps = json.dumps(log_view["layer"][0]["transform"])
    assert "spectrum_units === 'raw' ? 1 : datum.unit" in steps and "spectrum_methods === 'both'" in steps
    with pytest.raises(ValueError, match="units must be one of"):
        charts.spectrum_chart({}, units="log")


def test_normalised_spectra_of_both_methods_share_one_scale(analysis):
    frames = spectrum_frames(analysis, "1")  # a 512 x 128 layer, 32 x 32 windows
    units = frames["xmin"].set_index("method")["unit"]
    for method in ("esd", "farms"):
        assert units[method] == pytest.approx(np.mean(analysis.eigenvalues("1", method)))
    raw = frames["histogram"].query("scale == 'log'").groupby("method")["bin_end"].max()
    normalised = raw / units[raw.index]
    assert raw["esd"] / raw["farms"] > 5  # raw: FARMS' windows sit far to the left of the matrix's ESD
    assert normalised["esd"] / normalised["farms"] < 1.5  # normalised: on one axis
    # the log view starts where the mass is, not at the near-zero eigenvalues of square windows
    farms = np.sort(analysis.eigenvalues("1", "farms"))
    start = frames["histogram"].query("scale == 'log' and method == 'farms'")["bin_start"].min()
    assert start == farms[farms >= np.quantile(farms, LOG_START_QUANTILE)][0]
    assert np.log10(farms[-1] / start) < 3.5 < np.log10(farms[-1] / farms[0])


def test_default_layer_is_the_largest_gap(analysis):
    frame = layer_frame(analysis).drop_duplicates("layer").set_index("layer")
    assert charts.default_layer(analysis) == frame["alpha_delta"].abs().idxmax()


# ----- exports ------------------------------------------------------------------------------
def test_html_is_self_contained(analysis, tmp_path):
    page = analysis_html(analysis, selected_layer="2")
    assert not re.search(r"""<(script|link|img)[^>]+(src|href)=["']?(https?:)?//""", page)
    state = json.loads(re.search(r'id="farms-viz-state">(.*?)</script>', page, re.S).group(1))
    assert state["selected_layer"] == "2"
    assert set(state["_spectra_by_layer"]) == {"0", "1", "2"}
    assert any(row["skipped_reason"] for row in state["_table"])
    assert save_html(analysis, tmp_path / "r.html").read_text() == analysis_html(analysis)


def test_png_export(analysis, tmp_path):
    data = save_png(analysis, tmp_path / "r.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert width > 800 and height > 1000


def test_mean_alpha_over_steps_draws_the_2_6_rules_only_under_the_ks_fit():
    from farms_viz.charts.time import mean_alpha_chart

    def rules(fit: str) -> list[float]:
        history = pd.DataFrame({"step": [0, 1, 0, 1], "layer": ["a", "a", "b", "b"], "method": ["farms"] * 4,
                                "alpha": [2.0, 4.0, 4.0, 6.0], "fit": [fit] * 4})
        sets = mean_alpha_chart(history).to_dict()["datasets"].values()
        return [row["alpha"] for rows in sets for row in rows if set(row) == {"alpha"}]

    assert rules("median") == [] and rules("peak") == []
    assert rules("ks") == [2.0, 6.0]


def test_layer_lines_over_steps_never_take_a_method_colour():
    """In the time views a line per layer must not read as a method: no orange, no blue."""
    from farms_viz.charts.style import METHOD_COLORS
    from farms_viz.charts.time import layer_alpha_over_steps_chart
    from farms_viz.charts.timeline import timeline_chart

    def layer_scales(spec) -> list[dict]:
        found = []
        if isinstance(spec, dict):
            color = spec.get("encoding", {}).get("color", {})
            if color.get("field") == "layer":
                found.append(color.get("scale", {}))
            for value in spec.values():
                found += layer_scales(value)
        elif isinstance(spec, list):
            for value in spec:
                found += layer_scales(value)
        return found

    history = pd.DataFrame({"step": [0, 1] * 30, "layer": [f"l{i // 2}" for i in range(60)],
                            "method": ["farms"] * 60, "alpha": np.linspace(2, 6, 60)})
    for chart in (layer_alpha_over_steps_chart(history), timeline_chart(30)):
        scales = layer_scales(chart.to_dict())
        assert scales, "no layer colour scale found"
        for scale in scales:
            assert "scheme" not in scale and len(scale["range"]) >= 12
            assert not {c.lower() for c in scale["range"]} & {c.lower() for c in METHOD_COLORS}
            for colour in scale["range"]:  # no hue near the methods' orange (~25 deg) or blue (~215 deg)
                r, g, b = (int(colour[i:i + 2], 16) / 255 for i in (1, 3, 5))
                import colorsys
                hue, _, saturation = colorsys.rgb_to_hls(r, g, b)
                if saturation > 0.25:
                    assert not (15 <= hue * 360 <= 40 or 195 <= hue * 360 <= 235), colour
