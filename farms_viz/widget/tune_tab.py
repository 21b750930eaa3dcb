"""The Explorer's Tune tab: :func:`farms_viz.tune` in the background, its rows drawn as they come.

Given ``evaluate=`` (and ``calibration=`` for Wanda and SparseGPT), the Explorer prunes a working
copy of the model at every setting of the tab (pruner, target, windows, epsilons; the grid, Q and
fit are the Explorer's current ones) and measures it. The run has its own worker thread
(:class:`.runner.Runner`): moving a slider while it runs neither waits for it nor stops it, and a new
run stops the one before. Rows reach the charts at most every ``UPDATE_EVERY_S`` seconds; Stop
takes effect after the setting being measured. "Apply best" sets the sliders (window, grid, Q,
fit) and the allocation (target, epsilon, groups, whose alphas) to the best row's setting.

:class:`TuneTab` is a mixin of :class:`~farms_viz.widget.explorer.Explorer`: its traits are the
tab's state, and it uses the Explorer's lock, ``_set`` and ``_schedule``.
"""

from __future__ import annotations

import functools
import logging
import math
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import traitlets as t
from torch import nn

from ..charts.datasets import records, split_rows
from ..charts.style import METHOD_LABELS
from ..charts.tune import tune_metric_vs_epsilon, tune_metric_vs_window
from ..decisions.calibration import reiterable
from ..decisions.inputs import check_fraction
from ..decisions.prunable import prunable_layers
from ..decisions.tune import DEFAULT_EPSILONS, PRUNERS, best, tune, tune_frame
from .runner import Runner

log = logging.getLogger(__name__)

# One line saying how to get the tab (shown in it, and raised by run_tune without evaluate).
TUNE_HOW_TO = "farms_viz.Explorer(model, evaluate=fn, calibration=batches)  # fn(pruned_model) -> float"
# farms_viz.tune's keyword arguments the Explorer passes on (tune_options=, or run_tune(**options)).
TUNE_OPTIONS = ("methods", "windows_per_dim", "strides", "q", "fit", "groups", "layers", "higher_is_better",
                "pruner_options")
# The front end's messages handled here.
TUNE_MESSAGES = ("run_tune", "stop_tune", "apply_best_tune")
# Rows measured meanwhile reach the charts at most this often (each update rebuilds two chart specs).
UPDATE_EVERY_S = 0.5
TUNE_WINDOW_COUNT = 4
# The columns of the tab's table, in order.
TABLE_COLUMNS = ["method", "window", "windows_per_dim", "stride", "q", "epsilon", "target", "metric", "sparsity",
                 "seconds", "best", "error"]


def metric_name(evaluate: Callable | None) -> str:
    """The name the charts give the metric: ``evaluate``'s own name, or "metric".

    Examples
    --------
    >>> def perplexity(model): ...
    >>> metric_name(perplexity), metric_name(lambda model: 0.0)
    ('perplexity', 'metric')
    """
    name = getattr(evaluate, "__name__", "")
    return name if name.isidentifier() else "metric"


def setting_text(row: Mapping[str, Any]) -> str:
    """One row's setting in words: "FARMS, ε 0.2, window 32 (k 4, Q 1, median fit), target 0.7".

    Examples
    --------
    >>> setting_text({"method": "uniform", "target": 0.5})
    'uniform, target 0.5'
    >>> setting_text({"method": "farms", "epsilon": 0.2, "window": 32, "windows_per_dim": 4, "stride": None,
    ...               "q": 1.0, "fit": "median", "target": 0.7})
    'FARMS, ε 0.2, window 32 (k 4, Q 1, median fit), target 0.7'
    """
    method = row["method"]
    if method == "uniform":
        return f"uniform, target {float(row['target']):g}"
    text = f"{METHOD_LABELS.get(method, method)}, ε {float(row['epsilon']):g}"
    if method == "farms":
        grid = f"k {int(row['windows_per_dim'])}" if _missing(row.get("stride")) else f"stride {int(row['stride'])}"
        text += f", window {int(row['window'])} ({grid}, Q {float(row['q']):g}, {row['fit']} fit)"
    return f"{text}, target {float(row['target']):g}"


def _missing(value: Any) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and math.isnan(value))


def _check_windows(value: Any) -> list[int]:
    values = [value] if isinstance(value, (int, np.integer)) else list(value)
    if not values or any(isinstance(w, bool) or not isinstance(w, (int, np.integer)) or w < 2 for w in values):
        raise ValueError(f"tune windows must be whole numbers >= 2, e.g. [32, 64, 128]; got {value!r}")
    return sorted({int(w) for w in values})


