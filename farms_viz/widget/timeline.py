"""``Explorer(monitor)``: the time view and the step slider of a :class:`~farms_viz.Monitor`.

The Explorer shows one recorded step at a time: its ``step`` trait (the slider) picks the step
whose analysis every other panel (alpha per layer, alpha against aspect ratio, spectrum, table,
allocation) draws. The time view draws the whole history: the mean alpha per method against
step, then every layer's alpha for ``view_method``, the selected layer highlighted and the
shown step marked.

Live: a Monitor listener (called on the Monitor's worker thread when a step is recorded)
keeps that step's analysis and queues one job on the Explorer's worker thread, which sends the
new history rows and, while ``follow_latest`` is on, moves ``step`` to the new step. Moving the
slider (or setting ``step``) to an older step turns ``follow_latest`` off; back on the newest
step, it turns on again.

The FARMS parameters (window, q, windows_per_dim, stride, fit) are the Monitor's, fixed: every
recorded row was computed with them, and the weights of past steps are gone, so the sliders are
disabled and setting one from Python is refused with a note. ``Explorer(monitor.model, ...)``
explores other parameters on the current weights.

The Explorer keeps the analyses (eigenvalues included) of the steps recorded while it exists,
within :data:`KEEP_BYTES` (the oldest go first; the latest is always kept); the history's rows
of every step stay in the time view. A step whose analysis is gone (or a Monitor loaded from a
file) is drawn in the time view only: the slider offers the kept steps.
"""

from __future__ import annotations

import functools
import logging
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

import pandas as pd

from ..charts.datasets import spec_without_rows
from ..charts.timeline import timeline_chart, timeline_datasets
from ..engine.analysis import Analysis
from ..engine.matrices import LayerMatrix, iter_layers
from ..tracking.monitor import Monitor

log = logging.getLogger(__name__)

# Bytes of eigenvalues the Explorer keeps for scrubbing back (the latest step's always).
KEEP_BYTES = 256 * 2**20
# The parameters the Monitor fixes.
FIXED_BY_MONITOR = ("window", "q", "windows_per_dim", "stride", "fit", "method", "conv_norm", "device",
                    "include", "exclude")


def explorer_params(monitor: Monitor, analyze_params: dict[str, Any]) -> dict[str, Any]:
    """The Explorer's analysis parameters for ``monitor``: the Monitor's own.

    Raises a TypeError naming the way out when the caller passes a different one.
    """
    params = dict(monitor.params.as_dict(), device=monitor.device, include=monitor.include, exclude=monitor.exclude)
    clash = sorted(k for k in set(analyze_params) & set(FIXED_BY_MONITOR) if analyze_params[k] != params.get(k))
    if clash:
        raise TypeError(f"Explorer(monitor) shows the Monitor's analyses, computed with its parameters; "
                        f"{', '.join(f'{k}={analyze_params[k]!r}' for k in clash)} differ from the Monitor's "
                        f"({', '.join(f'{k}={params.get(k)!r}' for k in clash)}). Leave them out, or explore "
                        f"other parameters with farms_viz.Explorer(monitor.model, ...)")
    rest = {k: v for k, v in analyze_params.items() if k not in FIXED_BY_MONITOR}
    return {**{k: v for k, v in params.items() if v is not None or k == "stride"}, **rest}


def _bytes(analysis: Analysis) -> int:
    return sum(s.eigenvalues.nbytes + (0 if s.window_eigenvalues is None else s.window_eigenvalues.nbytes)
               for s in analysis.spectra.values())


