"""From alphas to decisions: layer-wise sparsity (SPEC section 7) and learning rates (section 8).

``sparsity`` turns per-layer alphas into pruning ratios whose parameter-weighted mean is the
target (the AlphaPruning allocation: larger alpha, more pruning). ``learning_rates`` turns them
into per-layer learning rates (the TempBalance mappings: larger alpha, larger rate).
``param_groups`` and ``rebalance`` apply those rates to a torch optimizer, keyed by module name.

Both functions accept either a ``name -> alpha`` mapping (and return a dict in the same order)
or a sequence (and return an ndarray in the same order): results are never re-sorted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.stats import rankdata

from ._optim import OTHER_GROUP, group_learning_rates, param_groups, rebalance, update_learning_rates

__all__ = [
    "MODES",
    "MAPPINGS",
    "OTHER_GROUP",
    "allocation_frame",
    "group_learning_rates",
    "layer_params",
    "learning_rates",
    "param_groups",
    "rebalance",
    "sparsity",
    "sparsity_from_analysis",
    "transformer_blocks",
    "update_learning_rates",
]

MODES = ("redistribute", "reference", "unclipped")
MAPPINGS = ("linear", "step", "sqrt", "log2")
DEFAULT_MAX_SPARSITY = 0.99  # redistribute mode: keep at least 1% of every layer
REFERENCE_MAX_SPARSITY = 0.998  # the AlphaPruning reference code's clip value

# One path component naming a stack of blocks, then the block index: "encoder.layer.3",
# "model.layers.12", "transformer.h.0", "blocks.7". The first (outermost) match wins.
_BLOCK = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)(?=\.|$)")


def _values(alphas: Mapping[str, float] | Sequence[float] | np.ndarray, what: str = "alphas"
            ) -> tuple[list[str] | None, np.ndarray]:
    """(names or None, float64 values) of a mapping or a 1-D sequence, validated finite."""
    if isinstance(alphas, Mapping):
        names = list(alphas.keys())
        raw = list(alphas.values())
    else:
        names, raw = None, alphas
    try:
        values = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers (a name -> alpha dict or a 1-D sequence); "
                         f"got {type(alphas).__name__}") from None
    if values.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional (one value per layer); got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{what} is empty: pass at least one layer (e.g. analysis.alphas('farms'))")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        where = [names[i] if names else int(i) for i in bad[:5]]
        raise ValueError(
            f"{what} has {bad.size} non-finite value(s) (NaN or Inf) at {where}: the power-law fit "
            "failed there (too few or zero eigenvalues). Drop those layers, or give them a value, "
            "before allocating.")
    return names, values


def _per_layer(value: Any, names: list[str] | None, n: int, what: str) -> list | None:
    """A per-layer argument (mapping keyed like ``alphas`` or a sequence of length n) as a list."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        if names is None:
            raise ValueError(f"{what} is a mapping but alphas is a sequence: pass {what} as a "
                             f"sequence of {n} values in the order of alphas, or alphas as a dict")
        missing = [k for k in names if k not in value]
        if missing:
            raise ValueError(f"{what} has no entry for {len(missing)} layer(s), e.g. {missing[:3]}; "
                             "give every layer of alphas a value")
        return [value[k] for k in names]
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{what} must be a mapping or a sequence; got the string {value!r}")
    out = list(value)
    if len(out) != n:
        raise ValueError(f"{what} has {len(out)} entries but alphas has {n}: give one per layer, "
                         "in the same order")
    return out


