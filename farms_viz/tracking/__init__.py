"""Watch training and compare models: alphas over steps, checkpoints and fine-tunes side by side.

``Monitor`` records both methods' per-layer rows while a model trains (the analysis runs off
the training thread, on a copy of the weights); ``compare`` analyses several models or
checkpoints and matches their layers by name.
"""

from .compare import Comparison, compare
from .monitor import Monitor

__all__ = ["Comparison", "Monitor", "compare"]
