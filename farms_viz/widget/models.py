"""``Explorer({"base": m0, "tuned": m1})``: several models side by side.

Every run (the first, a slider move, ``refresh()``) analyses every model with the same
parameters, one after the other on the Explorer's worker (the spectrum cache makes a model's
unchanged layers, and models seen before with these parameters, free); the panels of one model
(alpha per layer, alpha against aspect ratio, spectrum, table, allocation, sweep) show the
``shown_model`` (the model picker), and three comparison panels show them all: each model's
alpha per layer side by side, the change in alpha per layer from the first model (sorted), and
the selected layer's spectra overlaid. ``view_method`` chooses the method they draw.
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from ..charts.comparison import comparison_datasets, comparison_specs
from ..engine.analysis import Analysis, analyze
from ..engine.matrices import LayerMatrix, iter_layers
from ..engine.run_control import RunControl
from ..tracking.compare import Comparison, _sources
from .prefetch import result_key
from .run_status import RunProgress


def is_models(value: Any) -> bool:
    """True for a mapping name -> model (modules, state dicts, opened checkpoints or paths), not
    for one state dict (name -> tensor)."""
    if not isinstance(value, Mapping) or not value or not all(isinstance(k, str) for k in value):
        return False
    return all(isinstance(v, (nn.Module, Mapping, str, os.PathLike)) and not isinstance(v, torch.Tensor)
               for v in value.values())


class ModelsView:
    """The model comparison side of an Explorer: the models, the comparison of each setting."""

    mode = "models"

    def __init__(self, models: Mapping[str, Any]) -> None:
        if len(models) < 2:
            raise ValueError(f"Explorer of several models needs at least two (got {list(models)}); "
                             "pass one model as Explorer(model)")
        self.models = _sources(models)
        self.names = list(self.models)
        self._comparisons: dict[tuple, Comparison] = {}
        self._shown_comparison: Comparison | None = None
        self._cost_layers: dict[tuple, list[tuple[str, int, int, int]]] = {}

    def layer_shapes(self, fixed: dict[str, Any], name: str) -> list[tuple[str, int, int, int]]:
        include, exclude = fixed.get("include"), fixed.get("exclude")
        include = [include] if isinstance(include, str) else include
        exclude = [exclude] if isinstance(exclude, str) else exclude
        return [(m.name, m.rows, m.cols, m.num_slices)
                for m in iter_layers(self.models[name], include=include, exclude=exclude) if isinstance(m, LayerMatrix)]

    def all_short_sides(self, fixed: dict[str, Any]) -> list[int]:
        return [min(r, c) for name in self.names for _, r, c, _ in self.layer_shapes(fixed, name)]

    def attach(self, explorer: Any) -> None:
        ref = weakref.ref(explorer)
        explorer.set_trait("_mode", self.mode)
        if explorer.shown_model not in self.names:
            explorer.shown_model = self.names[0]
        explorer.observe(functools.partial(_call, ref, "_on_shown_model"), names=["shown_model"])
        explorer.observe(functools.partial(_call, ref, "_on_layer"), names=["selected_layer"])

    def detach(self) -> None:
        self._comparisons.clear()

    @property
    def comparison(self) -> Comparison | None:
        """The comparison on screen (its parameters are the results on screen's)."""
        return self._shown_comparison

    # ----- the Explorer's hooks -----------------------------------------------------------------
    def cost_layers(self, fixed: dict[str, Any], shown: str) -> list[tuple[str, int, int, int]]:
        """Every model's layers in the order :meth:`analyze` computes them: the other models'
        (labelled "model: layer") first, the shown model's last, under their own names."""
        key = (shown, repr(sorted(fixed.items())))
        if key not in self._cost_layers:
            others = [(f"{name}: {layer}", rows, cols, slices) for name in self.names if name != shown
                      for layer, rows, cols, slices in self.layer_shapes(fixed, name)]
            self._cost_layers = {key: others + self.layer_shapes(fixed, shown)}
        return self._cost_layers[key]

    def analyze(self, explorer: Any, params: dict[str, Any], control: RunControl,
                progress: RunProgress | None = None) -> Analysis:
        """Every model with ``params`` (the shown one last, with the run's control); keep the comparison.

        ``progress`` also counts the other models' windows and layers, under the labels of
        :meth:`cost_layers`.
        """
        shown = explorer.shown_model
        fixed = explorer._fixed
        analyses = {name: analyze(self.models[name], progress=False, control=_quiet(control, progress, name),
                                  **params, **fixed)
                    for name in self.names if name != shown}
        analyses[shown] = analyze(self.models[shown], progress=False, control=control, **params, **fixed)
        ordered = {name: analyses[name] for name in self.names}
        self._comparisons[result_key(params)] = Comparison(ordered, ordered[shown].params)
        while len(self._comparisons) > 4:
            self._comparisons.pop(next(iter(self._comparisons)))
        return analyses[shown]

    def published(self, explorer: Any, analysis: Analysis, kind: str) -> None:
        """(Under the Explorer's lock.) The comparison of the analysis just put on screen."""
        p = analysis.params
        key = result_key(dict(window=p.window, q=p.q, windows_per_dim=p.windows_per_dim, stride=p.stride, fit=p.fit))
        comparison = self._comparisons.get(key)
        if kind == "partial" or comparison is None:
            return
        self._shown_comparison = comparison
        self.draw(explorer, kind)

    def draw(self, explorer: Any, kind: str = "exact") -> None:
        comparison = self._shown_comparison
        if comparison is None:
            return
        layer = explorer.selected_layer
        note = "" if not comparison.unmatched else (
            f"layers not in every model: {', '.join(comparison.unmatched[:6])}"
            f"{' ...' if len(comparison.unmatched) > 6 else ''}")
        explorer.set_trait("_comparison", {
            "specs": comparison_specs(self.names, len(comparison.layers)),
            "datasets": comparison_datasets(comparison, layer), "models": list(self.names),
            "layer": layer, "kind": kind, "note": note})


def _quiet(control: RunControl, progress: RunProgress | None, model: str) -> RunControl:
    """The control of a model analysed before the shown one: its progress counted, nothing drawn."""
    if progress is None:
        return RunControl(control.cancel, background=control.background, subgrid=control.subgrid)
    return RunControl(control.cancel, background=control.background, subgrid=control.subgrid,
                      on_windows=lambda layer, done, total: progress.windows(f"{model}: {layer}", done, total),
                      on_layer=lambda layer, outcome: progress.layer(f"{model}: {layer}", outcome))


def _call(ref: weakref.ref, method: str, *args: Any) -> None:
    explorer = ref()
    if explorer is not None:
        getattr(_Observers, method)(explorer, *args)


class _Observers:
    @staticmethod
    def _on_shown_model(explorer: Any, change: dict) -> None:
        view: ModelsView = explorer._view
        if change["new"] not in view.names:
            explorer._set(error=f"shown_model must be one of {view.names}; got {change['new']!r}")
            return
        with explorer._lock:
            explorer._model = view.models[change["new"]]
            explorer._layers = view.layer_shapes(explorer._fixed, change["new"])
        explorer.refresh()  # every model from the cache; the single-model panels switch

    @staticmethod
    def _on_layer(explorer: Any, change: dict) -> None:
        view: ModelsView = explorer._view
        with explorer._lock:
            comparison = view._shown_comparison
            if comparison is not None and change["new"] in comparison.layers:
                view.draw(explorer, explorer._shown_kind or "exact")
