"""From a model to the weight matrices HT-SR analyses (docs/spec.md, section 1).

Walks an ``nn.Module`` (or a name -> tensor mapping) in model order and yields one
:class:`LayerMatrix` per analysable weight, plus a :class:`SkippedLayer` for every
weight-holding module that is not analysed, with the reason. Weights are read lazily,
one layer at a time, detached and on their own device: the model is never copied whole.
"""

from __future__ import annotations

import fnmatch
import functools
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass

import torch
from torch import nn

from .names import ATTENTION_PARTS, named_modules

MIN_EIGENVALUES = 8


@dataclass(frozen=True)
class LayerMatrix:
    """One analysable weight: ``num_slices`` matrices of shape (rows, cols).

    ``load()`` returns a detached tensor of shape (num_slices, rows, cols) on the
    weight's device; ``eigenvalue_scale`` multiplies every eigenvalue (conv_norm for
    convolutions, 1 otherwise); ``source`` is the tensor it views, for cache keys.
    """

    name: str
    kind: str
    rows: int
    cols: int
    num_slices: int
    eigenvalue_scale: float
    load: Callable[[], torch.Tensor]
    source: torch.Tensor | None = None


@dataclass(frozen=True)
class SkippedLayer:
    """A weight-holding module that was not analysed, and why."""

    name: str
    kind: str
    shape: tuple[int, ...]
    reason: str


def _matches(name: str, patterns: Sequence[str] | None) -> bool:
    return any(fnmatch.fnmatchcase(name, p) for p in patterns or ())


def _tensor_problem(t: torch.Tensor, stored: bool = False) -> str | None:
    """Why ``t`` cannot be analysed, or None. ``stored``: ``t`` describes a tensor on disk (meta)."""
    if t.is_meta and not stored:
        return "meta tensor (no data): load the weights first"
    if t.is_quantized:
        return "quantized tensor: dequantize the layer to analyse it"
    if t.layout != torch.strided:
        return f"sparse tensor ({t.layout}): convert it with .to_dense() to analyse it"
    if not (t.is_floating_point() or t.is_complex()):
        return f"non-float dtype {t.dtype} (packed or quantized weights)"
    if t.is_complex():
        return "complex weights are not supported"
    return None


def _as_slices(t: torch.Tensor, kind: str) -> torch.Tensor:
    w = t.detach()
    if kind == "conv1d_hf":  # HF Conv1D stores (in, out): transpose to match Linear's (out, in)
        return w.t().unsqueeze(0)
    if w.ndim == 2:
        return w.unsqueeze(0)
    # ConvNd (out, in, *kernel) -> one (out x in) slice per kernel position
    return w.reshape(w.shape[0], w.shape[1], -1).permute(2, 0, 1)


def _layer(name: str, kind: str, tensor: torch.Tensor, conv_norm: float,
           loader: Callable[[], torch.Tensor] | None = None) -> LayerMatrix | SkippedLayer:
    shape = tuple(tensor.shape)
    problem = _tensor_problem(tensor, stored=loader is not None)
    if problem:
        return SkippedLayer(name, kind, shape, problem)
    if kind == "conv1d_hf":
        rows, cols, slices = shape[1], shape[0], 1
    else:
        rows, cols = shape[0], shape[1]
        slices = 1
        for k in shape[2:]:
            slices *= k
    if min(rows, cols) < MIN_EIGENVALUES:
        return SkippedLayer(name, kind, shape,
                            f"too small: {min(rows, cols)} eigenvalues, fewer than {MIN_EIGENVALUES}")
    scale = conv_norm if kind.startswith("conv") and kind != "conv1d_hf" else 1.0
    load = loader or (lambda: _as_slices(tensor, kind))
    return LayerMatrix(name, kind, rows, cols, slices, scale, load, tensor)


_CONV_KINDS = {nn.Conv1d: "conv1d", nn.Conv2d: "conv2d", nn.Conv3d: "conv3d"}


def _module_kind(module: nn.Module) -> str | None:
    if isinstance(module, nn.Linear):
        return "linear"
    if isinstance(module, nn.Embedding):
        return "embedding"
    for cls, kind in _CONV_KINDS.items():
        if isinstance(module, cls):
            return kind
    # HF's Conv1D (GPT-2 style): a Linear stored transposed, recognised by name and attribute.
    if type(module).__name__ == "Conv1D" and hasattr(module, "nf") and hasattr(module, "weight"):
        return "conv1d_hf"
    return None


