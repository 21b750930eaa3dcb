"""Layer-wise learning rates from alphas (TempBalance, docs/spec.md section 8), and the torch
optimizer parameter groups that apply them, keyed by module name.

Rules for the groups (documented once, here):
- An analysed layer's group holds that module's own parameters (weight and bias).
- ``nn.MultiheadAttention`` is analysed as ``<name>.q``, ``.k``, ``.v`` but stores them in one
  ``in_proj_weight``: its group ``<name>`` gets the mean of the three rates. Its ``out_proj``
  is a Linear of its own.
- A normalisation module (LayerNorm, BatchNorm, GroupNorm, InstanceNorm, RMSNorm, or any class
  whose name contains "Norm") follows the nearest analysed layer *before* it in module order
  (``named_modules``): it gets that layer's rate in a group of its own named after the norm,
  with ``"follows"`` naming the layer. That is right for conv -> BatchNorm and post-LN
  transformers (BERT's ``output.dense`` -> ``output.LayerNorm``); in a pre-LN block the norm
  follows the previous block's last layer. A norm before any analysed layer stays at base_lr.
- Every other parameter goes to one group named ``OTHER_GROUP`` at base_lr.
- A parameter shared by several modules (tied weights) belongs to the first module that holds it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import rankdata
from torch import nn

from .._deprecation import _MISSING, renamed_argument
from ..engine.names import named_modules, resolve_layer
from .inputs import layer_values

__all__ = [
    "MAPPINGS",
    "OTHER_GROUP",
    "group_learning_rates",
    "learning_rates",
    "param_groups",
    "rebalance",
    "update_learning_rates",
]

MAPPINGS = ("linear", "step", "sqrt", "log2")
OTHER_GROUP = "(other)"
_NORM_TYPES: tuple[type[nn.Module], ...] = (nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm,
                                             nn.modules.batchnorm._NormBase)
if hasattr(nn, "RMSNorm"):
    _NORM_TYPES = (*_NORM_TYPES, nn.RMSNorm)


def learning_rates(alphas: Mapping[str, float] | Sequence[float] | np.ndarray, base_lr: float, *,
                   lr_min_ratio: float = 0.5, lr_max_ratio: float = 1.5, mapping: str = "linear"
                   ) -> dict[str, float] | np.ndarray:
    """Layer-wise learning rates from alphas (TempBalance, docs/spec.md section 8): larger alpha, larger rate.

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
    names, a = layer_values(alphas)
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


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower()


def _layer_rates(model: nn.Module, analysis, base_lr: float, alphas_from: str, **lr_options: Any
                 ) -> dict[str, float]:
    """module name -> rate for every analysed module (attention q/k/v averaged per module)."""
    alphas = analysis.alphas(alphas_from)
    if not alphas:
        raise ValueError(f"the analysis has no {alphas_from!r} alphas: analyse with method='both' or "
                         f"{alphas_from!r}")
    modules = named_modules(model)
    rates = learning_rates(alphas, base_lr, **lr_options)
    assert isinstance(rates, dict)  # alphas is a mapping: so are the rates
    out: dict[str, list[float]] = {}
    for layer, rate in rates.items():
        try:
            owner = resolve_layer(modules, layer).owner
        except ValueError:
            raise ValueError(f"layer {layer!r} of the analysis is not a module of this model: "
                             "analyse the same model you build the optimizer for") from None
        out.setdefault(owner, []).append(rate)
    return {name: sum(r) / len(r) for name, r in out.items()}


def _plan(model: nn.Module, analysis, base_lr: float, alphas_from: str, **lr_options: Any):
    """[(group name, lr, follows, params)] in module order, OTHER_GROUP last."""
    rates = _layer_rates(model, analysis, base_lr, alphas_from, **lr_options)
    seen: set[int] = set()
    plan: list[tuple[str, float, str | None, list[nn.Parameter]]] = []
    other: list[nn.Parameter] = []
    last_layer = None
    for name, module in named_modules(model).items():
        own = [p for p in module.parameters(recurse=False) if id(p) not in seen]
        seen.update(id(p) for p in own)
        if name in rates:
            last_layer = name
            if own:
                plan.append((name, rates[name], None, own))
        elif own and _is_norm(module) and last_layer is not None:
            plan.append((name, rates[last_layer], last_layer, own))
        else:
            other += own
    if other:
        plan.append((OTHER_GROUP, float(base_lr), None, other))
    return plan


