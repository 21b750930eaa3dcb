"""Tidy tables for the charts and the layer table, built from an :class:`~farms_viz.Analysis`.

Pure pandas/numpy: the chart builders (``charts``), the widget and the HTML export all
read these frames, so every view shows the same numbers.
"""

from __future__ import annotations

import weakref

import numpy as np
import pandas as pd

from ..engine.analysis import Analysis
from ..engine.marchenko_pastur import mp_density, mp_variance
from .reference import with_plot_columns
from .style import METHOD_LABELS

LOG_BINS = 40
LINEAR_BINS = 50
LINEAR_QUANTILE = 0.99  # the lin-lin view spans eigenvalues up to this quantile
CURVE_POINTS = 48
# The log-log view starts where the mass is: at this quantile of the eigenvalues (a square
# window's few near-zero eigenvalues would otherwise take decades of the axis) ...
LOG_START_QUANTILE = 0.1
# ... and spans at most this many decades below the largest eigenvalue.
LOG_DECADES = 6


_FRAMES: dict[int, pd.DataFrame] = {}  # the layer_frame of each live Analysis, by id


def layer_frame(analysis: Analysis) -> pd.DataFrame:
    """One row per (layer, method), in model order, ready for the per-layer charts.

    Computed once per :class:`~farms_viz.Analysis` (the panels, the table and the default layer
    all read it; an Analysis is not changed once made); each call returns a copy.

    Columns: ``Analysis.to_pandas()``'s, plus order (position in the model), method_label,
    shape ("rows x cols"), window ("m x w" of each window), alpha_delta (FARMS alpha
    minus standard ESD alpha of the same layer), and what the alpha charts draw
    (:func:`~farms_viz.charts.reference.with_plot_columns`): alpha_shown, alpha_clip,
    baseline_shown, baseline_clip, y_low, y_high.
    """
    frame = _FRAMES.get(id(analysis))
    if frame is None:
        frame = _layer_frame(analysis)
        _FRAMES[id(analysis)] = frame
        weakref.finalize(analysis, _FRAMES.pop, id(analysis), None)
    return frame.copy()


def _layer_frame(analysis: Analysis) -> pd.DataFrame:
    frame = with_plot_columns(analysis.to_pandas(), analysis.params.fit)
    order = {name: i for i, name in enumerate(analysis.layers)}
    frame["order"] = frame["layer"].map(order)
    frame["method_label"] = frame["method"].map(METHOD_LABELS)
    frame["shape"] = frame["rows"].astype(str) + " x " + frame["cols"].astype(str)
    frame["window"] = frame["window_rows"].astype(str) + " x " + frame["window_cols"].astype(str)
    alphas = frame.pivot(index="layer", columns="method", values="alpha")
    if {"esd", "farms"} <= set(alphas.columns):
        frame["alpha_delta"] = frame["layer"].map(alphas["farms"] - alphas["esd"])
    else:
        frame["alpha_delta"] = np.nan
    return frame


def table_frame(analysis: Analysis) -> pd.DataFrame:
    """The layer table: one row per analysed or skipped layer, in model order.

    Columns: layer, kind, shape, aspect_ratio, alpha_esd, alpha_farms, alpha_delta,
    baseline_esd, baseline_farms (the random baseline of each method), D_esd, D_farms, window,
    num_windows, coverage, covers_whole_matrix, sampling_note (FARMS' sampling warnings),
    skipped_reason (empty for analysed layers).
    """
    frame = layer_frame(analysis)
    frame = frame.rename(columns={"alpha_baseline": "baseline"})
    wide = frame.pivot(index="layer", columns="method", values=["alpha", "baseline", "D"])
    wide.columns = [f"{value}_{method}" for value, method in wide.columns]
    # plain dicts: one lookup per cell (pandas' .loc per cell cost ~60 ms on MiniLM's 39 layers)
    wide_rows = wide.to_dict("index")
    farms = frame[frame["method"] == "farms"].set_index("layer").to_dict("index")
    first = frame.drop_duplicates("layer").set_index("layer").to_dict("index")
    rows = []
    for name in analysis.layers:
        base, values, f = first[name], wide_rows.get(name, {}), farms.get(name)
        rows.append({
            "layer": name, "kind": base["kind"], "shape": base["shape"],
            "aspect_ratio": float(base["aspect_ratio"]),
            "alpha_esd": values.get("alpha_esd", np.nan),
            "alpha_farms": values.get("alpha_farms", np.nan),
            "alpha_delta": float(base["alpha_delta"]),
            "baseline_esd": values.get("baseline_esd", np.nan),
            "baseline_farms": values.get("baseline_farms", np.nan),
            "D_esd": values.get("D_esd", np.nan),
            "D_farms": values.get("D_farms", np.nan),
            "window": f["window"] if f is not None else "",
            "num_windows": int(f["num_windows"]) if f is not None else 0,
            "coverage": float(f["coverage"]) if f is not None else np.nan,
            "covers_whole_matrix": bool(f["covers_whole_matrix"]) if f is not None else False,
            "sampling_note": str(f["sampling_note"]) if f is not None else "",
            "skipped_reason": "",
        })
    for skipped in analysis.skipped:
        rows.append({"layer": skipped.name, "kind": skipped.kind,
                     "shape": " x ".join(map(str, skipped.shape)), "skipped_reason": skipped.reason})
    return pd.DataFrame(rows, columns=[
        "layer", "kind", "shape", "aspect_ratio", "alpha_esd", "alpha_farms", "alpha_delta", "baseline_esd",
        "baseline_farms", "D_esd", "D_farms", "window", "num_windows", "coverage", "covers_whole_matrix",
        "sampling_note", "skipped_reason"])


