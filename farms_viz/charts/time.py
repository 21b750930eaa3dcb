"""Altair charts of alpha over training: tidy history in, Vega-Lite charts out.

A history is any frame with step, layer, method and alpha columns: ``Monitor.history`` or
``Comparison.history()`` (a checkpoint series). The same builders can feed a widget's time
view; :func:`time_view_html` writes the static page ``farms-viz report`` makes for several
checkpoints (vega inlined: it opens offline).
"""

from __future__ import annotations

import os
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd

from .style import LAYER_COLORS, METHOD_COLORS, METHOD_DOMAIN, METHOD_LABELS, alpha_rules

HISTORY_NEEDS = ("step", "layer", "method", "alpha")
LAYER_PICK = "time_layer"


def _checked(history: pd.DataFrame) -> pd.DataFrame:
    missing = [c for c in HISTORY_NEEDS if c not in history.columns]
    if missing:
        raise ValueError(f"history lacks column(s) {missing}: pass Monitor.history or Comparison.history()")
    if history.empty:
        raise ValueError("the history is empty: record at least one step (monitor.step()) first")
    return history


def layer_history_frame(history: pd.DataFrame) -> pd.DataFrame:
    """One row per (step, layer, method): step, layer, method, method_label, alpha, order
    (the layer's position in the model), plus ``model`` when the history has one.

    Examples
    --------
    >>> h = pd.DataFrame({"step": [0, 0], "layer": ["a", "a"], "method": ["esd", "farms"], "alpha": [3.0, 2.5]})
    >>> list(layer_history_frame(h)["method_label"])
    ['standard ESD', 'FARMS']
    """
    history = _checked(history)
    columns = [c for c in ("step", "model", "layer", "method", "alpha") if c in history.columns]
    frame = history[columns].copy()
    frame["method_label"] = frame["method"].map(METHOD_LABELS)
    order = {name: i for i, name in enumerate(pd.unique(history["layer"]))}
    frame["order"] = frame["layer"].map(order)
    frame["alpha"] = frame["alpha"].replace([np.inf, -np.inf], np.nan)
    return frame.reset_index(drop=True)


def mean_alpha_frame(history: pd.DataFrame) -> pd.DataFrame:
    """The mean alpha over the layers at each step, per method: step, method, method_label,
    alpha, layers (how many layers had a finite alpha).

    Examples
    --------
    >>> h = pd.DataFrame({"step": [0, 0, 1, 1], "layer": ["a", "b"] * 2, "method": ["farms"] * 4,
    ...                   "alpha": [2.0, 4.0, 3.0, 5.0]})
    >>> mean_alpha_frame(h)["alpha"].tolist()
    [3.0, 4.0]
    """
    frame = layer_history_frame(history)
    mean = (frame.groupby(["step", "method"], sort=True)["alpha"].agg(["mean", "count"]).reset_index()
            .rename(columns={"mean": "alpha", "count": "layers"}))
    mean["method_label"] = mean["method"].map(METHOD_LABELS)
    return mean[["step", "method", "method_label", "alpha", "layers"]]


def _method_color(legend: bool = True) -> alt.Color:
    return alt.Color("method_label:N", title="method", legend=alt.Legend(orient="top") if legend else None,
                     scale=alt.Scale(domain=METHOD_DOMAIN, range=METHOD_COLORS))


def mean_alpha_chart(history: pd.DataFrame, width: int = 560, height: int = 200) -> alt.TopLevelMixin:
    """Mean alpha over the layers against step, one line per method; dashed rules at alpha 2 and 6
    only when the history's fit is the KS fit (the reading those lines belong to).

    Examples
    --------
    >>> h = pd.DataFrame({"step": [0, 1], "layer": ["a", "a"], "method": ["farms"] * 2, "alpha": [3.0, 2.5]})
    >>> mean_alpha_chart(h).to_dict()["layer"][1]["mark"]["type"]
    'line'
    """
    data = mean_alpha_frame(history)
    base = alt.Chart(data)
    x = alt.X("step:Q", title="step", scale=alt.Scale(nice=False))
    line = base.mark_line(point=True, strokeWidth=2.5).encode(
        x=x, y=alt.Y("alpha:Q", title="mean alpha over layers", scale=alt.Scale(zero=False, padding=10)),
        color=_method_color(),
        tooltip=[alt.Tooltip("method_label:N", title="method"), "step:Q",
                 alt.Tooltip("alpha:Q", title="mean alpha", format=".3f"), alt.Tooltip("layers:Q")])
    fits = set(history["fit"].dropna()) if "fit" in history else set()
    reference = alpha_rules(fits.pop()) if len(fits) == 1 else ()
    rules = alt.Chart(pd.DataFrame({"alpha": [a for a in reference if _in_range(data, a)]}, dtype=float)).mark_rule(
        strokeDash=[5, 4], opacity=0.6, color="#888").encode(y="alpha:Q")
    return alt.layer(rules, line).properties(width=width, height=height, title="mean alpha per method")


def _in_range(data: pd.DataFrame, alpha: float) -> bool:
    finite = data["alpha"].dropna()
    return bool(len(finite)) and finite.min() - 1 <= alpha <= finite.max() + 1