def _check_fraction(name: str, value: Any, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not (
            0.0 <= float(value) < 1.0):
        raise ValueError(f"{name} must be a number in [0, 1) ({hint}); got {value!r}")
    return float(value)


def transformer_blocks(names: Sequence[str]) -> dict[str, str]:
    """The transformer block each module belongs to, from its qualified name.

    A block is the name up to the first ``layers.N``, ``layer.N``, ``h.N``, ``blocks.N`` or
    ``block.N`` component (the outermost one, so experts or sub-layers inside a block stay in
    it). A module outside every block (embeddings, the LM head, a pooler) is its own group,
    labelled by its own name.

    Parameters
    ----------
    names : module names, e.g. ``analysis.layers``.

    Returns
    -------
    dict name -> group label, in the order of ``names``.

    Examples
    --------
    >>> transformer_blocks(["embeddings.word_embeddings", "encoder.layer.0.attention.self.query",
    ...                     "encoder.layer.0.output.dense", "transformer.h.11.mlp.c_fc"])
    ... # doctest: +NORMALIZE_WHITESPACE
    {'embeddings.word_embeddings': 'embeddings.word_embeddings',
     'encoder.layer.0.attention.self.query': 'encoder.layer.0',
     'encoder.layer.0.output.dense': 'encoder.layer.0', 'transformer.h.11.mlp.c_fc': 'transformer.h.11'}
    """
    out = {}
    for name in names:
        match = _BLOCK.search(name)
        out[name] = name[:match.end()].lstrip(".") if match else name
    return out


def _group_labels(groups: Any, names: list[str] | None, n: int) -> list[Hashable] | None:
    if groups is None or groups is False:
        return None
    if groups is True or groups == "blocks":
        if names is None:
            raise ValueError('groups="blocks" needs layer names: pass alphas as a name -> alpha dict, '
                             "or groups as a sequence of group labels")
        blocks = transformer_blocks(names)
        return [blocks[k] for k in names]
    labels = _per_layer(groups, names, n, "groups")
    # None means "a group of its own"
    return [("__own__", i) if g is None else g for i, g in enumerate(labels)]


def _grouped(values: np.ndarray, labels: list[Hashable] | None) -> np.ndarray:
    """Replace each value by the unweighted mean of its group (SPEC 7 step 1)."""
    if labels is None:
        return values
    index: dict[Hashable, int] = {}
    ids = np.array([index.setdefault(g, len(index)) for g in labels])
    means = np.bincount(ids, weights=values) / np.bincount(ids)
    return means[ids]


def _redistribute(s: np.ndarray, weights: np.ndarray, target: float, ceiling: float) -> np.ndarray:
    """Clip at ``ceiling`` and scale the unclipped layers up so the weighted mean stays ``target``.

    Scaling (not adding) keeps the unclipped layers' order and ratios; it is repeated because
    scaling can lift another layer over the ceiling. At most one pass per layer.
    """
    s = s.copy()
    clipped = np.zeros(s.size, dtype=bool)
    budget_total = target * weights.sum()
    for _ in range(s.size):
        over = (s > ceiling) & ~clipped
        if not over.any():
            break
        clipped |= over
        s[clipped] = ceiling
        free = ~clipped
        mass = float((weights[free] * s[free]).sum())
        if mass <= 0:
            break
        s[free] *= (budget_total - ceiling * weights[clipped].sum()) / mass
    return s


def sparsity(alphas: Mapping[str, float] | Sequence[float] | np.ndarray, target: float, epsilon: float,
             *, params: Mapping[str, float] | Sequence[float] | None = None, groups: Any = None,
             max_sparsity: float | None = None, mode: str = "redistribute"
             ) -> dict[str, float] | np.ndarray:
    """Layer-wise pruning ratios from alphas (AlphaPruning allocation, SPEC section 7).

    ``r_j = (1 - epsilon) + 2 epsilon (a_j - a_min) / (a_max - a_min)`` and
    ``s_j = r_j * target * sum(P) / sum(P_j r_j)``: the parameter-weighted mean sparsity is the
    target, and a larger alpha (a less heavy-tailed, less trained layer) is pruned more.

    Parameters
    ----------
    alphas : name -> alpha mapping (e.g. ``analysis.alphas("farms")``) or a 1-D sequence.
    target : mean sparsity S in [0, 1), weighted by parameter count.
    epsilon : spread in [0, 1): ratios span [S(1 - eps), S(1 + eps)] before normalisation.
        0 gives every layer the target.
    params : parameter count per layer (mapping keyed like ``alphas`` or a sequence);
        None counts every layer equally. ``layer_params(analysis)`` gives them.
    groups : None (no grouping); ``"blocks"`` (or True) to group by transformer block from the
        names (``transformer_blocks``); or a mapping/sequence of group labels (None: own group).
        Every layer of a group gets the group's unweighted mean alpha.
    max_sparsity : the most any layer may be pruned. Default 0.99 for ``"redistribute"``,
        0.998 (the reference value) for ``"reference"``.
    mode : ``"redistribute"`` clips at ``max_sparsity`` and spreads the excess over the other
        layers (in proportion to their sparsity, iterated) so the mean stays exactly the target;
        ``"reference"`` clips without redistribution (the AlphaPruning code: the mean then falls
        short of the target); ``"unclipped"`` returns the formula's values, possibly above 1.

    Returns
    -------
    dict name -> sparsity in the order of ``alphas`` for a mapping, else an ndarray in the same
    order as the input.

    Examples
    --------
    >>> [round(float(s), 4) for s in sparsity([2, 3, 4, 5], 0.7, 0.2)]
    [0.56, 0.6533, 0.7467, 0.84]
    >>> sparsity({"fc1": 2.0, "fc2": 2.0}, 0.8, 0.3)
    {'fc1': 0.8, 'fc2': 0.8}
    """
    names, values = _values(alphas)
    target = _check_fraction("target", target, "the mean sparsity, e.g. 0.7 prunes 70% of the weights")
    epsilon = _check_fraction("epsilon", epsilon, "the spread of the ratios around the target, e.g. 0.2")
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(map(repr, MODES))}; got {mode!r}")
    ceiling = _ceiling(mode, max_sparsity, target)
    weights = _weights(params, names, values.size)

    a = _grouped(values, _group_labels(groups, names, values.size))
    spread = float(a.max() - a.min())
    if epsilon == 0.0 or spread == 0.0 or target == 0.0:
        s = np.full(a.size, target)
    else:
        r = (1.0 - epsilon) + 2.0 * epsilon * (a - a.min()) / spread
        s = r * target * weights.sum() / float((weights * r).sum())
    if mode == "redistribute":
        s = _redistribute(s, weights, target, ceiling)
    elif mode == "reference":
        s = np.minimum(s, ceiling)
    return dict(zip(names, map(float, s))) if names is not None else s


