"""Altair chart builders: tidy frames in, Vega-Lite charts out, no hidden state.

The same functions feed the widget (rendered by the bundled vega-embed), the HTML report
and PNG export (vl-convert). Every chart reads its rows from named data sets (``layers``,
``spectrum_histogram``, ``spectrum_curves``, ``spectrum_xmin``) carried in the spec's
``datasets``, so the widget can swap the rows through Vega changesets and keep zoom. The
selected layer is the Vega parameter ``selected_layer``.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from .analysis import Analysis
from .chart_data import METHOD_LABELS, layer_frame, spectrum_frames

METHOD_DOMAIN = [METHOD_LABELS["esd"], METHOD_LABELS["farms"]]
METHOD_COLORS = ["#e8703a", "#3a78c2"]  # readable on light and dark backgrounds
ALPHA_RULES = (2.0, 6.0)  # HT-SR: below 2 over-trained, above 6 under-trained
SELECTED = "selected_layer"

LAYER_TOOLTIP = [
    alt.Tooltip("layer:N"), alt.Tooltip("method_label:N", title="method"), alt.Tooltip("shape:N"),
    alt.Tooltip("aspect_ratio:Q", title="aspect ratio", format=".2f"), alt.Tooltip("alpha:Q", format=".3f"),
    alt.Tooltip("D:Q", format=".3f"), alt.Tooltip("window:N"), alt.Tooltip("num_windows:Q", title="windows"),
    alt.Tooltip("coverage:Q", format=".0%"), alt.Tooltip("covers_whole_matrix:N", title="window = whole matrix"),
]


def records(frame: pd.DataFrame, digits: int | None = None) -> list[dict]:
    """JSON-ready rows of a frame (NaN and inf become null, numpy scalars plain Python).

    ``digits`` rounds floats to that many significant digits (smaller pages, same picture).
    """
    clean = frame.replace([np.inf, -np.inf], np.nan).astype(object)
    clean = clean.where(pd.notna(clean), None)

    def plain(value):
        if isinstance(value, np.generic):
            value = value.item()
        if digits is not None and isinstance(value, float):
            value = float(f"{value:.{digits}g}")
        return value

    return [{k: plain(v) for k, v in row.items()} for row in clean.to_dict("records")]


def layer_axis(count: int, **kwargs) -> alt.Axis:
    """An x axis of layer names that stays readable for hundreds of layers.

    Up to 16 layers: every name, slanted. More: vertical names shortened to their last dotted
    components (the block index and the module, e.g. ``…0.attention.self.query``), thinned
    by Vega when they would overlap; the tooltip names every point in full.
    """
    if count <= 16:
        return alt.Axis(labelAngle=-45, labelLimit=170, labelOverlap=False, **kwargs)
    # long names keep their last dotted components (24 characters at most): "…0.attention.self.query"
    shorten = ("length(datum.label) > 24 ? replace(datum.label, regexp('^.*?[.](?=.{1,24}$)'), '\u2026') "
               ": datum.label")
    return alt.Axis(labelAngle=-90, labelLimit=170, labelOverlap="greedy", labelFontSize=10, labelPadding=4,
                    labelExpr=shorten, **kwargs)


def _color(legend: bool = True) -> alt.Color:
    return alt.Color("method_label:N", title="method", legend=alt.Legend(orient="top") if legend else None,
                     scale=alt.Scale(domain=METHOD_DOMAIN, range=METHOD_COLORS))


def _is_selected() -> str:
    return f"datum.layer === {SELECTED}"


def _with_data(chart, frames: dict[str, pd.DataFrame], selected_layer: str | None):
    return chart.properties(datasets={name: records(f) for name, f in frames.items()}).add_params(
        alt.param(name=SELECTED, value=selected_layer))


def layer_alpha_chart(layers: pd.DataFrame, selected_layer: str | None = None, width: int | None = None,
                      layer_count: int | None = None):
    """Alpha of every layer, standard ESD and FARMS side by side, layers in model order.

    Parameters
    ----------
    layers : :func:`~farms_viz.chart_data.layer_frame` output.
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
    >>> from farms_viz.chart_data import layer_frame
    >>> a = farms_viz.analyze(nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 64)), window=16, progress=False)
    >>> layer_alpha_chart(layer_frame(a)).to_dict()["datasets"]["layers"][0]["method"]
    'esd'
    """
    count = layer_count or max(1, layers["layer"].nunique())
    width = width or int(min(880, max(360, 22 * count)))
    size = 70 if count <= 60 else 28
    base = alt.Chart(alt.NamedData(name="layers"))
    x = alt.X("layer:N", sort=alt.EncodingSortField("order"), title=None, axis=layer_axis(count))
    points = base.mark_point(size=size, strokeWidth=2 if count <= 60 else 1.5).encode(
        x=x, xOffset=alt.XOffset("method_label:N", scale=alt.Scale(domain=METHOD_DOMAIN)),
        y=alt.Y("alpha:Q", title="alpha (power-law exponent)", scale=alt.Scale(zero=False, padding=12)),
        color=_color(), fill=alt.condition("datum.covers_whole_matrix && datum.method === 'farms'",
                                           alt.value("transparent"), _color(legend=False)),
        shape=alt.value("circle"),
        size=alt.condition(_is_selected(), alt.value(160), alt.value(size)),
        tooltip=LAYER_TOOLTIP,
    )
    highlight = base.mark_rect(opacity=0.12, color="#888").encode(x=x).transform_filter(
        _is_selected()).transform_filter("datum.method === 'esd' || datum.method === 'farms'")
    rules = alt.Chart(alt.NamedData(name="alpha_rules")).mark_rule(strokeDash=[5, 4], opacity=0.7).encode(
        y="alpha:Q", color=alt.value("#888"))
    zoom = alt.selection_interval(bind="scales", encodings=["y"], name="alpha_zoom")
    chart = alt.layer(highlight, rules, points.add_params(zoom)).properties(
        width=width, height=260, title="alpha per layer (model order)")
    return _with_data(chart, {"layers": layers, "alpha_rules": pd.DataFrame({"alpha": ALPHA_RULES})},
                      selected_layer)


def alpha_aspect_chart(layers: pd.DataFrame, selected_layer: str | None = None):
    """Alpha against the matrix aspect ratio (log axis), both methods, a trend per method.

    The standard ESD's alpha rises with the aspect ratio; FARMS's stays flat: the
    aspect-ratio bias, visible. The trend is a least-squares fit of alpha on log(aspect ratio).

    Parameters
    ----------
    layers : :func:`~farms_viz.chart_data.layer_frame` output.
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
        x=x, y=y, color=_color(), tooltip=LAYER_TOOLTIP,
        size=alt.condition(_is_selected(), alt.value(180), alt.value(50)),
        stroke=alt.condition(_is_selected(), alt.value("#222"), alt.value(None)))
    trend = base.transform_filter("isValid(datum.alpha) && datum.aspect_ratio > 0").transform_regression(
        "aspect_ratio", "alpha", groupby=["method_label"], method="log").mark_line(
        strokeDash=[6, 3], strokeWidth=2).encode(x=x, y=y, color=_color())
    zoom = alt.selection_interval(bind="scales", name="aspect_zoom")
    chart = alt.layer(trend, points.add_params(zoom)).properties(
        width=360, height=260, title="alpha vs aspect ratio: the bias FARMS removes")
    return _with_data(chart, {"layers": layers}, selected_layer)


