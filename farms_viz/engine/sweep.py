"""Tuning FARMS: alpha per layer across window sizes, grid densities and aspect ratios.

``sweep`` runs :func:`farms_viz.analyze` once per setting (the standard ESD is computed once
and cached) and, besides the pooled FARMS alpha, fits every window's ESD on its own: the
spread of those per-window alphas says how stable a window size is for a layer. The
per-window median-Hill fits are one vectorised computation over all windows of a layer.
"""

from __future__ import annotations

import itertools
import math
import warnings
from collections.abc import Sequence

import numpy as np
import pandas as pd
import torch
from torch import nn

from .analysis import analyze
from .fits import fit_power_law
from .params import DEFAULT_CONV_NORM, DEFAULT_FIT, AnalysisParams
from .progress import ProgressCallback, progress_reporter
from .run_control import RunControl

SWEEP_COLUMNS = [
    "layer", "kind", "rows", "cols", "window", "windows_per_dim", "q", "window_rows", "window_cols",
    "num_windows", "coverage", "window_clamped", "covers_whole_matrix", "fit", "alpha", "esd_alpha",
    "alpha_window_mean", "alpha_window_median", "alpha_std", "alpha_q25", "alpha_q75", "alpha_iqr",
    "windows_fitted",
]


def window_alphas(window_eigenvalues: np.ndarray, fit: str = "median") -> np.ndarray:
    """One power-law alpha per window, each window's ESD fitted on its own.

    Parameters
    ----------
    window_eigenvalues : (num_windows, n) array, each row one window's ascending eigenvalues
        (``Analysis.spectra[(layer, "farms")].window_eigenvalues``).
    fit : "median" is vectorised over all windows at once (PL_Alpha_Hill with xmin at index
        floor(n / 2)); "peak" and "ks" call :func:`farms_viz.fit_power_law` per window.

    Returns
    -------
    (num_windows,) float64 array; NaN where a window's tail is degenerate (zero eigenvalues),
    inf where its tail is flat (all equal), as ``fit_power_law`` reports them.

    Examples
    --------
    >>> window_alphas(np.array([[1., 2, 4, 8, 16, 32], [1., 2, 3, 4, 5, 6]])).round(4)
    array([2.4427, 5.7724])
    """
    x = np.asarray(window_eigenvalues, dtype=np.float64)
    if x.ndim != 2:
        raise ValueError(f"window_eigenvalues must be 2-D (one row per window); got shape {x.shape}")
    if fit != "median":
        return np.array([fit_power_law(row, fit).alpha for row in x], dtype=np.float64)
    n = x.shape[1]
    i = n // 2
    xmin = x[:, i]
    out = np.full(x.shape[0], np.nan)
    ok = (xmin > 0) if n >= 2 else np.zeros(x.shape[0], dtype=bool)
    if ok.any():
        tail = np.log(x[ok, i:]) - np.log(xmin[ok])[:, None]
        spread = tail.sum(axis=1)
        with np.errstate(divide="ignore"):
            out[ok] = np.where(spread > 0, 1.0 + (n - i) / spread, np.inf)
    return out


def _window_eigenvalues(spectrum) -> np.ndarray:
    """A FARMS spectrum's per-window eigenvalues (always present for method 'farms')."""
    assert spectrum.window_eigenvalues is not None, "a FARMS spectrum carries its windows' eigenvalues"
    return spectrum.window_eigenvalues


def _spread(alphas: np.ndarray) -> dict:
    finite = alphas[np.isfinite(alphas)]
    if finite.size == 0:
        nan = float("nan")
        return dict(alpha_window_mean=nan, alpha_window_median=nan, alpha_std=nan, alpha_q25=nan,
                    alpha_q75=nan, alpha_iqr=nan, windows_fitted=0)
    q25, q50, q75 = np.percentile(finite, [25, 50, 75])
    several = finite.size >= 2  # one window has no spread to measure: NaN, not 0
    return dict(alpha_window_mean=float(finite.mean()), alpha_window_median=float(q50),
                alpha_std=float(finite.std(ddof=1)) if several else float("nan"),
                alpha_q25=float(q25), alpha_q75=float(q75),
                alpha_iqr=float(q75 - q25) if several else float("nan"), windows_fitted=int(finite.size))


def _as_list(name: str, values) -> list:
    out = [values] if isinstance(values, (int, float)) else list(values)
    if not out:
        raise ValueError(f"{name} is empty: give at least one value, e.g. {name}=[100]")
    return out


