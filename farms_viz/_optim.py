"""Per-layer learning rates as torch optimizer parameter groups, keyed by module name.

Rules (documented once, here):
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

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from .matrices import ROOT_NAME

OTHER_GROUP = "(other)"
_NORM_TYPES = (nn.LayerNorm, nn.GroupNorm, nn.LocalResponseNorm, nn.modules.batchnorm._NormBase)
if hasattr(nn, "RMSNorm"):
    _NORM_TYPES = _NORM_TYPES + (nn.RMSNorm,)


def _is_norm(module: nn.Module) -> bool:
    return isinstance(module, _NORM_TYPES) or "norm" in type(module).__name__.lower()


def _layer_rates(model: nn.Module, analysis, base_lr: float, method: str, **lr_options: Any
                 ) -> dict[str, float]:
    """module name -> rate for every analysed module (attention q/k/v averaged per module)."""
    from .allocate import learning_rates

    alphas = analysis.alphas(method)
    if not alphas:
        raise ValueError(f"the analysis has no {method!r} alphas: analyse with method='both' or {method!r}")
    modules = {name or ROOT_NAME: module for name, module in model.named_modules()}
    rates = learning_rates(alphas, base_lr, **lr_options)
    out: dict[str, list[float]] = {}
    for layer, rate in rates.items():
        owner = layer
        if layer not in modules:
            parent, _, part = layer.rpartition(".")
            if part in ("q", "k", "v") and isinstance(modules.get(parent), nn.MultiheadAttention):
                owner = parent
            else:
                raise ValueError(f"layer {layer!r} of the analysis is not a module of this model: "
                                 "analyse the same model you build the optimizer for")
        out.setdefault(owner, []).append(rate)
    return {name: sum(r) / len(r) for name, r in out.items()}


def _plan(model: nn.Module, analysis, base_lr: float, method: str, **lr_options: Any):
    """[(group name, lr, follows, params)] in module order, OTHER_GROUP last."""
    rates = _layer_rates(model, analysis, base_lr, method, **lr_options)
    seen: set[int] = set()
    plan, other = [], []
    last_layer = None
    for name, module in model.named_modules():
        name = name or ROOT_NAME
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


def group_learning_rates(model: nn.Module, analysis, base_lr: float, *, method: str = "farms",
                         mapping: str = "linear", lr_min_ratio: float = 0.5, lr_max_ratio: float = 1.5
                         ) -> dict[str, float]:
    """Group name -> learning rate, the names :func:`param_groups` uses.

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> model = nn.Sequential(nn.Linear(64, 64), nn.LayerNorm(64), nn.Linear(64, 16))
    >>> a = farms_viz.analyze(model, window=16, progress=False)
    >>> list(group_learning_rates(model, a, 0.1))
    ['0', '1', '2']
    """
    return {name: lr for name, lr, _, _ in _plan(model, analysis, base_lr, method, mapping=mapping,
                                                 lr_min_ratio=lr_min_ratio, lr_max_ratio=lr_max_ratio)}


def param_groups(model: nn.Module, analysis, base_lr: float, *, method: str = "farms",
                 mapping: str = "linear", lr_min_ratio: float = 0.5, lr_max_ratio: float = 1.5,
                 **group_options: Any) -> list[dict[str, Any]]:
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
    method : whose alphas: "farms" (default) or "esd".
    mapping, lr_min_ratio, lr_max_ratio : as in :func:`farms_viz.allocate.learning_rates`.
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
    plan = _plan(model, analysis, base_lr, method, mapping=mapping, lr_min_ratio=lr_min_ratio,
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
