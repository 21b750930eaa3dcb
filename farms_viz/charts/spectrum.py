"""The selected layer's spectrum: density histograms, fitted tails, Marchenko-Pastur curves."""

from __future__ import annotations

import altair as alt
import pandas as pd

from .datasets import with_datasets
from .style import method_color


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
        color=method_color(), tooltip=[alt.Tooltip("method_label:N", title="method"),
                                 alt.Tooltip("bin_start:Q", format=".4g"), alt.Tooltip("density:Q", format=".4g")])
    lines = alt.Chart(alt.NamedData(name="spectrum_curves")).transform_filter(keep).mark_line(
        strokeWidth=2, clip=True).encode(
        x="eigenvalue:Q", y="density:Q", color=method_color(),
        strokeDash=alt.StrokeDash("curve:N", title="curve", legend=alt.Legend(orient="top"),
                                  scale=alt.Scale(domain=["power-law fit", "Marchenko-Pastur"],
                                                  range=[[1, 0], [4, 3]])),
        detail="method_label:N")
    xmin = alt.Chart(alt.NamedData(name="spectrum_xmin")).mark_rule(strokeWidth=1.5, strokeDash=[2, 2]).encode(
        x="xmin:Q", color=method_color(), tooltip=[alt.Tooltip("method_label:N", title="method"),
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
    spectrum : :func:`~farms_viz.charts.data.spectrum_frames` output.
    layer : the layer's name, for the title.
    selected_layer : value of the ``selected_layer`` parameter (defaults to ``layer``).

    Returns
    -------
    altair.HConcatChart

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> from farms_viz.charts.data import spectrum_frames
    >>> a = farms_viz.analyze(nn.Linear(64, 32), window=16, progress=False)
    >>> sorted(spectrum_chart(spectrum_frames(a, a.layers[0])).to_dict()["datasets"])[0]
    'spectrum_curves'
    """
    name = f" of {layer}" if layer else ""
    chart = alt.hconcat(_spectrum_view("log", f"spectrum{name}: log-log"),
                        _spectrum_view("linear", "lin-lin (up to the 99th percentile)"),
                        spacing=28).resolve_scale(color="shared")
    frames = {f"spectrum_{name}": spectrum.get(name, pd.DataFrame()) for name in ("histogram", "curves", "xmin")}
    return with_datasets(chart, frames, selected_layer or layer)
