"""Charts: tidy frames in, Vega-Lite charts (altair) out, no hidden state.

The same builders feed the widget (rendered by the bundled vega-embed), the HTML report and
PNG export (vl-convert). ``data`` turns an :class:`~farms_viz.Analysis` into frames; one builder
module per panel family (``layers``, ``spectrum``, ``allocation``, ``sweep``, ``tune``); ``datasets`` is
the one mechanism by which rows travel as named data sets; ``style`` holds the method labels,
colours and widths every chart shares.
"""

from .allocation import allocation_comparison
from .data import layer_frame, spectrum_frames, table_frame
from .datasets import SELECTED, records, spec_without_rows, with_datasets
from .layers import alpha_aspect_chart, default_layer, layer_alpha_chart
from .report import explorer_charts, report_chart
from .spectrum import spectrum_chart
from .style import ALPHA_RULES, METHOD_COLORS, METHOD_DOMAIN, METHOD_LABELS, layer_axis, layer_chart_width
from .sweep import alpha_vs_window, spread_heatmap
from .tune import tune_metric_vs_epsilon, tune_metric_vs_window

__all__ = [
    "ALPHA_RULES",
    "METHOD_COLORS",
    "METHOD_DOMAIN",
    "METHOD_LABELS",
    "SELECTED",
    "allocation_comparison",
    "alpha_aspect_chart",
    "alpha_vs_window",
    "default_layer",
    "explorer_charts",
    "layer_alpha_chart",
    "layer_axis",
    "layer_chart_width",
    "layer_frame",
    "records",
    "report_chart",
    "spec_without_rows",
    "spectrum_chart",
    "spectrum_frames",
    "spread_heatmap",
    "table_frame",
    "tune_metric_vs_epsilon",
    "tune_metric_vs_window",
    "with_datasets",
]