def layer_alpha_over_steps_chart(history: pd.DataFrame, width: int = 270, height: int = 220) -> alt.HConcatChart:
    """Alpha against step for every layer, one panel per method (each with its own y scale).

    Click a layer in the legend (or a line) to pick it; the other layers fade. Layers are
    coloured in model order.

    Examples
    --------
    >>> h = pd.DataFrame({"step": [0, 1] * 2, "layer": ["a", "a", "b", "b"], "method": ["esd"] * 4,
    ...                   "alpha": [3.0, 2.5, 4.0, 3.5]})
    >>> len(layer_alpha_over_steps_chart(h).to_dict()["hconcat"])
    1
    """
    data = layer_history_frame(history)
    layers = list(pd.unique(data.sort_values("order")["layer"]))
    pick = alt.selection_point(fields=["layer"], bind="legend", name=LAYER_PICK, on="click", clear="dblclick")
    color = alt.Color("layer:N", sort=layers, title="layer (click to pick)",
                      scale=alt.Scale(range=LAYER_COLORS),
                      legend=alt.Legend(orient="right", symbolLimit=60, labelLimit=220))
    tooltip = [alt.Tooltip("layer:N"), alt.Tooltip("method_label:N", title="method"), "step:Q",
               alt.Tooltip("alpha:Q", format=".3f")] + ([alt.Tooltip("model:N")] if "model" in data else [])
    panels: list[alt.Chart] = []
    for method in ("esd", "farms"):
        rows = data[data["method"] == method]
        if rows.empty:
            continue
        chart = alt.Chart(rows).mark_line(point=alt.OverlayMarkDef(size=28)).encode(
            x=alt.X("step:Q", title="step", scale=alt.Scale(nice=False)),
            y=alt.Y("alpha:Q", title="alpha", scale=alt.Scale(zero=False, padding=10)),
            color=color, detail="layer:N", tooltip=tooltip,
            opacity=alt.condition(pick, alt.value(0.95), alt.value(0.12)),
            strokeWidth=alt.condition(pick, alt.value(2.2), alt.value(1.2)),
        ).properties(width=width, height=height, title=f"alpha per layer: {METHOD_LABELS[method]}")
        panels.append(chart.add_params(pick) if not panels else chart)
    return alt.hconcat(*panels, spacing=24).resolve_scale(y="independent", color="shared")


def alpha_change_chart(history: pd.DataFrame, width: int = 560) -> alt.Chart:
    """Change in alpha per layer from the first step to the last, both methods, largest change first."""
    data = layer_history_frame(history)
    first, last = data["step"].min(), data["step"].max()
    start = data[data["step"] == first].drop_duplicates(["layer", "method"]).set_index(["layer", "method"])["alpha"]
    end = data[data["step"] == last].drop_duplicates(["layer", "method"], keep="last").set_index(
        ["layer", "method"])["alpha"]
    change = (end - start).dropna().rename("delta").reset_index()
    change["method_label"] = change["method"].map(METHOD_LABELS)
    order = change.groupby("layer")["delta"].apply(lambda d: d.abs().max()).sort_values(ascending=False)
    return alt.Chart(change).mark_bar().encode(
        y=alt.Y("layer:N", sort=list(order.index), title=None, axis=alt.Axis(labelLimit=260)),
        yOffset=alt.YOffset("method_label:N", scale=alt.Scale(domain=METHOD_DOMAIN)),
        x=alt.X("delta:Q", title=f"alpha at step {_step_text(last)} minus alpha at step {_step_text(first)}"),
        color=_method_color(),
        tooltip=["layer:N", alt.Tooltip("method_label:N", title="method"), alt.Tooltip("delta:Q", format="+.3f")],
    ).properties(width=width, title="change in alpha per layer, first step to last")


def _step_text(step: float) -> str:
    return f"{step:g}" if isinstance(step, (int, float, np.number)) else str(step)


def time_view_chart(history: pd.DataFrame, title: str = "farms_viz: alpha over training",
                    subtitle: str | None = None) -> alt.VConcatChart:
    """The static time view: mean alpha per method on top, every layer's alpha per method
    below, then each layer's change from the first step to the last.

    Examples
    --------
    >>> h = pd.DataFrame({"step": [0, 0, 1, 1], "layer": ["a"] * 4, "method": ["esd", "farms"] * 2,
    ...                   "alpha": [3.0, 2.8, 2.6, 2.5]})
    >>> len(time_view_chart(h).to_dict()["vconcat"])
    3
    """
    parts: list = [mean_alpha_chart(history), layer_alpha_over_steps_chart(history)]
    if history["step"].nunique() > 1:
        parts.append(alpha_change_chart(history))
    heading = alt.Title(title, subtitle=subtitle) if subtitle else alt.Title(title)
    # method colours above and below, layer colours in the middle: each panel keeps its own scale
    return alt.vconcat(*parts, spacing=30).resolve_scale(color="independent").properties(
        title=heading).configure_view(strokeWidth=0)


def time_view_html(history: pd.DataFrame, title: str = "farms_viz: alpha over training",
                   subtitle: str | None = None) -> str:
    """:func:`time_view_chart` as one self-contained HTML page (vega inlined, opens offline)."""
    return time_view_chart(history, title, subtitle).to_html(inline=True)


def save_time_view(history: pd.DataFrame, path: str | os.PathLike, title: str = "farms_viz: alpha over training",
                   subtitle: str | None = None) -> Path:
    """Write :func:`time_view_html` to ``path`` (UTF-8, atomically; never onto a device, folder
    or link); returns the path."""
    from ..safe_output import write_file

    return write_file(path, time_view_html(history, title, subtitle).encode("utf-8"))
