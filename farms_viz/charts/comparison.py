"""Charts of several models side by side (:func:`farms_viz.compare`): each model's alpha per
layer, the change in alpha per layer (sorted), one layer's spectra overlaid.

Rows travel as named data sets (``models_layers``, ``models_delta``, ``models_spectra``,
``models_xmin``: :func:`comparison_datasets`); the Vega parameter ``view_method`` picks the
method drawn and ``selected_layer`` the highlighted layer, without new rows.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import altair as alt
import numpy as np
import pandas as pd

from ..tracking.compare import Comparison
from .data import LOG_BINS, LOG_START_QUANTILE
from .datasets import SELECTED, is_selected, records
from .style import METHOD_LABELS, OTHER_COLORS, layer_axis, layer_chart_width
from .timeline import RESIZING, VIEW_METHOD

MODEL_SHAPES = ["circle", "square", "triangle-up", "diamond", "cross"]
DATASETS = ("models_layers", "models_delta", "models_spectra", "models_xmin")


def _model_scale(names: list[str]) -> alt.Scale:
    return alt.Scale(domain=list(names), range=[OTHER_COLORS[i % len(OTHER_COLORS)] for i in range(len(names))])


def comparison_datasets(comparison: Comparison, layer: str | None) -> dict[str, list[dict]]:
    """The comparison charts' rows by data set name; ``layer``: whose spectra are overlaid.

    ``models_delta`` holds every model but the first minus the first (the reference).

    Examples
    --------
    >>> import copy, torch, torch.nn as nn, farms_viz
    >>> base = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 32))
    >>> tuned = copy.deepcopy(base)
    >>> with torch.no_grad():
    ...     _ = tuned[1].weight.mul_(3).add_(torch.randn(32, 64))
    >>> rows = comparison_datasets(farms_viz.compare({"base": base, "tuned": tuned}, window=16,
    ...                                               progress=False), "1")
    >>> sorted({(r["layer"], r["delta"] != 0) for r in rows["models_delta"]})
    [('0', False), ('1', True)]
    """
    frame = comparison.to_pandas()
    order = {name: i for i, name in enumerate(comparison.layers)}
    layers = frame[["model", "layer", "method", "alpha", "rows", "cols"]].copy()
    layers["order"] = layers["layer"].map(order)
    layers["method_label"] = layers["method"].map(METHOD_LABELS)
    names = comparison.names
    deltas = []
    for other in names[1:]:
        delta = comparison.delta(names[0], other)
        delta.insert(0, "model", other)
        delta["reference"] = names[0]
        deltas.append(delta)
    delta_frame = (pd.concat(deltas, ignore_index=True) if deltas else
                   pd.DataFrame(columns=["model", "layer", "method", "alpha_a", "alpha_b", "delta", "reference"]))
    delta_frame["method_label"] = delta_frame["method"].map(METHOD_LABELS)
    histograms, marks = [], []
    for method in ("esd", "farms"):
        try:
            spectra = comparison.spectra(layer, method) if layer is not None else {}
        except KeyError:
            continue
        values = {name: np.sort(np.asarray(s.eigenvalues, dtype=np.float64)) for name, s in spectra.items()}
        values = {name: x[x > 0] for name, x in values.items() if x.size and x[-1] > 0}
        if not values:
            continue
        # one set of log bins for every model: the curves compare bin by bin
        low = min(max(float(np.quantile(x, LOG_START_QUANTILE)), x[-1] * 1e-6) for x in values.values())
        high = max(float(x[-1]) for x in values.values())
        edges = np.geomspace(low, high, LOG_BINS + 1) if high > low else np.array([low, low * 1.01])
        for name, x in values.items():
            counts, _ = np.histogram(x, edges)
            density = counts / (x.size * np.diff(edges))
            keep = density > 0
            histograms.append(pd.DataFrame({"model": name, "method": method, "method_label": METHOD_LABELS[method],
                                            "eigenvalue": np.sqrt(edges[:-1] * edges[1:])[keep],
                                            "density": density[keep]}))
            fit = spectra[name].fit
            marks.append({"model": name, "method": method, "xmin": float(fit.xmin), "alpha": float(fit.alpha)})
    spectra_frame = (pd.concat(histograms, ignore_index=True) if histograms else
                     pd.DataFrame(columns=["model", "method", "method_label", "eigenvalue", "density"]))
    return {"models_layers": records(layers, digits=5), "models_delta": records(delta_frame, digits=5),
            "models_spectra": records(spectra_frame, digits=5),
            "models_xmin": records(pd.DataFrame(marks, columns=["model", "method", "xmin", "alpha"]), digits=5)}


def models_alpha_chart(names: list[str], layer_count: int) -> alt.TopLevelMixin:
    """Each model's alpha per layer (model order), side by side, for the ``view_method`` method; the
    selected layer's points larger and outlined.

    Examples
    --------
    >>> models_alpha_chart(["base", "tuned"], 4).to_dict()["title"]
    'alpha per layer, each model (click a point to pick a layer)'
    """
    base = alt.Chart(alt.NamedData(name="models_layers")).transform_filter(f"datum.method === {VIEW_METHOD}")
    x = alt.X("layer:N", sort=alt.EncodingSortField("order"), title=None, axis=layer_axis(layer_count))
    points = base.mark_point(filled=True, size=70).encode(
        x=x, xOffset=alt.XOffset("model:N", scale=alt.Scale(domain=list(names))),
        y=alt.Y("alpha:Q", title="alpha", scale=alt.Scale(zero=False, padding=12)),
        color=alt.Color("model:N", title="model", scale=_model_scale(names), legend=alt.Legend(orient="top")),
        shape=alt.Shape("model:N", scale=alt.Scale(domain=list(names), range=MODEL_SHAPES[:len(names)]),
                        legend=None),
        size=alt.condition(is_selected(), alt.value(170), alt.value(60)),
        stroke=alt.condition(is_selected(), alt.value("#222"), alt.value(None)),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("layer:N"), alt.Tooltip("method_label:N", title="method"),
                 alt.Tooltip("alpha:Q", format=".3f")])
    return alt.layer(points).properties(
        width=layer_chart_width(layer_count), height=230,
        title="alpha per layer, each model (click a point to pick a layer)")


def alpha_delta_chart(names: list[str], layer_count: int) -> alt.Chart:
    """The change in alpha per layer, each model minus the first, largest increase on top.

    Examples
    --------
    >>> alpha_delta_chart(["base", "tuned"], 4).to_dict()["mark"]["type"]
    'bar'
    """
    others = list(names[1:]) or list(names)
    return alt.Chart(alt.NamedData(name="models_delta")).transform_filter(
        f"datum.method === {VIEW_METHOD}").mark_bar().encode(
        y=alt.Y("layer:N", title=None, sort=alt.EncodingSortField("delta", op="sum", order="descending"),
                axis=alt.Axis(labelLimit=220)),
        yOffset=alt.YOffset("model:N", scale=alt.Scale(domain=others)),
        x=alt.X("delta:Q", title=f"alpha minus alpha of {names[0]}"),
        color=alt.Color("model:N", scale=_model_scale(list(names)), legend=None),
        stroke=alt.condition(is_selected(), alt.value("#222"), alt.value(None)),
        tooltip=[alt.Tooltip("layer:N"), alt.Tooltip("model:N"), alt.Tooltip("reference:N"),
                 alt.Tooltip("alpha_a:Q", title="alpha (reference)", format=".3f"),
                 alt.Tooltip("alpha_b:Q", title="alpha", format=".3f"), alt.Tooltip("delta:Q", format="+.3f")],
    ).properties(width=360, height=alt.Step(max(26, 14 * len(others))),
                 title=f"change in alpha per layer from {names[0]} (sorted)")


def overlaid_spectra_chart(names: list[str]) -> alt.TopLevelMixin:
    """The selected layer's eigenvalue density from each model on one log-log axis (raw eigenvalues:
    the same layer and windows in every model), each fit's xmin dotted.

    Examples
    --------
    >>> len(overlaid_spectra_chart(["base", "tuned"]).to_dict()["layer"])
    2
    """
    color = alt.Color("model:N", title="model", scale=_model_scale(list(names)), legend=alt.Legend(orient="top"))
    lines = alt.Chart(alt.NamedData(name="models_spectra")).transform_filter(
        f"datum.method === {VIEW_METHOD}").mark_line(strokeWidth=2, interpolate="step-after").encode(
        x=alt.X("eigenvalue:Q", title="eigenvalue", scale=alt.Scale(type="log")),
        y=alt.Y("density:Q", title="density", scale=alt.Scale(type="log")),
        color=color, strokeDash=alt.StrokeDash("model:N", legend=None),
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("eigenvalue:Q", format=".3g"),
                 alt.Tooltip("density:Q", format=".3g")])
    xmin = alt.Chart(alt.NamedData(name="models_xmin")).transform_filter(
        f"datum.method === {VIEW_METHOD}").mark_rule(strokeDash=[2, 3], strokeWidth=1.5).encode(
        x="xmin:Q", color=color,
        tooltip=[alt.Tooltip("model:N"), alt.Tooltip("xmin:Q", format=".3g"), alt.Tooltip("alpha:Q", format=".3f")])
    return alt.layer(lines, xmin).properties(width=420, height=230,
                                             title="the selected layer's spectrum in each model")


def comparison_specs(names: list[str], layer_count: int) -> dict[str, dict]:
    """The three comparison panels' Vega-Lite specs, rows left out (they travel as data sets)."""
    params = [alt.param(name=VIEW_METHOD, value="farms"), alt.param(name=SELECTED, value=None)]
    charts: dict[str, Any] = {"models_alpha": models_alpha_chart(names, layer_count),
              "models_delta": alpha_delta_chart(names, layer_count),
              "models_spectra": overlaid_spectra_chart(names)}
    specs = {}
    for panel, chart in charts.items():
        spec = chart.add_params(*params).properties(autosize=RESIZING).to_dict(validate=False)
        spec["datasets"] = {name: [] for name in DATASETS if f'"{name}"' in str(spec).replace("'", '"')}
        specs[panel] = spec
    return specs


