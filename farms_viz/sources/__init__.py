"""Where models come from: checkpoints on disk, demo models, the shipped MiniLM, a digits MLP."""

from .checkpoints import CheckpointError, LazyStateDict, open_checkpoint

__all__ = ["CheckpointError", "LazyStateDict", "open_checkpoint"]
