"""``tune``: choose FARMS' window, grid and the allocation's spread by pruning and measuring.

For every setting, the layer-wise sparsities are allocated (uniform, from the standard ESD's
alphas, or from FARMS' alphas at one window setting), a working copy of the model is pruned to them
and ``evaluate(pruned) -> float`` measures it: one row per setting. The spectra are computed once
per thing they depend on: the standard ESD once, FARMS once per (window, grid or stride, Q), never
per epsilon or target; uniform needs none. The model itself is only read.
"""

from __future__ import annotations

import copy
import itertools
import logging
import math
import time
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch
from torch import nn

from ..engine.analysis import Analysis, analyze
from ..engine.memory import release_free_memory
from ..engine.params import DEFAULT_WINDOWS_PER_DIM, FITS, AnalysisParams
from ..engine.progress import ProgressCallback, progress_reporter
from .activation_pruning import sparsegpt, wanda
from .allocation import sparsity_from_analysis
from .calibration import calibration_targets, reiterable
from .inputs import check_fraction
from .prunable import prunable_layers
from .pruning import OVERALL, magnitude, uniform

logger = logging.getLogger(__name__)

__all__ = ["DEFAULT_EPSILONS", "DEFAULT_WINDOWS", "METHODS", "PRUNERS", "TUNE_COLUMNS", "best", "sparsities_for",
           "tune", "tune_frame"]

METHODS = ("uniform", "esd", "farms")
PRUNERS = ("magnitude", "wanda", "sparsegpt")
DEFAULT_WINDOWS = (32, 64, 128, 256)
DEFAULT_EPSILONS = (0.1, 0.2, 0.3)  # the range the AlphaPruning and FARMS papers search

TUNE_COLUMNS = [
    "method", "pruner", "window", "windows_per_dim", "stride", "q", "epsilon", "target", "fit", "groups",
    "metric", "sparsity", "clamped_layers", "seconds", "best", "error",
]


@dataclass(frozen=True)
class _Spectral:
    """What an allocation's alphas depend on: the method and, for FARMS, the window geometry."""

    method: str
    window: int | None = None
    windows_per_dim: int | None = None
    stride: int | None = None
    q: float | None = None

    def label(self) -> str:
        if self.method != "farms":
            return self.method
        grid = f"stride={self.stride}" if self.stride is not None else f"k={self.windows_per_dim}"
        return f"farms window={self.window} {grid} q={self.q:g}"


@dataclass
class _Plan:
    spectral: _Spectral
    allocations: list[tuple[float, float | None]] = field(default_factory=list)  # (target, epsilon)


def _values(name: str, values: Any, example: str) -> list:
    out = [values] if isinstance(values, (int, float, np.integer, np.floating)) else None
    if out is None:
        if isinstance(values, (str, bytes)) or not isinstance(values, Iterable):
            raise ValueError(f"{name} must be a number or a sequence of numbers, e.g. {name}={example}; got {values!r}")
        out = list(values)
    if not out:
        raise ValueError(f"{name} is empty: give at least one value, e.g. {name}={example}")
    return out


def _fractions(name: str, values: Any, example: str, hint: str) -> list[float]:
    return list(dict.fromkeys(check_fraction(name, v, hint) for v in _values(name, values, example)))


def _methods(methods: Any) -> list[str]:
    listed = [methods] if isinstance(methods, str) else list(methods) if isinstance(methods, Iterable) else None
    if not listed:
        raise ValueError(f"methods must be a non-empty sequence drawn from {METHODS}; got {methods!r}")
    unknown = [m for m in listed if m not in METHODS]
    if unknown:
        raise ValueError(f"unknown methods {unknown}: choose from {', '.join(map(repr, METHODS))}")
    return list(dict.fromkeys(listed))


