"""Power-law fits of an ESD's tail (docs/spec.md, section 3): median (PL_Alpha_Hill), peak and KS.

For sorted eigenvalues x_0 <= ... <= x_{N-1} and a candidate xmin = x_i with n_i = N - i:

    alpha_i = 1 + n_i / sum_{j>=i} ln(x_j / x_i)
    D_i     = max_t | 1 - (x_{i+t} / x_i)^(1 - alpha_i) - t / n_i |

Every alpha_i comes from suffix sums (O(N)). The KS argmin is exact but not brute force:
samples of each tail (dense at its start, geometric after) give a lower bound on D_i for all candidates at once, a few
exact evaluations give an upper bound on min D, and candidates that cannot win are dropped
before the next, finer level.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .._deprecation import warn_renamed

KS_TOLERANCE = 1e-5  # WeightWatcher drops eigenvalues at or below this before a KS fit
_MAX_ELEMENTS = 1 << 19  # bounded memory: elements of one (candidates x offsets) block (4 MiB of float64)
# (dense offsets, geometric offsets) sampled per level of the KS pruning
_LEVELS = ((8, 24), (64, 256), (512, 2048))
_EXACT_PER_LEVEL = 4


@dataclass(frozen=True)
class PowerLawFit:
    """The fitted tail of one ESD.

    Attributes
    ----------
    alpha : power-law exponent of the tail (PL_Alpha_Hill for the median fit).
    xmin : the eigenvalue where the tail starts.
    D : Kolmogorov-Smirnov distance of the fit over the tail.
    n_tail : eigenvalues in the tail (x >= xmin).
    xmin_index : index of xmin in the eigenvalues the fit saw.
    rule : how xmin was chosen: "median", "peak" or "ks" (the ``fit`` parameter of ``analyze``).
    """

    alpha: float
    xmin: float
    D: float
    n_tail: int
    xmin_index: int
    rule: str

    @property
    def fit(self) -> str:
        """Deprecated name of :attr:`rule`."""
        warn_renamed("PowerLawFit.fit", "PowerLawFit.rule")
        return self.rule


def _centered_logs(x: np.ndarray) -> np.ndarray:
    with np.errstate(divide="ignore"):
        logs = np.log(x)
    return logs - logs[-1]  # centring keeps the suffix sums small: less cancellation


def hill_alphas(logs: np.ndarray) -> np.ndarray:
    """alpha_i for every candidate i, from suffix sums of the (centred) log eigenvalues."""
    n = logs.size - np.arange(logs.size)
    suffix = np.cumsum(logs[::-1])[::-1]
    spread = suffix - n * logs
    with np.errstate(divide="ignore", invalid="ignore"):
        alpha = 1.0 + n / spread
    alpha[~(spread > 0)] = np.inf
    return alpha


def _max_deviation(logs: np.ndarray, alphas: np.ndarray, candidates: np.ndarray,
                   offsets: np.ndarray | None) -> np.ndarray:
    """max over tail offsets t (t < n_i) of the KS deviation, per candidate.

    With ``offsets=None`` every t is used (the exact D_i); with a subset of offsets the
    result is a lower bound on D_i.
    """
    size = logs.size
    out = np.ones(candidates.size)
    usable = np.isfinite(alphas[candidates]) & (alphas[candidates] > 1.0)
    idx_all = np.flatnonzero(usable)
    if idx_all.size == 0:
        return out
    t = np.arange(size - int(candidates[idx_all].min()), dtype=np.int64) if offsets is None else offsets
    per_chunk = max(1, _MAX_ELEMENTS // max(1, t.size))
    for lo in range(0, idx_all.size, per_chunk):
        sel = idx_all[lo:lo + per_chunk]
        i = candidates[sel]
        n = size - i
        tt = t[: int(np.searchsorted(t, n.max()))]
        pos = np.minimum(i[:, None] + tt[None, :], size - 1)
        exponent = (1.0 - alphas[i])[:, None] * (logs[pos] - logs[i][:, None])
        deviation = np.abs(1.0 - np.exp(exponent) - tt[None, :] / n[:, None])
        deviation[tt[None, :] >= n[:, None]] = 0.0
        out[sel] = deviation.max(axis=1)
    return out


def _sample_offsets(longest: int, dense: int, spread: int) -> np.ndarray:
    """Tail offsets to sample: every t below ``dense`` (where the deviation peaks), then
    ``spread`` geometrically spaced ones up to the longest tail."""
    geometric = np.geomspace(1, max(1, longest - 1), spread).astype(np.int64)
    return np.unique(np.concatenate([np.arange(min(dense, longest)), geometric]))


def ks_distances(logs: np.ndarray, alphas: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Exact D_i for the given candidate indices (chunked, bounded memory)."""
    return _max_deviation(logs, alphas, np.asarray(candidates, dtype=np.int64), None)