def group_learning_rates(model: nn.Module, analysis, base_lr: float, *, alphas_from: str = "farms",
                         mapping: str = "linear", lr_min_ratio: float = 0.5, lr_max_ratio: float = 1.5,
                         method: Any = _MISSING) -> dict[str, float]:
    """Group name -> learning rate, the names :func:`param_groups` uses.

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> model = nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64), nn.Linear(64, 16))
    >>> a = farms_viz.analyze(model, window=16, progress=False)
    >>> list(group_learning_rates(model, a, 0.1))
    ['0', '1', '2']
    """
    alphas_from = renamed_argument("group_learning_rates", "method", "alphas_from", method, alphas_from, "farms")
    return {name: lr for name, lr, _, _ in _plan(model, analysis, base_lr, alphas_from, mapping=mapping,
                                                 lr_min_ratio=lr_min_ratio, lr_max_ratio=lr_max_ratio)}


def param_groups(model: nn.Module, analysis, base_lr: float, *, alphas_from: str = "farms",
                 mapping: str = "linear", lr_min_ratio: float = 0.5, lr_max_ratio: float = 1.5,
                 method: Any = _MISSING, **group_options: Any) -> list[dict[str, Any]]:
    """Torch optimizer parameter groups with per-layer learning rates (TempBalance).

    Each analysed module gets a group ``{"name": module name, "params": [...], "lr": rate}``;
    normalisation layers follow the analysed layer before them (``"follows"`` names it); all
    other parameters share one group named ``OTHER_GROUP`` at ``base_lr``. Every parameter of
    the model appears exactly once. See the module docstring for the rules.

    Parameters
    ----------
    model : the model the optimizer trains.
    analysis : an :class:`~farms_viz.Analysis` of that model.
    base_lr : the global learning rate.
    alphas_from : whose alphas: "farms" (default) or "esd" (``method`` is its deprecated name).
    mapping, lr_min_ratio, lr_max_ratio : as in :func:`learning_rates`.
    **group_options : extra keys for every group (e.g. ``weight_decay=5e-4``).

    Returns
    -------
    list of dicts, ready for ``torch.optim.SGD(groups, lr=base_lr, ...)``.

    Examples
    --------
    >>> import torch, torch.nn as nn, farms_viz
    >>> model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 16))
    >>> a = farms_viz.analyze(model, window=16, progress=False)
    >>> opt = torch.optim.SGD(param_groups(model, a, 0.1), lr=0.1, momentum=0.9)
    >>> [g["name"] for g in opt.param_groups]
    ['0', '2']
    """
    alphas_from = renamed_argument("param_groups", "method", "alphas_from", method, alphas_from, "farms")
    plan = _plan(model, analysis, base_lr, alphas_from, mapping=mapping, lr_min_ratio=lr_min_ratio,
                 lr_max_ratio=lr_max_ratio)
    groups = []
    for name, lr, follows, params in plan:
        group = {"name": name, "params": params, "lr": lr, **group_options}
        if follows is not None:
            group["follows"] = follows
        groups.append(group)
    return groups


def update_learning_rates(optimizer: torch.optim.Optimizer, rates: Mapping[str, float]) -> None:
    """Set the ``lr`` of each named optimizer group from ``rates`` (name -> rate).

    Groups are matched by their ``"name"``, never by position. Unnamed groups are left alone.

    Raises
    ------
    ValueError if a name in ``rates`` has no group: the optimizer was not built with
    :func:`param_groups` of the same model.

    Examples
    --------
    >>> import torch
    >>> w = torch.nn.Parameter(torch.zeros(2))
    >>> opt = torch.optim.SGD([{"name": "fc", "params": [w], "lr": 0.1}], lr=0.1)
    >>> update_learning_rates(opt, {"fc": 0.05}); opt.param_groups[0]["lr"]
    0.05
    """
    named = {g["name"]: g for g in optimizer.param_groups if "name" in g}
    missing = [k for k in rates if k not in named]
    if missing:
        raise ValueError(f"no optimizer group named {missing[:3]}: build the optimizer from "
                         "farms_viz.allocate.param_groups(model, analysis, base_lr) of this model")
    for name, rate in rates.items():
        named[name]["lr"] = float(rate)


def rebalance(optimizer: torch.optim.Optimizer, model: nn.Module, analysis, base_lr: float, **options: Any
              ) -> dict[str, float]:
    """Re-assign per-layer rates from a fresh analysis, e.g. once per epoch.

    ``base_lr`` is the global rate for this epoch (your schedule's value; do not also attach
    a torch LR scheduler to the same optimizer: it would overwrite these rates).

    Returns
    -------
    dict group name -> the rate set.

    Examples
    --------
    >>> import torch, torch.nn as nn, farms_viz
    >>> model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 16))
    >>> opt = torch.optim.SGD(param_groups(model, farms_viz.analyze(model, window=16, progress=False), 0.1), lr=0.1)
    >>> rates = rebalance(opt, model, farms_viz.analyze(model, window=16, progress=False), 0.05)
    >>> sorted(rates) == sorted(g["name"] for g in opt.param_groups)
    True
    """
    rates = group_learning_rates(model, analysis, base_lr, **options)
    update_learning_rates(optimizer, rates)
    return rates
