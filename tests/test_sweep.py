"""The window/stride sweep: per-window alphas, the tidy frame, and its chart builders."""

import math

import numpy as np
import pandas as pd
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import farms_viz
from farms_viz import allocate
from farms_viz.charts.allocation import allocation_comparison
from farms_viz.charts.sweep import alpha_vs_window, spread_heatmap
from farms_viz.engine.fits import fit_power_law
from farms_viz.engine.sweep import SWEEP_COLUMNS, window_alphas


@pytest.fixture(scope="module")
def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(96, 48), nn.ReLU(), nn.Linear(48, 48), nn.Conv2d(8, 16, 3))


@pytest.fixture(scope="module")
def frame(model):
    return farms_viz.sweep(model, windows=[8, 16, 32, 64], windows_per_dim=[1, 4], q=[1.0, 0.5])


def test_window_alphas_worked_value():
    assert window_alphas(np.array([[1.0, 2, 4, 8, 16, 32]]))[0] == pytest.approx(2.4427, abs=1e-4)


@settings(max_examples=50, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), windows=st.integers(1, 12), size=st.integers(2, 40))
def test_batched_median_fit_equals_fit_power_law_per_window(seed, windows, size):
    x = np.sort(np.random.default_rng(seed).pareto(2.0, (windows, size)) + 1e-3, axis=1)
    expected = [fit_power_law(row, "median").alpha for row in x]
    np.testing.assert_allclose(window_alphas(x), expected, rtol=1e-10)


@pytest.mark.filterwarnings("ignore::RuntimeWarning")
def test_degenerate_windows_match_fit_power_law():
    x = np.array([[0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 2.0, 2.0], [0.0, 0.0, 1.0, 3.0]])
    got = window_alphas(x)
    assert math.isnan(got[0]) and got[1] == math.inf
    np.testing.assert_allclose(got[2], fit_power_law(x[2]).alpha)


def test_other_fits_go_through_fit_power_law():
    x = np.sort(np.random.default_rng(1).pareto(1.5, (3, 60)) + 0.01, axis=1)
    assert window_alphas(x, "ks").tolist() == [fit_power_law(r, "ks").alpha for r in x]


def test_one_row_per_layer_and_setting(frame):
    assert list(frame.columns) == SWEEP_COLUMNS
    assert len(frame) == 3 * 4 * 2 * 2
    assert list(dict.fromkeys(frame["layer"])) == ["0", "2", "3"]
    assert not frame.duplicated(["layer", "window", "windows_per_dim", "q"]).any()


def test_rows_agree_with_analyze(model, frame):
    row = frame.query("layer == '0' and window == 16 and windows_per_dim == 4 and q == 1.0").iloc[0]
    analysis = farms_viz.analyze(model, window=16, windows_per_dim=4, q=1.0, progress=False)
    spectrum = analysis.spectra[("0", "farms")]
    assert row["alpha"] == spectrum.fit.alpha
    assert row["esd_alpha"] == analysis.alphas("esd")["0"]
    per_window = window_alphas(spectrum.window_eigenvalues)
    assert row["num_windows"] == per_window.size == 16
    assert row["alpha_std"] == pytest.approx(per_window.std(ddof=1))
    q25, q75 = np.percentile(per_window, [25, 75])
    assert row["alpha_iqr"] == pytest.approx(q75 - q25)
    assert (row["window_rows"], row["window_cols"]) == (16, 16)


def test_conv_windows_count_every_kernel_slice(frame):
    row = frame.query("layer == '3' and window == 8 and windows_per_dim == 4 and q == 1.0").iloc[0]
    assert row["kind"] == "conv2d" and (row["rows"], row["cols"]) == (16, 8)
    # 9 kernel slices x (4 row starts x 1 column start): every slice's windows are fitted
    assert row["num_windows"] == 9 * 4 * 1 and row["windows_fitted"] == 36


