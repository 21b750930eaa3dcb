"""``Explorer``: the JupyterLab widget. Sliders re-run FARMS off the kernel's main thread.

Traits are the API: setting ``explorer.window = 64`` from Python does what moving the
slider does. Each change bumps a generation id and hands one job to the Explorer's worker
thread (:mod:`.runner`); the job of an older generation is stopped between two batches of
windows (the engine's cancel flag) and never writes results. The engine's spectrum cache makes
the standard ESD free when only FARMS parameters change, so a slider move recomputes FARMS alone.

Before a run the Explorer estimates its windows and seconds (:mod:`farms_viz.engine.cost`); a
run estimated above ``budget_s`` waits for ``run_anyway()``. ``stop()`` ends a run within a
fraction of a second and leaves the last complete results on screen. While idle it computes the
values one slider step away on a low-priority thread (:mod:`.prefetch`), so a step answers at
once; a change that is not ready shows a provisional result on a coarse sub-grid of the
windows first, then the exact one (which reuses those windows). A first analysis that takes
long shows its layers as they complete.

The allocation panel (target sparsity, epsilon, grouping) is recomputed on the kernel's
main thread from the current analysis: no re-analysis, a few milliseconds. The sweep panel
(alpha against window size) runs on the same worker, on demand, and a FARMS parameter
change stops it. The Tune tab (given ``evaluate=``) prunes and measures in the background on a
thread of its own (:mod:`.tune_tab`).
"""

from __future__ import annotations

import functools
import json
import logging
import threading
import time
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets as t

from .._deprecation import warn_renamed
from ..charts.allocation import clipped_layers
from ..charts.style import method_label
from ..decisions.allocation import DEFAULT_MAX_SPARSITY, allocation_frame, sparsity_from_analysis
from ..engine.analysis import Analysis, LayerSpectrum, analyze
from ..engine.cache import SPECTRA
from ..engine.cost import RunCost, estimate_cost, record_run
from ..engine.cpu_threads import background_pool
from ..engine.matrices import LayerMatrix, SkippedLayer, iter_layers
from ..engine.params import DEFAULT_FIT, DEFAULT_Q, DEFAULT_WINDOW, DEFAULT_WINDOWS_PER_DIM, AnalysisParams
from ..engine.run_control import AnalysisCancelled, RunControl
from ..engine.sweep import sweep
from ..engine.windows import SUBGRID_PER_DIM
from ..tracking.compare import Comparison
from ..tracking.monitor import Monitor
from . import export, lifetime
from .contract import ALLOCATION_SOURCES, EXPLORER_MODES, MESSAGES, SPECTRUM_METHODS, SPECTRUM_UNITS, slider_limits
from .models import ModelsView, is_models
from .prefetch import ResultStore, neighbours, result_key, windows_key
from .run_status import RunProgress, estimate_state, format_seconds, params_text
from .runner import Runner
from .state import (
    allocation_datasets,
    allocation_layers,
    explorer_datasets,
    explorer_specs,
    spectrum_datasets,
    sweep_datasets,
    table_records,
)
from .timeline import Timeline, explorer_params
from .tune_tab import TUNE_MESSAGES, TuneTab

log = logging.getLogger(__name__)
# A run estimated above this many seconds waits for run_anyway() (the budget_s trait's default).
DEFAULT_BUDGET_S = 20.0
# A change estimated to take at least this long shows a provisional result (coarse grid) first.
PROVISIONAL_MIN_S = 0.4
# While nothing is on screen yet, a run estimated (or found) to take longer than PARTIAL_AFTER_S
# shows the layers done so far every PARTIAL_EVERY_S, or every quarter of the time so far if longer.
PARTIAL_AFTER_S = 10.0
PARTIAL_EVERY_S = 2.5
# Idle this long before computing the neighbouring slider values.
PREFETCH_DELAY_S = 0.5
# A result computed ahead is checked against the weights this long after it is shown.
VERIFY_DELAY_S = 0.5

STATIC = Path(__file__).parent / "static"
_FARMS_TRAITS = ("window", "q", "windows_per_dim", "stride", "fit")
_FIXED_PARAMS = ("method", "conv_norm", "device", "include", "exclude", "max_eigenvalues")
_ALLOCATION_TRAITS = ("target", "epsilon", "groups", "alphas_from")
_VIEW_TRAITS = ("spectrum_units", "spectrum_methods")  # how the spectrum is drawn: no recomputation
# Old trait names, kept working with a DeprecationWarning.
_RENAMED_TRAITS = {"target_sparsity": "target", "grouping": "groups", "allocation_method": "alphas_from"}
SWEEP_WINDOW_COUNT = 5


