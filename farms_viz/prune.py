"""Prune a copy of a model at per-layer sparsities (the public face of :mod:`farms_viz.decisions`).

``magnitude`` needs nothing but the weights; ``wanda`` and ``sparsegpt`` use calibration inputs
(activation-aware, as the published AlphaPruning/FARMS pruning results do); ``masks_of`` and
``to_torch`` hand the masks to ``torch.nn.utils.prune``.
"""

from .decisions.activation_pruning import masks_of, sparsegpt, to_torch, wanda
from .decisions.pruning import OVERALL, REPORT_COLUMNS, magnitude, uniform

__all__ = ["OVERALL", "REPORT_COLUMNS", "magnitude", "masks_of", "sparsegpt", "to_torch", "uniform", "wanda"]
