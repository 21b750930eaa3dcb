"""Every panel of one analysis together: the explorer's charts, and one figure for export."""

from __future__ import annotations

import altair as alt
import pandas as pd

from ..engine.analysis import Analysis
from .data import layer_frame, spectrum_frames
from .datasets import strip_datasets, with_datasets
from .layers import alpha_aspect_chart, default_layer, layer_alpha_chart
from .spectrum import METHODS_PARAM, UNITS_PARAM, spectrum_chart
from .style import INK, LIGHT_INK, alpha_rules


def explorer_charts(analysis: Analysis, selected_layer: str | None = None) -> dict[str, alt.TopLevelMixin]:
    """Every chart of the explorer for one analysis: name -> chart.

    Names: "alpha_by_layer", "alpha_vs_aspect", "spectrum".

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> a = farms_viz.analyze(nn.Linear(64, 32), window=16, progress=False)
    >>> sorted(explorer_charts(a))
    ['alpha_by_layer', 'alpha_vs_aspect', 'spectrum']
    """
    layer = selected_layer if selected_layer in analysis.layers else default_layer(analysis)
    layers = layer_frame(analysis)
    return {
        "alpha_by_layer": layer_alpha_chart(layers, layer),
        "alpha_vs_aspect": alpha_aspect_chart(layers, layer),
        "spectrum": spectrum_chart(spectrum_frames(analysis, layer), layer),
    }


def report_chart(analysis: Analysis, selected_layer: str | None = None, units: str = "normalised",
                 methods: str = "both"):
    """All explorer charts in one figure (for PNG/SVG export).

    Parameters
    ----------
    analysis : the analysis to draw.
    selected_layer : the layer whose spectrum is drawn (default: the largest alpha gap).
    units, methods : the spectrum's view (see :func:`~farms_viz.charts.spectrum.spectrum_chart`).

    Returns
    -------
    altair.VConcatChart: alpha per layer on top, alpha vs aspect ratio and the spectrum below.
    """
    layer = selected_layer if selected_layer in analysis.layers else default_layer(analysis)
    layers = layer_frame(analysis)
    p = analysis.params
    sampling = f"stride {p.stride}" if p.stride else f"{p.windows_per_dim} windows per dim"
    frames = {"layers": layers, "alpha_rules": pd.DataFrame({"alpha": alpha_rules(p.fit)}, dtype=float),
              **{f"spectrum_{k}": v for k, v in spectrum_frames(analysis, layer).items()}}
    body = alt.vconcat(
        strip_datasets(layer_alpha_chart(layers, layer)),
        alt.hconcat(strip_datasets(alpha_aspect_chart(layers, layer)), spacing=30),
        strip_datasets(spectrum_chart({}, layer, units=units, methods=methods)),
        spacing=34,
    ).resolve_scale(strokeDash="independent").properties(title=alt.Title("farms_viz: standard ESD vs FARMS",
                                 subtitle=f"window {p.window}, Q {p.q:g}, {sampling}, {p.fit} fit"))
    body = body.add_params(alt.param(name=UNITS_PARAM, value=units), alt.param(name=METHODS_PARAM, value=methods),
                           alt.param(name=INK, value=LIGHT_INK))
    return with_datasets(body, frames, layer)
