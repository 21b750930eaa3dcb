"""Per-layer charts: alpha of every layer in model order, and alpha against the aspect ratio."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from ..engine.analysis import Analysis
from .data import layer_frame
from .datasets import is_selected, with_datasets
from .style import ALPHA_RULES, METHOD_DOMAIN, layer_axis, layer_chart_width, method_color

LAYER_TOOLTIP = [
    alt.Tooltip("layer:N"), alt.Tooltip("method_label:N", title="method"), alt.Tooltip("shape:N"),
    alt.Tooltip("aspect_ratio:Q", title="aspect ratio", format=".2f"), alt.Tooltip("alpha:Q", format=".3f"),
    alt.Tooltip("D:Q", format=".3f"), alt.Tooltip("window:N"), alt.Tooltip("num_windows:Q", title="windows"),
    alt.Tooltip("coverage:Q", format=".0%"), alt.Tooltip("covers_whole_matrix:N", title="window = whole matrix"),
]


def layer_alpha_chart(layers: pd.DataFrame, selected_layer: str | None = None, width: int | None = None,
                      layer_count: int | None = None):
    """Alpha of every layer, standard ESD and FARMS side by side, layers in model order.

    Parameters
    ----------
    layers : :func:`~farms_viz.charts.data.layer_frame` output.
    selected_layer : layer drawn highlighted.
    width : plot width in pixels (default: from the number of layers).
    layer_count : the number of layers the axis is laid out for (default: those in ``layers``;
        the widget builds its spec before it has rows).

    Returns
    -------
    altair.LayerChart with dashed reference rules at alpha 2 and 6. Hollow marks: the
    window covers the whole matrix there (FARMS equals the standard ESD).

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> from farms_viz.charts.data import layer_frame
    >>> a = farms_viz.analyze(nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 64)), window=16, progress=False)
    >>> layer_alpha_chart(layer_frame(a)).to_dict()["datasets"]["layers"][0]["method"]
    'esd'
    """
    count = layer_count or max(1, layers["layer"].nunique())
    width = width or layer_chart_width(count)
    size = 70 if count <= 60 else 28
    base = alt.Chart(alt.NamedData(name="layers"))
    x = alt.X("layer:N", sort=alt.EncodingSortField("order"), title=None, axis=layer_axis(count))
    points = base.mark_point(size=size, strokeWidth=2 if count <= 60 else 1.5).encode(
        x=x, xOffset=alt.XOffset("method_label:N", scale=alt.Scale(domain=METHOD_DOMAIN)),
        y=alt.Y("alpha:Q", title="alpha (power-law exponent)", scale=alt.Scale(zero=False, padding=12)),
        color=method_color(), fill=alt.condition("datum.covers_whole_matrix && datum.method === 'farms'",
                                           alt.value("transparent"), method_color(legend=False)),
        shape=alt.value("circle"),
        size=alt.condition(is_selected(), alt.value(160), alt.value(size)),
        tooltip=LAYER_TOOLTIP,
    )
    highlight = base.mark_rect(opacity=0.12, color="#888").encode(x=x).transform_filter(
        is_selected()).transform_filter("datum.method === 'esd' || datum.method === 'farms'")
    rules = alt.Chart(alt.NamedData(name="alpha_rules")).mark_rule(strokeDash=[5, 4], opacity=0.7).encode(
        y="alpha:Q", color=alt.value("#888"))
    zoom = alt.selection_interval(bind="scales", encodings=["y"], name="alpha_zoom")
    chart = alt.layer(highlight, rules, points.add_params(zoom)).properties(
        width=width, height=260, title="alpha per layer (model order)")
    return with_datasets(chart, {"layers": layers, "alpha_rules": pd.DataFrame({"alpha": ALPHA_RULES})},
                      selected_layer)


def alpha_aspect_chart(layers: pd.DataFrame, selected_layer: str | None = None):
    """Alpha against the matrix aspect ratio (log axis), both methods, a trend per method.

    The standard ESD's alpha rises with the aspect ratio; FARMS's stays flat: the
    aspect-ratio bias, visible. The trend is a least-squares fit of alpha on log(aspect ratio).

    Parameters
    ----------
    layers : :func:`~farms_viz.charts.data.layer_frame` output.
    selected_layer : layer drawn highlighted.

    Returns
    -------
    altair.LayerChart

    Examples
    --------
    >>> import pandas as pd
    >>> rows = pd.DataFrame({"layer": ["a"], "method_label": ["FARMS"], "aspect_ratio": [1.0], "alpha": [2.0]})
    >>> "layer" in alpha_aspect_chart(rows).to_dict()["datasets"]["layers"][0]
    True
    """
    base = alt.Chart(alt.NamedData(name="layers"))
    x = alt.X("aspect_ratio:Q", title="aspect ratio of the matrix (long side / short side)",
              scale=alt.Scale(type="log", nice=False, padding=12))
    y = alt.Y("alpha:Q", title="alpha", scale=alt.Scale(zero=False, padding=12))
    points = base.mark_point(filled=True, opacity=0.8).encode(
        x=x, y=y, color=method_color(), tooltip=LAYER_TOOLTIP,
        size=alt.condition(is_selected(), alt.value(180), alt.value(50)),
        stroke=alt.condition(is_selected(), alt.value("#222"), alt.value(None)))
    trend = base.transform_filter("isValid(datum.alpha) && datum.aspect_ratio > 0").transform_regression(
        "aspect_ratio", "alpha", groupby=["method_label"], method="log").mark_line(
        strokeDash=[6, 3], strokeWidth=2).encode(x=x, y=y, color=method_color())
    zoom = alt.selection_interval(bind="scales", name="aspect_zoom")
    chart = alt.layer(trend, points.add_params(zoom)).properties(
        width=360, height=260, title="alpha vs aspect ratio: the bias FARMS removes")
    return with_datasets(chart, {"layers": layers}, selected_layer)


def default_layer(analysis: Analysis) -> str:
    """The layer shown when none is selected: the largest |FARMS - ESD| alpha gap."""
    frame = layer_frame(analysis)
    gaps = frame.drop_duplicates("layer").set_index("layer")["alpha_delta"].abs()
    gaps = gaps[np.isfinite(gaps)]
    return str(gaps.idxmax()) if len(gaps) else analysis.layers[0]