def _spectrum_view(scale: str, title: str):
    log = scale == "log"
    axis_scale = alt.Scale(type="log" if log else "linear", nice=False)
    keep = f"datum.scale === '{scale}'"
    x_title = "eigenvalue (log)" if log else "eigenvalue"
    y_title = "density (log)" if log else "density"
    # log axes draw a grid line per minor tick: keep only the plot frame readable
    axis = alt.Axis(grid=not log, tickCount=6)
    bars = alt.Chart(alt.NamedData(name="spectrum_histogram")).transform_filter(keep).mark_rect(
        opacity=0.38).encode(
        x=alt.X("bin_start:Q", title=x_title, scale=axis_scale, axis=axis), x2="bin_end:Q",
        y=alt.Y("density:Q", title=y_title, axis=axis,
                scale=alt.Scale(type="log", nice=False) if log else alt.Scale()),
        y2="base:Q",
        color=_color(), tooltip=[alt.Tooltip("method_label:N", title="method"),
                                 alt.Tooltip("bin_start:Q", format=".4g"), alt.Tooltip("density:Q", format=".4g")])
    lines = alt.Chart(alt.NamedData(name="spectrum_curves")).transform_filter(keep).mark_line(
        strokeWidth=2, clip=True).encode(
        x="eigenvalue:Q", y="density:Q", color=_color(),
        strokeDash=alt.StrokeDash("curve:N", title="curve", legend=alt.Legend(orient="top"),
                                  scale=alt.Scale(domain=["power-law fit", "Marchenko-Pastur"],
                                                  range=[[1, 0], [4, 3]])),
        detail="method_label:N")
    xmin = alt.Chart(alt.NamedData(name="spectrum_xmin")).mark_rule(strokeWidth=1.5, strokeDash=[2, 2]).encode(
        x="xmin:Q", color=_color(), tooltip=[alt.Tooltip("method_label:N", title="method"),
                                             alt.Tooltip("xmin:Q", format=".4g"), alt.Tooltip("alpha:Q", format=".3f"),
                                             alt.Tooltip("n_tail:Q", title="tail size")])
    zoom = alt.selection_interval(bind="scales", name=f"spectrum_zoom_{scale}")
    return alt.layer(bars.add_params(zoom), lines, xmin).properties(width=330, height=240, title=title)


