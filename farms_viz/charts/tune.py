"""Tune charts: the metric of each pruned setting (:func:`farms_viz.tune`) against the window and against epsilon.

Uniform (grey), ESD-based (orange) and FARMS-based (blue) allocations in the colours every chart
uses; the best setting is ringed and named in the subtitle. Several targets give one panel each.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

from .datasets import with_datasets
from .style import INK, LIGHT_INK, METHOD_COLORS, METHOD_LABELS

DATASET = "tune"
UNIFORM_LABEL = "uniform"
UNIFORM_COLOR = "#8c8c8c"
TUNE_DOMAIN = [UNIFORM_LABEL, METHOD_LABELS["esd"], METHOD_LABELS["farms"]]
TUNE_COLORS = [UNIFORM_COLOR, *METHOD_COLORS]


def _grid_label(frame: pd.DataFrame) -> pd.Series:
    stride = frame["stride"].astype("Float64")
    k = frame["windows_per_dim"].astype("Float64")
    grid = np.where(stride.notna(), "stride " + stride.astype(str).str.replace(".0", "", regex=False),
                    "k=" + k.astype(str).str.replace(".0", "", regex=False))
    return pd.Series(grid, index=frame.index) + ", Q=" + frame["q"].map("{:g}".format)


def tune_chart_data(frame: pd.DataFrame) -> pd.DataFrame:
    """The rows the tune charts draw: finite metrics, with method_label, grid and best (per target) columns.

    Examples
    --------
    >>> frame = pd.DataFrame({"method": ["uniform", "farms"], "window": [None, 64], "windows_per_dim": [None, 10],
    ...                       "stride": [None, None], "q": [None, 1.0], "epsilon": [None, 0.2],
    ...                       "target": 0.7, "metric": [5.3, 5.1]})
    >>> tune_chart_data(frame)[["method_label", "best"]].values.tolist()
    [['uniform', False], ['FARMS', True]]
    """
    missing = {"method", "window", "windows_per_dim", "stride", "q", "epsilon", "target", "metric"} - set(frame.columns)
    if missing:
        raise ValueError(f"frame lacks columns {sorted(missing)}: pass the DataFrame farms_viz.tune returns")
    data = frame[np.isfinite(frame["metric"].astype(float))].copy()
    if data.empty:
        raise ValueError("no rows to draw: the tune frame has no finite metric")
    higher = bool(frame.attrs.get("higher_is_better", False))
    data["method_label"] = data["method"].map(lambda m: METHOD_LABELS.get(m, m))
    data["grid"] = ""
    farms = data["method"] == "farms"
    if farms.any():
        data.loc[farms, "grid"] = _grid_label(data[farms])
    for column in ("window", "windows_per_dim", "stride"):
        data[column] = data[column].astype("Float64").astype(float)
    data["metric"] = data["metric"].astype(float)
    by_target = data.groupby("target")["metric"]
    extreme = by_target.transform("max" if higher else "min")
    first = data.index.to_series().where(data["metric"] == extreme).groupby(data["target"]).transform("min")
    data["best"] = data.index.to_series() == first
    data["setting"] = [_describe(row) for _, row in data.iterrows()]
    return data


def _describe(row: pd.Series) -> str:
    if row["method"] == "uniform":
        return "uniform"
    text = f"{row['method_label']}, eps {row['epsilon']:g}"
    if row["method"] == "farms":
        text += f", m={int(row['window'])}, {row['grid']}"
    return text


def _subtitle(data: pd.DataFrame, metric: str) -> list[str]:
    best = data[data["best"]]
    return [f"best at target {row['target']:g}: {row['setting']} ({metric} {row['metric']:.4g})"
            for _, row in best.iterrows()]


def _color(legend: bool = True) -> alt.Color:
    present = TUNE_DOMAIN
    return alt.Color("method_label:N", title="allocation", scale=alt.Scale(domain=present, range=TUNE_COLORS),
                     legend=alt.Legend(orient="top") if legend else None)


def _finish(layers: list, data: pd.DataFrame, title: str, metric: str, width: int, height: int):
    chart = alt.layer(*layers, data=alt.NamedData(name=DATASET)).properties(width=width, height=height)
    if data["target"].nunique() > 1:
        chart = chart.facet(column=alt.Column("target:Q", title="target sparsity")).resolve_scale(y="independent")
    # the ring of the best setting in the theme's ink (the widget sets INK for a dark page)
    chart = chart.properties(title=alt.Title(title, subtitle=_subtitle(data, metric))).add_params(
        alt.param(name=INK, value=LIGHT_INK))
    return with_datasets(chart, {DATASET: data}, selectable=False)


def tune_metric_vs_window(frame: pd.DataFrame, *, metric: str = "metric", width: int = 360,
                          height: int = 220) -> alt.LayerChart | alt.FacetChart:
    """The metric against the FARMS window, FARMS' best over epsilon at each window; ESD and uniform as rules.

    Parameters
    ----------
    frame : the DataFrame :func:`farms_viz.tune` returns.
    metric : the metric's name on the y axis (e.g. "perplexity").
    width, height : panel size.

    Examples
    --------
    >>> frame = pd.DataFrame({"method": ["uniform", "esd", "farms", "farms"], "window": [None, None, 32, 64],
    ...                       "windows_per_dim": [None, None, 10, 10], "stride": None, "q": [None, None, 1.0, 1.0],
    ...                       "epsilon": [None, 0.2, 0.2, 0.2], "target": 0.7, "metric": [5.3, 5.2, 5.1, 5.4]})
    >>> spec = tune_metric_vs_window(frame, metric="perplexity").to_dict()
    >>> spec["title"]["subtitle"]
    ['best at target 0.7: FARMS, eps 0.2, m=32, k=10, Q=1 (perplexity 5.1)']
    """
    data = tune_chart_data(frame)
    higher = bool(frame.attrs.get("higher_is_better", False))
    tooltip = ["setting:N", alt.Tooltip("metric:Q", title=metric, format=".4g"), "target:Q",
               alt.Tooltip("sparsity:Q", format=".4f") if "sparsity" in data else "target:Q"]
    windows = sorted({int(w) for w in data.loc[data["method"] == "farms", "window"]})
    x = alt.X("window:Q", scale=alt.Scale(type="log", nice=False, padding=12), title="FARMS window m",
              axis=alt.Axis(values=windows, format="d", grid=False) if windows else alt.Axis(format="d"))
    y = alt.Y("metric:Q", title=metric, scale=alt.Scale(zero=False))
    several_grids = data.loc[data["method"] == "farms", "grid"].nunique() > 1
    dash = {"strokeDash": alt.StrokeDash("grid:N", title="FARMS grid", legend=alt.Legend(
        orient="top", symbolType="stroke"))} if several_grids else {}
    # FARMS: at each (window, grid) the best epsilon
    farms = alt.Chart().transform_filter("datum.method === 'farms'").transform_joinaggregate(
        extreme=f"{'max' if higher else 'min'}(metric)", groupby=["target", "window", "grid"]).transform_filter(
        "datum.metric === datum.extreme")
    layers = [
        farms.mark_line(point=True).encode(x=x, y=y, color=_color(), tooltip=tooltip, **dash),
        # ESD and uniform do not depend on the window: their best as a rule
        alt.Chart().transform_filter("datum.method !== 'farms'").transform_joinaggregate(
            extreme=f"{'max' if higher else 'min'}(metric)", groupby=["target", "method"]).transform_filter(
            "datum.metric === datum.extreme").mark_rule(strokeDash=[6, 4], strokeWidth=2).encode(
            y="metric:Q", color=_color(), tooltip=tooltip),
        alt.Chart().transform_filter("datum.best && datum.method === 'farms'").mark_point(
            size=260, shape="circle", filled=False, strokeWidth=2.5, color={"expr": INK}).encode(
            x=x, y=y, tooltip=tooltip),
        alt.Chart().transform_filter("datum.best && datum.method !== 'farms'").mark_rule(
            strokeWidth=4, opacity=0.5).encode(y="metric:Q", color=_color(), tooltip=tooltip),
    ]
    return _finish(layers, data, "Pruned model against the FARMS window", metric, width, height)


def tune_metric_vs_epsilon(frame: pd.DataFrame, *, metric: str = "metric", width: int = 360,
                           height: int = 220) -> alt.LayerChart | alt.FacetChart:
    """The metric against the allocation's spread epsilon: ESD, FARMS one line per window, uniform as a rule.

    Parameters
    ----------
    frame : the DataFrame :func:`farms_viz.tune` returns.
    metric : the metric's name on the y axis.
    width, height : panel size.

    Examples
    --------
    >>> frame = pd.DataFrame({"method": ["uniform", "esd", "esd", "farms", "farms"],
    ...                       "window": [None, None, None, 32, 32], "windows_per_dim": [None, None, None, 10, 10],
    ...                       "stride": None, "q": [None, None, None, 1.0, 1.0], "epsilon": [None, 0.1, 0.2, 0.1, 0.2],
    ...                       "target": 0.7, "metric": [5.3, 5.25, 5.35, 5.2, 5.4]})
    >>> tune_metric_vs_epsilon(frame).to_dict()["title"]["subtitle"]
    ['best at target 0.7: FARMS, eps 0.1, m=32, k=10, Q=1 (metric 5.2)']
    """
    data = tune_chart_data(frame)
    data["line"] = np.where(data["method"] == "farms", data["setting"].str.replace(r"eps [^,]+, ", "", regex=True),
                            data["method_label"])
    tooltip = ["setting:N", alt.Tooltip("metric:Q", title=metric, format=".4g"), "target:Q"]
    # ticks at the spreads tried only: a padded scale's own ticks crowd into one another
    spreads = sorted({float(e) for e in data["epsilon"].dropna()})
    x = alt.X("epsilon:Q", title="spread epsilon", scale=alt.Scale(zero=False, padding=10),
              axis=alt.Axis(values=spreads, format="~g") if spreads else alt.Axis(format="~g"))
    y = alt.Y("metric:Q", title=metric, scale=alt.Scale(zero=False))
    layers = [
        alt.Chart().transform_filter("datum.method !== 'uniform'").mark_line(point=True, opacity=0.75).encode(
            x=x, y=y, color=_color(), detail="line:N", tooltip=tooltip),
        alt.Chart().transform_filter("datum.method === 'uniform'").mark_rule(
            strokeDash=[6, 4], strokeWidth=2).encode(y="metric:Q", color=_color(), tooltip=tooltip),
        alt.Chart().transform_filter("datum.best && datum.method !== 'uniform'").mark_point(
            size=260, shape="circle", filled=False, strokeWidth=2.5, color={"expr": INK}).encode(
            x=x, y=y, tooltip=tooltip),
        alt.Chart().transform_filter("datum.best && datum.method === 'uniform'").mark_rule(
            strokeWidth=4, opacity=0.5).encode(y="metric:Q", color=_color(), tooltip=tooltip),
    ]
    return _finish(layers, data, "Pruned model against the allocation's spread", metric, width, height)
