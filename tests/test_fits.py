"""Power-law fits: the worked values of docs/spec.md section 3, and the pruned KS argmin equals brute force."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from spec_tables import table

from farms_viz.engine.fits import _centered_logs, fit_power_law, hill_alphas, ks_distances, peak_xmin


def brute_force(x, candidates):
    """Plain loop over candidates, straight from the SPEC formulas."""
    best = (np.inf, None, None)
    for i in candidates:
        tail = x[i:]
        n = tail.size
        alpha = 1 + n / np.sum(np.log(tail / x[i]))
        if not alpha > 1 or not np.isfinite(alpha):
            d = 1.0
        else:
            d = np.max(np.abs(1 - (tail / x[i]) ** (1 - alpha) - np.arange(n) / n))
        if d < best[0]:
            best = (d, i, alpha)
    return best


@pytest.mark.parametrize("row", table("median-fit"), ids=lambda r: f"N={len(r['eigenvalues'])}")
def test_median_fit_worked_values(row):
    x = np.array(row["eigenvalues"], dtype=float)
    fit = fit_power_law(x, "median")
    assert fit.xmin_index == row["xmin index"] and fit.xmin == x[row["xmin index"]]
    assert fit.alpha == pytest.approx(row["alpha"], abs=1e-4)
    assert fit.n_tail == x.size - row["xmin index"]


def test_median_fit_reports_its_ks_distance():
    x = np.array([1.0, 2, 4, 8, 16, 32])
    fit = fit_power_law(x, "median")
    tail = x[3:]
    expected = np.max(np.abs(1 - (tail / 8) ** (1 - fit.alpha) - np.arange(3) / 3))
    assert pytest.approx(expected, rel=1e-12) == fit.D


def test_unsorted_input_is_sorted_first():
    x = np.array([32.0, 1, 8, 2, 16, 4])
    assert fit_power_law(x).alpha == fit_power_law(np.sort(x)).alpha


def test_hill_alphas_match_direct_formula():
    rng = np.random.default_rng(1)
    x = np.sort(rng.pareto(2.5, 500) + 1)
    alphas = hill_alphas(_centered_logs(x))
    for i in (0, 17, 250, 498):
        assert alphas[i] == pytest.approx(1 + (x.size - i) / np.sum(np.log(x[i:] / x[i])), rel=1e-9)


@pytest.mark.parametrize("seed", range(6))
def test_ks_fit_equals_brute_force(seed):
    rng = np.random.default_rng(seed)
    w = rng.standard_t(3, size=(40, 60)) / 8
    x = np.sort(np.linalg.eigvalsh(w @ w.T))
    x = x[x > 1e-5]
    fit = fit_power_law(x, "ks")
    d, i, alpha = brute_force(x, range(x.size - 1))
    assert fit.xmin_index == i
    assert pytest.approx(d, rel=1e-12) == fit.D
    assert fit.alpha == pytest.approx(alpha, rel=1e-10)


def test_peak_fit_equals_brute_force_over_its_candidates():
    rng = np.random.default_rng(7)
    windows = [rng.standard_t(4, size=(30, 30)) for _ in range(20)]
    x = np.sort(np.concatenate([np.linalg.eigvalsh(w @ w.T) for w in windows]))
    peak = peak_xmin(x)
    candidates = [i for i in range(x.size - 1) if np.log10(0.95 * peak) <= x[i] <= 1.5 * peak]
    fit = fit_power_law(x, "peak")
    d, i, _ = brute_force(x, candidates)
    assert fit.xmin_index == i and pytest.approx(d, rel=1e-12) == fit.D


def test_peak_is_left_edge_of_first_fullest_log_bin():
    x = np.array([1.0, 10, 10, 100, 1000])
    # log10 = 0, 1, 1, 2, 3 -> 100 bins of width 0.03; the fullest (index 33) holds the two 10s
    assert peak_xmin(x) == pytest.approx(10 ** (33 * 0.03))


@settings(max_examples=40, deadline=None)
@given(seed=st.integers(0, 10_000), n=st.integers(20, 900), tail=st.floats(1.2, 5.0))
def test_pruned_ks_argmin_is_the_brute_force_argmin(seed, n, tail):
    rng = np.random.default_rng(seed)
    x = np.sort(np.concatenate([rng.uniform(0.1, 1.0, n), rng.pareto(tail, n // 3) + 1.0]))
    logs = _centered_logs(x)
    alphas = hill_alphas(logs)
    d = ks_distances(logs, alphas, np.arange(x.size - 1))
    fit = fit_power_law(x, "ks")
    assert fit.xmin_index == int(np.argmin(d))
    assert d.min() == fit.D


def test_degenerate_inputs_give_nan_not_crash():
    assert np.isnan(fit_power_law(np.array([1.0]), "median").alpha)
    assert np.isnan(fit_power_law(np.zeros(10), "ks").alpha)
    equal = fit_power_law(np.ones(10), "peak")
    assert equal.D == 1.0


def test_unknown_fit_is_rejected():
    with pytest.raises(ValueError, match="fit must be one of"):
        fit_power_law(np.arange(1.0, 10), "mle")
