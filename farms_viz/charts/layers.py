"""Per-layer charts: alpha of every layer in model order, and alpha against the aspect ratio."""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from ..engine.analysis import Analysis
from .data import layer_frame
from .datasets import is_selected, with_datasets
from .reference import ABOVE, BELOW
from .style import (
    INK,
    LIGHT_INK,
    METHOD_DOMAIN,
    alpha_rules,
    layer_axis,
    layer_chart_width,
    method_color,
    method_dash,
    method_shape,
)

LAYER_TOOLTIP = [
    alt.Tooltip("layer:N"), alt.Tooltip("method_label:N", title="method"), alt.Tooltip("shape:N"),
    alt.Tooltip("aspect_ratio:Q", title="aspect ratio", format=".2f"), alt.Tooltip("alpha:Q", format=".3f"),
    alt.Tooltip("alpha_baseline:Q", title="random baseline", format=".3f"),
    alt.Tooltip("D:Q", format=".3f"), alt.Tooltip("window:N"), alt.Tooltip("num_windows:Q", title="windows"),
    alt.Tooltip("coverage:Q", format=".0%"), alt.Tooltip("covers_whole_matrix:N", title="window = whole matrix"),
    alt.Tooltip("sampling_note:N", title="sampling"),
]
# A value held at the edge of the plausible range is drawn as a triangle pointing out of the chart.
_CLIP_SHAPES = [{"test": f"datum.{{column}} === '{ABOVE}'", "value": "triangle-up"},
                {"test": f"datum.{{column}} === '{BELOW}'", "value": "triangle-down"}]
# What a screen reader says about a point (Vega's aria description of each mark).
_POINT_TEXT = ("datum.layer + ', ' + datum.method_label + ': alpha ' + format(datum.alpha, '.3f') + "
               "(isValid(datum.alpha_baseline) ? ', random baseline ' + format(datum.alpha_baseline, '.3f') : '')")


def _shape(column: str, size: str = "method_label") -> dict:
    """Shape by method, a triangle where ``column`` says the value was held at the axis' edge."""
    shape: dict = method_shape(legend=True, field=size).to_dict()  # type: ignore[assignment]
    shape["condition"] = [{**c, "test": c["test"].format(column=column)} for c in _CLIP_SHAPES]
    return shape


def _ink_outline() -> dict:
    """The selected mark's outline in the theme's ink (the front end sets ``fv_ink``)."""
    return {"condition": {"test": is_selected(), "value": {"expr": INK}}, "value": None}


def _fit_of(layers: pd.DataFrame) -> str:
    return str(layers["fit"].iloc[0]) if "fit" in layers and len(layers) else "median"


def layer_alpha_chart(layers: pd.DataFrame, selected_layer: str | None = None, width: int | None = None,
                      layer_count: int | None = None):
    """Alpha of every layer, standard ESD and FARMS side by side, layers in model order.

    Beside each point, a short bar: the alpha of an i.i.d. Gaussian matrix of the same shape
    (ESD) or windows (FARMS) under the same fit (``alpha_baseline``; median and peak fits). A
    point near its bar is as heavy-tailed as noise; below it, heavier. Under the KS fit the
    dashed rules at alpha 2 and 6 (WeightWatcher's reading of the KS alpha) are drawn instead.
    The y axis spans the plausible range (:mod:`farms_viz.charts.reference`): a value beyond
    it is a triangle at the edge, its tooltip exact.

    Parameters
    ----------
    layers : :func:`~farms_viz.charts.data.layer_frame` output.
    selected_layer : layer drawn highlighted.
    width : plot width in pixels (default: from the number of layers).
    layer_count : the number of layers the axis is laid out for (default: those in ``layers``;
        the widget builds its spec before it has rows).

    Returns
    -------
    altair.LayerChart. Squares: the standard ESD; circles: FARMS (hollow: the window covers
    the whole matrix, FARMS equals the standard ESD there).

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> from farms_viz.charts.data import layer_frame
    >>> a = farms_viz.analyze(nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 64)), window=16, progress=False)
    >>> spec = layer_alpha_chart(layer_frame(a)).to_dict()
    >>> spec["datasets"]["layers"][0]["method"], spec["datasets"]["alpha_rules"]
    ('esd', [])
    """
    count = layer_count or max(1, layers["layer"].nunique())
    width = width or layer_chart_width(count)
    size = 70 if count <= 60 else 28
    base = alt.Chart(alt.NamedData(name="layers"))
    x = alt.X("layer:N", sort=alt.EncodingSortField("order"), title=None, axis=layer_axis(count))
    offset = alt.XOffset("method_label:N", scale=alt.Scale(domain=METHOD_DOMAIN))
    y = alt.Y("alpha_shown:Q", title="alpha (power-law exponent)", scale=alt.Scale(zero=False, padding=12))
    points = base.transform_calculate(aria=_POINT_TEXT).mark_point(
        size=size, strokeWidth=2 if count <= 60 else 1.5, filled=False).encode(
        x=x, xOffset=offset, y=y, color=method_color(),
        fill=alt.condition("datum.covers_whole_matrix && datum.method === 'farms'",
                           alt.value("transparent"), method_color(legend=False)),
        shape=_shape("alpha_clip"),
        size=alt.condition(is_selected(), alt.value(160), alt.value(size)),
        description=alt.Description("aria:N"),
        tooltip=LAYER_TOOLTIP,
    )
    # the random baseline: a short bar beside each point (none under the KS fit: its value is NaN there)
    baseline = base.mark_tick(thickness=1.5, opacity=0.9).encode(
        x=x, xOffset=offset, y=alt.Y("baseline_shown:Q"), color=method_color(),
        size=alt.value(20 if count <= 60 else 8),
        tooltip=[alt.Tooltip("layer:N"), alt.Tooltip("method_label:N", title="method"),
                 alt.Tooltip("alpha_baseline:Q", title="random baseline (Gaussian, same geometry)", format=".3f")])
    highlight = base.mark_rect(opacity=0.12, color="#888").encode(x=x).transform_filter(
        is_selected()).transform_filter("datum.method === 'esd' || datum.method === 'farms'")
    rules = alt.Chart(alt.NamedData(name="alpha_rules")).mark_rule(strokeDash=[5, 4], opacity=0.7).encode(
        y="alpha:Q", color=alt.value("#888"))
    zoom = alt.selection_interval(bind="scales", encodings=["y"], name="alpha_zoom")
    chart = alt.layer(highlight, rules, baseline, points.add_params(zoom)).properties(
        width=width, height=260, title="alpha per layer (model order)",
        description="Alpha of every layer in model order: standard ESD as orange squares, FARMS as blue "
                    "circles, each beside a short bar at the alpha of a Gaussian random matrix of the same "
                    "geometry. Arrow keys move the selected layer.")
    rule_rows = pd.DataFrame({"alpha": alpha_rules(_fit_of(layers))}, dtype=float)
    return with_datasets(chart, {"layers": layers, "alpha_rules": rule_rows}, selected_layer)