def best_candidate(logs: np.ndarray, alphas: np.ndarray, candidates: np.ndarray) -> tuple[int, float]:
    """The candidate with the smallest exact D (the first on ties), and that D.

    Exact, with pruning: a candidate is dropped only when a lower bound on its D (from
    a subset of its tail) exceeds an exact D already found, so the argmin is the
    brute-force one.
    """
    cand = np.asarray(candidates, dtype=np.int64)
    best_exact = np.inf
    for dense, spread in _LEVELS:
        if cand.size <= 4 * _EXACT_PER_LEVEL:
            break
        longest = logs.size - int(cand.min())
        lower = _max_deviation(logs, alphas, cand, _sample_offsets(longest, dense, spread))
        k = min(_EXACT_PER_LEVEL, cand.size)
        probe = np.argpartition(lower, k - 1)[:k]
        best_exact = min(best_exact, float(ks_distances(logs, alphas, cand[probe]).min()))
        cand = cand[lower <= best_exact]
    exact = ks_distances(logs, alphas, cand)
    j = int(np.argmin(exact))
    return int(cand[j]), float(exact[j])


def _result(x: np.ndarray, logs: np.ndarray, alphas: np.ndarray, i: int, D: float, fit: str) -> PowerLawFit:
    return PowerLawFit(float(alphas[i]), float(x[i]), float(D), int(x.size - i), int(i), fit)


def _nan_fit(fit: str) -> PowerLawFit:
    return PowerLawFit(float("nan"), float("nan"), float("nan"), 0, -1, fit)


def peak_xmin(x: np.ndarray) -> float:
    """Left edge of the first fullest bin of a 100-bin histogram of log10(x)."""
    logs10 = np.log10(x[x > 0])
    counts, edges = np.histogram(logs10, bins=100, range=(logs10.min(), logs10.max()))
    return float(10.0 ** edges[int(np.argmax(counts))])


def fit_power_law(eigenvalues: np.ndarray, fit: str = "median") -> PowerLawFit:
    """Fit a power law to the tail of sorted (ascending) eigenvalues.

    Parameters
    ----------
    eigenvalues : 1-D array, ascending (sorted here if it is not); float64 recommended.
    fit : "median" -> xmin at index floor(N/2) (PL_Alpha_Hill);
          "peak" -> KS argmin over candidates near the log-histogram peak (reference-compatible);
          "ks" -> KS argmin over every eigenvalue above 1e-5 (WeightWatcher's default).

    Examples
    --------
    >>> round(fit_power_law(np.array([1., 2, 4, 8, 16, 32])).alpha, 4)
    2.4427
    """
    x = np.asarray(eigenvalues, dtype=np.float64)
    if x.size > 1 and np.any(x[1:] < x[:-1]):
        x = np.sort(x)
    if fit == "ks":
        x = x[x > KS_TOLERANCE]
    if x.size < 2 or not x[-1] > 0:
        return _nan_fit(fit)
    logs = _centered_logs(x)
    alphas = hill_alphas(logs)
    if fit == "median":
        i = x.size // 2
        if not x[i] > 0:
            return _nan_fit(fit)
        return _result(x, logs, alphas, i, ks_distances(logs, alphas, np.array([i]))[0], fit)
    if fit == "peak":
        peak = peak_xmin(x)
        lower = np.log10(0.95 * peak)  # reference-compatible quirk: a log value compared to x
        positions = np.arange(x.size - 1)
        candidates = positions[(x[:-1] >= lower) & (x[:-1] <= 1.5 * peak) & (x[:-1] > 0)]
    elif fit == "ks":
        candidates = np.arange(x.size - 1)
    else:
        raise ValueError(f"fit must be one of 'median', 'peak', 'ks'; got {fit!r}")
    if candidates.size == 0:
        return _result(x, logs, alphas, 0, 1.0, fit)
    i, D = best_candidate(logs, alphas, candidates)
    if D >= 1.0:  # every candidate degenerate: the reference's argmin over all-ones picks index 0
        i = 0
    return _result(x, logs, alphas, i, D, fit)
