"""Deprecated: the sweep charts live in :mod:`farms_viz.charts` (``farms_viz.charts.sweep``)."""

import warnings

from .charts.sweep import BANDS, alpha_vs_window, spread_heatmap

warnings.warn("farms_viz.sweep_charts is deprecated: import alpha_vs_window and spread_heatmap from "
              "farms_viz.charts", DeprecationWarning, stacklevel=2)

__all__ = ["BANDS", "alpha_vs_window", "spread_heatmap"]