def _spectral_settings(windows: Any, windows_per_dim: Any, strides: Any, q: Any, fit: str) -> list[_Spectral]:
    if windows_per_dim is not None and strides is not None:
        raise ValueError("give windows_per_dim (a k x k grid of windows) or strides (windows every stride "
                         "entries), not both")
    window_values = _values("windows", windows, "[64, 128]")
    q_values = _values("q", q, "1.0")
    grids: list[tuple[Any, Any]]
    if strides is not None:
        grids = [(None, s) for s in _values("strides", strides, "[32, 64]")]
    else:
        k_values = [DEFAULT_WINDOWS_PER_DIM] if windows_per_dim is None else _values(
            "windows_per_dim", windows_per_dim, "[5, 10]")
        grids = [(k, None) for k in k_values]
    settings = []
    for window, (k, stride), ratio in itertools.product(window_values, grids, q_values):
        # validated (and normalised to int/float) before anything is computed
        params = AnalysisParams(method="farms", window=window, q=ratio,
                                windows_per_dim=k if k is not None else DEFAULT_WINDOWS_PER_DIM,
                                stride=stride, fit=fit)
        settings.append(_Spectral("farms", params.window, params.windows_per_dim if stride is None else None,
                                  params.stride, params.q))
    return list(dict.fromkeys(settings))


def _pruner(pruner: str, calibration: Any, options: Mapping[str, Any] | None) -> Callable:
    if pruner not in PRUNERS:
        raise ValueError(f"pruner must be one of {', '.join(map(repr, PRUNERS))}; got {pruner!r}")
    options = dict(options or {})
    if pruner == "magnitude":
        if options:
            raise ValueError(f"pruner 'magnitude' takes no options; got pruner_options={options}")
        return lambda model, ratios: magnitude(model, ratios, inplace=True)
    if calibration is None:
        raise ValueError(f"pruner {pruner!r} needs calibration inputs: pass calibration= (a few batches of real "
                         "model inputs, a few thousand tokens at least), or use pruner='magnitude'")
    batches = reiterable(calibration)  # a one-shot iterator is read once here, not used up by the first setting
    allowed = {"wanda": set(), "sparsegpt": {"block_size", "damp"}}[pruner]
    unknown = sorted(set(options) - allowed)
    if unknown:
        raise ValueError(f"unknown pruner_options {unknown} for {pruner!r}; it takes {sorted(allowed) or 'none'}")
    function = wanda if pruner == "wanda" else sparsegpt
    return lambda model, ratios: function(model, ratios, batches, inplace=True, **options)


def _layer_names(model: nn.Module, layers: Any, pruner: str) -> list[str]:
    if layers is None:
        names, excluded = prunable_layers(model)
        if excluded:
            logger.info("tune: leaving out %s", "; ".join(f"{k} ({v})" for k, v in excluded.items()))
        if not names:
            raise ValueError("the model has no linear layer to prune besides the ones left out by default "
                             f"({', '.join(excluded) or 'none'}): name the layers to prune with layers=[...]")
        return names
    if isinstance(layers, str) or not isinstance(layers, Iterable):
        raise ValueError(f"layers must be a sequence of layer names (as farms_viz.analyze names them); got {layers!r}")
    names = list(dict.fromkeys(layers))
    if not names:
        raise ValueError("layers is empty: name at least one layer, or leave layers=None for every linear layer")
    return names


def _glob_literal(name: str) -> str:
    """A glob pattern matching exactly ``name`` (``[``, ``*`` and ``?`` taken literally)."""
    return "".join(f"[{c}]" if c in "[]*?" else c for c in name)


def _check_layers(model: nn.Module, names: list[str], pruner: str) -> list[str]:
    """Every name is an analysable layer (and, for activation pruners, a supported one); raises otherwise."""
    from ..engine.matrices import LayerMatrix, iter_layers

    analysable = {m.name for m in iter_layers(model) if isinstance(m, LayerMatrix)}
    unknown = [n for n in names if n not in analysable]
    if unknown:
        known = sorted(analysable)
        raise ValueError(f"layers not analysable in this model: {unknown[:3]}; pick from the layers "
                         f"farms_viz.analyze(model) lists, e.g. {known[:4]}")
    if pruner != "magnitude":
        calibration_targets(model, names)  # refuses embeddings, convolutions and tied pairs, naming the layer
    return names


