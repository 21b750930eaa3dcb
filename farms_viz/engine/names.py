"""Layer names: how the analysis names a model's weights, and how a name leads back to them.

One place for the naming rules every stage shares (analysis, pruning, optimizer groups):

- a layer is named by its module's qualified name (``encoder.layer.0.attention.self.query``);
- a weight held by the model object itself (a bare ``nn.Linear``) is named ``ROOT_NAME``;
- ``nn.MultiheadAttention`` packs q, k and v into one ``in_proj_weight``: they are analysed
  as three layers ``<name>.q``, ``<name>.k`` and ``<name>.v`` (``ATTENTION_PARTS``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import torch
from torch import nn

# The layer name of a weight held by the model object itself (e.g. a bare nn.Linear).
ROOT_NAME = "(model)"
# The three layers of a packed nn.MultiheadAttention projection, in storage order.
ATTENTION_PARTS = ("q", "k", "v")


def named_modules(model: nn.Module) -> dict[str, nn.Module]:
    """Modules by the analysis's names: qualified names, the root module as ``ROOT_NAME``.

    Examples
    --------
    >>> list(named_modules(nn.Sequential(nn.Linear(2, 2))))
    ['(model)', '0']
    """
    return {name or ROOT_NAME: module for name, module in model.named_modules()}


@dataclass(frozen=True)
class LayerRef:
    """Where an analysed layer lives in a model.

    Attributes
    ----------
    owner : the qualified name of the module that holds the weight.
    module : that module.
    part : "q", "k" or "v" for a packed attention projection, else None.
    """

    owner: str
    module: nn.Module
    part: str | None = None

    def weight(self) -> torch.Tensor:
        """The weight this layer refers to, as a view into the module's parameter data.

        Stored orientation: (out, in) for Linear, (in, out) for Hugging Face's Conv1D.
        """
        if self.part is not None:
            attention = self.module
            assert isinstance(attention, nn.MultiheadAttention)
            if attention.in_proj_weight is not None:
                e = attention.embed_dim
                i = ATTENTION_PARTS.index(self.part)
                return attention.in_proj_weight.data[i * e:(i + 1) * e]
            return getattr(attention, f"{self.part}_proj_weight").data
        weight = getattr(self.module, "weight", None)
        if isinstance(weight, torch.Tensor) and weight.ndim >= 2:
            return weight.data
        raise ValueError(f"module {self.owner!r} ({type(self.module).__name__}) has no weight matrix to prune "
                         "or analyse")


def resolve_layer(modules: Mapping[str, nn.Module], name: str) -> LayerRef:
    """The :class:`LayerRef` of analysed layer ``name`` among ``named_modules(model)``.

    Raises
    ------
    ValueError
        The name is not a layer of this model; the message lists similar names.

    Examples
    --------
    >>> modules = named_modules(nn.Sequential(nn.MultiheadAttention(16, 2)))
    >>> ref = resolve_layer(modules, "0.k")
    >>> ref.owner, ref.part, tuple(ref.weight().shape)
    ('0', 'k', (16, 16))
    """
    module = modules.get(name)
    if module is not None:
        return LayerRef(name, module)
    parent, _, part = name.rpartition(".")
    attention = modules.get(parent)
    if part in ATTENTION_PARTS and isinstance(attention, nn.MultiheadAttention):
        return LayerRef(parent, attention, part)
    tail = name.rsplit(".", 1)[-1]
    close = [m for m in modules if m != ROOT_NAME and (m.endswith(tail) or name in m)][:3]
    raise ValueError(f"no layer {name!r} in the model{f' (similar: {close})' if close else ''}: use the "
                     "layer names of farms_viz.analyze(model) (module names, '<attention>.q' for packed q/k/v)")
