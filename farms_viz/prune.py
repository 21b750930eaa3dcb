"""Prune a copy of a model at per-layer sparsities (the public face of :mod:`farms_viz.decisions`)."""

from .decisions.pruning import OVERALL, REPORT_COLUMNS, magnitude, uniform

__all__ = ["OVERALL", "REPORT_COLUMNS", "magnitude", "uniform"]
