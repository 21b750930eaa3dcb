"""The Marchenko-Pastur density of a random window's eigenvalues (docs/spec.md, section 5).

For an m x w matrix (m <= w) with i.i.d. entries of variance s^2, the eigenvalues of
W W^T (no 1/N scaling) fill [lambda_-, lambda_+] with lambda_+- = s^2 (sqrt(w) +- sqrt(m))^2.
The shape depends on the aspect ratio w / m only: the bias FARMS removes by fixing it.
"""

from __future__ import annotations

import numpy as np


def mp_variance(eigenvalues: np.ndarray, rows: int, cols: int) -> float:
    """Entry variance s^2 implied by the eigenvalues of a rows x cols matrix: mean(x) / w.

    Parameters
    ----------
    eigenvalues : the matrix's (or the pooled windows') eigenvalues.
    rows, cols : shape of the matrix (or of each window); w is the longer side.

    Returns
    -------
    float

    Examples
    --------
    >>> mp_variance(np.array([2.0, 4.0]), 2, 3)
    1.0
    """
    return float(np.mean(eigenvalues)) / max(rows, cols)


def mp_edges(variance: float, rows: int, cols: int) -> tuple[float, float]:
    """The support (lambda_-, lambda_+) of the MP law for a rows x cols matrix.

    Examples
    --------
    >>> mp_edges(1.0, 4, 16)
    (4.0, 36.0)
    """
    m, w = sorted((rows, cols))
    return float(variance * (np.sqrt(w) - np.sqrt(m)) ** 2), float(variance * (np.sqrt(w) + np.sqrt(m)) ** 2)


def mp_density(x: np.ndarray, variance: float, rows: int, cols: int) -> np.ndarray:
    """MP density p(x) of the eigenvalues of W W^T in unnormalised units; zero off the support.

    p(x) = sqrt((lambda_+ - x)(x - lambda_-)) / (2 pi s^2 m x), m the shorter side; it
    integrates to 1 over [lambda_-, lambda_+].

    Parameters
    ----------
    x : points where to evaluate the density.
    variance : entry variance s^2 (see :func:`mp_variance`).
    rows, cols : the matrix (or window) shape.

    Returns
    -------
    numpy.ndarray of the same shape as ``x``.

    Examples
    --------
    >>> float(np.round(mp_density(np.array([4.0]), 1.0, 4, 4)[0], 4))
    0.0
    """
    x = np.asarray(x, dtype=np.float64)
    m = min(rows, cols)
    lo, hi = mp_edges(variance, rows, cols)
    inside = (x > lo) & (x < hi) & (x > 0)
    out = np.zeros_like(x)
    xi = x[inside]
    out[inside] = np.sqrt((hi - xi) * (xi - lo)) / (2 * np.pi * variance * m * xi)
    return out
