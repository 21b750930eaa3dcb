"""What a run will cost before it runs: its windows, pooled eigenvalues and seconds on this machine.

The seconds come from a throughput model measured once per process on the compute pool's threads
(batched eigenvalue problems and Gram products at a few sizes, a weight read, the fits: about a
tenth of a second), interpolated to every window shape, and corrected by the runs done since:
each finished run says how far the model was off on this machine, with its load of the moment.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from .cache import fingerprint
from .cpu_threads import compute_pool, eigvalsh, workers
from .fits import fit_power_law
from .params import FITS, AnalysisParams
from .windows import window_grid

# Sizes n of the n x n problems timed; others are interpolated on log-log axes, larger ones
# extrapolated as n^3.
CALIBRATION_SIZES = (2, 4, 8, 16, 32, 64, 128, 256)
# Pooled sizes at which the fits are timed.
FIT_SIZES = (512, 2048)
# Fixed cost of one layer under one method (loading, metrics, bookkeeping), seconds.
LAYER_OVERHEAD_S = 0.002
# Bytes the cache keeps per pooled FARMS eigenvalue: the per-window array and the sorted pool.
BYTES_PER_EIGENVALUE = 16


@dataclass(frozen=True)
class Throughput:
    """Seconds per unit of work on this machine, one compute thread (see :func:`measured_throughput`).

    Attributes
    ----------
    sizes : the problem sizes n that were timed.
    eig_seconds : one n x n symmetric eigenvalue problem, per size.
    gram_seconds : one n x n Gram product (n^3 multiply-adds), per size.
    copy_seconds : one weight entry gathered into a float64 window.
    read_seconds : one weight entry read for the cache's fingerprint.
    fit_seconds : fit -> (seconds, exponent): fitting n pooled eigenvalues takes
        ``seconds * (n / FIT_SIZES[0]) ** exponent`` (the peak and KS fits grow about as n^2).
    """

    sizes: tuple[int, ...]
    eig_seconds: tuple[float, ...]
    gram_seconds: tuple[float, ...]
    copy_seconds: float
    read_seconds: float
    fit_seconds: dict[str, tuple[float, float]]

    def _interpolate(self, values: tuple[float, ...], n: int) -> float:
        sizes = np.log(self.sizes)
        if n >= self.sizes[-1]:
            return values[-1] * (n / self.sizes[-1]) ** 3
        return float(np.exp(np.interp(math.log(max(n, 1)), sizes, np.log(values))))

    def window_seconds(self, rows: int, cols: int) -> float:
        """One rows x cols window: gathered, its Gram matrix formed, its eigenvalues found."""
        n, long_side = min(rows, cols), max(rows, cols)
        return (self._interpolate(self.eig_seconds, n) + self._interpolate(self.gram_seconds, n) * long_side / n
                + self.copy_seconds * rows * cols)

    def fit(self, fit: str, n: int) -> float:
        """Fitting a power law to ``n`` sorted eigenvalues."""
        seconds, exponent = self.fit_seconds[fit]
        return seconds * (max(n, 1) / FIT_SIZES[0]) ** exponent

    def esd_seconds(self, rows: int, cols: int) -> float:
        """The standard ESD of one rows x cols matrix."""
        n, long_side = min(rows, cols), max(rows, cols)
        return self._interpolate(self.eig_seconds, n) + self._interpolate(self.gram_seconds, n) * long_side / n


@dataclass(frozen=True)
class RunCost:
    """The predicted cost of one analysis.

    Attributes
    ----------
    layers : layers analysed.
    windows : FARMS windows over all layers (each slice of a convolution counted).
    eigenvalues : pooled FARMS eigenvalues over all layers.
    seconds : estimated wall time on this machine (cached parts cost a read of the weights).
    layer_windows : FARMS windows of each layer, in the order given.
    cached : True when only the read of the weights remains (spectra and fits are cached).
    """

    layers: int
    windows: int
    eigenvalues: int
    seconds: float
    layer_windows: tuple[int, ...]
    cached: bool = False

    @property
    def nbytes(self) -> int:
        """What the run's FARMS spectra occupy in the spectrum cache."""
        return BYTES_PER_EIGENVALUE * self.eigenvalues


_LOCK = threading.Lock()
_MEASURED: Throughput | None = None
_CORRECTION = 1.0


def _best_of(repeats: int, work) -> float:
    best = math.inf
    for _ in range(repeats):
        start = time.perf_counter()
        work()
        best = min(best, time.perf_counter() - start)
    return best


