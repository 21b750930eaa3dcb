"""Wanda and SparseGPT: unstructured pruning with calibration activations (SPEC section 10).

Both prune one layer at a time in the order the forward pass reaches the layers, and later layers
see the pruned outputs of earlier ones (see :mod:`.calibration` for why that costs nothing extra
here). Same call shape and report as :func:`farms_viz.prune.magnitude`; :func:`masks_of` and
:func:`to_torch` hand the result to ``torch.nn.utils.prune``.
"""

from __future__ import annotations

import copy
import logging
import math
from collections.abc import Callable, Iterable, Mapping

import pandas as pd
import torch
import torch.nn.utils.prune as torch_prune
from torch import nn

from ..engine import cpu_threads
from ..engine.memory import release_free_memory
from ..engine.names import named_modules, resolve_layer
from .calibration import (
    Calibration,
    CalibrationTarget,
    InputStatistics,
    _is_hf_conv1d,
    calibration_targets,
    layer_statistics,
    reiterable,
)
from .pruning import _check_sparsity, _report, _zeros

logger = logging.getLogger(__name__)


def _checked_sparsities(model: nn.Module, sparsities: Mapping[str, float]) -> dict[str, float]:
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(sparsities, Mapping):
        raise TypeError("sparsities must be a mapping of layer name -> sparsity, e.g. "
                        "farms_viz.allocate.sparsity(analysis.alphas('farms'), 0.7, 0.2)")
    return {name: _check_sparsity(name, s) for name, s in sparsities.items()}


def _prune_with_calibration(model: nn.Module, sparsities: Mapping[str, float], calibration: Calibration,
                            inplace: bool, hessian: bool,
                            prune_group: Callable[[list[CalibrationTarget], InputStatistics, dict[str, float]],
                                                  dict[str, int]]) -> tuple[nn.Module, pd.DataFrame]:
    targets = _checked_sparsities(model, sparsities)
    calibration_targets(model, targets)  # every name resolves and is supported before any copy
    calibration = reiterable(calibration)
    pruned = model if inplace else copy.deepcopy(model)
    layers = calibration_targets(pruned, targets)
    # Layers at sparsity 0 are left exactly as they are, without a calibration pass.
    counts: dict[str, int] = {name: 0 for name, s in targets.items() if s == 0}
    active = [t for t in layers if t.name not in counts]
    for group, stats in layer_statistics(pruned, active, calibration, hessian=hessian):
        counts.update(_on_sequential_blas(group[0].weight.device, prune_group, group, stats, targets))
        del stats
        release_free_memory()  # the next layer's statistics reuse the freed pages, not new ones
    rows = []
    for target in layers:
        weight = target.weight
        zeros = _zeros(weight)
        rows.append({"layer": target.name, "numel": weight.numel(), "pruned": counts[target.name], "zeros": zeros,
                     "target": targets[target.name], "reached": zeros / weight.numel() if weight.numel() else 0.0})
    return pruned, _report(rows)


def _on_sequential_blas(device: torch.device, fn: Callable, *args):
    """``fn(*args)``, on CPU in a thread of farms_viz's pool with one BLAS/OpenMP thread.

    SparseGPT's column loop is thousands of small operations; with OpenMP/MKL threads they spin at
    barriers whenever anything else uses the cores (measured here on MiniLM's layers, 2 shared
    cores: 10-40x slower than one thread).
    """
    if device.type != "cpu" or getattr(cpu_threads._state, "sequential", False):
        return fn(*args)
    return cpu_threads.compute_pool().submit(fn, *args).result()


def _smallest_per_row(values: torch.Tensor, count: int) -> torch.Tensor:
    """Boolean mask of the ``count`` smallest entries of each row (ties: the first by position), in O(numel)."""
    threshold = torch.kthvalue(values, count, dim=1, keepdim=True).values
    below = values < threshold
    ties = values == threshold
    return below | (ties & (ties.cumsum(dim=1) <= count - below.sum(dim=1, keepdim=True)))


