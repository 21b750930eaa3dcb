"""Which layers a pruning run touches by default: the Linear layers, not embeddings or the output head.

The published AlphaPruning and FARMS results prune the linear layers inside the transformer blocks
and leave the token embedding and the output head (the LM head) dense: an embedding is a lookup
table read row by row, not a transform of features (and activation-aware pruners cannot score it),
and the head maps the last hidden state to every output, so a pruned head hurts every prediction.
Keeping them out also keeps their alphas (shaped by the vocabulary, not by training) from
stretching the min-to-max range every other layer's ratio is read from.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

from torch import nn

from ..engine.matrices import LayerMatrix, iter_layers
from ..engine.names import named_modules
from .allocation import transformer_blocks

logger = logging.getLogger(__name__)

# Analysed layer kinds that are linear maps of features (engine/matrices.py).
LINEAR_KINDS = ("linear", "conv1d_hf", "attention_in_proj")


def _storage_region(weight) -> tuple:
    return (weight.untyped_storage().data_ptr(), weight.storage_offset(), tuple(weight.shape))


def _output_head(model: nn.Module, linear: list[LayerMatrix], modules: Mapping[str, nn.Module]
                 ) -> tuple[str | None, str]:
    """The name of the output head among ``linear`` (or None), and how it was found."""
    get_output = getattr(model, "get_output_embeddings", None)
    if callable(get_output):  # Hugging Face models say which module is their head
        try:
            head = get_output()
        except (NotImplementedError, AttributeError):
            head = None
        if head is not None:
            return (next((m.name for m in linear if modules.get(m.name) is head), None),
                    "the output head (the model's get_output_embeddings())")
    return _last_outside_blocks(linear), "the output head (the last linear layer, outside every transformer block)"


def _last_outside_blocks(linear: list[LayerMatrix]) -> str | None:
    # The last linear layer in model order is the head when it sits outside every transformer block
    # (a block's last layer is an MLP projection, never the head); a model with one linear layer has
    # no head to spare.
    if len(linear) < 2:
        return None
    last = linear[-1].name
    return last if transformer_blocks([last])[last] == last else None


def prunable_layers(model: nn.Module) -> tuple[list[str], dict[str, str]]:
    """The layers a pruning run touches by default, and every analysed layer it leaves out, with why.

    Kept: every analysed linear map of features (``nn.Linear``, Hugging Face ``Conv1D``, the
    q/k/v parts of an ``nn.MultiheadAttention``), in model order. Left out:

    - embeddings (``nn.Embedding``): a lookup table, not a transform;
    - convolutions: not supported by the activation-aware pruners (name them to prune them with
      magnitude);
    - the output head: the module Hugging Face's ``get_output_embeddings()`` returns when the model
      has that method; otherwise the last linear layer in model order when it lies outside every
      transformer block (``layers.N``, ``layer.N``, ``h.N``, ``blocks.N``: a block never ends a model)
      and the model has more than one linear layer. That is the LM head of a GPT-style model, the
      pooler of a BERT encoder and the classifier of an MLP;
    - a linear layer whose weight is an embedding's (tied head).

    Parameters
    ----------
    model : an ``nn.Module``.

    Returns
    -------
    (names, excluded): the layer names as the analysis names them, and name -> reason for each
    analysed layer left out.

    Examples
    --------
    >>> import torch.nn as nn
    >>> names, excluded = prunable_layers(nn.Sequential(nn.Linear(64, 32), nn.ReLU(), nn.Linear(32, 10)))
    >>> names, list(excluded)
    (['0'], ['2'])
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    modules = named_modules(model)
    layers = [m for m in iter_layers(model) if isinstance(m, LayerMatrix)]
    excluded: dict[str, str] = {}
    embedding_regions = {_storage_region(module.weight) for module in modules.values()
                         if isinstance(module, nn.Embedding)}
    linear = []
    for layer in layers:
        if layer.kind == "embedding":
            excluded[layer.name] = "an embedding (a lookup table, not a transform of features)"
        elif layer.kind not in LINEAR_KINDS:
            excluded[layer.name] = (f"a {layer.kind} layer (name it in layers= to prune it with "
                                    "pruner='magnitude')")
        elif layer.source is not None and _storage_region(layer.source) in embedding_regions:
            excluded[layer.name] = "tied to an embedding (the same weight)"
        else:
            linear.append(layer)
    head, why = _output_head(model, linear, modules)
    if head is not None:
        excluded[head] = why
    names = [layer.name for layer in linear if layer.name != head]
    logger.debug("prunable layers: %d; left out: %s", len(names), excluded)
    return names, excluded