def _measure() -> Throughput:
    generator = torch.Generator().manual_seed(0)
    eig, gram = [], []
    for n in CALIBRATION_SIZES:
        count = int(min(2048, max(1, 2**18 // n**3)))
        batch = torch.randn(count, n, n, dtype=torch.float64, generator=generator)
        product = batch @ batch.transpose(-1, -2)
        eig.append(_best_of(2, lambda p=product: eigvalsh(p)) / count)
        gram.append(_best_of(2, lambda b=batch: b @ b.transpose(-1, -2)) / count)
    weight = torch.randn(2048, 2048, generator=generator)  # larger than the caches, as weights are
    index = torch.arange(0, 512, 64)[:, None] + torch.arange(64)[None, :]
    copy = _best_of(2, lambda: weight[index[:, None, :, None], index[None, :, None, :]].to(torch.float64))
    copy /= index.shape[0] ** 2 * 64 * 64
    read = _best_of(2, lambda: fingerprint(weight)) / weight.numel()
    fits = {}
    samples = [_pareto(n) for n in FIT_SIZES]
    for fit in FITS:
        small, large = (_best_of(2, lambda v=values, f=fit: fit_power_law(v, f)) for values in samples)
        exponent = float(np.clip(math.log(large / small) / math.log(FIT_SIZES[1] / FIT_SIZES[0]), 1.0, 3.0))
        fits[fit] = (small, exponent)
    return Throughput(CALIBRATION_SIZES, tuple(eig), tuple(gram), copy, read, fits)


def _pareto(n: int) -> np.ndarray:
    return np.sort(np.random.default_rng(n).pareto(2.0, n) + 1.0)


def measured_throughput() -> Throughput:
    """This machine's :class:`Throughput`, measured on first use (on a compute-pool thread, ~0.1 s).

    Examples
    --------
    >>> t = measured_throughput()
    >>> t.window_seconds(100, 100) > t.window_seconds(10, 10) > 0
    True
    """
    global _MEASURED
    with _LOCK:
        if _MEASURED is None:
            with torch.no_grad():
                _MEASURED = compute_pool().submit(_measure).result()
        return _MEASURED


def record_run(cost: RunCost, seconds: float) -> None:
    """Learn from a finished run: later estimates move halfway (in log) toward what it took.

    Runs predicted under 50 ms say more about overheads than throughput and are not used.
    """
    global _CORRECTION
    predicted = cost.seconds / _CORRECTION
    if predicted < 0.05 or not seconds > 0:
        return
    with _LOCK:
        _CORRECTION = float(np.clip(math.sqrt(_CORRECTION * seconds / predicted), 0.1, 10.0))


def estimate_cost(layers: Sequence[tuple[int, int, int]], params: AnalysisParams, *, farms_cached: bool = False,
                  esd_cached: bool = False, fits_cached: bool = False, threads: int | None = None) -> RunCost:
    """Windows, pooled eigenvalues and seconds of ``analyze`` on layers of these shapes.

    Parameters
    ----------
    layers : (rows, cols, num_slices) of each layer analysed.
    params : the run's parameters (``params.method`` says which methods run).
    farms_cached, esd_cached : that method's eigenvalues are already in the cache (same weights,
        same windows): the read of the weights and the fits remain.
    fits_cached : the fits (``params.fit``) of the cached eigenvalues are cached too.
    threads : layers computed at once (default: the compute pool's workers).

    Examples
    --------
    >>> cost = estimate_cost([(256, 128, 1), (64, 64, 1)], AnalysisParams(window=32, windows_per_dim=3))
    >>> cost.windows, cost.eigenvalues, cost.seconds > 0
    (18, 576, True)
    """
    speed = measured_throughput()
    threads = max(1, threads if threads is not None else workers())
    per_layer, counts, eigenvalues = [], [], 0
    for rows, cols, slices in layers:
        seconds = speed.read_seconds * rows * cols * slices
        count = 0
        if params.wants_farms:
            grid = window_grid(rows, cols, params.window, params.q, params.windows_per_dim, params.stride)
            count = grid.num_windows * slices
            pooled = count * grid.eigenvalues_per_window
            eigenvalues += pooled
            seconds += LAYER_OVERHEAD_S + (0.0 if farms_cached and fits_cached else speed.fit(params.fit, pooled))
            if not farms_cached:
                seconds += count * speed.window_seconds(grid.window_rows, grid.window_cols)
        if params.wants_esd:
            seconds += LAYER_OVERHEAD_S
            if not (esd_cached and fits_cached):
                seconds += speed.fit(params.fit, min(rows, cols) * slices)
            if not esd_cached:
                seconds += slices * speed.esd_seconds(rows, cols)
        counts.append(count)
        per_layer.append(seconds)
    # layers spread over the threads, but no faster than the largest one
    total = max(sum(per_layer) / threads, max(per_layer, default=0.0)) * _CORRECTION
    cached = fits_cached and (farms_cached or not params.wants_farms) and (esd_cached or not params.wants_esd)
    return RunCost(len(counts), sum(counts), eigenvalues, total, tuple(counts), cached)