def _window_shape(spectrum) -> tuple[int, int]:
    if spectrum.grid is not None:
        return spectrum.grid.window_rows, spectrum.grid.window_cols
    return spectrum.rows, spectrum.cols


def _histogram(x: np.ndarray, scale: str) -> tuple[np.ndarray, np.ndarray]:
    if scale == "log":
        positive = x[x >= max(float(np.quantile(x, LOG_START_QUANTILE)), x[-1] * 10.0 ** -LOG_DECADES)]
        positive = positive[positive > 0]
        edges = np.geomspace(positive[0], positive[-1], LOG_BINS + 1)
        counts, _ = np.histogram(positive, edges)
    else:
        # the few largest eigenvalues of a heavy tail would squash the bulk against zero: the
        # linear view stops at a high quantile (the log-log view shows the whole tail)
        edges = np.linspace(0.0, _linear_upper(x), LINEAR_BINS + 1)
        counts, _ = np.histogram(x, edges)
    return edges, counts / (x.size * np.diff(edges))


def _linear_upper(x: np.ndarray) -> float:
    return float(np.quantile(x, LINEAR_QUANTILE))


def _curve_grid(low: float, high: float, scale: str) -> np.ndarray:
    if scale == "log":
        return np.geomspace(low, high, CURVE_POINTS)
    return np.linspace(low, high, CURVE_POINTS)


def spectrum_frames(analysis: Analysis, layer: str) -> dict[str, pd.DataFrame]:
    """The spectrum panel's data for one layer, for a log-log and a lin-lin view.

    Every row carries its method ("esd"/"farms") and that method's mean eigenvalue (``unit``):
    the chart divides eigenvalues by it (and multiplies densities by it) to put the standard
    ESD and FARMS on one axis. For i.i.d. entries of variance s^2 the mean eigenvalue of an
    m x w window (m <= w) is s^2 w, the Marchenko-Pastur scale of that shape, so a random
    window's normalised ESD is the MP law of unit mean whatever its size: what remains
    visible is the shape, not the scale (FARMS' windows are smaller than the matrix, so its
    raw eigenvalues sit 10-20x to the left of the ESD's; that is not a shift of the spectrum).

    Returns
    -------
    dict with three DataFrames:
      - "histogram": method, method_label, unit, scale ("log"/"linear"), bin_start, bin_end,
        density (per unit eigenvalue: counts / (N * bin width)); the log view starts at the
        ``LOG_START_QUANTILE`` quantile, where the mass is;
      - "curves": method, method_label, unit, scale, curve ("power-law fit" from xmin, or
        "Marchenko-Pastur" for the window's, or matrix's, shape), eigenvalue, density;
      - "xmin": method, method_label, unit, xmin, alpha, n_tail.
    """
    histograms, curves, marks = [], [], []
    for method in analysis.methods:
        if (layer, method) not in analysis.spectra:
            continue
        spectrum = analysis.spectrum(layer, method)
        x = np.sort(np.asarray(spectrum.eigenvalues, dtype=np.float64))
        if x.size == 0 or not x[-1] > 0:
            continue
        fit = spectrum.fit
        rows, cols = _window_shape(spectrum)
        variance = mp_variance(x, rows, cols)
        who = {"method": method, "method_label": METHOD_LABELS[method], "unit": float(np.mean(x))}
        marks.append({**who, "xmin": float(fit.xmin), "alpha": float(fit.alpha), "n_tail": int(fit.n_tail)})
        for scale in ("log", "linear"):
            edges, density = _histogram(x, scale)
            histograms.append(pd.DataFrame({**who, "scale": scale, "bin_start": edges[:-1], "bin_end": edges[1:],
                                            "density": density}))
            high = x[-1] if scale == "log" else edges[-1]
            low = edges[0] if scale == "log" else high / CURVE_POINTS
            grid = _curve_grid(low, high, scale)
            curves.append(pd.DataFrame({**who, "scale": scale, "curve": "Marchenko-Pastur", "eigenvalue": grid,
                                        "density": mp_density(grid, variance, rows, cols)}))
            if fit.xmin > 0 and fit.alpha > 1 and high > fit.xmin:
                # a power law is a straight line on log-log axes: two points draw it
                tail = np.array([fit.xmin, high]) if scale == "log" else _curve_grid(fit.xmin, high, "log")
                # the fitted tail, scaled to the fraction of the ESD it describes
                density = (fit.n_tail / x.size) * (fit.alpha - 1) / fit.xmin * (tail / fit.xmin) ** -fit.alpha
                curves.append(pd.DataFrame({**who, "scale": scale, "curve": "power-law fit", "eigenvalue": tail,
                                            "density": density}))
    who_columns = ["method", "method_label", "unit"]
    histogram = pd.concat(histograms, ignore_index=True) if histograms else pd.DataFrame(
        columns=[*who_columns, "scale", "bin_start", "bin_end", "density"])
    curve = pd.concat(curves, ignore_index=True) if curves else pd.DataFrame(
        columns=[*who_columns, "scale", "curve", "eigenvalue", "density"])
    # zero densities cannot sit on a log axis; the linear view keeps them
    histogram = histogram[(histogram["scale"] == "linear") | (histogram["density"] > 0)]
    curve = curve[(curve["scale"] == "linear") | (curve["density"] > 0)]
    return {"histogram": histogram.reset_index(drop=True), "curves": curve.reset_index(drop=True),
            "xmin": pd.DataFrame(marks, columns=[*who_columns, "xmin", "alpha", "n_tail"])}
