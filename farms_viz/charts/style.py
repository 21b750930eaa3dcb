"""How every chart looks: one label, colour, shape and dash per method, layer axes, chart widths.

Shared by the chart builders, the widget (which sends ``METHOD_LABELS``/``METHOD_COLORS`` to the
front end through the contract) and the notebooks, so a method looks the same everywhere.

The two method colours are an orange and a blue of different lightness (CIE L* 61.5 and 45.7):
they stay apart under deuteranopia and protanopia (simulated CIELAB distance 111 and 97, against
103 and 86 for the previous pair), and each keeps a contrast of at least 3:1 on white and on
JupyterLab's dark layout colours (#111111, #212121). Shape (square / circle) and dash (dashed /
solid) tell the methods apart a second time, without colour. Other categories (layer roles,
settings, kinds of noise) take ``OTHER_COLORS``, never a method's colour.
"""

from __future__ import annotations

import altair as alt

METHODS = ("esd", "farms")
METHOD_LABELS = {"esd": "standard ESD", "farms": "FARMS"}
METHOD_DOMAIN = [METHOD_LABELS[m] for m in METHODS]
METHOD_COLORS = ["#E5762A", "#2F6DB9"]  # orange, blue: apart under deuteranopia, readable light and dark
METHOD_COLOR_NAMES = {"esd": "orange", "farms": "blue"}  # for text alternatives (aria labels)
METHOD_SHAPES = ["square", "circle"]
METHOD_DASHES = [[6, 3], [1, 0]]  # standard ESD dashed, FARMS solid
# Colours of categories that are not methods (roles, settings, kinds of noise): no orange, no blue. Beyond
# three, deuteranopia leaves them close: pair them with shapes or dashes.
OTHER_COLORS = ["#4D9A57", "#7A4FA0", "#8A8A8A", "#C0508A", "#1B7F7A"]
# Lines of many layers in one panel (alpha over steps): the same rule, more hues (they repeat beyond
# twelve layers: the legend, the tooltip and picking a layer tell them apart).
LAYER_COLORS = [*OTHER_COLORS, "#A8403C", "#8B7B2C", "#6E7F2E", "#9C6BB5", "#2E6B4F", "#B5647A", "#5C5C5C"]
# Reference lines of the alpha charts under the KS fit only: WeightWatcher's reading of the KS-fit
# alpha (below 2 over-trained, above 6 under-trained). They mean nothing for the median or peak fit.
ALPHA_RULES = (2.0, 6.0)
KS_RULE_FIT = "ks"
# The per-layer charts give each layer this many pixels, within these bounds.
LAYER_PX = 22
MIN_LAYER_CHART_WIDTH = 360
MAX_LAYER_CHART_WIDTH = 880
# A Vega parameter the front end sets to the theme's ink (outlines of a selected mark).
INK = "fv_ink"
LIGHT_INK, DARK_INK = "#222222", "#f0f0f0"


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


def alpha_rules(fit: str) -> tuple[float, ...]:
    """The reference alphas worth drawing for ``fit``: 2 and 6 for the KS fit, none otherwise.

    Examples
    --------
    >>> alpha_rules("ks"), alpha_rules("median")
    ((2.0, 6.0), ())
    """
    return ALPHA_RULES if fit == KS_RULE_FIT else ()


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


def method_color(legend: bool = True, field: str = "method_label") -> alt.Color:
    """Colour by method (labels as in ``METHOD_LABELS``), the same in every chart."""
    return alt.Color(f"{field}:N", title="method", legend=alt.Legend(orient="top") if legend else None,
                     scale=alt.Scale(domain=METHOD_DOMAIN, range=METHOD_COLORS))


def method_stroke(legend: bool = True, field: str = "method_label") -> alt.Stroke:
    """Outline colour by method (the same scale as :func:`method_color`: one legend for both)."""
    return alt.Stroke(f"{field}:N", title="method", legend=alt.Legend(orient="top") if legend else None,
                      scale=alt.Scale(domain=METHOD_DOMAIN, range=METHOD_COLORS))


def method_shape(legend: bool = True, field: str = "method_label") -> alt.Shape:
    """Shape by method (square: standard ESD, circle: FARMS): the methods apart without colour."""
    return alt.Shape(f"{field}:N", title="method", legend=alt.Legend(orient="top") if legend else None,
                     scale=alt.Scale(domain=METHOD_DOMAIN, range=METHOD_SHAPES))


def method_dash(legend: bool = False, field: str = "method_label") -> alt.StrokeDash:
    """Dash by method (dashed: standard ESD, solid: FARMS)."""
    return alt.StrokeDash(f"{field}:N", title="method", legend=alt.Legend(orient="top") if legend else None,
                          scale=alt.Scale(domain=METHOD_DOMAIN, range=METHOD_DASHES))


def shades(method: str, count: int) -> list[str]:
    """``count`` shades of a method's colour, light to dark (ordered settings of one method).

    Lightness changes by steps that stay apart under colour blindness; pair them with dashes or
    shapes for a second channel.

    Examples
    --------
    >>> shades("farms", 3)
    ['#97b6dc', '#3471bb', '#1a3c66']
    """
    base = METHOD_COLORS[METHODS.index(method)]
    rgb = [int(base[i:i + 2], 16) for i in (1, 3, 5)]
    if count == 1:
        return [base.lower()]
    out = []
    for step in range(count):
        t = -0.5 + 0.95 * step / (count - 1)  # -0.5: half way to white; +0.45: 45% towards black
        mixed = [c + (255 - c) * -t if t < 0 else c * (1 - t) for c in rgb]
        out.append("#" + "".join(f"{round(v):02x}" for v in mixed))
    return out
