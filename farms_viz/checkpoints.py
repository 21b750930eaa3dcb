"""Open a checkpoint on disk lazily (see :mod:`farms_viz.sources.checkpoints`)."""

from .sources.checkpoints import CheckpointError, LazyStateDict, open_checkpoint

__all__ = ["CheckpointError", "LazyStateDict", "open_checkpoint"]
