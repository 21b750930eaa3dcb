"""``Explorer``: the JupyterLab widget. Sliders re-run FARMS off the kernel's main thread.

Traits are the API: setting ``explorer.window = 64`` from Python does what moving the
slider does. Each change bumps a generation id and hands one job to a single worker
thread; a job for an old generation stops at the next layer and never writes results.
The engine's spectrum cache makes the standard ESD free when only FARMS parameters
change, so a slider move recomputes FARMS alone.
"""

from __future__ import annotations

import logging
import threading
import time
import warnings
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import anywidget
import traitlets as t

from . import export
from ._params import FITS, AnalysisParams
from .analysis import Analysis, analyze
from .matrices import LayerMatrix, iter_layers
from .serialization import explorer_datasets, explorer_specs, table_records

log = logging.getLogger(__name__)

STATIC = Path(__file__).parent / "static"
_FARMS_TRAITS = ("window", "q", "windows_per_dim", "stride", "fit")
_FIXED_PARAMS = ("method", "conv_norm", "device", "include", "exclude")


class _Stale(Exception):
    """A newer generation was requested: stop this run."""


class Explorer(anywidget.AnyWidget):
    """Standard ESD and FARMS of a live model, side by side, with sliders that re-run FARMS.

    Parameters
    ----------
    model : an ``nn.Module`` or a state dict. Read, never modified; ``refresh()`` re-reads it.
    **analyze_params : any :func:`farms_viz.analyze` parameter (window, q, windows_per_dim,
        stride, fit, conv_norm, device, include, exclude). ``progress`` is the widget's own.

    Attributes
    ----------
    window, q, windows_per_dim, stride, fit : the FARMS parameters (synced with the controls).
    selected_layer : the layer whose spectrum is shown (click any chart or table row).
    status, progress, error : read-only; what the widget is doing, 0..1, the last error.

    Examples
    --------
    >>> import torch.nn as nn
    >>> explorer = Explorer(nn.Sequential(nn.Linear(128, 64), nn.Linear(64, 128)), window=32)
    >>> explorer.wait().params.window
    32
    >>> explorer.window = 16          # what the slider does
    >>> explorer.wait().params.window
    16
    """

    _esm = STATIC / "widget.js"
    _css = STATIC / "widget.css"

    window = t.Int(100).tag(sync=True)
    q = t.Float(1.0).tag(sync=True)
    windows_per_dim = t.Int(10).tag(sync=True)
    stride = t.Int(None, allow_none=True).tag(sync=True)
    fit = t.Unicode("median").tag(sync=True)
    selected_layer = t.Unicode(None, allow_none=True).tag(sync=True)

    status = t.Unicode("", read_only=True).tag(sync=True)
    progress = t.Float(0.0, read_only=True).tag(sync=True)
    error = t.Unicode("", read_only=True).tag(sync=True)

    _running = t.Bool(False).tag(sync=True)
    _limits = t.Dict().tag(sync=True)
    _specs = t.Dict().tag(sync=True)
    _datasets = t.Dict().tag(sync=True)
    _table = t.List().tag(sync=True)
    _notice = t.Unicode("").tag(sync=True)

    def __init__(self, model: Any, **analyze_params: Any) -> None:
        analyze_params.pop("progress", None)
        unknown = set(analyze_params) - set(_FARMS_TRAITS) - set(_FIXED_PARAMS)
        if unknown:
            raise TypeError(f"Explorer got unknown parameter(s) {sorted(unknown)}; it takes "
                            f"{', '.join(_FARMS_TRAITS + _FIXED_PARAMS)} (as farms_viz.analyze does)")
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
        super().__init__(window=params.window, q=params.q, windows_per_dim=params.windows_per_dim,
                         stride=params.stride, fit=params.fit)
        self._limits = _slider_limits(model, self._fixed)
        self.observe(self._on_params, names=list(_FARMS_TRAITS))
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

    def save_html(self, path: str | Path) -> Path:
        """Write the current view as one self-contained offline HTML file."""
        return export.save_html(self._require_analysis(), path, selected_layer=self.selected_layer)

    def save_png(self, path: str | Path) -> Path:
        """Write every chart of the current view as one PNG image."""
        return export.save_png(self._require_analysis(), path, selected_layer=self.selected_layer)

    def close(self) -> None:
        """Close the widget and stop its worker thread."""
        with self._lock:
            self._generation += 1
        self._executor.shutdown(wait=False, cancel_futures=True)
        super().close()

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
        if isinstance(content, dict) and content.get("type") == "refresh":
            self.refresh()

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

        def progress(done: int, total: int, layer: str) -> None:
            if not self._current(generation):
                raise _Stale
            self._set(progress=done / total,
                      status=f"computing FARMS: {done}/{total} layers, {time.perf_counter() - started:.1f} s")

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
        specs = explorer_specs(len(analysis.layers))
        datasets, layer = explorer_datasets(analysis, layer)
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
                      error="", _running=False)

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


def _slider_limits(model: Any, fixed: dict[str, Any]) -> dict[str, Any]:
    """Bounds of the controls: the window slider reaches the largest layer's short side."""
    include, exclude = fixed.get("include"), fixed.get("exclude")
    include = [include] if isinstance(include, str) else include
    exclude = [exclude] if isinstance(exclude, str) else exclude
    sides = [min(item.rows, item.cols) for item in iter_layers(model, include=include, exclude=exclude)
             if isinstance(item, LayerMatrix)]
    return {"window_min": 2, "window_max": max(sides, default=2), "q_min": 0.1, "q_max": 4.0,
            "windows_per_dim_max": 30, "fits": list(FITS)}
