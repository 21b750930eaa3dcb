"""The allocation chart: per-layer sparsity from the standard ESD's alphas and from FARMS'."""

from __future__ import annotations

import altair as alt
import pandas as pd

from ..decisions.allocation import DEFAULT_MAX_SPARSITY
from .datasets import with_datasets
from .style import INK, LIGHT_INK, METHOD_COLORS, METHOD_DOMAIN, layer_axis, method_label

DATASET = "allocation"


def allocation_data(frame: pd.DataFrame, max_sparsity: float | None = None) -> pd.DataFrame:
    """The rows :func:`allocation_comparison` draws: ``frame`` checked, plus method_title, group_start
    (the layer opens a new group, when ``frame`` has groups that join layers) and clipped (the
    sparsity sits at ``max_sparsity``, default ``DEFAULT_MAX_SPARSITY``).

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"layer": list("abcd"), "method": "farms", "sparsity": [0.5, 0.5, 0.99, 0.7],
    ...                       "target": 0.7, "group": ["b0", "b0", "b1", "b1"]})
    >>> allocation_data(frame)[["group_start", "clipped"]].values.tolist()
    [[False, False], [False, False], [True, True], [False, False]]
    """
    missing = {"layer", "method", "sparsity", "target"} - set(frame.columns)
    if missing:
        raise ValueError(f"frame lacks columns {sorted(missing)}: pass farms_viz.allocate.allocation_frame(...)")
    if frame.empty:
        raise ValueError("no rows to draw: the allocation frame is empty")
    ceiling = DEFAULT_MAX_SPARSITY if max_sparsity is None else max_sparsity
    out = frame.assign(method_title=frame["method"].map(method_label),
                       clipped=frame["sparsity"] >= ceiling - 1e-9, group_start=False)
    if "group" in frame.columns and frame["group"].nunique() < frame["layer"].nunique():
        for _, rows in out.groupby("method", sort=False):
            changed = rows["group"].ne(rows["group"].shift())
            changed.iloc[0] = False
            out.loc[rows.index, "group_start"] = changed
    return out


def clipped_layers(frame: pd.DataFrame, method: str, max_sparsity: float | None = None) -> list[str]:
    """The layers whose ``method`` sparsity sits at the clip (the spread could not be honoured there).

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"layer": ["a", "b"], "method": "farms", "sparsity": [0.99, 0.9], "target": 0.95})
    >>> clipped_layers(frame, "farms")
    ['a']
    """
    data = allocation_data(frame, max_sparsity)
    return data[(data["method"] == method) & data["clipped"]]["layer"].tolist()


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
    tooltip = [c for c in ("layer:N", "method_title:N", "alpha:Q", "sparsity:Q", "clipped:N", "params:Q", "group:N")
               if c.split(":")[0] in data.columns]
    source = alt.NamedData(name=DATASET)
    bars = alt.Chart(source).mark_bar(strokeWidth=1.5).encode(
        x=x, xOffset=alt.XOffset("method_title:N", sort=methods), color=color,
        # a bar held at the clip is outlined: its layer wanted more than the maximum sparsity
        stroke=alt.condition("datum.clipped", alt.value({"expr": INK}), alt.value(None)),
        y=alt.Y("sparsity:Q", title="sparsity", scale=alt.Scale(domain=[0, 1])), tooltip=tooltip)
    target = alt.Chart(source).transform_aggregate(target="mean(target)").mark_rule(
        strokeDash=[4, 3], color="gray").encode(y="target:Q")
    # block boundaries when grouping: a rule where a new group starts, once (the first method's rows)
    first = f"datum.group_start && datum.method_title === {methods[0]!r}"
    boundaries = alt.Chart(source).transform_filter(first).mark_rule(strokeDash=[2, 3], color="#888").encode(
        x=alt.X("layer:N", sort=order, bandPosition=0),
        tooltip=[alt.Tooltip("group:N", title="block starts")] if "group" in data.columns else alt.Undefined)
    sparsity_panel = alt.layer(bars, target, boundaries).properties(width=width, height=height)
    if not (show_alpha and "alpha" in data.columns):
        return with_datasets(sparsity_panel.add_params(alt.param(name=INK, value=LIGHT_INK)), {DATASET: data},
                             selectable=False)
    # the layer names are written once, under the sparsity bars
    alphas = alt.Chart(source).mark_line(point=True).encode(
        x=alt.X("layer:N", sort=order, title=None, axis=alt.Axis(labels=False, ticks=False)),
        y=alt.Y("alpha:Q", title="alpha", scale=alt.Scale(zero=False)), color=color,
        tooltip=tooltip)
    alpha_panel = alt.layer(boundaries, alphas).properties(width=width, height=height * 2 // 3)
    chart = alt.vconcat(alpha_panel, sparsity_panel).resolve_scale(x="shared").add_params(
        alt.param(name=INK, value=LIGHT_INK))
    return with_datasets(chart, {DATASET: data}, selectable=False)
