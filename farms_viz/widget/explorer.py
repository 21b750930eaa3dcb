"""``Explorer``: the JupyterLab widget. Sliders re-run FARMS off the kernel's main thread.

Traits are the API: setting ``explorer.window = 64`` from Python does what moving the
slider does. Each change bumps a generation id and hands one job to a single worker
thread; a job for an old generation stops at the next layer and never writes results.
The engine's spectrum cache makes the standard ESD free when only FARMS parameters
change, so a slider move recomputes FARMS alone.

The allocation panel (target sparsity, epsilon, grouping) is recomputed on the kernel's
main thread from the current analysis: no re-analysis, a few milliseconds. The sweep panel
(alpha against window size) runs on the same worker, on demand, and a FARMS parameter
change stops it.
"""

from __future__ import annotations

import json
import logging
import threading
import time
import warnings
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anywidget
import numpy as np
import traitlets as t

from .._deprecation import warn_renamed
from ..charts.allocation import clipped_layers
from ..charts.style import method_label
from ..decisions.allocation import DEFAULT_MAX_SPARSITY, allocation_frame, sparsity_from_analysis
from ..engine.analysis import Analysis, analyze
from ..engine.matrices import LayerMatrix, iter_layers
from ..engine.params import DEFAULT_FIT, DEFAULT_Q, DEFAULT_WINDOW, DEFAULT_WINDOWS_PER_DIM, AnalysisParams
from ..engine.sweep import sweep
from . import export
from .contract import ALLOCATION_SOURCES, MESSAGES, SPECTRUM_METHODS, SPECTRUM_UNITS, slider_limits
from .state import (
    allocation_datasets,
    allocation_layers,
    explorer_datasets,
    explorer_specs,
    sweep_datasets,
    table_records,
)

log = logging.getLogger(__name__)
# At most one progress message to the front end per this many seconds.
PROGRESS_INTERVAL_S = 0.25

STATIC = Path(__file__).parent / "static"
_FARMS_TRAITS = ("window", "q", "windows_per_dim", "stride", "fit")
_FIXED_PARAMS = ("method", "conv_norm", "device", "include", "exclude")
_ALLOCATION_TRAITS = ("target", "epsilon", "groups", "alphas_from")
_VIEW_TRAITS = ("spectrum_units", "spectrum_methods")  # how the spectrum is drawn: no recomputation
# Old trait names, kept working with a DeprecationWarning.
_RENAMED_TRAITS = {"target_sparsity": "target", "grouping": "groups", "allocation_method": "alphas_from"}
SWEEP_WINDOW_COUNT = 5


class _Stale(Exception):
    """A newer generation was requested: stop this run."""


