"""The random-matrix baseline (docs/spec.md, section 6): what a Gaussian layer of the same geometry scores."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from spec_tables import table
from test_bias import SHAPES, gaussian_layers
from torch import nn

import farms_viz
from farms_viz.engine import baseline
from farms_viz.engine.baseline import Geometry, alpha_baseline, mp_median_alpha, simulated_alpha


@pytest.fixture(scope="module")
def gaussian_frame():
    rng = np.random.default_rng(0)
    model = gaussian_layers(SHAPES, lambda r, c: rng.standard_normal((r, c)) / np.sqrt(c))
    return farms_viz.analyze(model, window=128, q=1.0, windows_per_dim=5, fit="median", progress=False).to_pandas()


@pytest.mark.parametrize("row", table("baseline"))
def test_closed_form_reproduces_the_spec_table(row):
    assert mp_median_alpha(row["ratio"]) == pytest.approx(row["median-fit alpha"], abs=1e-3)


def test_a_gaussian_layer_scores_its_own_baseline_under_both_methods(gaussian_frame):
    gap = (gaussian_frame["alpha"] - gaussian_frame["alpha_baseline"]).abs()
    assert len(gap) == 2 * len(SHAPES)
    assert gap.max() < 0.1, gaussian_frame[["layer", "method", "alpha", "alpha_baseline"]]


def test_the_esd_baseline_rises_with_the_aspect_ratio_and_farms_stays_flat(gaussian_frame):
    esd = gaussian_frame[gaussian_frame.method == "esd"]
    tall = esd[esd.cols == 512].sort_values("aspect_ratio")
    assert list(tall.aspect_ratio) == [1, 2, 4, 8]
    assert np.all(np.diff(tall.alpha_baseline.to_numpy()) > 0.4)  # the bias, drawn
    # the closed form is a function of the ratio: 512x2048 and 2048x512 share theirs
    assert esd.set_index(["rows", "cols"]).loc[(512, 2048), "alpha_baseline"] == pytest.approx(
        esd.set_index(["rows", "cols"]).loc[(2048, 512), "alpha_baseline"])
    farms = gaussian_frame[gaussian_frame.method == "farms"]["alpha_baseline"]
    assert farms.max() - farms.min() < 0.05


def test_small_windows_get_a_finite_size_baseline():
    # 8 x 32 windows: the pooled ESD of such small windows lies measurably below the MP limit
    torch.manual_seed(0)
    layer = nn.Linear(512, 512, bias=False)
    nn.init.normal_(layer.weight, std=512 ** -0.5)
    frame = farms_viz.analyze(layer, method="farms", window=8, q=4.0, windows_per_dim=30, progress=False).to_pandas()
    alpha, base = frame.loc[0, "alpha"], frame.loc[0, "alpha_baseline"]
    limit = mp_median_alpha(0.25)
    assert base < limit - 0.05
    assert abs(alpha - base) < 0.05 < abs(alpha - limit)


def test_peak_and_ks_baselines_are_simulated_once_per_geometry():
    simulated_alpha.cache_clear()
    first = alpha_baseline(96, 96, "ks", count=4)
    peak = alpha_baseline(96, 96, "peak", count=4)
    assert simulated_alpha.cache_info().misses == 2
    assert alpha_baseline(96, 96, "ks", count=4) == first  # from the cache
    assert simulated_alpha.cache_info().hits == 1
    simulated_alpha.cache_clear()
    assert alpha_baseline(96, 96, "ks", count=4) == first  # seeded by the geometry: reproducible
    assert 1.0 < peak < first  # the KS fit of noise picks its xmin near the upper edge: a steep "tail"


def test_large_simulations_are_capped():
    drawn, repeats = baseline._simulation_plan(Geometry.of(4096, 4096, 100))
    assert repeats * drawn.count * drawn.short * drawn.long <= baseline.SIMULATION_ENTRIES
    assert drawn.ratio == pytest.approx(1.0) and repeats >= baseline.MIN_REPEATS
    drawn, repeats = baseline._simulation_plan(Geometry.of(30522, 384))
    assert drawn.ratio == pytest.approx(384 / 30522, rel=0.01) and repeats >= baseline.MIN_REPEATS


def test_refuses_a_ratio_outside_zero_one():
    with pytest.raises(ValueError, match="short side / long side"):
        mp_median_alpha(2.0)
