"""Sweep charts: how each layer's FARMS alpha moves with the window size (:func:`farms_viz.sweep`)."""

from __future__ import annotations

from collections.abc import Sequence

import altair as alt
import numpy as np
import pandas as pd

from .datasets import SELECTED, is_selected, with_datasets
from .style import INK, LIGHT_INK, METHOD_COLORS, METHOD_DASHES, METHOD_DOMAIN, METHOD_LABELS, shades

BANDS = ("std", "iqr")
DATASET = "sweep"
MEAN_DATASET = "sweep_mean"
# Dashes of the (windows_per_dim, q) settings: a second channel beside the shades of blue.
SETTING_DASHES = [[1, 0], [6, 3], [2, 2], [8, 3, 2, 3]]


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


def _window_axis(data: pd.DataFrame, title: str | None = "window m") -> alt.X:
    # ticks at the windows tried, on an axis that spans them (a nice log domain would run 1..100)
    tried = sorted({int(w) for w in data["window"]})
    return alt.X("window:Q", scale=alt.Scale(type="log", nice=False, padding=10), title=title,
                 axis=alt.Axis(values=tried, format="d", labelOverlap="greedy", grid=False))


def _setting_scales(data: pd.DataFrame) -> tuple[alt.Color, alt.StrokeDash]:
    """Settings in shades of FARMS' blue (light to dark as listed), each with its own dash."""
    settings = list(dict.fromkeys(data["setting"]))
    color = alt.Color("setting:N", title="grid, aspect", sort=settings,
                      legend=alt.Legend(symbolType="stroke", symbolStrokeWidth=2.5, symbolSize=300, symbolOpacity=1),
                      scale=alt.Scale(domain=settings, range=shades("farms", len(settings))))
    dash = alt.StrokeDash("setting:N", title="grid, aspect", sort=settings,
                          scale=alt.Scale(domain=settings, range=[SETTING_DASHES[i % len(SETTING_DASHES)]
                                                                 for i in range(len(settings))]))
    return color, dash


def _current_rule(current_window: int | None) -> list:
    if current_window is None:
        return []
    return [alt.Chart().transform_aggregate(rows="count()")
            .transform_calculate(current=f"{float(current_window)!r}")
            .mark_rule(strokeWidth=1.5, strokeDash=[3, 2], color={"expr": INK}).encode(
                x="current:Q", tooltip=[alt.Tooltip("current:Q", title="current window")])]