class Explorer(anywidget.AnyWidget):
    """Standard ESD and FARMS of a live model, side by side, with sliders that re-run FARMS.

    Parameters
    ----------
    model : an ``nn.Module`` or a state dict. Read, never modified; ``refresh()`` re-reads it.
    **analyze_params : any :func:`farms_viz.analyze` parameter (window, q, windows_per_dim,
        stride, fit, conv_norm, device, include, exclude). ``progress`` is the widget's own.
        The allocation traits (target, epsilon, groups, alphas_from) may be given here too.

    Attributes
    ----------
    window, q, windows_per_dim, stride, fit : the FARMS parameters (synced with the controls).
    selected_layer : the layer whose spectrum is shown (click any chart or table row).
    status, progress, error : read-only; what the widget is doing, 0..1, the last error.
    target, epsilon, groups : the allocation (docs/spec.md section 7): parameter-weighted
        mean sparsity, spread of the ratios, one ratio per transformer block (True).
    alphas_from : "farms" (default) or "esd": whose alphas ``allocation`` uses.
    allocation_path : where the "save JSON" button writes ``allocation``.
    sweep_windows : the windows the "run sweep" button tries (default: from the layer sizes).
    sweep_status : read-only; what the sweep is doing or did.
    spectrum_units : "normalised" (default: each method's eigenvalues divided by their mean, so
        the standard ESD and FARMS share one axis) or "raw"; ``spectrum_methods``: "both",
        "esd" or "farms". How the spectrum is drawn; nothing is recomputed.

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

    def __init__(self, model: Any, **analyze_params: Any) -> None:
        analyze_params.pop("progress", None)
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
        self._model = model
        self._fixed = analyze_params
        self._lock = threading.RLock()
        self._spectrum_layer: str | None = None
        self._generation = 0
        self._analysis: Analysis | None = None
        self._future: Future | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="farms_viz")
        self._started = 0.0
        self._sweep_frame = None
        self._sweep_params: dict[str, Any] | None = None
        super().__init__(window=params.window, q=params.q, windows_per_dim=params.windows_per_dim,
                         stride=params.stride, fit=params.fit, **allocation)
        sides = _short_sides(model, self._fixed)
        self._limits = slider_limits(sides)
        self.sweep_windows = default_sweep_windows(sides, params.window)
        self._set(sweep_status="not run yet: 'run sweep' fits FARMS once per window size, in the background")
        self.observe(self._on_params, names=list(_FARMS_TRAITS))
        self.observe(self._on_allocation, names=list(_ALLOCATION_TRAITS))
        self.observe(self._on_selected, names=["selected_layer"])
        self.on_msg(self._on_custom_message)
        self._schedule("analysing")

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

    def wait(self, timeout: float | None = None) -> Analysis | None:
        """Wait until the queued runs have finished; return the latest analysis.

        Parameters
        ----------
        timeout : seconds to wait at most (None: no limit).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            future = self._future
            if future is not None:
                remaining = None if deadline is None else max(0.0, deadline - time.monotonic())
                future.exception(timeout=remaining)
            if future is self._future:
                return self._analysis

    def refresh(self) -> None:
        """Re-read the weights (e.g. after training steps) and recompute both methods.

        Unchanged layers come from the cache; changed ones are recomputed.
        """
        self._schedule("re-reading the weights")

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
        self._set(sweep_status=f"sweep of {len(windows)} windows: queued", _sweep_running=True)
        self._future = self._executor.submit(self._sweep_job, generation, params, windows)

    @property
    def sweep_results(self):
        """The latest sweep (a :func:`farms_viz.sweep` DataFrame), or None (waits for a run)."""
        self.wait()
        return self._sweep_frame

    def save_html(self, path: str | Path) -> Path:
        """Write the current view as one self-contained offline HTML file."""
        return export.save_html(self._require_analysis(), path, selected_layer=self.selected_layer,
                                spectrum_units=self.spectrum_units, spectrum_methods=self.spectrum_methods)

    def save_png(self, path: str | Path) -> Path:
        """Write every chart of the current view as one PNG image."""
        return export.save_png(self._require_analysis(), path, selected_layer=self.selected_layer,
                               spectrum_units=self.spectrum_units, spectrum_methods=self.spectrum_methods)

    def close(self) -> None:
        """Close the widget and stop its worker thread."""
        if not hasattr(self, "_executor"):  # refused in __init__, before the worker existed
            return
        with self._lock:
            self._generation += 1
        self._executor.shutdown(wait=False, cancel_futures=True)
        super().close()

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

    def _on_custom_message(self, _widget: Any, content: Any, _buffers: Any) -> None:
        kind = content.get("type") if isinstance(content, dict) else None
        handlers: dict[str, Callable[[], Any]] = {"refresh": self.refresh, "save_allocation": self.save_allocation,
                                                  "run_sweep": self.run_sweep}
        assert tuple(handlers) == MESSAGES  # the contract lists exactly the messages handled here
        if kind not in handlers:
            log.debug("ignored front-end message %r", content)
            return
        try:
            handlers[kind]()
        except Exception as exc:  # shown in the widget: the kernel would swallow it
            self._set(error=f"{type(exc).__name__}: {exc}")

    def _schedule(self, reason: str) -> None:
        try:
            AnalysisParams(**self._params())
        except ValueError as exc:  # a value the engine refuses: say so, keep the last results
            self._set(error=str(exc), status="not run: invalid parameters")
            return
        with self._lock:
            self._generation += 1
            generation = self._generation
        self._started = time.perf_counter()
        self._set(status=f"{reason}: queued", progress=0.0, _running=True)
        self._future = self._executor.submit(self._run, generation, self._params())

    def _current(self, generation: int) -> bool:
        return generation == self._generation

    def _run(self, generation: int, params: dict[str, Any]) -> None:
        if not self._current(generation):
            return
        started = time.perf_counter()
        last_sent = [started]

        def progress(done: int, total: int, layer: str) -> None:
            if not self._current(generation):
                raise _Stale
            now = time.perf_counter()
            # a message per layer would keep the browser re-rendering while the kernel computes
            if now - last_sent[0] < PROGRESS_INTERVAL_S and done < total:
                return
            last_sent[0] = now
            self._set(progress=done / total, status=f"computing FARMS: {done}/{total} layers, {now - started:.1f} s")

        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                analysis = analyze(self._model, progress=progress, **params, **self._fixed)
        except _Stale:
            return
        except Exception as exc:  # shown in the widget: the kernel would swallow it
            log.debug("analysis failed", exc_info=True)
            with self._lock:
                if self._current(generation):
                    self._set(error=f"{type(exc).__name__}: {exc}", status="failed; change a value to retry",
                              progress=0.0, _running=False)
            return
        notice = " ".join(str(w.message) for w in caught if "covers the whole matrix" in str(w.message))
        with self._lock:
            if not self._current(generation):
                return
            self._analysis = analysis
            self._publish(analysis, notice, time.perf_counter() - started)

    def _publish(self, analysis: Analysis, notice: str, seconds: float) -> None:
        layer = self.selected_layer if self.selected_layer in analysis.layers else None
        specs = dict(explorer_specs(len(analysis.layers)))
        datasets, layer = explorer_datasets(analysis, layer)
        allocation = self._allocation_state(analysis)
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
        self._spectrum_layer = layer
        with self.hold_sync():
            if specs != self._specs:
                self._specs = specs
            self._datasets = datasets
            self._table = table_records(analysis)
            self._notice = notice
            if self.selected_layer != layer:
                self.selected_layer = layer
            skipped = f", {len(analysis.skipped)} skipped" if analysis.skipped else ""
            self._set(status=f"{len(analysis.layers)} layers{skipped} in {seconds:.2f} s", progress=1.0,
                      error=allocation[2] if allocation is not None else "", _running=False)
            self._mark_stale_sweep()

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
        with self._lock:
            analysis = self._analysis
            if analysis is None:
                return
            state = self._allocation_state(analysis)
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
    def _sweep_job(self, generation: int, params: dict[str, Any], windows: list[int]) -> None:
        if not self._current(generation):
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
                          fit=params["fit"], esd=True, progress=progress, **options)
        except _Stale:
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
        with self._lock:
            analysis = self._analysis
            if analysis is None or change["new"] not in analysis.layers or change["new"] == self._spectrum_layer:
                return
            datasets, self._spectrum_layer = explorer_datasets(analysis, change["new"], only_spectrum=True)
            self._datasets = {**self._datasets, **datasets}

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


def _short_sides(model: Any, fixed: dict[str, Any]) -> list[int]:
    """The short side of every analysable layer, in model order."""
    include, exclude = fixed.get("include"), fixed.get("exclude")
    include = [include] if isinstance(include, str) else include
    exclude = [exclude] if isinstance(exclude, str) else exclude
    return [min(item.rows, item.cols) for item in iter_layers(model, include=include, exclude=exclude)
            if isinstance(item, LayerMatrix)]


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