class _WorkingCopy:
    """The copy of the model that is pruned and evaluated, reset from the model before each pruning.

    Its parameters and buffers can be emptied (:meth:`release`) while spectra are computed and are
    filled again from the model before the next pruning, so the copy and the analysis' working set
    are never in memory at once. ``module`` stays the same object throughout.
    """

    def __init__(self, model: nn.Module):
        self.module = copy.deepcopy(model)
        for parameter in self.module.parameters():
            parameter.grad = None  # the copy needs no gradients (torch's Parameter copies none; a subclass might)
        sources = dict(itertools.chain(model.named_parameters(remove_duplicate=False),
                                       model.named_buffers(remove_duplicate=False)))
        copies = itertools.chain(self.module.named_parameters(remove_duplicate=False),
                                 self.module.named_buffers(remove_duplicate=False))
        pairs: dict[int, tuple[torch.Tensor, torch.Tensor]] = {}  # a tied tensor once
        for name, tensor in copies:
            pairs.setdefault(id(tensor), (tensor, sources[name]))
        self._pairs = list(pairs.values())
        self._state = "pristine"  # "pristine", "used" (pruned or evaluated) or "released" (emptied)

    @torch.no_grad()
    def prepare(self) -> nn.Module:
        """The copy, equal to the model bit for bit: filled again if released, reset if used.

        The heap is trimmed first: what the analysis, the last pruning and the last evaluation
        freed would otherwise stay resident under the copy and the next pruning's temporaries.
        """
        release_free_memory(force=True)
        if self._state == "released":
            for destination, source in self._pairs:
                destination.data = source.detach().clone(memory_format=torch.preserve_format)
        elif self._state == "used":
            for destination, source in self._pairs:
                destination.copy_(source)
        self._state = "used"
        return self.module

    def release(self) -> None:
        """Empty every parameter and buffer of the copy and give the freed pages back to the OS."""
        if self._state == "released":
            return
        for destination, _ in self._pairs:
            destination.data = torch.empty(0, dtype=destination.dtype, device=destination.device)
        self._state = "released"
        release_free_memory(force=True)  # the analysis allocates on other threads, from other arenas


def _metric(value: Any) -> float:
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"evaluate must return one number (e.g. a perplexity or an accuracy); got {value!r}")
    return float(value)


def _groups_label(groups: Any) -> str:
    if groups is None or groups is False:
        return "layers"
    if groups is True or groups == "blocks":
        return "blocks"
    return "custom"


def _best_index(rows: pd.DataFrame, higher_is_better: bool):
    metric = rows["metric"].astype(float)
    metric = metric[np.isfinite(metric)]
    if metric.empty:
        return None
    return metric.idxmax() if higher_is_better else metric.idxmin()  # ties: the first row


def _mark_best(frame: pd.DataFrame, higher_is_better: bool) -> pd.DataFrame:
    frame["best"] = False
    for _, rows in frame.groupby("target", sort=False):
        index = _best_index(rows, higher_is_better)
        if index is not None:
            frame.loc[index, "best"] = True
    return frame


def best(frame: pd.DataFrame, method: str | None = None, *, target: float | None = None,
         higher_is_better: bool | None = None) -> pd.Series:
    """The best row of a :func:`tune` frame at one target (of one method's rows, if given).

    Lower metric is better unless the frame was made with ``higher_is_better=True`` (read from
    ``frame.attrs``, or given here). Ties go to the first row, in the order ``tune`` ran them.
    A frame with several targets needs ``target``: settings are compared at one sparsity.

    Examples
    --------
    >>> frame = pd.DataFrame({"method": ["uniform", "farms", "farms"], "target": 0.7, "metric": [5.2, 5.0, 5.1]})
    >>> float(best(frame)["metric"]), float(best(frame, "farms", higher_is_better=True)["metric"])
    (5.0, 5.1)
    """
    if higher_is_better is None:
        higher_is_better = bool(frame.attrs.get("higher_is_better", False))
    rows = frame if method is None else frame[frame["method"] == method]
    if target is not None:
        rows = rows[np.isclose(rows["target"].astype(float), float(target))]
    elif rows["target"].nunique() > 1:
        raise ValueError(f"the frame holds several targets {sorted(rows['target'].unique())}: pick one with target=")
    index = _best_index(rows, higher_is_better)
    if index is None:
        what = " ".join(x for x in (repr(method) if method else "", f"target {target}" if target is not None else "")
                        if x)
        raise ValueError(f"no {what + ' ' if what else ''}row with a finite metric to choose from")
    return rows.loc[index]