def _ceiling(mode: str, max_sparsity: float | None, target: float) -> float:
    if mode == "unclipped":
        if max_sparsity is not None:
            raise ValueError('mode="unclipped" does not clip: leave max_sparsity as None, or use '
                             'mode="redistribute" to clip and keep the mean on target')
        return math.inf
    if max_sparsity is None:
        return DEFAULT_MAX_SPARSITY if mode == "redistribute" else REFERENCE_MAX_SPARSITY
    if isinstance(max_sparsity, bool) or not isinstance(max_sparsity, (int, float, np.floating)) or not (
            0.0 < float(max_sparsity) <= 1.0):
        raise ValueError(f"max_sparsity must be a number in (0, 1], e.g. 0.99; got {max_sparsity!r}")
    if mode == "redistribute" and target > max_sparsity:
        raise ValueError(f"target {target} is above max_sparsity {max_sparsity}: no allocation can reach "
                         "it; lower the target or raise max_sparsity")
    return float(max_sparsity)


def _weights(params: Any, names: list[str] | None, n: int) -> np.ndarray:
    raw = _per_layer(params, names, n, "params")
    if raw is None:
        return np.ones(n)
    weights = np.asarray(raw, dtype=np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
        raise ValueError("params must be positive, finite parameter counts (one per layer); "
                         f"got {raw[:5]}{' ...' if n > 5 else ''}")
    return weights


def learning_rates(alphas: Mapping[str, float] | Sequence[float] | np.ndarray, base_lr: float, *,
                   lr_min_ratio: float = 0.5, lr_max_ratio: float = 1.5, mapping: str = "linear"
                   ) -> dict[str, float] | np.ndarray:
    """Layer-wise learning rates from alphas (TempBalance, SPEC section 8): larger alpha, larger rate.

    Parameters
    ----------
    alphas : name -> alpha mapping or a 1-D sequence.
    base_lr : the global learning rate eta (> 0), e.g. the scheduler's current value.
    lr_min_ratio, lr_max_ratio : the range (lo, hi) of eta used by ``"linear"`` and ``"step"``.
    mapping : ``"linear"``: eta [lo + (hi - lo)(a - a_min)/(a_max - a_min)] (all equal: eta);
        ``"step"``: eta (lo + (hi - lo) k / n) with k the ascending rank of a (tied alphas share
        their average rank); ``"sqrt"``: n eta sqrt(a) / sum sqrt(a); ``"log2"``:
        n eta log2(a) / sum log2(a) (needs every alpha > 1). ``sqrt`` and ``log2`` keep the
        mean rate at eta and ignore the ratios.

    Returns
    -------
    dict name -> learning rate (mapping input) or an ndarray in input order.

    Examples
    --------
    >>> [round(float(x), 4) for x in learning_rates([2, 3, 4, 5], 0.1)]
    [0.05, 0.0833, 0.1167, 0.15]
    >>> [round(float(x), 4) for x in learning_rates([2, 3, 4, 5], 0.1, mapping="step")]
    [0.05, 0.075, 0.1, 0.125]
    """
    names, a = _values(alphas)
    if isinstance(base_lr, bool) or not isinstance(base_lr, (int, float, np.floating)) or not (
            math.isfinite(base_lr) and base_lr > 0):
        raise ValueError(f"base_lr must be a finite number > 0 (the global learning rate); got {base_lr!r}")
    if mapping not in MAPPINGS:
        raise ValueError(f"mapping must be one of {', '.join(map(repr, MAPPINGS))}; got {mapping!r}")
    lo, hi = float(lr_min_ratio), float(lr_max_ratio)
    if not (0 < lo <= hi and math.isfinite(hi)):
        raise ValueError(f"need 0 < lr_min_ratio <= lr_max_ratio (e.g. 0.5 and 1.5); got {lr_min_ratio!r}, "
                         f"{lr_max_ratio!r}")
    n = a.size
    if mapping == "linear":
        spread = float(a.max() - a.min())
        lr = np.full(n, float(base_lr)) if spread == 0 else base_lr * (lo + (hi - lo) * (a - a.min()) / spread)
    elif mapping == "step":
        k = rankdata(a, method="average") - 1.0
        lr = base_lr * (lo + (hi - lo) * k / n)
    elif mapping == "sqrt":
        if np.any(a < 0):
            raise ValueError("mapping='sqrt' needs alphas >= 0; use 'linear' or 'step' for these alphas")
        total = np.sqrt(a).sum()
        lr = np.full(n, float(base_lr)) if total == 0 else n * base_lr * np.sqrt(a) / total
    else:
        if np.any(a <= 1):
            raise ValueError("mapping='log2' needs every alpha > 1 (log2 of alpha <= 1 is not positive); "
                             "use 'sqrt', 'linear' or 'step'")
        logs = np.log2(a)
        lr = n * base_lr * logs / logs.sum()
    return dict(zip(names, map(float, lr))) if names is not None else lr


def layer_params(analysis) -> dict[str, int]:
    """Parameter count of every analysed layer (rows x cols x slices), in model order.

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> a = farms_viz.analyze(nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 16)), window=16, progress=False)
    >>> layer_params(a)
    {'0': 2048, '1': 512}
    """
    out = {}
    for layer in analysis.layers:
        spectrum = next(analysis.spectra[(layer, m)] for m in ("farms", "esd") if (layer, m) in analysis.spectra)
        out[layer] = spectrum.rows * spectrum.cols * spectrum.num_slices
    return out


def sparsity_from_analysis(analysis, target: float, epsilon: float, *, method: str = "farms",
                           grouping: bool = False, layers: Sequence[str] | None = None,
                           **kwargs: Any) -> dict[str, float]:
    """Pruning ratios (name -> sparsity) from one method's alphas of an analysis.

    Parameters
    ----------
    analysis : an :class:`~farms_viz.Analysis`.
    target, epsilon : as in :func:`sparsity`.
    method : "farms" or "esd".
    grouping : group by transformer block (``groups="blocks"``).
    layers : restrict to these layers (default: every analysed layer of ``method``).
    **kwargs : ``max_sparsity`` and ``mode``, passed to :func:`sparsity`.

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> a = farms_viz.analyze(nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 16)), window=16, progress=False)
    >>> sorted(sparsity_from_analysis(a, 0.5, 0.2))
    ['0', '1']
    """
    alphas = analysis.alphas(method)
    if not alphas:
        raise ValueError(f"the analysis has no {method!r} alphas: analyse with method='both' or {method!r}")
    if layers is not None:
        unknown = [k for k in layers if k not in alphas]
        if unknown:
            raise ValueError(f"layers not in the analysis: {unknown[:3]}; pick from analysis.layers")
        alphas = {k: alphas[k] for k in layers}
    counts = layer_params(analysis)
    return sparsity(alphas, target, epsilon, params={k: counts[k] for k in alphas},
                    groups="blocks" if grouping else None, **kwargs)


def allocation_frame(analysis, target: float, epsilon: float, *, methods: Sequence[str] = ("esd", "farms"),
                     grouping: bool = False, layers: Sequence[str] | None = None, **kwargs: Any):
    """Per-layer sparsity from each method's alphas, tidy, for side-by-side comparison.

    Returns
    -------
    pandas.DataFrame with columns layer, method, alpha, params, group, sparsity, target,
    epsilon; layers in model order. ``allocation_charts.allocation_comparison`` draws it.

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> a = farms_viz.analyze(nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 16)), window=16, progress=False)
    >>> allocation_frame(a, 0.5, 0.2).shape
    (4, 8)
    """
    import pandas as pd

    counts = layer_params(analysis)
    rows = []
    for method in methods:
        ratios = sparsity_from_analysis(analysis, target, epsilon, method=method, grouping=grouping,
                                        layers=layers, **kwargs)
        alphas = analysis.alphas(method)
        blocks = transformer_blocks(list(ratios)) if grouping else {k: k for k in ratios}
        rows += [{"layer": k, "method": method, "alpha": alphas[k], "params": counts[k], "group": blocks[k],
                  "sparsity": s, "target": target, "epsilon": epsilon} for k, s in ratios.items()]
    return pd.DataFrame(rows, columns=["layer", "method", "alpha", "params", "group", "sparsity", "target",
                                       "epsilon"])