def test_single_window_has_no_spread_and_clamped_windows_are_flagged(frame):
    single = frame[frame["windows_per_dim"] == 1]
    linear = single[single["kind"] == "linear"]
    assert linear["alpha_std"].isna().all() and linear["alpha_iqr"].isna().all()
    conv = single[single["kind"] == "conv2d"]  # one window per kernel slice: 9 to compare
    assert (conv["windows_fitted"] == 9).all() and conv["alpha_std"].notna().all()
    big = frame.query("layer == '2' and window == 64 and q == 1.0")
    assert big["window_clamped"].all() and big["covers_whole_matrix"].all()
    assert (big["window_rows"] == 48).all()
    np.testing.assert_allclose(big["alpha"], big["esd_alpha"])  # one whole window is the ESD


def test_aspect_ratio_sets_window_columns(frame):
    row = frame.query("layer == '0' and window == 16 and windows_per_dim == 4 and q == 0.5").iloc[0]
    assert (row["window_rows"], row["window_cols"]) == (16, 8)


def test_sweep_validates_its_grid(model):
    with pytest.raises(ValueError, match="windows is empty"):
        farms_viz.sweep(model, windows=[])
    with pytest.raises(ValueError, match="window must be an integer"):
        farms_viz.sweep(model, windows=[1])


def test_progress_callback_sees_every_setting(model):
    seen = []
    farms_viz.sweep(model, windows=[8, 16], windows_per_dim=4, q=1.0, esd=False,
                    progress=lambda done, total, label: seen.append((done, total)))
    assert seen == [(1, 2), (2, 2)]


# ---- charts -----------------------------------------------------------------------------------

def _marks(spec):
    return [layer["mark"]["type"] if isinstance(layer["mark"], dict) else layer["mark"]
            for layer in spec["spec"]["layer"]]


def test_alpha_vs_window_band_line_esd_and_current_window(frame):
    spec = alpha_vs_window(frame, current_window=16, band="iqr").to_dict()
    # one y scale for every panel, each with its own labelled axes
    assert spec["facet"]["field"] == "layer" and spec["resolve"]["scale"]["y"] == "shared"
    assert spec["resolve"]["axis"] == {"x": "independent", "y": "independent"}
    assert _marks(spec) == ["area", "line", "rule", "rule"]
    current = spec["spec"]["layer"][3]
    assert current["transform"][1]["calculate"] == "16.0"
    assert len({r["setting"] for r in spec["datasets"][spec["data"]["name"]]}) == 4


def test_alpha_vs_window_without_rule_and_for_some_layers(frame):
    spec = alpha_vs_window(frame, layers=["2"], show_esd=False).to_dict()
    assert _marks(spec) == ["area", "line"]
    assert {r["layer"] for r in spec["datasets"][spec["data"]["name"]]} == {"2"}
    with pytest.raises(ValueError, match="band must be one of"):
        alpha_vs_window(frame, band="minmax")
    with pytest.raises(ValueError, match="no rows to draw"):
        alpha_vs_window(frame, layers=["missing"])


def test_spread_heatmap_facets_several_settings(frame):
    assert "facet" in spread_heatmap(frame).to_dict()
    one = frame[(frame["windows_per_dim"] == 4) & (frame["q"] == 1.0)]
    spec = spread_heatmap(one, measure="alpha_iqr").to_dict()
    assert spec["mark"]["type"] == "rect" and spec["encoding"]["color"]["field"] == "alpha_iqr"


def test_allocation_comparison_draws_both_methods(model):
    analysis = farms_viz.analyze(model, window=8, windows_per_dim=4, progress=False)
    frame = allocate.allocation_frame(analysis, 0.7, 0.2)
    spec = allocation_comparison(frame).to_dict()
    bars = spec["vconcat"][1]["layer"][0]
    assert bars["encoding"]["xOffset"]["field"] == "method_title"
    assert {r["method_title"] for r in spec["datasets"][next(iter(spec["datasets"]))]} == {"standard ESD", "FARMS"}
    assert "layer" in allocation_comparison(frame, show_alpha=False).to_dict()
    with pytest.raises(ValueError, match="lacks columns"):
        allocation_comparison(pd.DataFrame({"layer": ["a"]}))
