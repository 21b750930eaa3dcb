"""The selected layer's spectrum: density histograms, fitted tails, Marchenko-Pastur curves.

The standard ESD and FARMS are drawn on one axis only after each is divided by its own mean
eigenvalue (the default, ``units="normalised"``): FARMS' windows are smaller than the matrix, so
their raw eigenvalues sit 10-20x to the left of the ESD's, which reads as "FARMS shifts the
spectrum down" when it is only a change of scale. The mean eigenvalue of a random m x w window
is s^2 w, its Marchenko-Pastur scale, so normalised random spectra have unit mean whatever their
size and only their shapes differ. ``units="raw"`` shows the eigenvalues as computed. Both
choices, and which methods are shown, are Vega parameters: the front end switches them without
new rows.
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from .datasets import with_datasets
from .style import METHOD_COLOR_NAMES, method_color, method_stroke

UNITS = ("normalised", "raw")
SHOWN_METHODS = ("both", "esd", "farms")
UNITS_PARAM = "spectrum_units"
METHODS_PARAM = "spectrum_methods"

_SHOWN = f"{METHODS_PARAM} === 'both' || datum.method === {METHODS_PARAM}"
_FACTOR = f"{UNITS_PARAM} === 'raw' ? 1 : datum.unit"  # eigenvalues are divided by it, densities multiplied
_UNITS_TEXT = f"{UNITS_PARAM} === 'raw' ? 'raw eigenvalues λ' : 'λ ÷ mean λ of each method'"


def _check(name: str, value: str, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(map(repr, allowed))}; got {value!r}")


def _spectrum_view(scale: str, title: str):
    log = scale == "log"
    axis_scale = alt.Scale(type="log" if log else "linear", nice=False)
    keep = f"datum.scale === '{scale}'"
    x_title = "λ (log)" if log else "λ"
    y_title = "density (log)" if log else "density"
    # log axes draw a grid line per minor tick: keep only the plot frame readable
    axis = alt.Axis(grid=not log, tickCount=6)
    y_scale = alt.Scale(type="log", nice=False) if log else alt.Scale()
    method_tip = alt.Tooltip("method_label:N", title="method")
    bars = alt.Chart(alt.NamedData(name="spectrum_histogram")).transform_filter(keep).transform_filter(
        _SHOWN).transform_calculate(k=_FACTOR).transform_calculate(
        x0="datum.bin_start / datum.k", x1="datum.bin_end / datum.k", y="datum.density * datum.k",
    ).transform_joinaggregate(y_min="min(y)").transform_calculate(
        # bars of the log view start at the bottom of the axis, not at zero
        base="datum.y_min / 2" if log else "0",
    ).mark_rect(fillOpacity=0.3, strokeWidth=0.8, strokeOpacity=0.9).encode(
        x=alt.X("x0:Q", title=x_title, scale=axis_scale, axis=axis), x2="x1:Q",
        y=alt.Y("y:Q", title=y_title, axis=axis, scale=y_scale), y2="base:Q",
        color=method_color(), stroke=method_stroke(),
        tooltip=[method_tip, alt.Tooltip("bin_start:Q", title="λ from", format=".4g"),
                 alt.Tooltip("bin_end:Q", title="λ to", format=".4g"),
                 alt.Tooltip("density:Q", title="density (raw λ)", format=".4g")])
    lines = alt.Chart(alt.NamedData(name="spectrum_curves")).transform_filter(keep).transform_filter(
        _SHOWN).transform_calculate(k=_FACTOR).transform_calculate(
        x="datum.eigenvalue / datum.k", y="datum.density * datum.k").mark_line(strokeWidth=2, clip=True).encode(
        x="x:Q", y="y:Q", color=method_color(),
        strokeDash=alt.StrokeDash("curve:N", title="curve", legend=alt.Legend(orient="top"),
                                  scale=alt.Scale(domain=["power-law fit", "Marchenko-Pastur"],
                                                  range=[[1, 0], [4, 3]])),
        detail="method_label:N")
    xmin = alt.Chart(alt.NamedData(name="spectrum_xmin")).transform_filter(_SHOWN).transform_calculate(
        k=_FACTOR).transform_calculate(x="datum.xmin / datum.k").mark_rule(
        strokeWidth=1.5, strokeDash=[2, 2]).encode(
        x="x:Q", color=method_color(),
        tooltip=[method_tip, alt.Tooltip("xmin:Q", title="xmin (raw λ)", format=".4g"),
                 alt.Tooltip("alpha:Q", format=".3f"), alt.Tooltip("n_tail:Q", title="tail size")])
    zoom = alt.selection_interval(bind="scales", name=f"spectrum_zoom_{scale}")
    text = {"expr": f"'{title}: ' + ({_UNITS_TEXT})"}
    return alt.layer(bars.add_params(zoom), lines, xmin).properties(
        width=330, height=240, title=alt.TitleParams(text=text, anchor="start"))


def spectrum_chart(spectrum: dict[str, pd.DataFrame], layer: str | None = None, selected_layer: str | None = None,
                   units: str = "normalised", methods: str = "both"):
    """The selected layer's spectrum: log-log and lin-lin views side by side.

    Each view overlays the density histograms of the standard ESD and of the FARMS pooled
    ESD, each fitted power-law tail (solid, from its xmin), xmin (dotted rule), and the
    Marchenko-Pastur density (dashed) for the window's shape (the matrix's for the ESD).
    The log-log view starts where the mass is (the 10th percentile), not at a square window's
    near-zero eigenvalues.

    Parameters
    ----------
    spectrum : :func:`~farms_viz.charts.data.spectrum_frames` output.
    layer : the layer's name, for the title.
    selected_layer : value of the ``selected_layer`` parameter (defaults to ``layer``).
    units : "normalised" (each method's eigenvalues divided by their mean: the two methods
        compare) or "raw" (the eigenvalues as computed).
    methods : "both", "esd" or "farms": the methods shown.

    Returns
    -------
    altair.HConcatChart

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> from farms_viz.charts.data import spectrum_frames
    >>> a = farms_viz.analyze(nn.Linear(64, 32), window=16, progress=False)
    >>> spec = spectrum_chart(spectrum_frames(a, a.layers[0]), units="raw").to_dict()
    >>> sorted(spec["datasets"])[0], [p["value"] for p in spec["params"] if p["name"] == "spectrum_units"]
    ('spectrum_curves', ['raw'])
    """
    _check("units", units, UNITS)
    _check("methods", methods, SHOWN_METHODS)
    name = f"spectrum of {layer} · " if layer else ""
    chart = alt.hconcat(_spectrum_view("log", f"{name}log-log"),
                        _spectrum_view("linear", "lin-lin to the 99th percentile"),
                        spacing=28).resolve_scale(color="shared")
    chart = chart.add_params(alt.param(name=UNITS_PARAM, value=units), alt.param(name=METHODS_PARAM, value=methods))
    frames = {f"spectrum_{name}": spectrum.get(name, pd.DataFrame()) for name in ("histogram", "curves", "xmin")}
    return with_datasets(chart, frames, selected_layer or layer).properties(
        description=f"Eigenvalue spectrum{' of ' + layer if layer else ''}: density histograms of the "
                    f"standard ESD ({METHOD_COLOR_NAMES['esd']}) and FARMS ({METHOD_COLOR_NAMES['farms']}), "
                    "their fitted power-law tails, and the Marchenko-Pastur curve of a random matrix of the "
                    "same shape; log-log view on the left, lin-lin on the right.")