def alpha_vs_window(frame: pd.DataFrame, *, current_window: int | None = None, band: str = "std",
                    layers: Sequence[str] | None = None, columns: int = 4, width: int = 180,
                    height: int = 120, show_esd: bool = True) -> alt.FacetChart:
    """Alpha against window size, one small panel per layer, the per-window spread as a band.

    The line is the pooled FARMS alpha; the band spans the per-window alphas (mean +- std, or
    the 25th-75th percentiles with ``band="iqr"``); a dashed rule in the standard ESD's colour
    is its alpha; a vertical rule marks ``current_window``. Several (windows_per_dim, q)
    settings are drawn in shades of FARMS' blue, each with its own dash. Every panel shares one
    y scale and draws its own labelled axes.

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
    x = _window_axis(data)
    color, dash = _setting_scales(data)
    tooltip = ["layer:N", "window:Q", "window_rows:Q", "window_cols:Q", "num_windows:Q", "setting:N",
               alt.Tooltip("alpha:Q", format=".3f"), alt.Tooltip("alpha_std:Q", format=".3f"),
               alt.Tooltip("alpha_iqr:Q", format=".3f")]
    base = alt.Chart().encode(x=x, color=color)
    layers_ = [
        base.mark_area(opacity=0.14).encode(y="band_low:Q", y2="band_high:Q"),
        base.mark_line(point=True).encode(y=alt.Y("alpha:Q", title="alpha", scale=alt.Scale(zero=False)),
                                          strokeDash=dash, tooltip=tooltip),
    ]
    if show_esd and "esd_alpha" in data and data["esd_alpha"].notna().any():
        layers_.append(alt.Chart().transform_aggregate(esd_alpha="mean(esd_alpha)")
                       .mark_rule(strokeDash=METHOD_DASHES[0], color=METHOD_COLORS[0], strokeWidth=1.5)
                       .encode(y="esd_alpha:Q", tooltip=[alt.Tooltip("esd_alpha:Q", title="standard ESD alpha",
                                                                     format=".3f")]))
    layers_ += _current_rule(current_window)
    chart = (alt.layer(*layers_, data=alt.NamedData(name=DATASET))
             .properties(width=width, height=height)
             .facet(facet=alt.Facet("layer:N", sort=order, title=None), columns=columns)
             .resolve_scale(y="shared")
             .resolve_axis(x="independent", y="independent"))
    chart = chart.add_params(alt.param(name=INK, value=LIGHT_INK))
    return with_datasets(chart, {DATASET: data}, selectable=False)


def model_mean_alphas(frame: pd.DataFrame) -> pd.DataFrame:
    """The model's mean alpha per method at each window: FARMS' moves with the window, the ESD's does not.

    Returns
    -------
    DataFrame: window, method, method_label, alpha (the mean over layers), layers (how many).

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> frame = farms_viz.sweep(nn.Sequential(nn.Linear(128, 64), nn.Linear(64, 64)), windows=[16, 32],
    ...                         windows_per_dim=[3])
    >>> model_mean_alphas(frame)[["window", "method"]].values.tolist()
    [[16, 'esd'], [16, 'farms'], [32, 'esd'], [32, 'farms']]
    """
    rows = []
    for window, group in frame.groupby("window", sort=True):
        for method, column in (("esd", "esd_alpha"), ("farms", "alpha")):
            if column not in group:
                continue
            values = group[column].replace([np.inf, -np.inf], np.nan).dropna()
            if len(values):
                rows.append({"window": int(window), "method": method, "method_label": METHOD_LABELS[method],
                             "alpha": float(values.mean()), "layers": len(values)})
    return pd.DataFrame(rows, columns=["window", "method", "method_label", "alpha", "layers"])


def sweep_overview(frame: pd.DataFrame, *, current_window: int | None = None, selected_layer: str | None = None,
                   width: int = 520, height: int = 150) -> alt.VConcatChart:
    """The sweep in two panels: the model's mean alpha per method against the window, then one layer's.

    The layer panel shows the layer named by the ``selected_layer`` parameter (the explorer's
    selection: pick it in any chart, the table, or the sweep tab's layer list): its pooled FARMS
    alpha, the per-window band (mean +- std), the standard ESD's alpha (dashed, orange) and the
    current window (a vertical rule). Both panels share the window axis and label it.

    Parameters
    ----------
    frame : the DataFrame :func:`farms_viz.sweep` returns (one windows_per_dim and q).
    current_window : the window in use now, marked in both panels.
    selected_layer : the layer shown at first.
    width, height : size of each panel.

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> frame = farms_viz.sweep(nn.Linear(128, 64), windows=[16, 32], windows_per_dim=[3])
    >>> sorted(sweep_overview(frame, current_window=16).to_dict()["datasets"])
    ['sweep', 'sweep_mean']
    """
    data = _prepared(frame, "std", None)
    means = model_mean_alphas(data)
    x = _window_axis(data)
    y_scale = alt.Scale(zero=False)
    mean_lines = alt.Chart(alt.NamedData(name=MEAN_DATASET)).mark_line(point=True, strokeWidth=2).encode(
        x=x, y=alt.Y("alpha:Q", title="mean alpha", scale=y_scale),
        color=alt.Color("method_label:N", title="method", scale=alt.Scale(domain=METHOD_DOMAIN, range=METHOD_COLORS),
                        legend=alt.Legend(orient="top", symbolType="stroke", symbolStrokeWidth=2.5, symbolSize=300)),
        strokeDash=alt.StrokeDash("method_label:N", title="method",
                                  legend=alt.Legend(orient="top", symbolType="stroke", symbolStrokeWidth=2.5,
                                                    symbolSize=300),
                                  scale=alt.Scale(domain=METHOD_DOMAIN, range=METHOD_DASHES)),
        tooltip=[alt.Tooltip("method_label:N", title="method"), "window:Q",
                 alt.Tooltip("alpha:Q", title="mean alpha", format=".3f"), alt.Tooltip("layers:Q")])
    top = alt.layer(mean_lines, *[r.properties(data=alt.NamedData(name=MEAN_DATASET))
                                  for r in _current_rule(current_window)]).properties(
        width=width, height=height, title="the model: mean alpha over layers per method")
    one = alt.Chart(alt.NamedData(name=DATASET)).transform_filter(is_selected())
    farms_color = alt.value(METHOD_COLORS[1])
    layer_marks = [
        one.mark_area(opacity=0.2, color=METHOD_COLORS[1]).encode(x=x, y="band_low:Q", y2="band_high:Q"),
        one.mark_line(point=True, strokeWidth=2).encode(
            x=x, y=alt.Y("alpha:Q", title="alpha", scale=y_scale), color=farms_color,
            tooltip=["layer:N", "window:Q", "window_rows:Q", "window_cols:Q", "num_windows:Q",
                     alt.Tooltip("alpha:Q", title="FARMS alpha", format=".3f"),
                     alt.Tooltip("alpha_std:Q", title="per-window std", format=".3f"),
                     alt.Tooltip("esd_alpha:Q", title="standard ESD alpha", format=".3f")]),
        one.transform_aggregate(esd_alpha="mean(esd_alpha)").mark_rule(
            strokeDash=METHOD_DASHES[0], color=METHOD_COLORS[0], strokeWidth=1.5).encode(
            y="esd_alpha:Q", tooltip=[alt.Tooltip("esd_alpha:Q", title="standard ESD alpha", format=".3f")]),
        *[r.properties(data=alt.NamedData(name=DATASET)) for r in _current_rule(current_window)],
    ]
    title = alt.TitleParams(text={"expr": f"'one layer: ' + ({SELECTED} || 'pick a layer')"})
    bottom = alt.layer(*layer_marks).properties(width=width, height=height, title=title)
    chart = alt.vconcat(top, bottom, spacing=18).resolve_scale(x="shared", color="independent",
                                                                strokeDash="independent")
    chart = chart.add_params(alt.param(name=INK, value=LIGHT_INK)).properties(
        description="Alpha against the FARMS window size: the model's mean per method on top, the selected "
                    "layer below with the spread of its windows' alphas, the standard ESD's alpha dashed, "
                    "the current window marked.")
    return with_datasets(chart, {DATASET: data, MEAN_DATASET: means}, selected_layer)


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
