"""From alphas to decisions: pruning ratios (AlphaPruning), learning rates (TempBalance), pruning.

``allocation`` turns alphas into layer-wise sparsities, ``learning_rates`` into layer-wise learning
rates and optimizer groups, ``pruning`` applies sparsities to a copy of a model. The public
entry points are the modules ``farms_viz.allocate`` and ``farms_viz.prune``.
"""
