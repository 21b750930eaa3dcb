"""The random-matrix baseline: the alpha a Gaussian matrix of a layer's geometry gets (docs/spec.md, section 6).

A median-fit alpha means little on its own (pure noise scores about 2.1 on a square matrix and
more on a tall one); it means something against the alpha an i.i.d. Gaussian matrix of the same
shape gets under the same windows and fit. A geometry is ``count`` matrices of ``short`` x ``long``
whose eigenvalues are pooled: one matrix for a standard ESD (one per slice for a convolution),
one per window for FARMS. The windows of an i.i.d. matrix are themselves i.i.d. Gaussian; their
overlap correlates the pooled samples but does not change their distribution, so it is ignored.

- Median fit, large geometries: the Marchenko-Pastur closed form in the ratio r = short / long
  (:func:`mp_median_alpha`). Finite matrices differ from that limit in two ways, measured here
  (60,000 pooled eigenvalues, or 300 draws of one matrix):

  * small windows pool a finite-size ESD whose alpha lies below the limit: m x m windows of
    m = 8, 16, 32, 64 give 2.052, 2.086, 2.103, 2.111 against 2.122 (r = 1/4: 3.343, 3.397,
    3.423, 3.448 against 3.455);
  * a fit of few eigenvalues is biased upwards (the Hill estimator on n points): one 32 x 128
    matrix gets 3.60 in the median, one 10 x 128 matrix 6.29 against a limit of 5.37.

  The closed form is therefore used only from ``CLOSED_FORM_MIN_SIDE`` rows and
  ``CLOSED_FORM_MIN_EIGENVALUES`` pooled eigenvalues on (there it is within about 0.02 of a
  simulation: 512 x 512 scores 2.135 against 2.122); smaller geometries are simulated.
- Peak and KS fits have no closed form: always simulated.

A simulation draws the geometry's matrices from a generator seeded by the geometry (the same
numbers whichever layer asks first), ``repeats`` times, and reports the median alpha over the
repeats. Its cost is capped at ``SIMULATION_ENTRIES`` Gaussian entries: beyond that, fewer
matrices are pooled, and a single matrix too large is simulated at the same aspect ratio, scaled
down to sqrt(SIMULATION_ENTRIES * r / MIN_REPEATS) rows (1,155 for a square matrix, 130 for
MiniLM's 30522 x 384 embedding). Results are cached in memory by geometry and fit.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np
import torch
from scipy import integrate, optimize

from .fits import fit_power_law
from .spectra import gram_eigenvalues

# The Marchenko-Pastur closed form is used from this short side ...
CLOSED_FORM_MIN_SIDE = 64
# ... and this many pooled eigenvalues on; smaller geometries are simulated.
CLOSED_FORM_MIN_EIGENVALUES = 256
# A simulation pools about this many eigenvalues over its repeats ...
SIMULATION_EIGENVALUES = 10_000
# ... within these bounds on the number of repeats ...
MIN_REPEATS, MAX_REPEATS = 3, 16
# ... and draws at most this many Gaussian entries in all.
SIMULATION_ENTRIES = 4_000_000


@dataclass(frozen=True)
class Geometry:
    """What a baseline depends on: ``count`` Gaussian matrices of ``short`` x ``long``, pooled.

    Examples
    --------
    >>> Geometry.of(1536, 384)
    Geometry(short=384, long=1536, count=1)
    """

    short: int
    long: int
    count: int = 1

    @classmethod
    def of(cls, rows: int, cols: int, count: int = 1) -> Geometry:
        """The geometry of ``count`` matrices of rows x cols (either orientation)."""
        return cls(int(min(rows, cols)), int(max(rows, cols)), int(count))

    @property
    def ratio(self) -> float:
        return self.short / self.long

    @property
    def eigenvalues(self) -> int:
        return self.short * self.count


@functools.lru_cache(maxsize=256)
def mp_median_alpha(ratio: float) -> float:
    """Median-fit alpha of the Marchenko-Pastur law with ratio r = short / long, in the large-matrix limit.

    The law of the eigenvalues of (1 / long) W W^T for a short x long W of unit-variance entries:
    density sqrt((b - x)(x - a)) / (2 pi r x) on [a, b] = [(1 - sqrt r)^2, (1 + sqrt r)^2]. With
    x_med its median, alpha = 1 + 1 / E[ln(x / x_med) | x > x_med] (docs/spec.md, section 6).

    Parameters
    ----------
    ratio : r in (0, 1].

    Returns
    -------
    float

    Examples
    --------
    >>> round(mp_median_alpha(1.0), 3), round(mp_median_alpha(0.25), 3)
    (2.122, 3.455)
    """
    r = float(ratio)
    if not 0.0 < r <= 1.0:
        raise ValueError(f"ratio must be short side / long side, in (0, 1]; got {ratio!r}")
    low, high = (1.0 - math.sqrt(r)) ** 2, (1.0 + math.sqrt(r)) ** 2

    def density(x: float) -> float:
        return math.sqrt(max((high - x) * (x - low), 0.0)) / (2.0 * math.pi * r * x)

    # r = 1 puts an integrable 1/sqrt(x) singularity at 0: quad's algebraic weight handles it
    def mass(t: float) -> float:
        return integrate.quad(density, low, t, limit=200, epsabs=1e-12)[0]

    median = optimize.brentq(lambda t: mass(t) - 0.5, low, high, xtol=1e-13)
    mean_log = 2.0 * integrate.quad(lambda x: math.log(x / median) * density(x), median, high, limit=200,
                                    epsabs=1e-12)[0]
    return 1.0 + 1.0 / mean_log


def _simulation_plan(geometry: Geometry) -> tuple[Geometry, int]:
    """The geometry actually drawn (capped at ``SIMULATION_ENTRIES``) and the number of repeats."""
    short, long, count = geometry.short, geometry.long, geometry.count
    if MIN_REPEATS * count * short * long > SIMULATION_ENTRIES:
        count = max(1, SIMULATION_ENTRIES // (MIN_REPEATS * short * long))
    if MIN_REPEATS * short * long > SIMULATION_ENTRIES:  # one matrix is too large: same ratio, smaller
        scale = math.sqrt(SIMULATION_ENTRIES / (MIN_REPEATS * short * long))
        short, long = max(2, int(short * scale)), max(2, int(long * scale))
    repeats = math.ceil(SIMULATION_EIGENVALUES / (count * short))
    repeats = min(max(repeats, MIN_REPEATS), MAX_REPEATS, max(1, SIMULATION_ENTRIES // (count * short * long)))
    return Geometry(short, long, count), repeats


def _pooled_gaussian_eigenvalues(geometry: Geometry, repeats: int, rng: np.random.Generator) -> np.ndarray:
    """(repeats, count * short) array: each row the sorted eigenvalues of ``count`` i.i.d. N(0, 1 / long)
    matrices of short x long, pooled; every draw in one batched call of the engine's eigenvalue path."""
    w = rng.standard_normal((repeats * geometry.count, geometry.short, geometry.long)) / math.sqrt(geometry.long)
    with torch.no_grad():
        eigenvalues = gram_eigenvalues(torch.from_numpy(w)).numpy()
    return np.sort(eigenvalues.reshape(repeats, -1), axis=1)


