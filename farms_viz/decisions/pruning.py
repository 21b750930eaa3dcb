"""Unstructured magnitude pruning at per-layer sparsities (docs/spec.md section 7, last line).

At sparsity s a layer's weight loses its floor(s * numel) smallest-magnitude entries (set to
zero; ties broken by position, so exactly that many). Layers are named as the analysis names
them: module qualified names, and ``<attention>.q`` / ``.k`` / ``.v`` for the rows of an
``nn.MultiheadAttention``'s packed ``in_proj_weight`` (or its separate q/k/v weights).
"""

from __future__ import annotations

import copy
from collections.abc import Mapping

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..engine.names import named_modules, resolve_layer

OVERALL = "(overall)"
REPORT_COLUMNS = ["layer", "numel", "pruned", "zeros", "target", "reached"]


def _check_sparsity(name: str, s) -> float:
    if isinstance(s, bool) or (not isinstance(s, (int, float)) and not hasattr(s, "__float__")):
        raise ValueError(f"sparsity of {name!r} must be a number in [0, 1]; got {s!r}")
    s = float(s)
    if not 0.0 <= s <= 1.0:
        raise ValueError(f"sparsity of {name!r} is {s}, outside [0, 1]: allocate with "
                         "farms_viz.allocate.sparsity(..., mode='redistribute') to clip it")
    return s


@torch.no_grad()
def _prune_tensor(weight: torch.Tensor, sparsity: float) -> int:
    """Zero the floor(sparsity * numel) smallest |w| of ``weight`` in place; return that count."""
    count = int(sparsity * weight.numel())  # floor for non-negative values
    if count == 0:
        return 0
    magnitude = weight.detach().abs().reshape(-1).to(torch.float32)
    # O(n) selection instead of a full sort: everything below the count-th smallest |w|, then
    # as many entries equal to it as still needed, first by position (deterministic ties).
    # numpy's partition of one float32 copy finds it (torch.kthvalue would copy the values and
    # allocate an int64 index per entry: three times the temporary memory).
    smallest = np.partition(magnitude.numpy(force=True), count - 1)[count - 1]
    threshold = torch.tensor(smallest, dtype=torch.float32, device=magnitude.device)
    mask = magnitude < threshold
    needed = count - int(torch.count_nonzero(mask))  # a bool .sum() would make an int64 copy of the mask
    if needed > 0:
        ties = torch.nonzero(magnitude == threshold).squeeze(1)[:needed]
        mask[ties] = True
    weight.masked_fill_(mask.view(weight.shape), 0)
    return count


def _zeros(weight: torch.Tensor) -> int:
    """The number of zero entries, counted without a temporary the weight's size (``(w == 0).sum()``
    makes a bool mask and an int64 copy of it)."""
    return weight.numel() - int(torch.count_nonzero(weight))


def magnitude(model: nn.Module, sparsities: Mapping[str, float], inplace: bool = False
              ) -> tuple[nn.Module, pd.DataFrame]:
    """Magnitude-prune each named layer of ``model`` to its sparsity.

    Parameters
    ----------
    model : the model. Left bit-for-bit unchanged unless ``inplace=True``.
    sparsities : layer name -> sparsity in [0, 1], e.g. from
        :func:`farms_viz.allocate.sparsity_from_analysis`. Layers not named are not touched.
    inplace : prune ``model`` itself instead of a deep copy.

    Returns
    -------
    (pruned model, report). The report has one row per layer, then one ``"(overall)"`` row:
    layer, numel, pruned (entries this call zeroed: floor(s * numel)), zeros (zero entries
    afterwards, including any that were zero before), target (the requested sparsity;
    parameter-weighted overall), reached (zeros / numel).

    Examples
    --------
    >>> import torch.nn as nn
    >>> model = nn.Sequential(nn.Linear(10, 10), nn.ReLU(), nn.Linear(10, 4))
    >>> pruned, report = magnitude(model, {"0": 0.5, "2": 0.25})
    >>> report[["layer", "pruned", "target"]].values.tolist()
    [['0', 50, 0.5], ['2', 10, 0.25], ['(overall)', 60, 0.42857142857142855]]
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(sparsities, Mapping):
        raise TypeError("sparsities must be a mapping of layer name -> sparsity, e.g. "
                        "farms_viz.allocate.sparsity(analysis.alphas('farms'), 0.7, 0.2)")
    targets = {name: _check_sparsity(name, s) for name, s in sparsities.items()}
    # Resolve every name on the original first, so a bad name fails before any copy or change.
    originals = named_modules(model)
    regions: dict[tuple, str] = {}
    for name in targets:
        view = resolve_layer(originals, name).weight()
        region = (view.untyped_storage().data_ptr(), view.storage_offset(), view.numel())
        if region in regions:
            raise ValueError(f"layers {regions[region]!r} and {name!r} are the same weight (tied): "
                             "give it one sparsity, under one name")
        regions[region] = name

    pruned = model if inplace else copy.deepcopy(model)
    modules = named_modules(pruned)
    rows = []
    for name, s in targets.items():
        weight = resolve_layer(modules, name).weight()
        count = _prune_tensor(weight, s)
        zeros = _zeros(weight)
        rows.append({"layer": name, "numel": weight.numel(), "pruned": count, "zeros": zeros, "target": s,
                     "reached": zeros / weight.numel() if weight.numel() else 0.0})
    return pruned, _report(rows)


def _report(rows: list[dict]) -> pd.DataFrame:
    """The per-layer rows (REPORT_COLUMNS) and the parameter-weighted ``"(overall)"`` row."""
    report = pd.DataFrame(rows, columns=REPORT_COLUMNS)
    total = int(report["numel"].sum())
    overall = {"layer": OVERALL, "numel": total, "pruned": int(report["pruned"].sum()),
               "zeros": int(report["zeros"].sum()),
               "target": float((report["target"] * report["numel"]).sum() / total) if total else 0.0,
               "reached": float(report["zeros"].sum() / total) if total else 0.0}
    return pd.concat([report, pd.DataFrame([overall], columns=REPORT_COLUMNS)], ignore_index=True)


def uniform(layers, target: float) -> dict[str, float]:
    """The same sparsity for every layer: the baseline allocation.

    Examples
    --------
    >>> uniform(["fc1", "fc2"], 0.7)
    {'fc1': 0.7, 'fc2': 0.7}
    """
    s = _check_sparsity("every layer", target)
    return dict.fromkeys(layers, s)