class Explorer(TuneTab, anywidget.AnyWidget):
    """Standard ESD and FARMS of a live model, side by side, with sliders that re-run FARMS.

    Parameters
    ----------
    model : an ``nn.Module`` or a state dict. Read, never modified; ``refresh()`` re-reads it.
        A :class:`~farms_viz.Monitor`: the Explorer over training (a time view and a step slider,
        the Monitor's parameters; :mod:`.timeline`). A dict name -> model: several models side by
        side (a model picker and comparison panels; :mod:`.models`).
    budget_s : a change of settings whose run is estimated to take longer than this (seconds)
        waits for ``run_anyway()`` (the "run anyway" button); None: no limit. A trait: change it at
        any time. The first analysis and ``refresh()`` run whatever their estimate (``stop()`` ends them).
    prefetch : while idle, compute the values one slider step away (window, Q, k) on a
        low-priority thread, so that a step answers at once.
    provisional : a change whose result is not ready shows a coarse one first (a 3 x 3 sub-grid of
        each layer's windows, marked provisional), then the exact one, which computes only the
        other windows.
    evaluate : ``evaluate(pruned_model) -> float`` (e.g. the perplexity on held-out text): enables
        the Tune tab, which runs :func:`farms_viz.tune` in the background (``run_tune()``). The
        charts name the metric after the function.
    calibration : model inputs for the Wanda and SparseGPT pruners (as :func:`farms_viz.tune` takes them).
    tune_options : more :func:`farms_viz.tune` arguments for every run (methods, windows_per_dim,
        strides, q, fit, groups, layers, higher_is_better, pruner_options).
    **analyze_params : any :func:`farms_viz.analyze` parameter (window, q, windows_per_dim,
        stride, fit, conv_norm, device, include, exclude, max_eigenvalues). ``progress`` is the
        widget's own. The allocation traits (target, epsilon, groups, alphas_from) may be given
        here too.

    Attributes
    ----------
    window, q, windows_per_dim, stride, fit : the FARMS parameters (synced with the controls).
    selected_layer : the layer whose spectrum is shown (click any chart or table row).
    status, progress, error : read-only; what the widget is doing, 0..1 (windows done), the
        last error (it stays until a run with valid settings completes).
    target, epsilon, groups : the allocation (docs/spec.md section 7): parameter-weighted
        mean sparsity, spread of the ratios, one ratio per transformer block (True).
    alphas_from : "farms" (default) or "esd": whose alphas ``allocation`` uses.
    allocation_path : where the "save JSON" button writes ``allocation``.
    sweep_windows : the windows the "run sweep" button tries (default: from the layer sizes).
    sweep_status : read-only; what the sweep is doing or did.
    spectrum_units : "normalised" (default: each method's eigenvalues divided by their mean, so
        the standard ESD and FARMS share one axis) or "raw"; ``spectrum_methods``: "both",
        "esd" or "farms". How the spectrum is drawn; nothing is recomputed.
    tune_pruner, tune_target, tune_windows, tune_epsilons, tune_status : the Tune tab
        (:class:`~farms_viz.widget.tune_tab.TuneTab`); ``run_tune()``, ``stop_tune()``,
        ``tune_results``, ``apply_best_tune()``.
    step, follow_latest : ``Explorer(monitor)``: the recorded step every panel but the time view
        shows (the step slider); whether it moves to each new step (off once moved back).
    view_method : "farms" or "esd": the method the time view and the model comparison draw.
    shown_model : ``Explorer({name: model})``: the model the single-model panels show.

    Examples
    --------
    >>> import torch.nn as nn
    >>> explorer = Explorer(nn.Sequential(nn.Linear(128, 64), nn.Linear(64, 128)), window=32)
    >>> explorer.wait().params.window
    32
    >>> explorer.window = 16          # what the slider does
    >>> explorer.wait().params.window
    16
    >>> explorer.target = 0.5  # recomputes the allocation, not the analysis
    >>> sorted(explorer.allocation)
    ['0', '1']
    >>> explorer.close()

    Over training, and across models:

    >>> import copy, farms_viz
    >>> net = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 32))
    >>> monitor = farms_viz.Monitor(net, window=16, background=False)
    >>> over_time = Explorer(monitor)
    >>> for step in (0, 100):
    ...     _ = monitor.step(step)
    >>> _ = over_time.wait(); over_time.step, over_time.follow_latest
    (100, True)
    >>> over_time.step = 0          # what the step slider does: every panel shows step 0
    >>> over_time.wait() is monitor.analysis(0), over_time.follow_latest
    (True, False)
    >>> over_time.close()
    >>> models = Explorer({"base": net, "copy": copy.deepcopy(net)}, window=16)
    >>> models.shown_model, models.comparison.delta("base", "copy")["delta"].tolist()
    ('base', [0.0, 0.0, 0.0, 0.0])
    >>> models.close()
    """

    _esm = STATIC / "widget.js"
    _css = STATIC / "widget.css"

    window = t.Int(DEFAULT_WINDOW).tag(sync=True)
    q = t.Float(DEFAULT_Q).tag(sync=True)
    windows_per_dim = t.Int(DEFAULT_WINDOWS_PER_DIM).tag(sync=True)
    stride = t.Int(None, allow_none=True).tag(sync=True)
    fit = t.Unicode(DEFAULT_FIT).tag(sync=True)
    selected_layer = t.Unicode(None, allow_none=True).tag(sync=True)

    status = t.Unicode("", read_only=True).tag(sync=True)
    progress = t.Float(0.0, read_only=True).tag(sync=True)
    error = t.Unicode("", read_only=True).tag(sync=True)

    target = t.Float(0.7).tag(sync=True)
    epsilon = t.Float(0.2).tag(sync=True)
    groups = t.Bool(False).tag(sync=True)
    alphas_from = t.Unicode("farms").tag(sync=True)
    allocation_path = t.Unicode("farms_viz_allocation.json").tag(sync=True)
    sweep_windows = t.List(t.Int()).tag(sync=True)
    sweep_status = t.Unicode("", read_only=True).tag(sync=True)
    spectrum_units = t.Enum(SPECTRUM_UNITS, SPECTRUM_UNITS[0]).tag(sync=True)
    spectrum_methods = t.Enum(SPECTRUM_METHODS, SPECTRUM_METHODS[0]).tag(sync=True)

    _running = t.Bool(False).tag(sync=True)
    _sweep_running = t.Bool(False).tag(sync=True)
    _allocation_note = t.Unicode("").tag(sync=True)
    _limits = t.Dict().tag(sync=True)
    _specs = t.Dict().tag(sync=True)
    _datasets = t.Dict().tag(sync=True)
    _table: t.List[dict] = t.List().tag(sync=True)
    _notice = t.Unicode("").tag(sync=True)

    budget_s = t.Float(DEFAULT_BUDGET_S, allow_none=True).tag(sync=True)
    _estimate = t.Dict().tag(sync=True)
    _results_for = t.Dict().tag(sync=True)
    _provisional = t.Bool(False).tag(sync=True)
    _partial = t.Bool(False).tag(sync=True)

    # over time (Explorer(monitor): .timeline) and across models (Explorer({name: model}): .models)
    step = t.Union([t.Int(), t.Float()], default_value=None, allow_none=True).tag(sync=True)
    follow_latest = t.Bool(True).tag(sync=True)
    view_method = t.Enum(ALLOCATION_SOURCES, ALLOCATION_SOURCES[0]).tag(sync=True)
    shown_model = t.Unicode(None, allow_none=True).tag(sync=True)
    _mode = t.Enum(EXPLORER_MODES, EXPLORER_MODES[0]).tag(sync=True)
    _timeline = t.Dict().tag(sync=True)
    _comparison = t.Dict().tag(sync=True)

    def __init__(self, model: Any, *, budget_s: float | None = DEFAULT_BUDGET_S, prefetch: bool = True,
                 provisional: bool = True, evaluate: Callable[[Any], float] | None = None, calibration: Any = None,
                 tune_options: dict[str, Any] | None = None, **analyze_params: Any) -> None:
        analyze_params.pop("progress", None)
        view: Timeline | ModelsView | None = None
        if isinstance(model, Monitor):  # over time: the Monitor's analyses, its parameters
            view = Timeline(model, _prepare)
            analyze_params = explorer_params(model, analyze_params)
            prefetch = provisional = False
        elif is_models(model):  # across models: each run analyses them all
            view = ModelsView(model)
            prefetch = False  # (values computed ahead would be the shown model's only)
        for old, new in _RENAMED_TRAITS.items():
            if old in analyze_params:
                warn_renamed(f"Explorer({old}=...)", f"{new}=")
                analyze_params[new] = analyze_params.pop(old)
        unknown = (set(analyze_params) - set(_FARMS_TRAITS) - set(_FIXED_PARAMS) - set(_ALLOCATION_TRAITS)
                   - set(_VIEW_TRAITS))
        if unknown:
            raise TypeError(f"Explorer got unknown parameter(s) {sorted(unknown)}; it takes "
                            f"{', '.join(_FARMS_TRAITS + _FIXED_PARAMS)} (as farms_viz.analyze does) "
                            f"and {', '.join(_ALLOCATION_TRAITS + _VIEW_TRAITS)}")
        allocation = {k: analyze_params.pop(k) for k in _ALLOCATION_TRAITS + _VIEW_TRAITS if k in analyze_params}
        _check_alphas_from(allocation.get("alphas_from", "farms"))
        farms = {k: analyze_params.pop(k) for k in _FARMS_TRAITS if k in analyze_params}
        # validate once, at the boundary, with the engine's messages
        params = AnalysisParams(**farms, **{k: v for k, v in analyze_params.items()
                                             if k in ("method", "conv_norm")})
        self._view = view
        self._model = (model.model if isinstance(view, Timeline) else
                       view.models[view.names[0]] if isinstance(view, ModelsView) else model)
        self._fixed = analyze_params
        self._lock = threading.RLock()
        self._spectrum_layer: str | None = None
        self._generation = 0
        self._analysis: Analysis | None = None  # the latest exact analysis
        self._exact: _Prepared | None = None  # ... ready to show again (after stop())
        self._shown: _Prepared | None = None  # what is on screen
        self._shown_kind = ""  # "exact", "provisional" or "partial"
        self._waiting: dict[str, Any] | None = None  # settings waiting for run_anyway()
        self._runner = Runner()
        self._prefetch_enabled = bool(prefetch)
        self._provisional_enabled = bool(provisional)
        self._ahead = ResultStore(SPECTRA.max_bytes // 2)  # results ready to show, computed ahead
        self._computed: set[tuple] = set()  # windows whose eigenvalues are cached (these weights)
        self._fitted: set[tuple] = set()  # ... and whose fits are
        self._esd_cached = False
        self._sweep_frame = None
        self._sweep_params: dict[str, Any] | None = None
        super().__init__(window=params.window, q=params.q, windows_per_dim=params.windows_per_dim,
                         stride=params.stride, fit=params.fit, budget_s=budget_s, **allocation)
        if isinstance(view, Timeline):
            self._layers = view.layer_shapes(self._fixed)
        elif isinstance(view, ModelsView):
            self._layers = view.layer_shapes(self._fixed, view.names[0])
        else:
            self._layers = _layer_shapes(model, self._fixed)
        sides = ([min(rows, cols) for _, rows, cols, _ in self._layers] if not isinstance(view, ModelsView)
                 else view.all_short_sides(self._fixed))
        self._limits = slider_limits(sides)
        self.sweep_windows = default_sweep_windows(sides, params.window)
        self._set(sweep_status="not run yet: 'run sweep' fits FARMS once per window size, in the background")
        self._init_tune(evaluate, calibration, tune_options, default_sweep_windows)
        self.observe(self._on_params, names=list(_FARMS_TRAITS))
        self.observe(self._on_allocation, names=list(_ALLOCATION_TRAITS))
        self.observe(self._on_selected, names=["selected_layer"])
        self.observe(self._on_budget, names=["budget_s"])
        self.on_msg(self._on_custom_message)
        # neither ipywidgets' registry nor the worker keeps an Explorer nobody uses alive
        self._finalizer = lifetime.hold_weakly(self, self._runner.close)
        if view is not None:
            view.attach(self)
        self._schedule("analysing", force=True)  # asked for by creating the Explorer: Stop can end it

    # ----- public API -----------------------------------------------------------------
    @property
    def analysis(self) -> Analysis | None:
        """The latest :class:`~farms_viz.Analysis` (waits for a run in progress)."""
        return self.wait()

    @property
    def results(self):
        """The latest analysis as a DataFrame (``Analysis.to_pandas()`` columns)."""
        analysis = self.wait()
        return None if analysis is None else analysis.to_pandas()

    @property
    def comparison(self) -> Comparison | None:
        """``Explorer({name: model})``: the :class:`~farms_viz.Comparison` on screen (waits for a run
        in progress); None for one model or a Monitor."""
        self.wait()
        return self._view.comparison if isinstance(self._view, ModelsView) else None

    def wait(self, timeout: float | None = None) -> Analysis | None:
        """Wait until the requested runs have finished; return the latest complete analysis.

        Parameters
        ----------
        timeout : seconds to wait at most (None: no limit).

        A run estimated above ``budget_s`` does not start by itself: ``wait`` then warns and
        returns the previous analysis; ``run_anyway()`` starts it.
        """
        self._runner.wait(timeout)
        waiting = self._waiting
        if waiting is not None:
            warnings.warn(f"the run for {params_text(waiting)} waits for run_anyway(): "
                          f"{self._estimate.get('text', '')}; the analysis returned is the previous one",
                          RuntimeWarning, stacklevel=2)
        return self._analysis

    def refresh(self) -> None:
        """Re-read the weights (e.g. after training steps) and recompute both methods.

        Unchanged layers come from the cache; changed ones are recomputed.
        """
        with self._lock:
            self._computed.clear()
            self._fitted.clear()
            self._esd_cached = False
            self._ahead.clear()
        self._schedule("re-reading the weights", force=True)

    def stop(self) -> None:
        """Stop the run in progress, within a fraction of a second; the last complete results stay.

        The engine stops between two batches of windows. The status then names the settings of
        the results on screen (the controls may show others: ``run_anyway()`` runs those).
        """
        with self._lock:
            if not (self._running or self._runner.busy or self._waiting is not None):
                self._runner.cancel_background()
                return
            self._supersede(restore=True)
            if self._shown is None:
                status = "stopped: nothing computed yet; press 'run anyway' (or change a value) to start again"
            elif self._shown_kind == "partial":
                status = (f"stopped: {len(self._shown.analysis.layers)} of {len(self._layers)} layers analysed "
                          f"({params_text(self._results_for)}); press 'run anyway' to analyse them all")
            else:
                status = f"stopped: {self._shown_text()}, the settings before"
            self._set(status=status, progress=0.0, _running=False, _estimate={**self._estimate, "waiting": False})

    def run_anyway(self) -> None:
        """Run the current settings now, even when they are estimated above ``budget_s``.

        It also starts again the settings a ``stop()`` left unrun.
        """
        self._schedule("run anyway", force=True)

    @property
    def allocation(self) -> dict[str, float]:
        """Layer name -> pruning ratio (sparsity) from the ``alphas_from`` alphas.

        Computed from the latest analysis (waits for a run in progress) with the current
        ``target``, ``epsilon`` and ``groups``: the parameter-weighted mean of the
        ratios is the target (docs/spec.md section 7, clipped at 0.99 and redistributed). Layers whose
        alpha is not finite under either method are left out (``_allocation_note`` names
        them); pass the dict to :func:`farms_viz.prune.magnitude`.
        """
        analysis = self.wait()
        if analysis is None:
            return {}
        _check_alphas_from(self.alphas_from)
        return sparsity_from_analysis(analysis, self.target, self.epsilon, alphas_from=self.alphas_from,
                                      groups=self.groups or None, layers=allocation_layers(analysis))

    def save_allocation(self, path: str | Path | None = None) -> Path:
        """Write ``allocation`` (name -> sparsity) as a JSON object; returns the path.

        Parameters
        ----------
        path : the file to write (default: ``allocation_path``). Read it back with
            ``json.load`` and pass it to :func:`farms_viz.prune.magnitude`.
        """
        path = Path(path if path is not None else self.allocation_path).expanduser()
        ratios = self.allocation
        if not ratios:
            raise RuntimeError(f"no allocation to save yet: {self.error or self.status}")
        path.write_text(json.dumps(ratios, indent=1) + "\n", encoding="utf-8")
        self._allocation_note = f"saved {len(ratios)} ratios ({self.alphas_from}) to {path.resolve()}"
        return path

    def run_sweep(self, windows: list[int] | None = None) -> None:
        """Fit FARMS at several window sizes, in the background; the sweep panel draws it.

        Parameters
        ----------
        windows : window sizes m to try (default: ``sweep_windows``, chosen from the layer
            sizes). The other parameters are the current q, windows_per_dim and fit.

        The sweep runs on the widget's worker; a FARMS parameter change stops it. Read the
        result with ``sweep_results`` (waits for it).
        """
        if windows is not None:
            windows = _check_windows(windows)
            self.sweep_windows = windows
        windows = list(self.sweep_windows) or default_sweep_windows(_short_sides(self._model, self._fixed), self.window)
        params = self._params()
        with self._lock:
            generation = self._generation
        self._set(sweep_status=f"sweep of {len(windows)} windows: waiting for the analysis to finish"
                  if self._runner.busy else f"sweep of {len(windows)} windows: starting", _sweep_running=True)
        self._runner.submit(functools.partial(_call, weakref.ref(self), "_sweep_job", generation, params, windows),
                            "queued")

    @property
    def sweep_results(self):
        """The latest sweep (a :func:`farms_viz.sweep` DataFrame), or None (waits for a run)."""
        self.wait()
        return self._sweep_frame

    def save_html(self, path: str | Path, view: str | None = None) -> Path:
        """Write a view as one self-contained offline HTML file (never onto a device, folder or link).

        ``view``: "panels" writes the panels on screen (alpha per layer, alpha against aspect
        ratio, the spectrum, the table); "time", for an ``Explorer(monitor)``, writes alpha over
        every recorded step (the page ``farms-viz report`` makes for several checkpoints);
        "comparison", for an Explorer of several models, writes the models side by side (alphas,
        the change per layer, the selected layer's spectra). The default is "time" over a
        Monitor, "comparison" over several models, else "panels".
        """
        if view is None:
            view = ("time" if isinstance(self._view, Timeline) else
                    "comparison" if isinstance(self._view, ModelsView) else "panels")
        if view == "comparison":
            if not isinstance(self._view, ModelsView):
                raise ValueError("view='comparison' needs an Explorer of several models, Explorer({name: model}); "
                                 "use view='panels' here")
            from ..charts.comparison import save_comparison

            self.wait()
            comparison = self._view.comparison
            if comparison is None:
                raise RuntimeError("nothing compared yet: wait for the first run (explorer.wait())")
            layer = self.selected_layer if self.selected_layer in comparison.layers else None
            return save_comparison(comparison, path, layer, self.view_method)
        if view == "time":
            if not isinstance(self._view, Timeline):
                raise ValueError("view='time' needs an Explorer over a Monitor, Explorer(monitor); "
                                 "use view='panels' here")
            from ..charts.time import save_time_view

            history = self._view.monitor.history
            if history.empty:
                raise RuntimeError("the Monitor has recorded no step yet: call monitor.step() first")
            return save_time_view(history, path)
        if view != "panels":
            raise ValueError(f"view must be 'panels', 'time' or 'comparison'; got {view!r}")
        return export.save_html(self._require_analysis(), path, selected_layer=self.selected_layer,
                                spectrum_units=self.spectrum_units, spectrum_methods=self.spectrum_methods)

    def save_png(self, path: str | Path) -> Path:
        """Write every chart of the current view as one PNG image."""
        return export.save_png(self._require_analysis(), path, selected_layer=self.selected_layer,
                               spectrum_units=self.spectrum_units, spectrum_methods=self.spectrum_methods)

    def close(self) -> None:
        """Close the widget and stop its worker thread (an Explorer nobody references is closed
        when it is collected)."""
        if not hasattr(self, "_runner"):  # refused in __init__, before the worker existed
            return
        with self._lock:
            self._generation += 1
        self._runner.close()
        self._close_tune()
        view = getattr(self, "_view", None)
        if view is not None:
            view.detach()
        finalizer = getattr(self, "_finalizer", None)
        if finalizer is not None:
            finalizer.detach()
        super().close()

    def _repr_mimebundle_(self, **kwargs: Any) -> Any:
        lifetime.on_screen(self)  # held until the front end reports its views gone
        return super()._repr_mimebundle_(**kwargs)

    # ----- renamed traits ---------------------------------------------------------------
    @property
    def target_sparsity(self) -> float:
        """Deprecated name of :attr:`target`."""
        warn_renamed("Explorer.target_sparsity", "Explorer.target")
        return self.target

    @target_sparsity.setter
    def target_sparsity(self, value: float) -> None:
        warn_renamed("Explorer.target_sparsity", "Explorer.target")
        self.target = value

    @property
    def grouping(self) -> bool:
        """Deprecated name of :attr:`groups`."""
        warn_renamed("Explorer.grouping", "Explorer.groups")
        return self.groups

    @grouping.setter
    def grouping(self, value: bool) -> None:
        warn_renamed("Explorer.grouping", "Explorer.groups")
        self.groups = value

    @property
    def allocation_method(self) -> str:
        """Deprecated name of :attr:`alphas_from`."""
        warn_renamed("Explorer.allocation_method", "Explorer.alphas_from")
        return self.alphas_from

    @allocation_method.setter
    def allocation_method(self, value: str) -> None:
        warn_renamed("Explorer.allocation_method", "Explorer.alphas_from")
        self.alphas_from = value

    # ----- running ----------------------------------------------------------------------
    def _require_analysis(self) -> Analysis:
        analysis = self.wait()
        if analysis is None:
            raise RuntimeError(f"no analysis to export yet: {self.error or self.status}")
        return analysis

    def _params(self) -> dict[str, Any]:
        return dict(window=self.window, q=self.q, windows_per_dim=self.windows_per_dim,
                    stride=self.stride, fit=self.fit)

    def _on_params(self, change: dict) -> None:
        self._schedule(f"{change['name']} = {change['new']}")

    def _on_budget(self, change: dict) -> None:
        with self._lock:
            waiting = self._waiting is not None
        if waiting:  # the run that waited may fit the new budget
            self._schedule(f"budget_s = {change['new']}")
            return
        try:
            cost = self._cost(self._params())
        except ValueError:  # invalid settings: their error is on screen already
            return
        self._set(_estimate={**self._estimate, **estimate_state(cost, change["new"])})

    def _on_custom_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        if kind in TUNE_MESSAGES:
            self._on_tune_message(kind, content)
            return
        handlers: dict[str, Callable[[], Any]] = {"refresh": self.refresh, "save_allocation": self.save_allocation,
                                                  "run_sweep": self.run_sweep, "stop": self.stop,
                                                  "run_anyway": self.run_anyway}
        assert tuple(handlers) + TUNE_MESSAGES == MESSAGES  # the contract lists exactly the messages handled
        if kind not in handlers:
            log.debug("ignored front-end message %r", content)
            return
        try:
            handlers[kind]()
        except Exception as exc:  # shown in the widget: the kernel would swallow it
            self._set(error=f"{type(exc).__name__}: {exc}")

    def _cost(self, params: dict[str, Any]) -> RunCost:
        """The estimate of analysing ``params`` now (what the cache holds counts as done)."""
        fixed = {k: v for k, v in self._fixed.items() if k in ("method", "conv_norm")}
        return estimate_cost([(rows, cols, slices) for _, rows, cols, slices in self._cost_layers()],
                             AnalysisParams(**params, **fixed), farms_cached=windows_key(params) in self._computed,
                             esd_cached=self._esd_cached, fits_cached=result_key(params) in self._fitted)

    def _cost_layers(self) -> list[tuple[str, int, int, int]]:
        """The layers a run computes, in order (every model's, in a comparison)."""
        if isinstance(self._view, ModelsView):
            return self._view.cost_layers(self._fixed, self.shown_model or self._view.names[0])
        return self._layers

    def _schedule(self, reason: str, force: bool = False) -> None:
        if isinstance(self._view, Timeline):  # a recorded step, not a run
            self._view.schedule(self, reason)
            return
        params = self._params()
        try:
            AnalysisParams(**params)
            cost = self._cost(params)
        except ValueError as exc:  # a value the engine refuses: say so, keep the last results
            with self._lock:
                self._supersede(restore=True)  # no older run may clear this error
                self._set(error=str(exc), status=f"not run: invalid parameters; {self._shown_text()}",
                          progress=0.0, _running=False)
            return
        budget = self.budget_s
        estimate = estimate_state(cost, budget)
        with self._lock:
            if not force and estimate["over_budget"]:
                self._supersede(restore=True)
                self._waiting = params
                self._set(_estimate={**estimate, "waiting": True}, progress=0.0, _running=False,
                          status=f"not run: {reason} would take about {format_seconds(cost.seconds)}, above the "
                                 f"{budget:g} s budget; press 'run anyway' or change a value ({self._shown_text()})")
                return
            self._supersede()
            generation = self._generation
            self._set(_estimate=estimate, progress=0.0, _running=True,
                      status=f"{reason}: starting ({estimate['text']})")
        self._runner.submit(functools.partial(_call, weakref.ref(self), "_run", generation, params, cost), "user")

    def _supersede(self, restore: bool = False) -> None:
        """(Under the lock.) A newer request replaces whatever runs or waits: none of it publishes.

        ``restore``: no new run follows, so a provisional result on screen gives way to the last
        exact one.
        """
        self._generation += 1
        self._waiting = None
        self._runner.cancel()
        if restore and self._shown_kind == "provisional" and self._exact is not None:
            self._publish(self._exact, "exact", self.status)

    def _current(self, generation: int) -> bool:
        return generation == self._generation

    def _shown_text(self) -> str:
        if self._shown is None:
            return "nothing computed yet"
        return f"showing the results for {params_text(self._results_for)}"

    def _analyze(self, params: dict[str, Any], control: RunControl,
                 progress: RunProgress | None = None) -> tuple[Analysis, str]:
        """analyze() on the model with these settings; the notice its warnings make."""
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            if isinstance(self._view, ModelsView):
                analysis = self._view.analyze(self, params, control, progress)
            else:
                analysis = analyze(self._model, progress=False, control=control, **params, **self._fixed)
        notice = " ".join(str(w.message) for w in caught if "covers the whole matrix" in str(w.message))
        return analysis, notice

    def _learned(self, params: dict[str, Any]) -> None:
        """(Under the lock.) These settings' spectra are in the cache now."""
        self._computed.add(windows_key(params))
        self._fitted.add(result_key(params))
        self._esd_cached = self._esd_cached or self._fixed.get("method", "both") != "farms"

    def _run(self, generation: int, params: dict[str, Any], cost: RunCost, cancel: threading.Event) -> None:
        """The user's run: a result computed ahead if there is one, else provisional then exact."""
        if cancel.is_set() or not self._current(generation):
            return
        started = time.perf_counter()
        ready = self._ahead.get(result_key(params))
        if ready is not None:
            seconds = time.perf_counter() - started
            shown = self._show(generation, ready, "exact",
                               f"{_layers_text(ready.analysis)} in {seconds:.2f} s (computed ahead)")
            if shown and not cancel.wait(VERIFY_DELAY_S):
                self._verify(generation, params, ready, cancel)
            self._prefetch_later(generation)
            return
        what = "FARMS" if self._esd_cached or self._fixed.get("method") == "farms" else "both methods"
        progress = RunProgress(cost, [name for name, *_ in self._cost_layers()], what,
                               functools.partial(self._progress, generation))
        partial = _PartialRun(AnalysisParams(**params, **{k: v for k, v in self._fixed.items()
                                                          if k in ("method", "conv_norm")}))

        def on_layer(name: str, outcome: Any) -> None:
            progress.layer(name, outcome)
            partial.add(name, outcome)
            if self._exact is None and partial.due(cost.seconds):  # nothing on screen yet: show what is done
                self._show(generation, _prepare(partial.analysis(), self.selected_layer, ""), "partial",
                           f"partial: {len(partial.layers)} of {len(self._layers)} layers after "
                           f"{format_seconds(time.perf_counter() - started)}; computing the rest")

        try:
            coarser = params["stride"] is not None or int(params["windows_per_dim"]) > SUBGRID_PER_DIM
            if (self._provisional_enabled and self._exact is not None and coarser
                    and cost.seconds >= PROVISIONAL_MIN_S):
                # the exact run's own windows, a coarse sub-grid of them first: nothing is computed twice
                analysis, notice = self._analyze(params, RunControl(cancel, subgrid=True))
                grid = f"{SUBGRID_PER_DIM} x {SUBGRID_PER_DIM}"
                self._show(generation, _prepare(analysis, self.selected_layer, notice), "provisional",
                           f"provisional ({grid} of each layer's windows) after "
                           f"{time.perf_counter() - started:.2f} s; computing the others "
                           f"({estimate_state(cost, None)['text']})")
            exact_started = time.perf_counter()
            analysis, notice = self._analyze(params, RunControl(cancel, on_windows=progress.windows, on_layer=on_layer),
                                             progress)
        except AnalysisCancelled:
            return
        except Exception as exc:  # shown in the widget: the kernel would swallow it
            log.debug("analysis failed", exc_info=True)
            with self._lock:
                if self._current(generation):
                    self._supersede(restore=True)
                    self._set(error=f"{type(exc).__name__}: {exc}", status="failed; change a value to retry",
                              progress=0.0, _running=False)
            return
        record_run(cost, time.perf_counter() - exact_started)
        prepared = _prepare(analysis, self.selected_layer, notice)
        with self._lock:
            self._learned(params)
        seconds = time.perf_counter() - started
        if self._show(generation, prepared, "exact", f"{_layers_text(analysis)} in {seconds:.2f} s"):
            self._ahead.put(result_key(params), prepared, _farms_bytes(analysis))
            self._prefetch_later(generation)

    def _progress(self, generation: int, fraction: float, status: str) -> None:
        """A progress line from the compute threads (RunProgress throttles them)."""
        with self._lock:
            if not self._current(generation):
                return
            if self._shown_kind == "provisional":
                status += " · provisional result on screen"
            self._set(progress=fraction, status=status)

    def _verify(self, generation: int, params: dict[str, Any], shown: _Prepared, cancel: threading.Event) -> None:
        """Recompute a result computed ahead (from the cache, unless the weights changed since)."""
        try:
            analysis, notice = self._analyze(params, RunControl(cancel))
        except AnalysisCancelled:
            return
        except Exception:
            log.debug("checking a result computed ahead failed", exc_info=True)
            return
        if not _same_spectra(analysis, shown.analysis):
            self._show(generation, _prepare(analysis, self.selected_layer, notice), "exact",
                       f"{_layers_text(analysis)} (recomputed: the weights changed)")

    def _show(self, generation: int, prepared: _Prepared, kind: str, status: str) -> bool:
        """Publish ``prepared`` if its generation is still the current one; True if it was."""
        with self._lock:
            if not self._current(generation):
                return False
            self._publish(prepared, kind, status)
            return True

    def _publish(self, prepared: _Prepared, kind: str, status: str) -> None:
        """(Under the lock.) Put a result on screen: "exact", "provisional" or "partial"."""
        analysis = prepared.analysis
        layer = self.selected_layer if self.selected_layer in analysis.layers else prepared.layer
        datasets = dict(prepared.datasets)
        if layer != prepared.layer:
            datasets.update(spectrum_datasets(analysis, layer))
        partial = kind == "partial"
        # a partial result is drawn in the charts of the whole model: one spec, no re-embedding
        specs = dict(explorer_specs(len(self._layers) if partial else len(analysis.layers)))
        allocation = None if partial else self._allocation_state(analysis)
        if allocation is not None and allocation[1]:
            specs["allocation"] = allocation[0]
            datasets.update(allocation[1])
        elif "allocation" in self._specs:  # refused settings: the last allocation stays on screen
            specs["allocation"] = self._specs["allocation"]
            datasets["allocation"] = self._datasets.get("allocation", [])
        if self._sweep_frame is not None:
            sweep_spec, sweep_rows = sweep_datasets(self._sweep_frame, self.window, layer)
            specs["sweep"] = sweep_spec
            datasets.update(sweep_rows)
        self._keep_tune_panels(specs, datasets)
        self._spectrum_layer = layer
        exact = kind == "exact"
        if exact:
            self._analysis, self._exact = analysis, prepared
        self._shown, self._shown_kind = prepared, kind
        p = analysis.params
        with self.hold_sync():
            if specs != self._specs:
                self._specs = specs
            self._datasets = datasets
            self._table = prepared.table
            self._notice = prepared.notice
            if self.selected_layer != layer:
                self.selected_layer = layer
            values: dict[str, Any] = dict(
                status=status, _provisional=kind == "provisional", _partial=kind == "partial",
                _results_for=dict(window=p.window, q=p.q, windows_per_dim=p.windows_per_dim, stride=p.stride,
                                  fit=p.fit, kind=kind, layers=len(analysis.layers)))
            if exact:
                values.update(progress=1.0, _running=False,
                              error=allocation[2] if allocation is not None else "")
            self._set(**values)
            self._mark_stale_sweep()
            if isinstance(self._view, ModelsView):
                self._view.published(self, analysis, kind)

    # ----- computing ahead ----------------------------------------------------------------
    def _prefetch_later(self, generation: int) -> None:
        if self._prefetch_enabled:
            self._runner.submit(functools.partial(_compute_ahead, weakref.ref(self), generation), "background",
                                delay=PREFETCH_DELAY_S)

    def _ahead_plan(self, generation: int) -> list[dict[str, Any]]:
        """The neighbouring settings worth computing ahead now (none unless idle on an exact result)."""
        params = self._params()
        with self._lock:
            if (not self._current(generation) or self._shown_kind != "exact"
                    or result_key(params) != result_key(self._results_for)):
                return []
        plan = []
        for candidate in neighbours(params, self._limits):
            if result_key(candidate) in self._ahead:
                continue
            try:
                cost = self._cost(candidate)
            except ValueError:
                continue
            budget = self.budget_s
            if (budget is None or cost.seconds <= budget) and self._ahead.has_room(cost.nbytes):
                plan.append(candidate)
        return plan

    def _keep_ahead(self, generation: int, params: dict[str, Any], prepared: _Prepared) -> bool:
        """Keep a result computed ahead; False once the user has moved on."""
        with self._lock:
            if not self._current(generation):
                return False
            self._learned(params)
            self._ahead.put(result_key(params), prepared, _farms_bytes(prepared.analysis))
            return True

    # ----- allocation -------------------------------------------------------------------
    def _allocation_state(self, analysis: Analysis) -> tuple[dict, dict, str] | None:
        """(spec, data sets, error) of the allocation panel; the error is "" when it worked."""
        layers = allocation_layers(analysis)
        if not layers:
            self._allocation_note = "no layer has a finite alpha: nothing to allocate"
            return None
        methods = [m for m in ALLOCATION_SOURCES[::-1] if m in analysis.methods]
        try:
            frame = allocation_frame(analysis, self.target, self.epsilon, alphas_from=methods,
                                     groups=self.groups or None, layers=layers)
        except ValueError as exc:  # a target or epsilon the allocation refuses: keep the last rows
            return self._specs.get("allocation", {}), {}, f"allocation: {exc}"
        spec, rows = allocation_datasets(frame)
        left_out = [name for name in analysis.layers if name not in layers]
        note = (f"not allocated (alpha not finite): {', '.join(left_out[:5])}{' ...' if len(left_out) > 5 else ''}"
                if left_out else "")
        weights = frame[frame["method"] == methods[-1]]
        mean = float(np.average(weights["sparsity"], weights=weights["params"]))
        self._allocation_note = (allocation_warning(frame, methods[-1]) +
                                 f"{len(layers)} layers, {int(weights['params'].sum()):,} parameters; "
                                 f"weighted mean sparsity {mean:.3f}" + (f"; {note}" if note else ""))
        return spec, rows, ""

    def _on_allocation(self, change: dict) -> None:
        if change["name"] == "alphas_from":
            try:
                _check_alphas_from(change["new"])
            except ValueError as exc:
                self._set(error=str(exc))
                return
        self._user_acted()
        with self._lock:
            if self._shown is None:
                return
            state = self._allocation_state(self._shown.analysis)
            if state is None:
                return
            spec, rows, error = state
            with self.hold_sync():
                if rows:
                    if self._specs.get("allocation") != spec:
                        self._specs = {**self._specs, "allocation": spec}
                    self._datasets = {**self._datasets, **rows}
                self._set(error=error)

    # ----- sweep ------------------------------------------------------------------------
    def _sweep_job(self, generation: int, params: dict[str, Any], windows: list[int], cancel: threading.Event) -> None:
        if cancel.is_set() or not self._current(generation):
            self._set(sweep_status="sweep stopped: the parameters changed; run it again", _sweep_running=False)
            return
        started = time.perf_counter()
        total = len(windows)

        def progress(done: int, _total: int, _label: str) -> None:
            if not self._current(generation):
                raise _Stale
            self._set(sweep_status=f"sweep: {done}/{total} windows, {time.perf_counter() - started:.1f} s")

        self._set(sweep_status=f"sweep: 0/{total} windows")
        options = {k: v for k, v in self._fixed.items() if k in ("include", "exclude", "conv_norm", "device")}
        try:
            frame = sweep(self._model, windows=windows, windows_per_dim=[params["windows_per_dim"]], q=[params["q"]],
                          fit=params["fit"], esd=True, progress=progress, control=RunControl(cancel), **options)
        except (_Stale, AnalysisCancelled):
            self._set(sweep_status="sweep stopped: the parameters changed; run it again", _sweep_running=False)
            return
        except Exception as exc:  # shown in the widget: the kernel would swallow it
            log.debug("sweep failed", exc_info=True)
            self._set(sweep_status=f"sweep failed: {type(exc).__name__}: {exc}", _sweep_running=False)
            return
        with self._lock:
            self._sweep_frame = frame
            self._sweep_params = params
            spec, rows = sweep_datasets(frame, self.window, self.selected_layer)
            with self.hold_sync():
                self._specs = {**self._specs, "sweep": spec}
                self._datasets = {**self._datasets, **rows}
                grid = (f"k = {params['windows_per_dim']}" if params["stride"] is None
                        else f"k = {params['windows_per_dim']} (the sweep uses a k x k grid, not the stride)")
                self._set(sweep_status=f"{frame['layer'].nunique()} layers x {total} windows ({grid}, "
                                       f"Q = {params['q']:g}, {params['fit']} fit) in "
                                       f"{time.perf_counter() - started:.1f} s", _sweep_running=False)

    def _mark_stale_sweep(self) -> None:
        if self._sweep_params is None:
            return
        now = {k: v for k, v in self._params().items() if k != "window"}
        then = {k: v for k, v in self._sweep_params.items() if k != "window"}
        stale = " (parameters changed since: run the sweep again)"
        if now != then and not self.sweep_status.endswith(stale):
            self._set(sweep_status=self.sweep_status + stale)

    def _on_selected(self, change: dict) -> None:
        self._user_acted()
        with self._lock:
            analysis = None if self._shown is None else self._shown.analysis
            if analysis is None or change["new"] not in analysis.layers or change["new"] == self._spectrum_layer:
                return
            datasets, self._spectrum_layer = explorer_datasets(analysis, change["new"], only_spectrum=True)
            self._datasets = {**self._datasets, **datasets}

    def _user_acted(self) -> None:
        """Work done ahead gives way at once to what the user does; it resumes once idle."""
        if self._runner.running_kind == "background":
            self._runner.cancel_background()
            self._prefetch_later(self._generation)

    def _set(self, **values: Any) -> None:
        with self.hold_trait_notifications():
            for name, value in values.items():
                self.set_trait(name, value)


def allocation_warning(frame: Any, method: str) -> str:
    """"⚠ N of M layers clipped at 0.99 ...: " when an allocation could not honour its spread; else "".

    Examples
    --------
    >>> import pandas as pd
    >>> frame = pd.DataFrame({"layer": ["a", "b", "c"], "method": "farms", "sparsity": [0.99, 0.99, 0.87],
    ...                       "target": 0.95})
    >>> allocation_warning(frame, "farms")[:59]
    '⚠ 2 of 3 layers clipped at the maximum sparsity 0.99 (FARMS'
    """
    clipped = clipped_layers(frame, method)
    if not clipped:
        return ""
    total = int((frame["method"] == method).sum())
    return (f"⚠ {len(clipped)} of {total} layers clipped at the maximum sparsity {DEFAULT_MAX_SPARSITY:g} "
            f"({method_label(method)} alphas): their spread is lost there; lower the target or ε. ")


class _Stale(Exception):
    """A newer generation was requested: stop this run."""


@dataclass(frozen=True)
class _Prepared:
    """A result ready to show: the analysis and its chart rows (spectrum of ``layer``)."""

    analysis: Analysis
    layer: str
    datasets: dict[str, list[dict]]
    table: list[dict]
    notice: str


def _prepare(analysis: Analysis, layer: str | None, notice: str) -> _Prepared:
    """The chart rows and table of ``analysis`` (no Explorer needed: runs on any thread)."""
    datasets, shown = explorer_datasets(analysis, layer)
    return _Prepared(analysis, shown, datasets, table_records(analysis), notice)


class _PartialRun:
    """The layers of a run done so far, as an :class:`Analysis` to show while the rest computes."""

    def __init__(self, params: AnalysisParams) -> None:
        self.params = params
        self.layers: list[str] = []
        self.skipped: list[SkippedLayer] = []
        self.spectra: dict[tuple[str, str], LayerSpectrum] = {}
        self._started = self._shown = time.perf_counter()

    def add(self, name: str, outcome: Any) -> None:
        if isinstance(outcome, SkippedLayer):
            self.skipped.append(outcome)
            return
        for spectrum in outcome:
            self.spectra[(name, spectrum.method)] = spectrum
        self.layers.append(name)

    def due(self, estimate: float) -> bool:
        """Time to show the layers done so far (see PARTIAL_AFTER_S and PARTIAL_EVERY_S)."""
        now = time.perf_counter()
        elapsed = now - self._started
        if not self.layers or max(estimate, elapsed) < PARTIAL_AFTER_S:
            return False
        if now - self._shown < max(PARTIAL_EVERY_S, elapsed / 4):
            return False
        self._shown = now
        return True

    def analysis(self) -> Analysis:
        return Analysis(self.params, list(self.layers), list(self.skipped), dict(self.spectra),
                        time.perf_counter() - self._started)


def _compute_ahead(ref: weakref.ref, generation: int, cancel: threading.Event) -> None:
    """While idle: the results one slider step away, on the background thread, ready to show.

    The Explorer is held only for moments (a dropped one is collected meanwhile, and its finalizer
    sets ``cancel``); the model, while its spectra compute.
    """
    explorer = ref()
    if explorer is None:
        return
    plan = explorer._ahead_plan(generation)
    model, fixed, layer = explorer._model, explorer._fixed, explorer.selected_layer
    del explorer
    for params in plan:
        if cancel.is_set():
            return
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                control = RunControl(cancel, background=True)
                analysis = analyze(model, progress=False, control=control, **params, **fixed)
        except AnalysisCancelled:
            return
        except Exception:
            log.debug("computing %s ahead failed", params, exc_info=True)
            continue
        notice = " ".join(str(w.message) for w in caught if "covers the whole matrix" in str(w.message))
        # the chart rows too, at the background thread's priority
        future = background_pool().submit(_prepare, analysis, layer, notice)
        while not future.done():
            if cancel.wait(0.05):
                future.cancel()
                return
        explorer = ref()
        if explorer is None or not explorer._keep_ahead(generation, params, future.result()):
            return
        del explorer


def _call(ref: weakref.ref, method: str, *args: Any) -> None:
    """A worker job: the Explorer's method if the Explorer still exists (held only while it runs)."""
    explorer = ref()
    if explorer is not None:
        getattr(explorer, method)(*args)


def _layers_text(analysis: Analysis) -> str:
    skipped = f", {len(analysis.skipped)} skipped" if analysis.skipped else ""
    return f"{len(analysis.layers)} layers{skipped}"


def _farms_bytes(analysis: Analysis) -> int:
    """Bytes of the FARMS arrays a result holds (the standard ESD's are shared by all results)."""
    return sum(s.eigenvalues.nbytes + (0 if s.window_eigenvalues is None else s.window_eigenvalues.nbytes)
               for (_, method), s in analysis.spectra.items() if method == "farms")


def _same_spectra(a: Analysis, b: Analysis) -> bool:
    """The same layers with the same eigenvalues (the cache returns the very same arrays)."""
    if a.layers != b.layers or a.spectra.keys() != b.spectra.keys():
        return False
    return all(x.eigenvalues is y.eigenvalues or np.array_equal(x.eigenvalues, y.eigenvalues)
               for x, y in ((a.spectra[k], b.spectra[k]) for k in a.spectra))


def _layer_shapes(model: Any, fixed: dict[str, Any]) -> list[tuple[str, int, int, int]]:
    """(name, rows, cols, num_slices) of every analysable layer, in model order."""
    include, exclude = fixed.get("include"), fixed.get("exclude")
    include = [include] if isinstance(include, str) else include
    exclude = [exclude] if isinstance(exclude, str) else exclude
    return [(item.name, item.rows, item.cols, item.num_slices)
            for item in iter_layers(model, include=include, exclude=exclude) if isinstance(item, LayerMatrix)]


def _short_sides(model: Any, fixed: dict[str, Any]) -> list[int]:
    """The short side of every analysable layer, in model order."""
    return [min(rows, cols) for _, rows, cols, _ in _layer_shapes(model, fixed)]


def default_sweep_windows(sides: list[int], current: int | None = None,
                          count: int = SWEEP_WINDOW_COUNT) -> list[int]:
    """Window sizes for a sweep: ``count`` values, log-spaced up to the smallest large layer.

    "Large" layers have a short side of at least a quarter of the largest one (embeddings and
    heads of a transformer count, tiny projections do not); the largest window is the
    smallest such side, so every window samples every large layer. The current window is
    added when it is not already there.

    Examples
    --------
    >>> default_sweep_windows([384, 384, 384, 2], current=100)
    [24, 48, 96, 100, 192, 384]
    """
    large = [s for s in sides if s >= max(sides, default=0) / 4]
    if not large:
        return [current] if current else []
    top = min(large)
    low = max(2, min(8, top), top // 16)
    windows = {round(float(v)) for v in np.geomspace(low, top, count)} if top > low else {top}
    if current and 2 <= current <= max(sides):
        windows.add(int(current))
    return sorted(windows)


def _check_windows(windows: Any) -> list[int]:
    values = [windows] if isinstance(windows, int) else list(windows)
    if not values or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 2 for w in values):
        raise ValueError(f"windows must be whole numbers >= 2, e.g. [32, 64, 128]; got {windows!r}")
    return sorted({int(w) for w in values})


def _check_alphas_from(method: str) -> None:
    if method not in ALLOCATION_SOURCES:
        raise ValueError(f"alphas_from must be one of {', '.join(map(repr, ALLOCATION_SOURCES))}; "
                         f"got {method!r}")