# Wanda scores and selects this many weights at a time (rows of a layer, in blocks): its float64
# scores and the selection's copies and indices stay a few MiB whatever the layer's size.
WANDA_BLOCK_ENTRIES = 1 << 17


@torch.no_grad()
def _wanda_layer(weight: torch.Tensor, feature_norms: torch.Tensor, sparsity: float) -> int:
    """Zero the floor(s * in) lowest |W_ij| * ||X_j|| of each row of ``weight`` in place; ties by position."""
    rows, cols = weight.shape
    count = int(sparsity * cols)
    if count == 0:
        return 0
    step = max(1, WANDA_BLOCK_ENTRIES // cols)
    for start in range(0, rows, step):  # each row is pruned on its own: blocks of rows give the same masks
        block = weight[start:start + step]
        score = block.to(torch.float64, copy=True).abs_().mul_(feature_norms)
        block.masked_fill_(_smallest_per_row(score, count), 0.0)
    return count * rows


def wanda(model: nn.Module, sparsities: Mapping[str, float], calibration: Calibration, *,
          inplace: bool = False) -> tuple[nn.Module, pd.DataFrame]:
    """Prune each named layer with Wanda (Sun et al., 2023): weights times input-activation norms.

    The score of W_ij is |W_ij| * ||X_j||_2, with X_j the j-th input feature over all calibration
    tokens; within each output row the floor(s * in_features) lowest scores are zeroed (ties:
    the first by position). No weight is updated. Layers are pruned one at a time in the order the
    forward pass reaches them, and later layers see the pruned outputs of earlier ones, as in the
    paper: each layer's norms come from a calibration pass through the partly pruned model (keeping
    one layer's statistics at a time needs that pass per layer anyway, so this costs nothing over
    dense inputs; layers that read the same tensor, like query/key/value, share one pass).

    Parameters
    ----------
    model : the model. Left bit-for-bit unchanged (weights, gradients, training flags) unless
        ``inplace=True``.
    sparsities : layer name -> sparsity in [0, 1], named as the analysis names them:
        ``nn.Linear`` and Hugging Face ``Conv1D`` modules, ``<attention>.q`` / ``.k`` / ``.v``
        (input: the attention's query / key / value) and ``<attention>.out_proj`` (input: the
        attention context) of an ``nn.MultiheadAttention``. Embeddings and convolutions are
        refused: prune them with :func:`farms_viz.prune.magnitude`.
    calibration : an iterable of batches, each a tensor (``model(x)``), a tuple of positional
        arguments or a dict of keyword arguments (``model(**batch)``, e.g. a tokenizer's output);
        or a callable ``f(model)`` that runs the forward passes. It is run once, then once per
        layer (see :func:`farms_viz.decisions.calibration.layer_statistics`).
    inplace : prune ``model`` itself instead of a deep copy.

    Returns
    -------
    (pruned model, report), the report as :func:`farms_viz.prune.magnitude`'s: one row per layer
    then ``"(overall)"``; ``pruned`` is rows * floor(s * in_features), within one column of
    floor(s * numel). :func:`masks_of` gives the masks.

    Raises
    ------
    ValueError
        For an unknown or unsupported layer, a sparsity outside [0, 1], a layer the calibration
        never reaches or gives no tokens.

    Examples
    --------
    >>> import torch, torch.nn as nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    >>> calibration = [torch.randn(32, 8) for _ in range(2)]
    >>> pruned, report = wanda(model, {"0": 0.5, "2": 0.25}, calibration)
    >>> report[["layer", "pruned", "target"]].values.tolist()
    [['0', 64, 0.5], ['2', 16, 0.25], ['(overall)', 80, 0.4166666666666667]]
    >>> (pruned[0].weight == 0).sum(dim=1).tolist() == [4] * 16
    True
    """
    def prune_group(group, stats, targets):
        norms = stats.squared_norms.sqrt()
        return {t.name: _wanda_layer(t.weight, norms, targets[t.name]) for t in group}

    return _prune_with_calibration(model, sparsities, calibration, inplace, False, prune_group)


def _inverse_hessian_factor(stats: InputStatistics, damp: float, name: str) -> tuple[torch.Tensor, torch.Tensor]:
    """U, the upper Cholesky factor of (H + damp * mean(diag H) * I)^-1, and the dead inputs.

    Dead inputs (diag H = 0) get H_jj = 1 first. Takes the Hessian out of ``stats`` (it is
    overwritten and freed as soon as it is factorised: at most three in x in matrices at once).
    With J the reversal of the indices and J H J = L L^T, H = R R^T with R = J L J upper
    triangular, so U = R^-1 = J L^-1 J: one Cholesky factorisation and one triangular solve,
    without forming H^-1.
    """
    hessian, stats.hessian = stats.hessian, None
    assert hessian is not None
    diagonal = hessian.diagonal()
    dead = diagonal == 0
    diagonal[dead] = 1.0
    diagonal += damp * diagonal.mean()
    flipped = hessian.flip(0, 1)
    del hessian, diagonal
    lower, info = torch.linalg.cholesky_ex(flipped)
    del flipped
    if int(info) != 0:
        raise ValueError(f"layer {name!r}: the damped Hessian X^T X of its calibration inputs is not positive "
                         f"definite: increase damp (now {damp}), e.g. to 0.1")
    identity = torch.eye(lower.shape[0], dtype=lower.dtype, device=lower.device)
    inverse = torch.linalg.solve_triangular(lower, identity, upper=False)
    del lower, identity
    return inverse.flip(0, 1), dead


@torch.no_grad()
def _sparsegpt_layer(weight: torch.Tensor, upper: torch.Tensor, dead: torch.Tensor, sparsity: float,
                     block_size: int) -> int:
    """Prune floor(s * numel) entries of ``weight`` (out x in) in place, reconstructing the rest."""
    rows, cols = weight.shape
    w = torch.empty((rows, cols), dtype=torch.float64, device=weight.device)
    w.copy_(weight)
    w[:, dead] = 0.0
    for start in range(0, cols, block_size):
        end = min(start + block_size, cols)
        # Cumulative floors: the blocks' quotas add up to exactly floor(s * numel).
        quota = int(sparsity * (rows * end)) - int(sparsity * (rows * start))
        if quota == 0:
            continue
        block = w[:, start:end]
        u = upper[start:end, start:end]
        d = u.diagonal()
        mask = _smallest_per_row((block.square() / d.square()).reshape(1, -1), quota).view(block.shape)
        error_scale = mask / d  # the error of a masked entry is (w - 0) / U_jj, of a kept one 0
        errors = torch.empty_like(block)
        for j in range(end - start):
            column = block[:, j]
            torch.mul(column, error_scale[:, j], out=errors[:, j])
            column.masked_fill_(mask[:, j], 0.0)
            block[:, j + 1:].addr_(errors[:, j], u[j, j + 1:], alpha=-1.0)
        w[:, end:].addmm_(errors, upper[start:end, end:], alpha=-1.0)
    weight.copy_(w)
    return int(sparsity * weight.numel())


def sparsegpt(model: nn.Module, sparsities: Mapping[str, float], calibration: Calibration, *,
              inplace: bool = False, block_size: int = 128, damp: float = 0.01) -> tuple[nn.Module, pd.DataFrame]:
    """Prune each named layer with SparseGPT (Frantar & Alistarh, 2023): mask and reconstruct.

    From the calibration inputs X of a layer, H = X^T X + damp * mean(diag H) * I (inputs that are
    always zero get H_jj = 1 and their weight column zeroed) and U, the upper Cholesky factor of
    H^-1. The columns go in blocks of ``block_size``: in each block the entries with the smallest
    w^2 / U_jj^2 over the whole block are masked (the block's share of floor(s * numel)); then,
    column by column, masked entries are zeroed and their error (w - w_pruned) / U_jj is spread
    over the block's later columns through row j of U, and after the block over all later
    columns. All in float64 on the layer's device; the result is cast back to the weight's dtype.
    Layers go one at a time in the order the forward pass reaches them, and later layers see the
    pruned (and reconstructed) outputs of earlier ones, as in the paper; layers that read the same
    tensor (query/key/value) share one Hessian and one factorisation.

    Parameters
    ----------
    model, sparsities, calibration, inplace : as for :func:`wanda`.
    block_size : columns per block (the paper's B = 128).
    damp : dampening, a fraction of the mean diagonal of H (the paper's 0.01).

    Returns
    -------
    (pruned model, report) as for :func:`wanda`; ``pruned`` is exactly floor(s * numel).

    Raises
    ------
    ValueError
        As :func:`wanda`, and when the damped Hessian is not positive definite (increase ``damp``;
        with ``damp > 0`` it always is; with ``inplace=True`` the layers before it stay pruned).

    Examples
    --------
    >>> import torch, torch.nn as nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(8, 16), nn.ReLU(), nn.Linear(16, 4))
    >>> calibration = [torch.randn(32, 8) for _ in range(2)]
    >>> pruned, report = sparsegpt(model, {"0": 0.5, "2": 0.25}, calibration, block_size=4)
    >>> report[["layer", "pruned", "zeros"]].values.tolist()
    [['0', 64, 64], ['2', 16, 16], ['(overall)', 80, 80]]
    """
    if isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 1:
        raise ValueError(f"block_size must be a positive integer (the paper uses 128); got {block_size!r}")
    if isinstance(damp, bool) or not isinstance(damp, (int, float)) or not (math.isfinite(damp) and damp >= 0):
        raise ValueError(f"damp must be a non-negative number (the paper uses 0.01); got {damp!r}")

    def prune_group(group, stats, targets):
        upper, dead = _inverse_hessian_factor(stats, float(damp), group[0].name)
        return {t.name: _sparsegpt_layer(t.weight, upper, dead, targets[t.name], block_size) for t in group}

    return _prune_with_calibration(model, sparsities, calibration, inplace, True, prune_group)


def _mask_slot(modules: Mapping[str, nn.Module], name: str
               ) -> tuple[nn.Module, str, Callable[[torch.Tensor], torch.Tensor]]:
    """(module, parameter name, parameter-shaped tensor -> the layer's (out x in) part) for ``name``."""
    module = modules.get(name)
    if module is not None:
        weight = module._parameters.get("weight")
        if isinstance(weight, torch.Tensor) and weight.ndim >= 2:
            if _is_hf_conv1d(module):
                return module, "weight", lambda t: t.T
            return module, "weight", lambda t: t
        resolve_layer(modules, name).weight()  # raises "no weight matrix" (or an attention's message)
    parent, _, part = name.rpartition(".")
    attention = modules.get(parent)
    if part in ("q", "k", "v") and isinstance(attention, nn.MultiheadAttention):
        if attention.in_proj_weight is not None:
            e, i = attention.embed_dim, "qkv".index(part)
            return attention, "in_proj_weight", lambda t: t[i * e:(i + 1) * e]
        return attention, f"{part}_proj_weight", lambda t: t
    resolve_layer(modules, name).weight()  # raises "no layer ..." with similar names
    raise ValueError(f"no layer {name!r} in the model")  # pragma: no cover


def masks_of(model: nn.Module, names: Iterable[str]) -> dict[str, torch.Tensor]:
    """The pruning masks of a pruned model: layer name -> boolean tensor, True where a weight is kept.

    A mask has the layer's shape as the analysis shows it (out x in; for Hugging Face ``Conv1D``
    the transpose of the stored weight; for ``<attention>.q`` its rows of ``in_proj_weight``).
    Every zero weight counts as pruned.

    Examples
    --------
    >>> import torch.nn as nn
    >>> model = nn.Sequential(nn.Linear(4, 2))
    >>> _ = nn.init.ones_(model[0].weight)
    >>> _ = model[0].weight.data[0, :2].zero_()
    >>> masks_of(model, ["0"])["0"].int().tolist()
    [[0, 0, 1, 1], [1, 1, 1, 1]]
    """
    modules = named_modules(model)
    masks = {}
    for name in names:
        module, parameter, part = _mask_slot(modules, name)
        masks[name] = part(getattr(module, parameter).detach()) != 0
    return masks


def to_torch(model: nn.Module, masks: Mapping[str, torch.Tensor], *, inplace: bool = False) -> nn.Module:
    """Apply masks through ``torch.nn.utils.prune.custom_from_mask``, so standard tooling sees them.

    Each masked parameter becomes ``<parameter>_orig`` times the buffer ``<parameter>_mask``
    (``torch.nn.utils.prune.is_pruned`` is then True; ``torch.nn.utils.prune.remove`` makes it
    permanent). The q/k/v masks of an ``nn.MultiheadAttention`` with a packed ``in_proj_weight``
    are assembled into one mask (rows not named are kept). An attention's ``out_proj`` is masked
    too, but ``nn.MultiheadAttention`` never calls that module, so torch recomputes its masked weight
    only when asked: after training steps, call ``torch.nn.utils.prune.remove`` and re-apply.

    Parameters
    ----------
    model : the model whose weights the masks refer to, e.g. the pruned model from :func:`wanda`.
        Left unchanged unless ``inplace=True``.
    masks : layer name -> mask (bool, or 0/1), shaped as :func:`masks_of` gives them.
    inplace : register the masks on ``model`` itself instead of a deep copy.

    Returns
    -------
    The model with the masks registered.

    Examples
    --------
    >>> import torch, torch.nn as nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(8, 4))
    >>> pruned, _ = wanda(model, {"0": 0.5}, torch.randn(16, 8))
    >>> masked = to_torch(pruned, masks_of(pruned, ["0"]))
    >>> torch.nn.utils.prune.is_pruned(masked), int(masked[0].weight_mask.sum())
    (True, 16)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not isinstance(masks, Mapping):
        raise TypeError("masks must be a mapping of layer name -> mask tensor, e.g. masks_of(pruned, names)")
    slots = {name: _mask_slot(named_modules(model), name) for name in masks}  # names checked before any copy
    for name, mask in masks.items():
        module, parameter, part = slots[name]
        expected = tuple(part(getattr(module, parameter)).shape)
        if not isinstance(mask, torch.Tensor) or tuple(mask.shape) != expected:
            shape = tuple(mask.shape) if isinstance(mask, torch.Tensor) else type(mask).__name__
            raise ValueError(f"the mask of layer {name!r} must be a tensor of shape {expected} (out x in, as "
                             f"masks_of gives it); got {shape}")
    target = model if inplace else copy.deepcopy(model)
    modules = named_modules(target)
    combined: dict[tuple[int, str], tuple[nn.Module, str, torch.Tensor]] = {}
    for name, mask in masks.items():
        module, parameter, part = _mask_slot(modules, name)
        weight = getattr(module, parameter)
        key = (id(module), parameter)
        if key not in combined:
            combined[key] = (module, parameter, torch.ones_like(weight, dtype=torch.bool))
        part(combined[key][2]).copy_(mask.to(device=weight.device, dtype=torch.bool))
    for module, parameter, mask in combined.values():
        torch_prune.custom_from_mask(module, parameter, mask)
        logger.debug("masked %s.%s: %d of %d kept", type(module).__name__, parameter, int(torch.count_nonzero(mask)),
                     mask.numel())
    return target
