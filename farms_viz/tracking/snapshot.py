"""A training-time copy of a model's analysable weights: one detached clone per layer.

``WeightSnapshot.take(model)`` walks the model as :func:`~farms_viz.matrices.iter_layers`
does and clones each analysable weight, layer by layer, on the caller's thread: the only
work a training loop pays for. The snapshot is a mapping ``"<layer>.weight"`` -> tensor
(state-dict-like) that also lists its own layers to the engine, with the module kind each
had (an HF ``Conv1D`` stays transposed, ``nn.MultiheadAttention``'s packed projection stays
split into q/k/v), so ``analyze(snapshot)`` gives the rows ``analyze(model)`` gave when the
snapshot was taken.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from ..engine.matrices import LayerMatrix, SkippedLayer, _layer, iter_layers


@dataclass(frozen=True)
class _Copy:
    """One analysable weight, copied: its layer name, module kind and the detached clone."""

    name: str
    kind: str
    weight: torch.Tensor


class WeightSnapshot(Mapping):
    """The analysable weights of a model at one moment, each a detached clone.

    Keys are ``"<layer>.weight"`` in model order; values are the clones, in the layout the
    model stores them. Layers the filters left out and weights that cannot be analysed are
    kept as :class:`~farms_viz.matrices.SkippedLayer` records (``skipped``), as
    :func:`~farms_viz.analyze` would list them.

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> model = nn.Sequential(nn.Linear(64, 32), nn.LayerNorm(32))
    >>> snapshot = WeightSnapshot.take(model)
    >>> list(snapshot), [s.name for s in snapshot.skipped]
    (['0.weight'], ['1'])
    >>> snapshot["0.weight"].data_ptr() != model[0].weight.data_ptr()
    True
    """

    def __init__(self, items: Sequence[_Copy | SkippedLayer]):
        self._items = list(items)
        self._copies = {f"{item.name}.weight": item for item in self._items if isinstance(item, _Copy)}

    @classmethod
    def take(cls, model: nn.Module | Mapping[str, torch.Tensor], *, include: Sequence[str] | None = None,
             exclude: Sequence[str] | None = None, device: str | torch.device | None = None
             ) -> WeightSnapshot:
        """Clone every analysable weight of ``model`` that the filters select, one layer at a time.

        Parameters
        ----------
        model : an ``nn.Module`` or a state dict, as :func:`~farms_viz.analyze` takes. Only read.
        include, exclude : glob patterns on layer names; other layers are not copied.
        device : where the clones go (default: each weight's own device).
        """
        items: list[_Copy | SkippedLayer] = []
        copies: dict[tuple, torch.Tensor] = {}  # tied weights (an LM head sharing the embedding) copied once
        with torch.no_grad():
            for item in iter_layers(model, include=include, exclude=exclude):
                if isinstance(item, SkippedLayer):
                    items.append(item)
                    continue
                assert item.source is not None  # iter_layers gives every layer its tensor
                weight = item.source.detach()
                key = (weight.data_ptr(), tuple(weight.shape), weight.stride(), weight.dtype, weight.device)
                if key not in copies:
                    # clone keeps the strides of a dense weight, so the engine reads the same layout
                    copies[key] = weight.to(device, copy=True) if device is not None else weight.clone()
                items.append(_Copy(item.name, item.kind, copies[key]))
        return cls(items)

    def farms_viz_layers(self, conv_norm: float) -> Iterator[LayerMatrix | SkippedLayer]:
        """The snapshot's layers in model order, for :func:`~farms_viz.matrices.iter_layers`."""
        for item in self._items:
            yield item if isinstance(item, SkippedLayer) else _layer(item.name, item.kind, item.weight, conv_norm)

    def share_unchanged(self, previous: WeightSnapshot | None) -> int:
        """Use ``previous``'s clone wherever a layer's values did not change; returns how many.

        The engine's cache then recognises those layers (same tensor, same fingerprint) and
        does not recompute their spectra: frozen layers cost one comparison per step.
        """
        if previous is None:
            return 0
        shared = 0
        for i, item in enumerate(self._items):
            if not isinstance(item, _Copy):
                continue
            old = previous._copies.get(f"{item.name}.weight")
            if (old is not None and old.kind == item.kind and old.weight.shape == item.weight.shape
                    and old.weight.dtype == item.weight.dtype and old.weight.device == item.weight.device
                    and old.weight.stride() == item.weight.stride() and torch.equal(old.weight, item.weight)):
                self._items[i] = old
                self._copies[f"{item.name}.weight"] = old
                shared += 1
        return shared

    @property
    def layers(self) -> list[str]:
        """Names of the copied layers, in model order."""
        return [item.name for item in self._copies.values()]

    @property
    def skipped(self) -> list[SkippedLayer]:
        """Weights that were not copied, with the reason (filters, 1-D weights, too small, ...)."""
        return [item for item in self._items if isinstance(item, SkippedLayer)]

    @property
    def nbytes(self) -> int:
        """Bytes held by the clones."""
        unique = {id(item.weight): item.weight for item in self._copies.values()}
        return sum(w.numel() * w.element_size() for w in unique.values())

    def __getitem__(self, key: str) -> torch.Tensor:
        try:
            return self._copies[key].weight
        except KeyError:
            raise KeyError(f"no weight {key!r} in this snapshot; it holds {len(self)} layers") from None

    def __iter__(self) -> Iterator[str]:
        return iter(self._copies)

    def __len__(self) -> int:
        return len(self._copies)

    def __repr__(self) -> str:
        return f"WeightSnapshot({len(self)} layers, {self.nbytes / 2**20:.1f} MiB)"