def sparsities_for(model: nn.Module, row: Mapping[str, Any], layers: Sequence[str], *, groups: Any = None
                   ) -> dict[str, float]:
    """The layer-wise sparsities of one :func:`tune` row, to prune with the setting it chose.

    The row's analysis is run again on ``model`` (its spectra come from the cache when ``tune``
    just computed them) and allocated as ``tune`` did.

    Parameters
    ----------
    model : the model ``tune`` measured.
    row : a row of the frame, e.g. ``best(frame, "farms", target=0.7)``.
    layers : the pruned layers, ``frame.attrs["layers"]``.
    groups : the ``groups`` given to ``tune`` when it was a custom labelling; None and ``"blocks"``
        are read from the row.

    Examples
    --------
    >>> import torch.nn as nn
    >>> model = nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 64), nn.ReLU(), nn.Linear(64, 8))
    >>> row = {"method": "farms", "window": 32, "windows_per_dim": 4, "stride": None, "q": 1.0,
    ...        "epsilon": 0.2, "target": 0.5, "fit": "median", "groups": "layers"}
    >>> ratios = sparsities_for(model, row, ["0", "2"])
    >>> sorted(ratios), round(sum(ratios.values()) / 2, 3)  # the two layers have equal sizes
    (['0', '2'], 0.5)
    """
    method = row["method"]
    if method not in METHODS:
        raise ValueError(f"row['method'] must be one of {METHODS}; got {method!r}: pass a row of the frame "
                         "tune returns")
    target = float(row["target"])
    layers = list(layers)
    if method == "uniform":
        return uniform(layers, target)
    label = row.get("groups")
    if label == "custom" and groups is None:
        raise ValueError("this row was allocated with custom groups: pass the same groups= given to tune")
    if groups is None:
        groups = "blocks" if label == "blocks" else None
    spectral = _Spectral(method) if method == "esd" else _Spectral(
        "farms", int(row["window"]), None if _missing(row.get("windows_per_dim")) else int(row["windows_per_dim"]),
        None if _missing(row.get("stride")) else int(row["stride"]), float(row["q"]))
    analysis = _analysis(model, spectral, str(row["fit"]), [_glob_literal(n) for n in layers])
    assert analysis is not None
    return sparsity_from_analysis(analysis, target, float(row["epsilon"]), alphas_from=method, groups=groups,
                                  layers=layers)


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def tune(model: nn.Module, evaluate: Callable[[nn.Module], float], *, calibration: Any = None,
         pruner: str = "wanda", target: float | Sequence[float] = 0.7,
         windows: int | Sequence[int] = DEFAULT_WINDOWS, windows_per_dim: int | Sequence[int] | None = None,
         strides: int | Sequence[int] | None = None, q: float | Sequence[float] = 1.0,
         epsilons: float | Sequence[float] = DEFAULT_EPSILONS, methods: Sequence[str] = METHODS,
         fit: str = "peak", groups: Any = None, layers: Sequence[str] | None = None,
         higher_is_better: bool = False, pruner_options: Mapping[str, Any] | None = None,
         progress: bool | ProgressCallback = True, should_stop: Callable[[], bool] | None = None,
         on_row: Callable[[dict], None] | None = None) -> pd.DataFrame:
    """Prune and measure at every setting: which allocation, window, grid and spread prune best.

    For each setting the layer-wise sparsities are allocated (``"uniform"``: the target everywhere;
    ``"esd"`` and ``"farms"``: AlphaPruning from that method's alphas,
    :func:`farms_viz.allocate.sparsity_from_analysis`), a working copy of the model is pruned to
    them, and ``evaluate`` measures it. Spectra are computed once per thing they depend on: the
    standard ESD once, FARMS once per (window, windows_per_dim or stride, q); epsilons and targets
    only re-allocate. Settings whose sparsities come out identical (a window clamped to every
    layer, say) are pruned and evaluated once.

    Memory: the model, one working copy (without gradients; before each pruning every parameter and
    buffer is copied back from the model) and the pruner's per-layer statistics. While spectra are
    computed the copy's tensors are emptied, so its memory and the analysis' are not needed at
    once. The model itself is only read: its weights, gradients and training flags are bit-for-bit
    unchanged. Do not train it while ``tune`` runs (the working copy is reset from it).

    Parameters
    ----------
    model : the trained model (an ``nn.Module``).
    evaluate : ``evaluate(pruned) -> float``, e.g. the perplexity on calibration text. It receives the
        working copy, pruned: the same object every call, reset before the next pruning (copy it to
        keep one).
    calibration : model inputs for ``"wanda"`` and ``"sparsegpt"`` (as :func:`farms_viz.prune.wanda`
        takes them: a list of batches, or ``f(model)`` running the forward passes); a few thousand
        tokens at least (SparseGPT overfits a hundred). Not used by ``"magnitude"``.
    pruner : ``"wanda"``, ``"sparsegpt"`` or ``"magnitude"``.
    target : the mean sparsity, or several (a set of rows each).
    windows : FARMS window sizes m.
    windows_per_dim : grid densities k (default 10); or give ``strides`` instead.
    strides : windows every ``stride`` entries, instead of the k x k grid.
    q : FARMS window aspect ratios Q.
    epsilons : the allocation's spreads (the papers search 0.1-0.3).
    methods : which allocations: any of ``"uniform"``, ``"esd"``, ``"farms"``.
    fit : the power-law fit, ``"peak"`` (the FARMS/AlphaPruning LLM pruning code's), ``"median"`` or
        ``"ks"``.
    groups : None (one ratio per layer) or ``"blocks"`` (one per transformer block), as
        :func:`farms_viz.allocate.sparsity` takes it.
    layers : the layers to prune (names as :func:`farms_viz.analyze` gives them); by default every
        linear layer except embeddings and the output head
        (:func:`farms_viz.decisions.prunable.prunable_layers` says how they are found).
    higher_is_better : False (default) when the metric is a loss or a perplexity; True for an
        accuracy or a similarity. Decides the ``best`` row.
    pruner_options : for ``"sparsegpt"``: ``block_size``, ``damp``.
    progress : True for a tqdm bar over settings, False for none, or ``f(done, total, label)``,
        called after each setting.
    should_stop : called before each setting (and each analysis); when it returns True, ``tune``
        stops and returns the rows done so far (``frame.attrs["stopped"]`` is then True). A
        ``threading.Event``'s ``is_set`` works.
    on_row : called with each row (a dict of the frame's columns, ``best`` not yet decided) as soon as
        it is measured, e.g. to draw results while ``tune`` runs in a background thread.

    Returns
    -------
    pandas.DataFrame, one row per setting in the order they ran: method, pruner, window,
    windows_per_dim, stride, q (FARMS only, else missing), epsilon (missing for uniform), target,
    fit, groups ("layers", "blocks" or "custom"), metric, sparsity (zeros over the pruned layers'
    entries, as the pruner reached it), clamped_layers (pruned layers whose FARMS window was
    clamped to the matrix), seconds (this setting's allocation, pruning and evaluation, plus its
    spectra when they were computed for it), best (True on the best row of each target: lowest
    metric, or highest with ``higher_is_better``; :func:`best` picks it), error (why a setting
    could not be allocated, e.g. a failed fit; else None). ``frame.attrs``: ``higher_is_better``,
    ``stopped``, ``planned`` (the number of settings), ``layers`` (the pruned layers).

    Raises
    ------
    ValueError, TypeError
        For bad arguments, before anything is computed: a window setting, epsilon or target out of
        range, an unknown method, pruner or fit, a layer that is not in the model, wanda/sparsegpt
        without calibration, both windows_per_dim and strides.

    Examples
    --------
    >>> import torch, torch.nn as nn
    >>> _ = torch.manual_seed(0)
    >>> model = nn.Sequential(nn.Linear(64, 128), nn.ReLU(), nn.Linear(128, 64), nn.ReLU(), nn.Linear(64, 8))
    >>> x = torch.randn(256, 64)
    >>> dense = model(x).detach()
    >>> def error(pruned):  # lower is better
    ...     with torch.no_grad():
    ...         return float((pruned(x) - dense).pow(2).mean())
    >>> frame = tune(model, error, pruner="magnitude", target=0.5, windows=[16, 32], epsilons=[0.2],
    ...              progress=False)
    >>> frame["method"].tolist(), frame["window"].dropna().tolist()
    (['uniform', 'esd', 'farms', 'farms'], [16, 32])
    >>> int(frame["best"].sum()), round(float(frame["sparsity"].iloc[0]), 3)
    (1, 0.5)
    """
    if not isinstance(model, nn.Module):
        raise TypeError(f"model must be a torch.nn.Module; got {type(model).__name__}")
    if not callable(evaluate):
        raise TypeError("evaluate must be a callable evaluate(pruned_model) -> float, e.g. the perplexity on "
                        "calibration text")
    if should_stop is not None and not callable(should_stop):
        raise TypeError("should_stop must be a callable returning True to stop (e.g. threading.Event().is_set)")
    if on_row is not None and not callable(on_row):
        raise TypeError("on_row must be a callable on_row(row: dict), or None")
    if not isinstance(higher_is_better, (bool, np.bool_)):
        raise TypeError(f"higher_is_better must be True or False; got {higher_is_better!r}")
    if fit not in FITS:
        raise ValueError(f"fit must be one of {', '.join(map(repr, FITS))}; got {fit!r}")
    chosen = _methods(methods)
    prune_copy = _pruner(pruner, calibration, pruner_options)
    targets = _fractions("target", target, "0.7", "the mean sparsity, e.g. 0.7 prunes 70% of the weights")
    spreads = _fractions("epsilons", epsilons, "[0.1, 0.2, 0.3]", "the allocation's spread, e.g. 0.2") \
        if {"esd", "farms"} & set(chosen) else []
    spectral = _spectral_settings(windows, windows_per_dim, strides, q, fit) if "farms" in chosen else []
    names = _check_layers(model, _layer_names(model, layers, pruner), pruner)

    plans: list[_Plan] = []
    if "uniform" in chosen:
        plans.append(_Plan(_Spectral("uniform"), [(t, None) for t in targets]))
    alpha_allocations: list[tuple[float, float | None]] = list(itertools.product(targets, spreads))
    if "esd" in chosen:
        plans.append(_Plan(_Spectral("esd"), alpha_allocations))
    plans += [_Plan(setting, alpha_allocations) for setting in spectral]
    total = sum(len(plan.allocations) for plan in plans)
    stop = should_stop or (lambda: False)
    include = [_glob_literal(n) for n in names]
    groups_label = _groups_label(groups)

    working: _WorkingCopy | None = None  # made at the first pruning
    evaluated: dict[tuple, tuple[float, float]] = {}  # sparsities -> (metric, sparsity reached)
    rows: list[dict] = []
    stopped = False
    with progress_reporter(progress, desc="farms_viz tune", unit="setting") as report:
        for plan in plans:
            if stop():
                stopped = True
                break
            started = time.perf_counter()
            if working is not None and plan.spectral.method != "uniform":
                working.release()  # the copy is made again from the model after the spectra
            analysis = _analysis(model, plan.spectral, fit, include)
            clamped = _clamped_layers(analysis, plan.spectral)
            for target_value, epsilon in plan.allocations:
                if stop():
                    stopped = True
                    break
                row = _row(plan.spectral, pruner, target_value, epsilon, fit, groups_label, clamped)
                try:
                    ratios = (uniform(names, target_value) if analysis is None or epsilon is None else
                              sparsity_from_analysis(analysis, target_value, epsilon, alphas_from=plan.spectral.method,
                                                     groups=groups, layers=names))
                except ValueError as error:  # a failed fit (NaN alpha) on some layer: record it, go on
                    logger.warning("tune: %s epsilon=%s target=%s could not be allocated: %s",
                                   plan.spectral.label(), epsilon, target_value, error)
                    row["error"] = str(error)
                else:
                    key = tuple(ratios.items())
                    if key not in evaluated:
                        if working is None:
                            working = _WorkingCopy(model)
                        pruned, report_frame = prune_copy(working.prepare(), ratios)
                        overall = report_frame.set_index("layer").loc[OVERALL]
                        evaluated[key] = (_metric(evaluate(pruned)), float(overall["reached"]))
                    row["metric"], row["sparsity"] = evaluated[key]
                row["seconds"] = time.perf_counter() - started
                started = time.perf_counter()
                rows.append(row)
                if on_row is not None:
                    on_row(dict(row))
                if report is not None:
                    report(len(rows), total, _label(plan.spectral, target_value, epsilon))
            if stopped:
                break
    del working
    if stopped:
        logger.info("tune stopped after %d of %d settings", len(rows), total)
    frame = tune_frame(rows, higher_is_better=bool(higher_is_better))
    frame.attrs.update(stopped=stopped, planned=total, layers=names)
    return frame


