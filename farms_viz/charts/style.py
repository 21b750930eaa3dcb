"""How every chart looks: one label and one colour per method, layer axes, chart widths.

Shared by the chart builders, the widget (which sends ``METHOD_LABELS``/``METHOD_COLORS`` to the
front end through the contract) and the notebooks, so a method looks the same everywhere.
"""

from __future__ import annotations

import altair as alt

METHODS = ("esd", "farms")
METHOD_LABELS = {"esd": "standard ESD", "farms": "FARMS"}
METHOD_DOMAIN = [METHOD_LABELS[m] for m in METHODS]
METHOD_COLORS = ["#e8703a", "#3a78c2"]  # readable on light and dark backgrounds
# Reference lines of the alpha charts: HT-SR's reading of the KS-fit alpha (below 2
# over-trained, above 6 under-trained).
ALPHA_RULES = (2.0, 6.0)
# The per-layer charts give each layer this many pixels, within these bounds.
LAYER_PX = 22
MIN_LAYER_CHART_WIDTH = 360
MAX_LAYER_CHART_WIDTH = 880


def layer_chart_width(count: int) -> int:
    """Width in pixels of a chart with one column of marks per layer.

    Examples
    --------
    >>> layer_chart_width(4), layer_chart_width(30), layer_chart_width(200)
    (360, 660, 880)
    """
    return int(min(MAX_LAYER_CHART_WIDTH, max(MIN_LAYER_CHART_WIDTH, LAYER_PX * count)))


def method_label(method: str) -> str:
    """The display label of a method ("esd" -> "standard ESD"); unknown names pass through."""
    return METHOD_LABELS.get(method, method)


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


def method_color(legend: bool = True) -> alt.Color:
    return alt.Color("method_label:N", title="method", legend=alt.Legend(orient="top") if legend else None,
                     scale=alt.Scale(domain=METHOD_DOMAIN, range=METHOD_COLORS))
