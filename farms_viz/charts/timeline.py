"""The Explorer's time view: mean alpha per method over the recorded steps, then every layer's
alpha for one method, the current step marked.

Rows travel as named data sets (``time_mean``: :func:`~farms_viz.charts.time.mean_alpha_frame`,
``time_layers``: :func:`~farms_viz.charts.time.layer_history_frame`), so a new step sends rows
only; three Vega parameters, set by the front end, pick what is drawn without new rows: the
step the other panels show (``current_step``), the method of the layer panel (``view_method``)
and the highlighted layer (``selected_layer``).
"""

from __future__ import annotations

import altair as alt
import pandas as pd

from .datasets import SELECTED, is_selected, records
from .style import LAYER_COLORS, METHOD_COLORS, METHOD_DOMAIN
from .time import layer_history_frame, mean_alpha_frame

CURRENT_STEP = "current_step"
VIEW_METHOD = "view_method"
# Name of the layer panel's point marks (one per recorded step and layer): tests count them.
LAYER_POINTS = "time_layer_points"
LEGEND_MAX_LAYERS = 12
# Rows arrive after the spec (new steps, new settings): the layout follows their axis labels.
RESIZING = alt.AutoSizeParams(type="pad", resize=True)
_AT_STEP = f"datum.step === {CURRENT_STEP}"


def timeline_datasets(history: pd.DataFrame) -> dict[str, list[dict]]:
    """The time view's rows by data set name (empty lists before the first step).

    Examples
    --------
    >>> h = pd.DataFrame({"step": [0, 0, 1, 1], "layer": ["a"] * 4, "method": ["esd", "farms"] * 2,
    ...                   "alpha": [3.0, 2.8, 2.6, 2.5]})
    >>> rows = timeline_datasets(h)
    >>> len(rows["time_layers"]), rows["time_mean"][0]["alpha"]
    (4, 3.0)
    """
    if history.empty:
        return {"time_mean": [], "time_layers": []}
    return {"time_mean": records(mean_alpha_frame(history), digits=5),
            "time_layers": records(layer_history_frame(history), digits=5)}


def timeline_chart(layer_count: int, width: int = 560) -> alt.VConcatChart:
    """The time view without rows: mean alpha per method over steps, then alpha per layer.

    Parameters
    ----------
    layer_count : how many layers the model has (a legend is drawn for up to 12).
    width : plot width in pixels (the widget fits it to the page).

    Examples
    --------
    >>> spec = timeline_chart(3).to_dict()
    >>> sorted(p["name"] for p in spec["params"])
    ['current_step', 'selected_layer', 'view_method']
    """
    x = alt.X("step:Q", title="step", scale=alt.Scale(nice=False))
    method_color = alt.Color("method_label:N", title="method", legend=alt.Legend(orient="top"),
                             scale=alt.Scale(domain=METHOD_DOMAIN, range=METHOD_COLORS))
    mean = alt.Chart(alt.NamedData(name="time_mean"))
    mean_y = alt.Y("alpha:Q", title="mean alpha over layers", scale=alt.Scale(zero=False, padding=10))
    tooltip = [alt.Tooltip("method_label:N", title="method"), alt.Tooltip("step:Q"),
               alt.Tooltip("alpha:Q", title="mean alpha", format=".3f"), alt.Tooltip("layers:Q")]
    mean_panel = alt.layer(
        mean.mark_rule(color="#888", strokeDash=[3, 3]).encode(x=x).transform_filter(_AT_STEP),
        mean.mark_line(strokeWidth=2.5).encode(x=x, y=mean_y, color=method_color, tooltip=tooltip),
        mean.mark_point(filled=True, size=40).encode(x=x, y=mean_y, color=method_color, tooltip=tooltip),
        mean.mark_point(filled=False, size=160, strokeWidth=2).encode(
            x=x, y=mean_y, color=method_color).transform_filter(_AT_STEP),
    ).properties(width=width, height=150, title="mean alpha per method (dotted: the step the panels below show)")

    layers = alt.Chart(alt.NamedData(name="time_layers")).transform_filter(f"datum.method === {VIEW_METHOD}")
    legend = alt.Legend(orient="right", symbolLimit=LEGEND_MAX_LAYERS, labelLimit=200) \
        if layer_count <= LEGEND_MAX_LAYERS else None
    color = alt.Color("layer:N", sort=alt.EncodingSortField("order"), title="layer", legend=legend,
                      scale=alt.Scale(range=LAYER_COLORS))
    y = alt.Y("alpha:Q", title="alpha", scale=alt.Scale(zero=False, padding=10))
    layer_tooltip = [alt.Tooltip("layer:N"), alt.Tooltip("method_label:N", title="method"), alt.Tooltip("step:Q"),
                     alt.Tooltip("alpha:Q", format=".3f")]
    picked = f"{SELECTED} === null || {is_selected()}"
    layer_panel = alt.layer(
        layers.mark_rule(color="#888", strokeDash=[3, 3]).encode(x=x).transform_filter(_AT_STEP),
        layers.mark_line().encode(
            x=x, y=y, color=color, detail="layer:N", tooltip=layer_tooltip,
            opacity=alt.condition(picked, alt.value(0.95), alt.value(0.4)),
            strokeWidth=alt.condition(is_selected(), alt.value(3.0), alt.value(1.4))),
        layers.mark_point(filled=True).encode(
            x=x, y=y, color=color, tooltip=layer_tooltip,
            size=alt.condition(is_selected(), alt.value(60), alt.value(22)),
            opacity=alt.condition(picked, alt.value(0.95), alt.value(0.4))).properties(name=LAYER_POINTS),
    ).properties(width=width, height=230, title="alpha per layer over steps (click a line to pick a layer)")
    return alt.vconcat(mean_panel, layer_panel, spacing=18).resolve_scale(color="independent").add_params(
        alt.param(name=CURRENT_STEP, value=None), alt.param(name=VIEW_METHOD, value="farms"),
        alt.param(name=SELECTED, value=None)).properties(
        autosize=RESIZING,
        description="Alpha over the recorded steps: the mean per method, then every layer's alpha for the "
                    "chosen method; a dotted rule marks the step the other panels show.")