def spectrum_chart(spectrum: dict[str, pd.DataFrame], layer: str | None = None, selected_layer: str | None = None):
    """The selected layer's spectrum: log-log and lin-lin views side by side.

    Each view overlays the density histograms of the standard ESD and of the FARMS pooled
    ESD, each fitted power-law tail (solid, from its xmin), xmin (dotted rule), and the
    Marchenko-Pastur density (dashed) for the window's shape (the matrix's for the ESD).

    Parameters
    ----------
    spectrum : :func:`~farms_viz.chart_data.spectrum_frames` output.
    layer : the layer's name, for the title.
    selected_layer : value of the ``selected_layer`` parameter (defaults to ``layer``).

    Returns
    -------
    altair.HConcatChart

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> from farms_viz.chart_data import spectrum_frames
    >>> a = farms_viz.analyze(nn.Linear(64, 32), window=16, progress=False)
    >>> sorted(spectrum_chart(spectrum_frames(a, a.layers[0])).to_dict()["datasets"])[0]
    'spectrum_curves'
    """
    name = f" of {layer}" if layer else ""
    chart = alt.hconcat(_spectrum_view("log", f"spectrum{name}: log-log"),
                        _spectrum_view("linear", "lin-lin (up to the 99th percentile)"), spacing=28).resolve_scale(color="shared")
    frames = {f"spectrum_{name}": spectrum.get(name, pd.DataFrame()) for name in ("histogram", "curves", "xmin")}
    return _with_data(chart, frames, selected_layer or layer)


def default_layer(analysis: Analysis) -> str:
    """The layer shown when none is selected: the largest |FARMS - ESD| alpha gap."""
    frame = layer_frame(analysis)
    gaps = frame.drop_duplicates("layer").set_index("layer")["alpha_delta"].abs()
    gaps = gaps[np.isfinite(gaps)]
    return str(gaps.idxmax()) if len(gaps) else analysis.layers[0]


def explorer_charts(analysis: Analysis, selected_layer: str | None = None) -> dict[str, alt.TopLevelMixin]:
    """Every chart of the explorer for one analysis: name -> chart.

    Names: "alpha_by_layer", "alpha_vs_aspect", "spectrum".

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> a = farms_viz.analyze(nn.Linear(64, 32), window=16, progress=False)
    >>> sorted(explorer_charts(a))
    ['alpha_by_layer', 'alpha_vs_aspect', 'spectrum']
    """
    layer = selected_layer if selected_layer in analysis.layers else default_layer(analysis)
    layers = layer_frame(analysis)
    return {
        "alpha_by_layer": layer_alpha_chart(layers, layer),
        "alpha_vs_aspect": alpha_aspect_chart(layers, layer),
        "spectrum": spectrum_chart(spectrum_frames(analysis, layer), layer),
    }


def report_chart(analysis: Analysis, selected_layer: str | None = None):
    """All explorer charts in one figure (for PNG/SVG export).

    Returns
    -------
    altair.VConcatChart: alpha per layer on top, alpha vs aspect ratio and the spectrum below.
    """
    layer = selected_layer if selected_layer in analysis.layers else default_layer(analysis)
    layers = layer_frame(analysis)
    p = analysis.params
    sampling = f"stride {p.stride}" if p.stride else f"{p.windows_per_dim} windows per dim"
    frames = {"layers": layers, "alpha_rules": pd.DataFrame({"alpha": ALPHA_RULES}),
              **{f"spectrum_{k}": v for k, v in spectrum_frames(analysis, layer).items()}}
    body = alt.vconcat(
        _strip(layer_alpha_chart(layers, layer)),
        alt.hconcat(_strip(alpha_aspect_chart(layers, layer)), spacing=30),
        _strip(spectrum_chart({}, layer)),
        spacing=34,
    ).properties(title=alt.Title("farms_viz: standard ESD vs FARMS",
                                 subtitle=f"window {p.window}, Q {p.q:g}, {sampling}, {p.fit} fit"))
    return _with_data(body, frames, layer)


def _strip(chart):
    """A sub-chart without its own datasets and parameter (the parent carries them)."""
    clone = chart.copy(deep=True)
    clone.datasets = alt.Undefined
    clone.params = [prm for prm in (clone.params if clone.params is not alt.Undefined else [])
                    if getattr(prm, "name", None) != SELECTED] or alt.Undefined
    return clone
