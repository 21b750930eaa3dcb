"""Layer-wise pruning ratios from alphas: the AlphaPruning allocation (docs/spec.md, section 7).

``sparsity`` turns per-layer alphas into pruning ratios whose parameter-weighted mean is the
target (larger alpha, more pruning). It accepts a ``name -> alpha`` mapping (and returns a dict in
the same order) or a sequence (and returns an ndarray in the same order): results are never
re-sorted.
"""

from __future__ import annotations

import math
import re
from collections.abc import Hashable, Mapping, Sequence
from typing import Any

import numpy as np

from .._deprecation import _MISSING, renamed_argument
from .inputs import check_fraction, layer_values, per_layer

__all__ = [
    "MODES",
    "allocation_frame",
    "layer_params",
    "sparsity",
    "sparsity_from_analysis",
    "transformer_blocks",
]

MODES = ("redistribute", "reference", "unclipped")
DEFAULT_MAX_SPARSITY = 0.99  # redistribute mode: keep at least 1% of every layer
REFERENCE_MAX_SPARSITY = 0.998  # the AlphaPruning reference code's clip value

# One path component naming a stack of blocks, then the block index: "encoder.layer.3",
# "model.layers.12", "transformer.h.0", "blocks.7". The first (outermost) match wins.
_BLOCK = re.compile(r"(?:^|\.)(?:layers|layer|h|blocks|block)\.(\d+)(?=\.|$)")


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
    labels = per_layer(groups, names, n, "groups") or []
    # None means "a group of its own"
    return [("__own__", i) if g is None else g for i, g in enumerate(labels)]


def _grouped(values: np.ndarray, labels: list[Hashable] | None) -> np.ndarray:
    """Replace each value by the unweighted mean of its group (docs/spec.md section 7 step 1)."""
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
    """Layer-wise pruning ratios from alphas (AlphaPruning allocation, docs/spec.md section 7).

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
    names, values = layer_values(alphas)
    target = check_fraction("target", target, "the mean sparsity, e.g. 0.7 prunes 70% of the weights")
    epsilon = check_fraction("epsilon", epsilon, "the spread of the ratios around the target, e.g. 0.2")
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
    raw = per_layer(params, names, n, "params")
    if raw is None:
        return np.ones(n)
    weights = np.asarray(raw, dtype=np.float64)
    if not np.all(np.isfinite(weights)) or np.any(weights <= 0):
        raise ValueError("params must be positive, finite parameter counts (one per layer); "
                         f"got {raw[:5]}{' ...' if n > 5 else ''}")
    return weights


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


def sparsity_from_analysis(analysis, target: float, epsilon: float, *, alphas_from: str = "farms",
                           groups: Any = None, layers: Sequence[str] | None = None,
                           method: Any = _MISSING, grouping: Any = _MISSING, **kwargs: Any) -> dict[str, float]:
    """Pruning ratios (name -> sparsity) from one method's alphas of an analysis.

    Parameters
    ----------
    analysis : an :class:`~farms_viz.Analysis`.
    target, epsilon : as in :func:`sparsity`.
    alphas_from : whose alphas: "farms" or "esd".
    groups : as in :func:`sparsity`: None, True or "blocks" (one ratio per transformer block),
        or per-layer group labels.
    layers : restrict to these layers (default: every analysed layer of ``alphas_from``).
    method, grouping : deprecated names of ``alphas_from`` and ``groups``.
    **kwargs : ``max_sparsity`` and ``mode``, passed to :func:`sparsity`.

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> a = farms_viz.analyze(nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 16)), window=16, progress=False)
    >>> sorted(sparsity_from_analysis(a, 0.5, 0.2))
    ['0', '1']
    """
    alphas_from = renamed_argument("sparsity_from_analysis", "method", "alphas_from", method, alphas_from, "farms")
    groups = renamed_argument("sparsity_from_analysis", "grouping", "groups", grouping, groups, None)
    alphas = analysis.alphas(alphas_from)
    if not alphas:
        raise ValueError(f"the analysis has no {alphas_from!r} alphas: analyse with method='both' or "
                         f"{alphas_from!r}")
    if layers is not None:
        unknown = [k for k in layers if k not in alphas]
        if unknown:
            raise ValueError(f"layers not in the analysis: {unknown[:3]}; pick from analysis.layers")
        alphas = {k: alphas[k] for k in layers}
    counts = layer_params(analysis)
    ratios = sparsity(alphas, target, epsilon, params={k: counts[k] for k in alphas}, groups=groups, **kwargs)
    assert isinstance(ratios, dict)  # alphas is a mapping: so are the ratios
    return ratios


def allocation_frame(analysis, target: float, epsilon: float, *,
                     alphas_from: Sequence[str] = ("esd", "farms"), groups: Any = None,
                     layers: Sequence[str] | None = None, methods: Any = _MISSING, grouping: Any = _MISSING,
                     **kwargs: Any):
    """Per-layer sparsity from each method's alphas, tidy, for side-by-side comparison.

    Parameters
    ----------
    analysis, target, epsilon, groups, layers, **kwargs : as in :func:`sparsity_from_analysis`.
    alphas_from : the methods whose alphas to allocate from, one set of rows each.
    methods, grouping : deprecated names of ``alphas_from`` and ``groups``.

    Returns
    -------
    pandas.DataFrame with columns layer, method (whose alphas), alpha, params, group, sparsity,
    target, epsilon; layers in model order. :func:`farms_viz.charts.allocation_comparison` draws it.

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> a = farms_viz.analyze(nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 16)), window=16, progress=False)
    >>> allocation_frame(a, 0.5, 0.2).shape
    (4, 8)
    """
    import pandas as pd

    alphas_from = renamed_argument("allocation_frame", "methods", "alphas_from", methods, alphas_from,
                                   ("esd", "farms"))
    groups = renamed_argument("allocation_frame", "grouping", "groups", grouping, groups, None)
    counts = layer_params(analysis)
    rows = []
    for source in alphas_from:
        ratios = sparsity_from_analysis(analysis, target, epsilon, alphas_from=source, groups=groups,
                                        layers=layers, **kwargs)
        alphas = analysis.alphas(source)
        labels = _group_labels(groups, list(ratios), len(ratios))
        # a layer in no group (labelled None) is a group of its own, named after it
        group_of = {k: (k if isinstance(g, tuple) else g) for k, g in zip(ratios, labels or list(ratios))}
        rows += [{"layer": k, "method": source, "alpha": alphas[k], "params": counts[k], "group": group_of[k],
                  "sparsity": s, "target": target, "epsilon": epsilon} for k, s in ratios.items()]
    return pd.DataFrame(rows, columns=["layer", "method", "alpha", "params", "group", "sparsity", "target",
                                       "epsilon"])