@functools.lru_cache(maxsize=1024)
def simulated_alpha(geometry: Geometry, fit: str) -> float:
    """Median alpha over repeated draws of a Gaussian ``geometry``, under ``fit`` (cached).

    Examples
    --------
    >>> 2.0 < simulated_alpha(Geometry(32, 32, 25), "median") < 2.15
    True
    """
    drawn, repeats = _simulation_plan(geometry)
    rng = np.random.default_rng([geometry.short, geometry.long, geometry.count])
    alphas = [fit_power_law(row, fit).alpha for row in _pooled_gaussian_eigenvalues(drawn, repeats, rng)]
    finite = [a for a in alphas if np.isfinite(a)]
    return float(np.median(finite)) if finite else float("nan")


def alpha_baseline(rows: int, cols: int, fit: str = "median", count: int = 1) -> float:
    """The alpha an i.i.d. Gaussian geometry gets: ``count`` rows x cols matrices, pooled, under ``fit``.

    Parameters
    ----------
    rows, cols : the shape of the matrix (standard ESD) or of each window (FARMS).
    fit : "median", "peak" or "ks", as for :func:`farms_viz.analyze`.
    count : matrices pooled: 1 for a standard ESD (slices for a convolution), the number of
        windows (times slices) for FARMS.

    Returns
    -------
    float: the Marchenko-Pastur closed form for a large geometry under the median fit, otherwise
    a simulation (cached); NaN when fewer than 2 eigenvalues would be fitted.

    Examples
    --------
    >>> round(alpha_baseline(2048, 512), 3)  # the closed form for r = 1/4
    3.455
    """
    geometry = Geometry.of(rows, cols, count)
    if geometry.eigenvalues < 2:
        return float("nan")
    if fit == "median" and geometry.short >= CLOSED_FORM_MIN_SIDE and \
            geometry.eigenvalues >= CLOSED_FORM_MIN_EIGENVALUES:
        return mp_median_alpha(geometry.ratio)
    return simulated_alpha(geometry, fit)