def _check_epsilons(value: Any) -> list[float]:
    values = [value] if isinstance(value, (int, float, np.number)) and not isinstance(value, bool) else list(value)
    if not values:
        raise ValueError("tune epsilons is empty: give at least one spread, e.g. [0.1, 0.2, 0.3]")
    return sorted({check_fraction("tune epsilons", v, "the allocation's spread, e.g. 0.2") for v in values})


class TuneTab(t.HasTraits):
    """The Tune tab's state and API, mixed into the Explorer (see the module docstring).

    Attributes
    ----------
    tune_pruner : "magnitude", "wanda" or "sparsegpt" (the last two need ``calibration=``).
    tune_target : the mean sparsity every setting prunes to.
    tune_windows : the FARMS window sizes m tried (default: from the prunable layers' sizes).
    tune_epsilons : the allocation spreads tried (default 0.1, 0.2, 0.3).
    tune_status : read-only; what the tune is doing or did.
    """

    if TYPE_CHECKING:  # what the Explorer provides
        _model: Any
        _layers: list[tuple[str, int, int, int]]
        _lock: Any
        _specs: Any
        _datasets: Any
        window: Any
        q: Any
        windows_per_dim: Any
        stride: Any
        fit: Any
        target: Any

        def _set(self, **values: Any) -> None: ...

        def _schedule(self, reason: str, force: bool = False) -> None: ...

        def hold_sync(self) -> Any: ...

    tune_pruner = t.Enum(PRUNERS, "magnitude").tag(sync=True)
    tune_target = t.Float(0.7).tag(sync=True)
    tune_windows = t.List(t.Int()).tag(sync=True)
    tune_epsilons = t.List(t.Float()).tag(sync=True)
    tune_status = t.Unicode("", read_only=True).tag(sync=True)
    _tune_running = t.Bool(False).tag(sync=True)
    _tune = t.Dict().tag(sync=True)

    @t.validate("tune_target", "tune_windows", "tune_epsilons")
    def _valid_setting(self, proposal: dict) -> Any:
        check = {"tune_target": lambda v: check_fraction("tune_target", v, "the mean sparsity, e.g. 0.7"),
                 "tune_windows": _check_windows, "tune_epsilons": _check_epsilons}[proposal["trait"].name]
        try:
            return check(proposal["value"])
        except ValueError as exc:
            raise t.TraitError(str(exc)) from None

    # ----- set up (called by the Explorer's __init__) ---------------------------------------
    def _init_tune(self, evaluate: Callable | None, calibration: Any, options: Mapping[str, Any] | None,
                   default_windows: Callable[[list[int], int], list[int]]) -> None:
        if evaluate is not None and not callable(evaluate):
            raise TypeError("evaluate must be a callable evaluate(pruned_model) -> float (e.g. the perplexity on "
                            f"held-out text); got {type(evaluate).__name__}")
        if evaluate is not None and not isinstance(self._model, nn.Module):
            raise TypeError("evaluate= needs the model itself (an nn.Module) to prune and measure; the Explorer got "
                            f"a {type(self._model).__name__}")
        if evaluate is None and (calibration is not None or options):
            raise TypeError(f"calibration= and tune_options= are for the Tune tab, which needs evaluate=: "
                            f"{TUNE_HOW_TO}")
        self._tune_options = self._checked_options(options or {})
        self._evaluate: Callable[[nn.Module], float] | None = evaluate
        self._calibration = None if calibration is None else reiterable(calibration)
        self._tune_runner = Runner("farms_viz-tune")
        weakref.finalize(self, self._tune_runner.close)  # holds the runner, not the Explorer
        self._tune_generation = 0
        self._tune_frame: pd.DataFrame | None = None
        self._tune_failure = ""
        self._tune_panels: tuple[dict, dict] = ({}, {})  # (specs, data sets) on screen
        sides = {name: min(rows, cols) for name, rows, cols, _ in self._layers}
        prunable = prunable_layers(self._model)[0] if isinstance(self._model, nn.Module) else []
        chosen = [sides[name] for name in prunable if name in sides] or list(sides.values())
        with self.hold_trait_notifications():
            self.tune_pruner = "magnitude" if self._calibration is None else "wanda"
            self.tune_target = self.target
            self.tune_windows = default_windows(chosen, self.window) or [self.window]
            self.tune_epsilons = list(DEFAULT_EPSILONS)
        available = evaluate is not None
        self._set(tune_status=("not run yet: 'run tune' prunes and measures every setting, in the background"
                               if available else "needs evaluate= (see above)"),
                  _tune=self._tune_state(available=available))

    def _tune_state(self, **values: Any) -> dict:
        base = {"available": self._evaluate is not None, "how_to": TUNE_HOW_TO,
                "calibration": self._calibration is not None, "pruners": list(PRUNERS),
                "metric": metric_name(self._evaluate),
                "higher_is_better": bool(self._tune_options.get("higher_is_better", False)),
                "done": 0, "planned": 0, "rows": [], "best": {}, "failed": False, "applied": "", "error": ""}
        return {**base, **dict(getattr(self, "_tune", None) or {}), **values}

    @staticmethod
    def _checked_options(options: Mapping[str, Any]) -> dict[str, Any]:
        unknown = sorted(set(options) - set(TUNE_OPTIONS))
        if unknown:
            raise TypeError(f"unknown tune option(s) {unknown}: the Explorer passes on {', '.join(TUNE_OPTIONS)} to "
                            "farms_viz.tune (pruner, target, windows and epsilons are the tab's own: "
                            "tune_pruner, tune_target, tune_windows, tune_epsilons)")
        if "higher_is_better" in options and not isinstance(options["higher_is_better"], (bool, np.bool_)):
            raise TypeError(f"higher_is_better must be True or False; got {options['higher_is_better']!r}")
        return dict(options)

    # ----- public API ------------------------------------------------------------------------
    def run_tune(self, *, pruner: str | None = None, target: float | None = None, windows: Any = None,
                 epsilons: Any = None, **options: Any) -> None:
        """Prune and measure every setting of the Tune tab, in the background (:func:`farms_viz.tune`).

        Parameters
        ----------
        pruner, target, windows, epsilons : set ``tune_pruner``, ``tune_target``, ``tune_windows``,
            ``tune_epsilons`` first (what the tab's fields do).
        **options : other :func:`farms_viz.tune` arguments for this run (methods, windows_per_dim,
            strides, q, fit, groups, layers, higher_is_better, pruner_options), over the
            Explorer's ``tune_options``. By default the grid (k or stride), Q and fit are the
            Explorer's current ones.

        A run in progress is stopped first. Read the result with ``tune_results`` (waits for it);
        ``stop_tune()`` ends it after the setting being measured. The model is never modified.
        """
        if self._evaluate is None:
            raise RuntimeError(f"the Tune tab needs evaluate=: {TUNE_HOW_TO}")
        options = {**self._tune_options, **self._checked_options(options)}
        with self.hold_trait_notifications():
            if pruner is not None:
                self.tune_pruner = pruner
            if target is not None:
                self.tune_target = target
            if windows is not None:
                self.tune_windows = _check_windows(windows)
            if epsilons is not None:
                self.tune_epsilons = _check_epsilons(epsilons)
        if self.tune_pruner != "magnitude" and self._calibration is None:
            raise ValueError(f"pruner {self.tune_pruner!r} needs calibration inputs: "
                             "Explorer(model, evaluate=fn, calibration=batches), or tune_pruner='magnitude'")
        grid: dict[str, Any] = {}
        if "windows_per_dim" not in options and "strides" not in options:
            grid = ({"strides": [self.stride]} if self.stride is not None
                    else {"windows_per_dim": [self.windows_per_dim]})
        settings = {"pruner": self.tune_pruner, "target": self.tune_target, "windows": list(self.tune_windows),
                    "epsilons": list(self.tune_epsilons), "q": self.q, "fit": self.fit, **grid, **options}
        with self._lock:
            self._tune_generation += 1
            generation = self._tune_generation
            self._tune_failure = ""
            self._tune_frame = None  # "apply best" waits for this run's rows
            self._tune_panels = (self._tune_panels[0], {"tune": []} if self._tune_panels[0] else {})
            with self.hold_sync():
                if self._tune_panels[0]:
                    self._datasets = {**self._datasets, "tune": []}  # the charts wait for this run's rows
                self._set(tune_status="tune: starting", _tune_running=True,
                          _tune=self._tune_state(done=0, planned=0, rows=[], best={}, failed=False, error="",
                                                 applied="",
                                                 higher_is_better=bool(settings.get("higher_is_better", False))))
        self._tune_runner.submit(functools.partial(_call_tune, weakref.ref(self), generation, settings), "user")

    def stop_tune(self) -> None:
        """Stop the tune in progress after the setting being measured; the rows so far stay."""
        if not self._tune_running:
            return
        self._tune_runner.cancel()
        self._set(tune_status=f"{self.tune_status} · stopping after the setting being measured")

    @property
    def tune_results(self) -> pd.DataFrame | None:
        """The latest tune (a :func:`farms_viz.tune` DataFrame), or None (waits for a run in progress).

        A run that failed gives the rows measured before the error, with a ``RuntimeWarning`` naming it.
        """
        self._tune_runner.wait()
        if self._tune_failure:
            warnings.warn(f"the last tune failed: {self._tune_failure}; the rows measured before are returned",
                          RuntimeWarning, stacklevel=2)
        return self._tune_frame

    def apply_best_tune(self, method: str | None = None, *, wait: bool = True) -> pd.Series:
        """Set the sliders and the allocation to the best tune setting; returns its row.

        Parameters
        ----------
        method : the best of all rows (None), or of one allocation's: "farms", "esd" or "uniform".
        wait : wait for a tune in progress (False: the best of the rows measured so far).

        A FARMS row sets window, windows_per_dim or stride, q and fit; an ESD or FARMS row sets
        target, epsilon, groups and ``alphas_from``; a uniform row sets target and epsilon = 0
        (every layer at the target). The analysis then runs for the new settings, whatever its
        estimated cost (the button asked for it).
        """
        if wait:
            self._tune_runner.wait()
        with self._lock:
            frame = self._tune_frame
        if frame is None or frame.empty:
            raise RuntimeError("no tune results yet: run the tune first (run_tune(), or the tab's 'run tune')")
        row = best(frame, method, target=float(frame["target"].iloc[0]) if frame["target"].nunique() > 1 else None)
        chosen = row["method"]
        values: dict[str, Any] = {"target": float(row["target"])}
        if chosen == "uniform":
            values["epsilon"] = 0.0
        else:
            values.update(epsilon=float(row["epsilon"]), alphas_from=chosen, fit=str(row["fit"]),
                          groups=row["groups"] == "blocks")
        if chosen == "farms":
            stride = None if _missing(row["stride"]) else int(row["stride"])
            values.update(window=int(row["window"]), q=float(row["q"]), stride=stride)
            if stride is None:
                values["windows_per_dim"] = int(row["windows_per_dim"])
        self._set(_tune=self._tune_state(applied=f"applied: {setting_text(row)} ({self._tune['metric']} "
                                                 f"{float(row['metric']):.4g})", error=""))
        with self.hold_trait_notifications():
            for name, value in values.items():
                setattr(self, name, value)
        self._schedule("apply best tune setting", force=True)
        return row

    # ----- the run -----------------------------------------------------------------------------
    def _tune_job(self, generation: int, settings: dict[str, Any], cancel: threading.Event) -> None:
        rows: list[dict] = []
        started = time.perf_counter()
        shown = [started]
        higher = bool(settings.get("higher_is_better", False))

        def current() -> bool:
            return generation == self._tune_generation

        def on_row(row: dict) -> None:
            rows.append(row)
            now = time.perf_counter()
            if now - shown[0] >= UPDATE_EVERY_S:
                shown[0] = now
                self._show_tune(generation, tune_frame(rows, higher_is_better=higher))

        def progress(done: int, total: int, label: str) -> None:
            if current() and not cancel.is_set():
                self._set(tune_status=f"tune: {done}/{total} settings, {time.perf_counter() - started:.1f} s "
                                      f"(last: {label})", _tune=self._tune_state(done=done, planned=total))

        failure = ""
        assert self._evaluate is not None  # run_tune checked
        try:
            frame = tune(self._model, self._evaluate, calibration=self._calibration, progress=progress,
                         should_stop=cancel.is_set, on_row=on_row, **settings)
        except Exception as exc:  # evaluate's own errors included: shown in the tab, the widget stays usable
            log.debug("tune failed", exc_info=True)
            failure = f"{type(exc).__name__}: {exc}"
            frame = tune_frame(rows, higher_is_better=higher)
        seconds = time.perf_counter() - started
        self._show_tune(generation, frame)
        with self._lock:
            if not current():
                return  # a newer run replaced this one: it says what it does
            self._tune_frame, self._tune_failure = frame, failure
            if failure:
                status = f"tune failed after {len(rows)} settings: {failure}"
            elif frame.attrs.get("stopped"):
                status = (f"stopped after {len(frame)} of {frame.attrs.get('planned', '?')} settings "
                          f"({seconds:.1f} s); the rows so far are drawn")
            else:
                status = f"{len(frame)} settings pruned and measured in {seconds:.1f} s"
            self._set(tune_status=status, _tune_running=False,
                      _tune=self._tune_state(failed=bool(failure), error=failure or self._tune["error"],
                                             done=len(frame), planned=int(frame.attrs.get("planned", len(frame)))))

    def _show_tune(self, generation: int, frame: pd.DataFrame) -> None:
        """Draw ``frame`` (all rows so far) in the tab, if this run is still the current one."""
        if generation != self._tune_generation:
            return
        metric = self._tune["metric"]
        failure = ""
        try:  # outside the lock: the Explorer's own work does not wait for the charts
            specs, datasets = tune_panels(frame, metric)
        except Exception as exc:  # a chart that cannot be drawn must not end the run
            log.debug("tune charts failed", exc_info=True)
            specs, datasets = {}, {}
            failure = f"the tune charts failed: {type(exc).__name__}: {exc}"
        table, texts = records(frame[TABLE_COLUMNS], digits=5), best_texts(frame, metric)
        with self._lock:
            if generation != self._tune_generation:
                return
            if failure:
                self._set(_tune=self._tune_state(error=failure))
            if specs:
                self._tune_panels = (specs, datasets)
            with self.hold_sync():
                if specs:
                    self._specs = {**self._specs, **specs}
                    self._datasets = {**self._datasets, **datasets}
                self._tune_frame = frame
                self._set(_tune=self._tune_state(rows=table, best=texts))

    def _keep_tune_panels(self, specs: dict, datasets: dict) -> None:
        """(Under the lock.) The Explorer publishes new results: the tune's charts stay."""
        tune_specs, tune_rows = self._tune_panels
        specs.update(tune_specs)
        datasets.update(tune_rows)

    def _on_tune_message(self, kind: str, content: Mapping[str, Any]) -> None:
        """A Tune tab button: its errors are shown in the tab."""
        try:
            if kind == "run_tune":
                # the settings travel with the request: ipywidgets may hold back a state update while
                # an earlier one is in flight, and a custom message would overtake it
                self.run_tune(**{name: content[name] for name in ("pruner", "target", "windows", "epsilons")
                                 if name in content})
            elif kind == "stop_tune":
                self.stop_tune()
            else:
                self.apply_best_tune(content.get("method") or None, wait=False)
        except Exception as exc:  # shown in the tab: the kernel would swallow it
            self._set(_tune=self._tune_state(error=f"{type(exc).__name__}: {exc}"))

    def _close_tune(self) -> None:
        runner = getattr(self, "_tune_runner", None)
        if runner is not None:
            runner.close()