def _analysis(model: nn.Module, spectral: _Spectral, fit: str, include: list[str]) -> Analysis | None:
    if spectral.method == "uniform":
        return None
    if spectral.method == "esd":
        return analyze(model, method="esd", fit=fit, include=include, progress=False)
    with warnings.catch_warnings():
        # a window covering a whole matrix is expected in a grid: the clamped_layers column says so
        warnings.filterwarnings("ignore", message=r"window \d+ covers the whole matrix")
        assert spectral.window is not None and spectral.q is not None
        return analyze(model, method="farms", window=spectral.window, q=spectral.q,
                       windows_per_dim=spectral.windows_per_dim or DEFAULT_WINDOWS_PER_DIM,
                       stride=spectral.stride, fit=fit, include=include, progress=False)


def _clamped_layers(analysis: Analysis | None, spectral: _Spectral) -> int | None:
    if analysis is None or spectral.method != "farms":
        return None
    grids = [analysis.spectra[(layer, "farms")].grid for layer in analysis.layers]
    return sum(bool(grid is not None and grid.clamped) for grid in grids)


def _row(spectral: _Spectral, pruner: str, target: float, epsilon: float | None, fit: str, groups: str,
         clamped: int | None) -> dict:
    uses_alphas = spectral.method != "uniform"
    return {"method": spectral.method, "pruner": pruner, "window": spectral.window,
            "windows_per_dim": spectral.windows_per_dim, "stride": spectral.stride, "q": spectral.q,
            "epsilon": epsilon, "target": target, "fit": fit if uses_alphas else None,
            "groups": groups if uses_alphas else None, "metric": math.nan, "sparsity": math.nan,
            "clamped_layers": clamped, "seconds": 0.0, "best": False, "error": None}