def _module_layers(model: nn.Module, conv_norm: float) -> Iterator[LayerMatrix | SkippedLayer]:
    for name, module in named_modules(model).items():
        if isinstance(module, nn.MultiheadAttention):
            yield from _attention_layers(name, module, conv_norm)
            continue
        if hasattr(module, "_packed_params"):  # torch.ao quantized Linear and friends
            yield SkippedLayer(name, type(module).__name__, (), "quantized module: dequantize it to analyse it")
            continue
        weight = module._parameters.get("weight")
        kind = _module_kind(module)
        if kind is not None:
            if weight is None:
                continue
            yield _layer(name, kind, weight, conv_norm)
        elif isinstance(weight, torch.Tensor):
            if weight.ndim >= 2:
                yield SkippedLayer(name, type(module).__name__, tuple(weight.shape),
                                   f"unsupported module type {type(module).__name__}")
            else:
                yield SkippedLayer(name, type(module).__name__, tuple(weight.shape),
                                   "1-D weight (normalisation or scale), not a matrix")


def _attention_layers(name: str, module: nn.MultiheadAttention, conv_norm: float
                      ) -> Iterator[LayerMatrix | SkippedLayer]:
    if module.in_proj_weight is not None:
        packed = module.in_proj_weight
        e = module.embed_dim
        for i, part in enumerate(ATTENTION_PARTS):
            piece = packed[i * e:(i + 1) * e]
            yield _layer(f"{name}.{part}", "attention_in_proj", piece, conv_norm)
    else:
        for part in ATTENTION_PARTS:
            yield _layer(f"{name}.{part}", "attention_in_proj",
                         getattr(module, f"{part}_proj_weight"), conv_norm)
    # out_proj is an nn.Linear child: named_modules visits it on its own.


def _read_slices(state: Mapping[str, torch.Tensor], key: str, kind: str) -> torch.Tensor:
    return _as_slices(state[key], kind)


def _mapping_layers(state: Mapping[str, torch.Tensor], conv_norm: float
                    ) -> Iterator[LayerMatrix | SkippedLayer]:
    # A lazily opened checkpoint describes a tensor (shape, dtype) without reading it: each
    # weight is then read only when its layer is analysed.
    describe = getattr(state, "describe", None)
    for key in state:
        if not isinstance(key, str):
            raise TypeError(f"state dict keys must be layer names (str); got {key!r} ({type(key).__name__}). "
                            "Pass {str(k): v for k, v in state.items()} or the model itself.")
        if not (key.endswith("weight") or "." not in key):
            continue
        name = key[: -len(".weight")] if key.endswith(".weight") else key
        tensor = describe(key) if describe is not None else state[key]
        if not isinstance(tensor, torch.Tensor):
            continue
        if tensor.ndim < 2:
            yield SkippedLayer(name, "tensor", tuple(tensor.shape), "1-D weight (normalisation or scale), not a matrix")
            continue
        kind = "embedding" if "embed" in name.lower() and tensor.ndim == 2 else (
            "linear" if tensor.ndim == 2 else f"conv{tensor.ndim - 2}d")
        loader = functools.partial(_read_slices, state, key, kind) if describe is not None else None
        yield _layer(name, kind, tensor, conv_norm, loader)


def iter_layers(model: nn.Module | Mapping[str, torch.Tensor], *, conv_norm: float = 0.5,
                include: Sequence[str] | None = None, exclude: Sequence[str] | None = None
                ) -> Iterator[LayerMatrix | SkippedLayer]:
    """Yield every weight of ``model`` in model order, analysable or skipped.

    Parameters
    ----------
    model : an ``nn.Module`` or a mapping of name -> tensor (a state dict; only keys
        ending in ``weight`` are considered; 2-D -> Linear/Embedding, 3-D+ -> ConvNd), or
        an object with a ``farms_viz_layers(conv_norm)`` method that lists its own layers
        (a training snapshot, which keeps the module types a state dict loses).
    conv_norm : eigenvalue factor for convolution slices.
    include, exclude : glob patterns on layer names (``fnmatch``), e.g. ``"*.attention.*"``.
    """
    listed = None if isinstance(model, nn.Module) else getattr(model, "farms_viz_layers", None)
    if callable(listed):
        source = listed(conv_norm)
    elif isinstance(model, nn.Module):
        source = _module_layers(model, conv_norm)
    elif isinstance(model, Mapping):
        source = _mapping_layers(model, conv_norm)
    else:
        raise TypeError(
            f"model must be a torch.nn.Module or a mapping of name -> tensor (a state dict); "
            f"got {type(model).__name__}")
    for item in source:
        if include and not _matches(item.name, include):
            yield _excluded(item, f"excluded by filter: matches no include pattern {list(include)}")
        elif exclude and _matches(item.name, exclude):
            yield _excluded(item, f"excluded by filter: matches an exclude pattern {list(exclude)}")
        else:
            yield item


def _excluded(item: LayerMatrix | SkippedLayer, reason: str) -> SkippedLayer:
    if isinstance(item, SkippedLayer):
        return SkippedLayer(item.name, item.kind, item.shape, f"{reason}; also {item.reason}")
    shape = tuple(item.source.shape) if item.source is not None else (item.rows, item.cols)
    return SkippedLayer(item.name, item.kind, shape, reason)