class Timeline:
    """The Monitor side of an Explorer: kept analyses, the history rows, the step to show."""

    mode = "monitor"

    def __init__(self, monitor: Monitor, prepare: Callable[[Analysis, str | None, str], Any]) -> None:
        self.monitor = monitor
        self.prepare = prepare  # the Explorer's: an analysis -> the rows its panels draw
        self._lock = threading.Lock()
        self._analyses: OrderedDict[Any, Analysis] = OrderedDict()
        for step in monitor.steps:  # what the Monitor still keeps
            try:
                self._analyses[step] = monitor.analysis(step)
            except KeyError:
                continue
        self._push_queued = False
        self._reverting = False
        self._listener: Any = None

    # ----- set-up ---------------------------------------------------------------------------
    def layer_shapes(self, fixed: dict[str, Any]) -> list[tuple[str, int, int, int]]:
        """(name, rows, cols, num_slices) of the monitored layers (from the history without a model)."""
        model = self.monitor.model
        if model is not None:
            return [(m.name, m.rows, m.cols, m.num_slices)
                    for m in iter_layers(model, include=self.monitor.include, exclude=self.monitor.exclude)
                    if isinstance(m, LayerMatrix)]
        history = self.monitor.history.drop_duplicates("layer")
        return [(str(r.layer), int(r.rows), int(r.cols), int(r.num_slices)) for r in history.itertuples()]

    def attach(self, explorer: Any) -> None:
        """Listen to the Monitor and to the step traits; draw what is recorded so far."""
        ref = weakref.ref(explorer)
        self._listener = self.monitor.add_listener(functools.partial(_recorded, ref))
        # an Explorer nobody uses stops listening when it is collected
        weakref.finalize(explorer, self.monitor.remove_listener, self._listener)
        explorer.observe(functools.partial(_call, ref, "_on_step"), names=["step"])
        explorer.observe(functools.partial(_call, ref, "_on_follow"), names=["follow_latest"])
        explorer.set_trait("_mode", self.mode)
        self.push(explorer)

    def detach(self) -> None:
        if self._listener is not None:
            self.monitor.remove_listener(self._listener)
            self._listener = None

    # ----- state ----------------------------------------------------------------------------
    @property
    def steps(self) -> list:
        """The steps whose analysis is kept (the slider's positions), in recording order."""
        with self._lock:
            return list(self._analyses)

    def analysis(self, step: Any) -> Analysis | None:
        with self._lock:
            return self._analyses.get(step)

    def keep(self, step: Any) -> None:
        """Keep ``step``'s analysis (from the Monitor), dropping the oldest beyond KEEP_BYTES."""
        try:
            analysis = self.monitor.analysis(step)
        except KeyError:  # keep_analyses=0: the time view only
            return
        with self._lock:
            self._analyses.pop(step, None)
            self._analyses[step] = analysis
            total = sum(_bytes(a) for a in self._analyses.values())
            while total > KEEP_BYTES and len(self._analyses) > 1:
                _, dropped = self._analyses.popitem(last=False)
                total -= _bytes(dropped)

    def state(self, layer_count: int) -> dict[str, Any]:
        """The ``_timeline`` trait: the time view's spec and rows, the slider's steps, a note."""
        history = self.monitor.history
        spec = spec_without_rows(timeline_chart(layer_count))
        spec["datasets"] = {"time_mean": [], "time_layers": []}
        steps = self.steps
        recorded = list(pd.unique(history["step"])) if not history.empty else []
        note = ""
        if not recorded:
            note = "no step recorded yet: call monitor.step() in the training loop"
        elif len(steps) < len(recorded):
            note = (f"{len(recorded)} steps recorded; the spectra of {len(steps)} are kept (the slider's steps), "
                    f"the others are in the time view only")
        return {"spec": spec, "datasets": timeline_datasets(history), "steps": [_plain(s) for s in steps],
                "recorded": len(recorded), "note": note}

    # ----- the Explorer's hooks -----------------------------------------------------------------
    def push(self, explorer: Any) -> None:
        """Send the history rows and the slider's steps; follow the newest step if asked to."""
        with explorer._lock:
            state = self.state(len(explorer._layers))
            steps = self.steps
            explorer.set_trait("_timeline", state)
            if steps and (explorer.follow_latest or explorer.step not in steps):
                explorer.step = _plain(steps[-1])  # (its observer shows it)

    def schedule(self, explorer: Any, reason: str) -> None:
        """The Explorer's run request: show ``step`` (or refuse new FARMS parameters)."""
        if self._reverting:
            return
        fixed = self.monitor.params
        wanted = explorer._params()
        changed = {k: v for k, v in wanted.items() if getattr(fixed, k) != v}
        if changed:
            self._reverting = True
            try:
                with explorer.hold_trait_notifications():
                    for name in changed:
                        explorer.set_trait(name, getattr(fixed, name))
            finally:
                self._reverting = False
            values = ", ".join(f"{k}={getattr(fixed, k)!r}" for k in changed)
            explorer._set(error=f"the Monitor's parameters are fixed ({values}): "
                                f"its history was computed with them and past weights are gone; "
                                f"farms_viz.Explorer(monitor.model, ...) explores others on the current weights")
            return
        if reason == "re-reading the weights":  # refresh(): back to the newest step
            explorer.follow_latest = True
        self.show(explorer, explorer.step)

    def show(self, explorer: Any, step: Any) -> None:
        """Put ``step``'s analysis on every panel (on the Explorer's worker)."""
        steps = self.steps
        if step is None and steps:
            step = steps[-1]
        if self.analysis(step) is None:
            text = ("waiting for the first recorded step: call monitor.step() in the training loop" if not steps else
                    f"step {step}: its spectra are not kept; the kept steps are {_steps_text(steps)}")
            explorer._set(status=text, _running=False)
            return
        with explorer._lock:
            explorer._supersede()
            generation = explorer._generation
            explorer._set(_running=True, status=f"step {step}: drawing")
        explorer._runner.submit(functools.partial(_call, weakref.ref(explorer), "_show_step", generation, step), "user")