def _label(spectral: _Spectral, target: float, epsilon: float | None) -> str:
    spread = "" if epsilon is None else f" eps={epsilon:g}"
    return f"{spectral.label()} target={target:g}{spread}"


def tune_frame(rows: Sequence[Mapping[str, Any]], *, higher_is_better: bool = False) -> pd.DataFrame:
    """The frame :func:`tune` returns, from the rows its ``on_row`` received (a run that stopped or failed).

    Parameters
    ----------
    rows : row dicts as ``on_row`` receives them (the :data:`TUNE_COLUMNS`).
    higher_is_better : as given to ``tune``: decides the ``best`` row of each target.

    Examples
    --------
    >>> rows = [{"method": "uniform", "target": 0.5, "metric": 2.0}, {"method": "esd", "target": 0.5,
    ...          "epsilon": 0.2, "metric": 1.5}]
    >>> frame = tune_frame(rows)
    >>> frame["best"].tolist(), frame.attrs["higher_is_better"]
    ([False, True], False)
    """
    frame = _mark_best(_frame([dict(row) for row in rows]), bool(higher_is_better))
    frame.attrs.update(higher_is_better=bool(higher_is_better))
    return frame


def _frame(rows: list[dict]) -> pd.DataFrame:
    frame = pd.DataFrame(rows, columns=TUNE_COLUMNS)
    for column in ("window", "windows_per_dim", "stride", "clamped_layers"):
        frame[column] = frame[column].astype("Int64")
    for column in ("q", "epsilon", "target", "metric", "sparsity", "seconds"):
        frame[column] = frame[column].astype(float)
    frame["best"] = frame["best"].astype(bool)
    return frame
