"""The allocation chart: per-layer sparsity from the standard ESD's alphas and from FARMS'."""

from __future__ import annotations

import altair as alt
import pandas as pd

from .datasets import with_datasets
from .style import METHOD_COLORS, METHOD_DOMAIN, layer_axis, method_label

DATASET = "allocation"


def allocation_data(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows :func:`allocation_comparison` draws: ``frame`` checked, with a method_title column."""
    missing = {"layer", "method", "sparsity", "target"} - set(frame.columns)
    if missing:
        raise ValueError(f"frame lacks columns {sorted(missing)}: pass farms_viz.allocate.allocation_frame(...)")
    if frame.empty:
        raise ValueError("no rows to draw: the allocation frame is empty")
    return frame.assign(method_title=frame["method"].map(method_label))


def allocation_comparison(frame: pd.DataFrame, *, show_alpha: bool = True, width: int | None = None,
                          height: int = 180) -> alt.Chart | alt.VConcatChart:
    """Per-layer sparsity from each method's alphas, side by side, the target as a rule.

    Parameters
    ----------
    frame : tidy rows ``layer, method, sparsity, target`` (optionally ``alpha``, ``params``,
        ``group``), e.g. :func:`farms_viz.allocate.allocation_frame`. Layers keep the frame's order.
    show_alpha : add a panel of the alphas the ratios come from, on the same layer axis.
    width : chart width in pixels (default: 14 px per layer per method).
    height : height of each panel.

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"layer": ["a", "a", "b", "b"], "method": ["esd", "farms"] * 2,
    ...                       "alpha": [2.0, 2.5, 4.0, 3.0], "sparsity": [0.6, 0.65, 0.8, 0.75],
    ...                       "target": 0.7})
    >>> sorted(allocation_comparison(frame).to_dict())[-1]
    'vconcat'
    """
    data = allocation_data(frame)
    order = list(dict.fromkeys(data["layer"]))
    methods = list(dict.fromkeys(data["method_title"]))
    width = width or max(240, 14 * len(order) * len(methods))
    x = alt.X("layer:N", sort=order, title=None, axis=layer_axis(len(order)))
    # the explorer's colours: the same method looks the same in every chart
    scale = (alt.Scale(domain=METHOD_DOMAIN, range=METHOD_COLORS) if set(methods) <= set(METHOD_DOMAIN)
             else alt.Undefined)
    color = alt.Color("method_title:N", title="alphas from", sort=methods, scale=scale,
                      legend=alt.Legend(orient="top"))
    tooltip = [c for c in ("layer:N", "method_title:N", "alpha:Q", "sparsity:Q", "params:Q", "group:N")
               if c.split(":")[0] in data.columns]
    source = alt.NamedData(name=DATASET)
    bars = alt.Chart(source).mark_bar().encode(
        x=x, xOffset=alt.XOffset("method_title:N", sort=methods), color=color,
        y=alt.Y("sparsity:Q", title="sparsity", scale=alt.Scale(domain=[0, 1])), tooltip=tooltip)
    target = alt.Chart(source).transform_aggregate(target="mean(target)").mark_rule(
        strokeDash=[4, 3], color="gray").encode(y="target:Q")
    sparsity_panel = alt.layer(bars, target).properties(width=width, height=height)
    if not (show_alpha and "alpha" in data.columns):
        return with_datasets(sparsity_panel, {DATASET: data}, selectable=False)
    # the layer names are written once, under the sparsity bars
    alphas = alt.Chart(source).mark_line(point=True).encode(
        x=alt.X("layer:N", sort=order, title=None, axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("alpha:Q", title="alpha", scale=alt.Scale(zero=False)), color=color,
        tooltip=tooltip).properties(width=width, height=height * 2 // 3)
    return with_datasets(alt.vconcat(alphas, sparsity_panel).resolve_scale(x="shared"), {DATASET: data},
                         selectable=False)