def comparison_chart(comparison: Comparison, layer: str | None = None, method: str = "farms") -> alt.VConcatChart:
    """The three comparison panels as one chart that carries its rows (a static page's), with a
    method switch; ``layer``: whose spectra are overlaid (default: the largest change in alpha).

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> model = nn.Linear(64, 32)
    >>> spec = comparison_chart(farms_viz.compare({"a": model, "b": model}, window=16, progress=False)).to_dict()
    >>> sorted(spec["datasets"])
    ['models_delta', 'models_layers', 'models_spectra', 'models_xmin']
    """
    if method not in METHOD_LABELS:
        raise ValueError(f"method must be one of {list(METHOD_LABELS)}; got {method!r}")
    names = comparison.names
    if layer is None and comparison.layers:
        changes = comparison.delta(names[0], names[-1], method=method)
        finite = changes[np.isfinite(changes["delta"])]
        layer = str(finite.loc[finite["delta"].abs().idxmax(), "layer"]) if len(finite) else comparison.layers[0]
    elif layer is not None and layer not in comparison.layers:
        raise ValueError(f"layer {layer!r} is not in every model; choose one of {comparison.layers[:8]}")
    switch = alt.binding_radio(options=list(METHOD_LABELS), labels=list(METHOD_LABELS.values()), name="method ")
    alphas: Any = models_alpha_chart(names, len(comparison.layers)).properties(
        title="alpha per layer, each model (outlined: the layer whose spectra are below)")
    spectra: Any = overlaid_spectra_chart(names)
    chart = alt.vconcat(alphas, alt.hconcat(alpha_delta_chart(names, len(comparison.layers)), spectra), spacing=24)
    return chart.add_params(alt.param(name=VIEW_METHOD, value=method, bind=switch),
                            alt.param(name=SELECTED, value=layer)).properties(
        datasets=comparison_datasets(comparison, layer),
        title=f"farms_viz: {' vs '.join(names)} (spectra of layer {layer})")


def comparison_html(comparison: Comparison, layer: str | None = None, method: str = "farms") -> str:
    """:func:`comparison_chart` as one self-contained HTML page (vega inlined, opens offline)."""
    return comparison_chart(comparison, layer, method).to_html(inline=True)


def save_comparison(comparison: Comparison, path: str | os.PathLike, layer: str | None = None,
                    method: str = "farms") -> Path:
    """Write :func:`comparison_html` to ``path`` (UTF-8, atomically; never onto a device, folder
    or link); returns the path."""
    from ..safe_output import write_file

    return write_file(path, comparison_html(comparison, layer, method).encode("utf-8"))
