"""From alphas to decisions: layer-wise sparsity (AlphaPruning) and learning rates (TempBalance).

The public face of :mod:`farms_viz.decisions`: ``sparsity`` turns per-layer alphas into pruning
ratios whose parameter-weighted mean is the target (larger alpha, more pruning);
``learning_rates`` turns them into per-layer learning rates (larger alpha, larger rate);
``param_groups`` and ``rebalance`` apply those rates to a torch optimizer, keyed by module name.
"""

from .decisions.allocation import (
    MODES,
    allocation_frame,
    layer_params,
    sparsity,
    sparsity_from_analysis,
    transformer_blocks,
)
from .decisions.learning_rates import (
    MAPPINGS,
    OTHER_GROUP,
    group_learning_rates,
    learning_rates,
    param_groups,
    rebalance,
    update_learning_rates,
)

__all__ = [
    "MAPPINGS",
    "MODES",
    "OTHER_GROUP",
    "allocation_frame",
    "group_learning_rates",
    "layer_params",
    "learning_rates",
    "param_groups",
    "rebalance",
    "sparsity",
    "sparsity_from_analysis",
    "transformer_blocks",
    "update_learning_rates",
]