def alpha_aspect_chart(layers: pd.DataFrame, selected_layer: str | None = None):
    """Alpha against the matrix aspect ratio (log axis), both methods, with each method's random baseline.

    The dashed line per method is the alpha a Gaussian matrix of the same geometry gets: the
    standard ESD's rises with the aspect ratio (the bias, drawn), FARMS' stays flat (every
    window has the same shape). A model's points above their line are lighter-tailed than
    noise there, below it heavier. Under the KS fit the rules at 2 and 6 replace the lines.

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
              scale=alt.Scale(type="log", nice=False, padding=12),
              axis=alt.Axis(labelOverlap="greedy", labelSeparation=6))
    y = alt.Y("alpha_shown:Q", title="alpha", scale=alt.Scale(zero=False, padding=12))
    points = base.transform_calculate(aria=_POINT_TEXT).mark_point(filled=True, opacity=0.85).encode(
        x=x, y=y, color=method_color(), shape=_shape("alpha_clip"), tooltip=LAYER_TOOLTIP,
        size=alt.condition(is_selected(), alt.value(180), alt.value(50)),
        stroke=_ink_outline(), strokeWidth=alt.value(2), description=alt.Description("aria:N"))
    baseline = base.transform_filter("isValid(datum.baseline_shown)").transform_aggregate(
        baseline="mean(baseline_shown)", groupby=["method_label", "aspect_ratio"]).mark_line(
        strokeWidth=1.5, opacity=0.8, point=alt.OverlayMarkDef(shape="stroke", size=30)).encode(
        x=x, y=alt.Y("baseline:Q"), color=method_color(), strokeDash=method_dash(),
        order="aspect_ratio:Q", tooltip=[alt.Tooltip("method_label:N", title="method"),
                                         alt.Tooltip("aspect_ratio:Q", title="aspect ratio", format=".2f"),
                                         alt.Tooltip("baseline:Q", title="random baseline", format=".3f")])
    rules = alt.Chart(alt.NamedData(name="alpha_rules")).mark_rule(strokeDash=[5, 4], opacity=0.7).encode(
        y="alpha:Q", color=alt.value("#888"))
    zoom = alt.selection_interval(bind="scales", name="aspect_zoom")
    chart = alt.layer(rules, baseline, points.add_params(zoom)).properties(
        width=360, height=260, title="alpha vs aspect ratio: the bias FARMS removes",
        description="Alpha against each matrix's aspect ratio, both methods, with dashed lines at the alpha "
                    "of Gaussian random matrices of the same geometry: the standard ESD's line rises with "
                    "the aspect ratio, FARMS' stays flat.")
    rule_rows = pd.DataFrame({"alpha": alpha_rules(_fit_of(layers))}, dtype=float)
    chart = chart.add_params(alt.param(name=INK, value=LIGHT_INK))
    return with_datasets(chart, {"layers": layers, "alpha_rules": rule_rows}, selected_layer)


def default_layer(analysis: Analysis) -> str:
    """The layer shown when none is selected: the largest |FARMS - ESD| alpha gap."""
    frame = layer_frame(analysis)
    gaps = frame.drop_duplicates("layer").set_index("layer")["alpha_delta"].abs()
    gaps = gaps[np.isfinite(gaps)]
    return str(gaps.idxmax()) if len(gaps) else analysis.layers[0]