def tune_panels(frame: pd.DataFrame, metric: str) -> tuple[dict, dict[str, list[dict]]]:
    """The Tune tab's chart specs (rows left out) and rows; empty while no row has a finite metric.

    Both charts read the data set "tune"; the epsilon chart's rows carry one column more (its
    lines), so its rows are the ones sent.
    """
    if not np.isfinite(frame["metric"].astype(float)).any():
        return {}, {}
    window_spec, window_rows = split_rows(tune_metric_vs_window(frame, metric=metric, height=200))
    epsilon_spec, epsilon_rows = split_rows(tune_metric_vs_epsilon(frame, metric=metric, height=200))
    return {"tune_window": window_spec, "tune_epsilon": epsilon_spec}, {**window_rows, **epsilon_rows}


def best_texts(frame: pd.DataFrame, metric: str) -> dict[str, str]:
    """What "apply best" would set, for all rows ("all") and for each allocation that has rows.

    Examples
    --------
    >>> frame = pd.DataFrame({"method": ["uniform", "esd"], "target": 0.5, "epsilon": [None, 0.2],
    ...                       "metric": [2.0, 1.5]})
    >>> best_texts(frame, "loss")["all"]
    'standard ESD, ε 0.2, target 0.5 (loss 1.5)'
    """
    texts = {}
    for method in (None, "farms", "esd", "uniform"):
        try:
            row = best(frame, method, target=float(frame["target"].iloc[0]) if len(frame) else None)
        except (ValueError, IndexError):
            continue
        texts[method or "all"] = f"{setting_text(row)} ({metric} {float(row['metric']):.4g})"
    return texts


def _call_tune(ref: weakref.ref, generation: int, settings: dict[str, Any], cancel: threading.Event) -> None:
    """The tune runner's job: the Explorer's run if the Explorer still exists."""
    explorer = ref()
    if explorer is not None:
        explorer._tune_job(generation, settings, cancel)