def _steps_text(steps: list) -> str:
    return ", ".join(map(str, steps[:6])) + (" ..." if len(steps) > 6 else "")


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


def _recorded(ref: weakref.ref, step: Any, _rows: pd.DataFrame) -> None:
    """The Monitor's listener (its worker thread): keep the step, queue one push."""
    explorer = ref()
    if explorer is None or not isinstance(explorer._view, Timeline):
        return
    timeline = explorer._view
    timeline.keep(step)
    with timeline._lock:
        if timeline._push_queued:
            return
        timeline._push_queued = True
    explorer._runner.submit(functools.partial(_call, ref, "_push_timeline"), "queued")


def _call(ref: weakref.ref, method: str, *args: Any) -> None:
    explorer = ref()
    if explorer is not None:
        getattr(TimelineJobs, method)(explorer, *args)


class TimelineJobs:
    """What runs for a Timeline on the Explorer's worker thread, or in a trait observer."""

    @staticmethod
    def _push_timeline(explorer: Any, _cancel: threading.Event) -> None:
        timeline: Timeline = explorer._view
        with timeline._lock:
            timeline._push_queued = False
        try:
            timeline.push(explorer)
        except Exception as exc:  # shown in the widget: the worker would only log it
            log.debug("time view update failed", exc_info=True)
            explorer._set(error=f"time view: {type(exc).__name__}: {exc}")

    @staticmethod
    def _show_step(explorer: Any, generation: int, step: Any, cancel: threading.Event) -> None:
        timeline: Timeline = explorer._view
        analysis = timeline.analysis(step)
        if cancel.is_set() or analysis is None:
            return
        prepared = timeline.prepare(analysis, explorer.selected_layer, "")
        steps = timeline.steps
        where = (f"the newest of {len(steps)}" if step == steps[-1] else f"{steps.index(step) + 1} of {len(steps)}")
        explorer._show(generation, prepared, "exact",
                       f"step {step} ({where} kept steps): {len(analysis.layers)} layers, the Monitor's parameters")

    @staticmethod
    def _on_step(explorer: Any, change: dict) -> None:
        timeline: Timeline = explorer._view
        if timeline._reverting:
            return
        steps = timeline.steps
        step = change["new"]
        if step not in steps:
            if change["old"] in steps:  # back to the step on screen (already drawn)
                timeline._reverting = True
                try:
                    explorer.set_trait("step", change["old"])
                finally:
                    timeline._reverting = False
            explorer._set(error=f"step {step!r} has no kept analysis; the slider's steps are {_steps_text(steps)}")
            return
        if explorer.error.startswith("step "):
            explorer._set(error="")
        newest = step == steps[-1]
        if explorer.follow_latest != newest:
            explorer.set_trait("follow_latest", newest)
        timeline.show(explorer, step)

    @staticmethod
    def _on_follow(explorer: Any, change: dict) -> None:
        steps = explorer._view.steps
        if change["new"] and steps and explorer.step != steps[-1]:
            explorer.step = _plain(steps[-1])