def sweep(model: nn.Module, windows: Sequence[int] = (32, 64, 100, 128, 256, 512, 1024, 2000),
          windows_per_dim: Sequence[int] | int = (10,), q: Sequence[float] | float = (1.0,), *,
          fit: str = DEFAULT_FIT, esd: bool = True, include: Sequence[str] | str | None = None,
          exclude: Sequence[str] | str | None = None, conv_norm: float = DEFAULT_CONV_NORM,
          device: str | torch.device | None = None, progress: bool | ProgressCallback = False,
          control: RunControl | None = None) -> pd.DataFrame:
    """Alpha of every layer at every (window, windows_per_dim, q) setting, with its spread.

    Parameters
    ----------
    model : an ``nn.Module`` (or a state dict), as for :func:`farms_viz.analyze`.
    windows : window sizes m to try (clamped per layer; see ``window_rows``).
    windows_per_dim : grid densities k to try.
    q : aspect ratios Q to try.
    fit : the power-law fit, for the pooled alpha and for each window's own alpha.
    esd : also report the standard-ESD alpha of each layer (computed once) as ``esd_alpha``.
    include, exclude, conv_norm, device : as for :func:`farms_viz.analyze`.
    progress : True for a tqdm bar over settings, or a callback ``f(done, total, label)``.
    control : a :class:`~farms_viz.engine.run_control.RunControl` passed to every analysis (a
        cancel flag checked between batches of windows).

    Returns
    -------
    pandas.DataFrame, one row per (layer, window, windows_per_dim, q), layers in model order:
    layer, kind, rows, cols, window (requested), windows_per_dim, q, window_rows and
    window_cols (the window actually used), num_windows, coverage, window_clamped,
    covers_whole_matrix, fit, alpha (fit of the pooled FARMS ESD), esd_alpha,
    alpha_window_mean, alpha_window_median, alpha_std (sample std of the per-window alphas),
    alpha_q25, alpha_q75, alpha_iqr (NaN for a single window), windows_fitted (windows with
    a finite alpha).

    Examples
    --------
    >>> import torch.nn as nn
    >>> frame = sweep(nn.Sequential(nn.Linear(128, 64), nn.Linear(64, 64)), windows=[16, 32],
    ...               windows_per_dim=[3, 5])
    >>> frame.shape[0], list(frame.columns[:3])
    (8, ['layer', 'kind', 'rows'])
    """
    settings = list(itertools.product(_as_list("windows", windows), _as_list("windows_per_dim", windows_per_dim),
                                       _as_list("q", q)))
    for window, k, ratio in settings:  # every setting validated before any work
        AnalysisParams(window=window, q=ratio, windows_per_dim=k, fit=fit, conv_norm=conv_norm)
    rows: list[dict] = []
    esd_alphas: dict[str, float] = {}
    with progress_reporter(progress, desc="farms_viz sweep", unit="setting") as report:
        for done, (window, k, ratio) in enumerate(settings, start=1):
            method = "both" if esd and not esd_alphas else "farms"
            with warnings.catch_warnings():
                # a window covering a whole matrix is expected in a sweep: it is a column here
                warnings.filterwarnings("ignore", message=r"window \d+ covers the whole matrix")
                result = analyze(model, method=method, window=window, q=ratio, windows_per_dim=k, fit=fit,
                                 conv_norm=conv_norm, device=device, include=include, exclude=exclude,
                                 progress=False, control=control)
            if method == "both":
                esd_alphas = result.alphas("esd")
            frame = result.to_pandas().set_index(["layer", "method"])
            for layer in result.layers:
                spectrum = result.spectra[(layer, "farms")]
                info = frame.loc[(layer, "farms")]
                rows.append({
                    "layer": layer, "kind": spectrum.kind, "rows": spectrum.rows, "cols": spectrum.cols,
                    "window": int(window), "windows_per_dim": int(k), "q": float(ratio),
                    "window_rows": int(info["window_rows"]), "window_cols": int(info["window_cols"]),
                    "num_windows": int(info["num_windows"]), "coverage": float(info["coverage"]),
                    "window_clamped": bool(info["window_clamped"]),
                    "covers_whole_matrix": bool(info["covers_whole_matrix"]), "fit": fit,
                    "alpha": spectrum.fit.alpha, "esd_alpha": esd_alphas.get(layer, math.nan),
                    **_spread(window_alphas(_window_eigenvalues(spectrum), fit)),
                })
            if report is not None:
                report(done, len(settings), f"window={window} windows_per_dim={k} q={ratio}")
    return pd.DataFrame(rows, columns=SWEEP_COLUMNS)
