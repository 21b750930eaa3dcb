"""On the real trained MiniLM: FARMS equals a plain per-window svdvals loop, and the standard
ESD with the KS fit equals WeightWatcher's analyze()."""

import logging
import math
import warnings

import numpy as np
import pytest
import torch

import farms_viz
from farms_viz.sources.pretrained import load_minilm

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def minilm():
    return load_minilm()


def plain_farms_eigenvalues(weight, window, q, windows_per_dim):
    """The reference way: every window's svdvals in float64, one call per window, pooled."""
    rows, cols = weight.shape
    m = min(window, rows, cols)
    w = math.floor(m * q)
    row_step = max(1, (rows - m) // (windows_per_dim - 1))
    col_step = max(1, (cols - w) // (windows_per_dim - 1))
    row_starts = [min(a * row_step, rows - m) for a in range(min(windows_per_dim, (rows - m) // row_step + 1))]
    col_starts = [min(b * col_step, cols - w) for b in range(min(windows_per_dim, (cols - w) // col_step + 1))]
    eigenvalues = []
    for r in row_starts:
        for c in col_starts:
            sub = weight[r:r + m, c:c + w].double()
            eigenvalues.append(torch.linalg.svdvals(sub).numpy() ** 2)
    return np.sort(np.concatenate(eigenvalues))


def plain_fit(x, fit):
    """Hill alpha at the median, or the KS argmin over the peak candidates, by plain loops."""
    n = x.size
    if fit == "median":
        i = n // 2
        return 1 + (n - i) / np.sum(np.log(x[i:] / x[i]))
    logs = np.log10(x)
    counts, edges = np.histogram(logs, bins=100, range=(logs.min(), logs.max()))
    peak = 10 ** edges[np.argmax(counts)]
    best_d, best_alpha = 1.0, None
    for i in range(n - 1):
        if x[i] < np.log10(0.95 * peak):
            continue
        if x[i] > 1.5 * peak:
            break
        tail = x[i:]
        alpha = 1 + tail.size / np.sum(np.log(tail / x[i]))
        d = np.max(np.abs(1 - (tail / x[i]) ** (1 - alpha) - np.arange(tail.size) / tail.size))
        if best_alpha is None or d < best_d:
            best_d, best_alpha = d, alpha
    return best_alpha


@pytest.mark.parametrize("fit", ["median", "peak"])
def test_farms_equals_plain_svdvals_loop(minilm, fit):
    result = farms_viz.analyze(minilm, method="farms", window=100, q=1.0, windows_per_dim=10, fit=fit,
                               progress=False)
    assert len(result.layers) == 39
    for name in result.layers:
        weight = minilm.get_submodule(name).weight.detach()
        expected = plain_fit(plain_farms_eigenvalues(weight, 100, 1.0, 10), fit)
        assert result.spectrum(name, "farms").fit.alpha == pytest.approx(expected, abs=1e-4), name


def test_standard_esd_ks_equals_weightwatcher(minilm):
    ww = pytest.importorskip("weightwatcher")
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        details = ww.WeightWatcher(model=minilm).analyze()
    ours = farms_viz.analyze(minilm, method="esd", fit="ks", progress=False).to_pandas()
    # WeightWatcher lists short names in model order; so does farms_viz (qualified names)
    assert len(details) == len(ours) == 39
    for (_, theirs), (_, mine) in zip(details.iterrows(), ours.iterrows()):
        assert mine.layer.endswith(theirs["name"])
        assert (max(mine.rows, mine.cols), min(mine.rows, mine.cols)) == (theirs["N"], theirs["M"])
        assert mine.alpha == pytest.approx(theirs["alpha"], abs=1e-3), mine.layer
        assert mine.xmin == pytest.approx(theirs["xmin"], rel=1e-6)
        assert mine.lambda_max == pytest.approx(theirs["lambda_max"], rel=1e-5)
