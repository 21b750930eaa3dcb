"""Sweep charts: how each layer's FARMS alpha moves with the window size (:func:`farms_viz.sweep`)."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import pandas as pd

from .datasets import with_datasets

BANDS = ("std", "iqr")
DATASET = "sweep"


def _setting_label(frame: pd.DataFrame) -> pd.Series:
    return "k=" + frame["windows_per_dim"].astype(str) + ", Q=" + frame["q"].map("{:g}".format)


def _prepared(frame: pd.DataFrame, band: str, layers: Sequence[str] | None) -> pd.DataFrame:
    if band not in BANDS:
        raise ValueError(f"band must be one of {', '.join(map(repr, BANDS))}; got {band!r}")
    missing = {"layer", "window", "windows_per_dim", "q", "alpha"} - set(frame.columns)
    if missing:
        raise ValueError(f"frame lacks columns {sorted(missing)}: pass the DataFrame farms_viz.sweep returns")
    data = frame if layers is None else frame[frame["layer"].isin(list(layers))]
    if data.empty:
        raise ValueError("no rows to draw: the frame is empty or no layer matches `layers`")
    data = data.copy()
    data["setting"] = _setting_label(data)
    if band == "std":
        data["band_low"] = data["alpha_window_mean"] - data["alpha_std"]
        data["band_high"] = data["alpha_window_mean"] + data["alpha_std"]
    else:
        data["band_low"], data["band_high"] = data["alpha_q25"], data["alpha_q75"]
    return data


def alpha_vs_window(frame: pd.DataFrame, *, current_window: int | None = None, band: str = "std",
                    layers: Sequence[str] | None = None, columns: int = 4, width: int = 180,
                    height: int = 120, show_esd: bool = True) -> alt.FacetChart:
    """Alpha against window size, one small panel per layer, the per-window spread as a band.

    The line is the pooled FARMS alpha; the band spans the per-window alphas (mean +- std, or
    the 25th-75th percentiles with ``band="iqr"``); a dashed horizontal rule is the standard
    ESD alpha; a vertical rule marks ``current_window``. Several (windows_per_dim, q) settings
    are drawn in different colours.

    Parameters
    ----------
    frame : the DataFrame :func:`farms_viz.sweep` returns.
    current_window : the window in use now, marked by a rule (None: no rule).
    band : "std" or "iqr".
    layers : the layers to show (default all, in the frame's order).
    columns, width, height : panel grid and size.
    show_esd : draw the standard-ESD alpha rule (needs ``esd_alpha``).

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> frame = farms_viz.sweep(nn.Linear(128, 64), windows=[16, 32], windows_per_dim=[3])
    >>> alpha_vs_window(frame, current_window=32).to_dict()["facet"]["field"]
    'layer'
    """
    data = _prepared(frame, band, layers)
    order = list(dict.fromkeys(data["layer"]))
    # ticks at the windows tried, on an axis that spans them (a nice log domain would run 1..100)
    tried = sorted({int(w) for w in data["window"]})
    x = alt.X("window:Q", scale=alt.Scale(type="log", nice=False, padding=10), title="window m",
              axis=alt.Axis(values=tried, format="d", labelOverlap="greedy", grid=False))
    color = alt.Color("setting:N", title="grid, aspect")
    tooltip = ["layer:N", "window:Q", "window_rows:Q", "window_cols:Q", "num_windows:Q", "setting:N",
               alt.Tooltip("alpha:Q", format=".3f"), alt.Tooltip("alpha_std:Q", format=".3f"),
               alt.Tooltip("alpha_iqr:Q", format=".3f")]
    base = alt.Chart().encode(x=x, color=color)
    layers_ = [
        base.mark_area(opacity=0.2).encode(y="band_low:Q", y2="band_high:Q"),
        base.mark_line(point=True).encode(y=alt.Y("alpha:Q", title="alpha", scale=alt.Scale(zero=False)),
                                          tooltip=tooltip),
    ]
    if show_esd and "esd_alpha" in data and data["esd_alpha"].notna().any():
        layers_.append(alt.Chart().transform_aggregate(esd_alpha="mean(esd_alpha)")
                       .mark_rule(strokeDash=[4, 3], color="gray").encode(y="esd_alpha:Q"))
    if current_window is not None:
        layers_.append(alt.Chart().transform_aggregate(rows="count()")
                       .transform_calculate(current=f"{float(current_window)!r}")
                       .mark_rule(color="firebrick").encode(x="current:Q"))
    chart = (alt.layer(*layers_, data=alt.NamedData(name=DATASET))
             .properties(width=width, height=height)
             .facet(facet=alt.Facet("layer:N", sort=order, title=None), columns=columns)
             .resolve_scale(y="independent"))
    return with_datasets(chart, {DATASET: data}, selectable=False)


def spread_heatmap(frame: pd.DataFrame, *, measure: str = "alpha_std", layers: Sequence[str] | None = None,
                   cell: int = 14) -> alt.Chart:
    """Per-window spread of alpha, layers x window sizes: which windows give stable alphas.

    Parameters
    ----------
    frame : the DataFrame :func:`farms_viz.sweep` returns.
    measure : "alpha_std" or "alpha_iqr".
    layers : the layers to show (default all).
    cell : row height in pixels.

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> frame = farms_viz.sweep(nn.Linear(128, 64), windows=[16, 32], windows_per_dim=[3])
    >>> spread_heatmap(frame).to_dict()["mark"]["type"]
    'rect'
    """
    if measure not in ("alpha_std", "alpha_iqr"):
        raise ValueError(f"measure must be 'alpha_std' or 'alpha_iqr'; got {measure!r}")
    data = _prepared(frame, "std", layers)
    order = list(dict.fromkeys(data["layer"]))
    chart = alt.Chart(alt.NamedData(name=DATASET)).mark_rect().encode(
        x=alt.X("window:O", title="window m"),
        y=alt.Y("layer:N", sort=order, title=None),
        color=alt.Color(f"{measure}:Q", title=measure.replace("_", " "), scale=alt.Scale(scheme="viridis")),
        tooltip=["layer:N", "window:Q", "setting:N", alt.Tooltip(f"{measure}:Q", format=".3f"),
                 alt.Tooltip("alpha:Q", format=".3f"), "num_windows:Q"],
    ).properties(height=alt.Step(cell))
    if data["setting"].nunique() > 1:
        chart = chart.facet(column=alt.Column("setting:N", title=None))
    return with_datasets(chart, {DATASET: data}, selectable=False)
