"""``Monitor``: both methods' alphas per layer, recorded while a model trains.

``monitor.step()`` in a training loop records the current weights. In the background mode
(the default) the training thread only copies the analysed weights, one layer at a time;
a worker at a lower CPU priority (a child process for weights in CPU memory, a thread for
GPU weights) computes the spectra of that copy, never of the live weights, so the rows
equal those of ``analyze(model)`` at the moment of the call. Results accumulate in
``monitor.history``, one set of rows per recorded step.
"""

from __future__ import annotations

import logging
import os
import threading
import time
import warnings
import weakref
from collections import OrderedDict
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future
from numbers import Real
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from torch import nn

from ..engine.analysis import COLUMNS, Analysis, NothingToAnalyzeError, analyze
from ..engine.matrices import LayerMatrix, SkippedLayer, iter_layers
from ..engine.params import AnalysisParams
from .process_worker import ProcessAnalysis
from .snapshot import WeightSnapshot
from .storage import read_table, write_table
from .worker import NICE_INCREMENT, AnalysisThread, analyze_here

log = logging.getLogger(__name__)

HISTORY_COLUMNS = ["step", "wall_time", *COLUMNS]
TEXT_COLUMNS = ("layer", "method", "kind", "fit", "sampling_note")
# What Monitor(**analyze_params) accepts: analyze's parameters, less progress and executor.
ANALYZE_PARAMS = ("method", "window", "q", "windows_per_dim", "stride", "fit", "conv_norm", "device",
                  "include", "exclude")
WHEN_BUSY = ("latest", "drop", "wait")
FILE_FORMAT = "farms_viz.Monitor"
_LOADED = object()  # Monitor.load without a model: a read-only Monitor

Listener = Callable[[Any, pd.DataFrame], None]


class Monitor:
    """Record the standard ESD's and FARMS' alphas of every layer while a model trains.

    Parameters
    ----------
    model : the ``nn.Module`` (or state dict) being trained. Only read: weights, gradients,
        version counters and hooks are left as they are.
    every : record every ``every``-th call of :meth:`step`, starting with the first.
    background : True (default) analyses off the training thread, which then pays only for
        copying the analysed weights: in a child process (``"process"``) when they are in
        CPU memory and ``device`` is None or "cpu", else on a thread (``"thread"``). A thread
        shares Python's interpreter lock with the training loop, which then runs slower
        while an analysis runs (measured 2-4x on 2 cores); a process does not, but takes a
        few seconds to start and holds the copies in shared memory. Pass "process" or
        "thread" to choose; False analyses inside :meth:`step`.
    max_pending : snapshots that may wait while one is analysed (background mode).
    when_busy : what :meth:`step` does when ``max_pending`` snapshots already wait because
        the analysis fell behind. ``"latest"`` (default): the new snapshot takes the place of
        the oldest waiting one, which is not recorded, so the newest weights (the end of
        training too) always are. ``"drop"``: this step is not recorded and no copy is made.
        Both warn once and list the steps left out in :attr:`dropped_steps`; neither slows
        the loop. ``"wait"``: the training loop blocks until a slot frees; every step is
        recorded.
    nice : added to the worker's nice value (the child process's, or on Linux the thread's). The default 10
        lets the training loop, and everything else on the machine, go first when the cores
        are busy: on a crowded machine the analysis then lags (see ``when_busy``). 0 runs it
        at the training loop's priority.
    keep_analyses : how many of the latest :class:`~farms_viz.Analysis` objects (with the
        eigenvalues) to keep for :meth:`analysis`; the history keeps every step's rows.
    **analyze_params : method, window, q, windows_per_dim, stride, fit, conv_norm, device,
        include, exclude, as :func:`farms_viz.analyze` takes them. ``device`` is also where
        the snapshots are made (``device="cpu"`` keeps copies of a GPU model off the GPU).

    Notes
    -----
    Memory: the thread worker holds the copy being analysed (or the last one analysed), up
    to ``max_pending`` waiting ones, and one more while :meth:`step` takes a snapshot; the
    process worker holds ``max_pending + 2`` shared-memory slots and, in the child, a copy
    of the last snapshot. ``include=`` analyses, and copies, fewer layers. Layers whose
    values did not change since the previous snapshot (frozen layers) are not recomputed.
    The worker computes one layer at a time with sequential BLAS at a raised nice value,
    so on a busy CPU the training loop keeps priority.

    Examples
    --------
    >>> import torch, torch.nn as nn
    >>> model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
    >>> monitor = Monitor(model, window=16, windows_per_dim=3, when_busy="wait")   # record every step
    >>> optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    >>> for step in range(3):
    ...     model(torch.randn(8, 64)).square().mean().backward()
    ...     optimizer.step(); optimizer.zero_grad()
    ...     _ = monitor.step(step)
    >>> _ = monitor.wait()
    >>> monitor.history.groupby("step").size().tolist()    # 2 layers x 2 methods per step
    [4, 4, 4]
    >>> monitor.close()
    """

    def __init__(self, model: nn.Module | Mapping[str, torch.Tensor] | object, *, every: int = 1,
                 background: bool | str = True,
                 max_pending: int = 1, when_busy: str = "latest", nice: int = NICE_INCREMENT, keep_analyses: int = 8,
                 **analyze_params: Any):
        if model is _LOADED:
            model = None
        elif not isinstance(model, (nn.Module, Mapping)):
            raise TypeError(f"Monitor watches a torch.nn.Module (or a state dict); got {type(model).__name__}")
        unknown = sorted(set(analyze_params) - set(ANALYZE_PARAMS))
        if unknown:
            raise TypeError(f"Monitor got unexpected parameter(s) {unknown}; it takes {', '.join(ANALYZE_PARAMS)} "
                            "as farms_viz.analyze does (progress and executor are not used: the Monitor "
                            "analyses quietly, on one thread)")
        _check_count("every", every, "1 records every call")
        _check_count("max_pending", max_pending, "1 lets one snapshot wait while another is analysed")
        _check_count("nice", nice, "0 keeps the training loop's priority; 10 yields to it", minimum=0)
        _check_count("keep_analyses", keep_analyses, "0 keeps none, the history still has every row", minimum=0)
        if background not in (True, False, "process", "thread"):
            raise ValueError(f"background must be True, False, 'process' or 'thread'; got {background!r}")
        if when_busy not in WHEN_BUSY:
            raise ValueError(f"when_busy must be 'latest' (a new snapshot replaces the oldest waiting one when "
                             f"the analysis falls behind), 'drop' (skip the new step) or 'wait' (block the "
                             f"training loop until it catches up); got {when_busy!r}")
        params = dict(analyze_params)
        self.device = params.pop("device", None)
        self.include = _patterns(params.pop("include", None))
        self.exclude = _patterns(params.pop("exclude", None))
        self.params = AnalysisParams(**params)
        self.model: nn.Module | Mapping[str, torch.Tensor] | None = model
        self.every = int(every)
        self.background = background
        self.max_pending = int(max_pending)
        self.when_busy = when_busy
        self.keep_analyses = int(keep_analyses)
        weights_on_cpu = True
        if model is not None:
            weights_on_cpu = _check_has_layers(model, self.params, self.include, self.exclude)
        self._calls = 0
        self._lock = threading.Lock()
        self._frames: list[pd.DataFrame] = []
        self._history: pd.DataFrame | None = None
        self._steps: list[Any] = []
        self._analyses: OrderedDict[Any, Analysis] = OrderedDict()
        self._latest: Analysis | None = None
        self._dropped: list[Any] = []
        self._errors: list[tuple[Any, str]] = []
        self._listeners: list[Listener] = []
        self._previous: WeightSnapshot | None = None  # touched by the worker thread only
        self._warned: set[str] = set()
        self._closed = False
        self._source_path: Path | None = None
        self.mode = "read-only" if model is None else "foreground" if not background else (
            background if isinstance(background, str) else
            "process" if weights_on_cpu and (self.device is None or torch.device(self.device).type == "cpu")
            else "thread")
        self._worker: AnalysisThread | ProcessAnalysis | None = None
        if self.mode != "foreground" and model is not None:
            self._worker = (ProcessAnalysis(self.params, self.max_pending, nice) if self.mode == "process"
                            else AnalysisThread(self.max_pending, nice=nice))
            # stop the worker when the Monitor is garbage-collected (the worker holds no reference to it)
            weakref.finalize(self, self._worker.close)

    # --- recording -----------------------------------------------------------------------

    def step(self, step: Real | None = None) -> Future | None:
        """Record the current weights if this is an ``every``-th call.

        Parameters
        ----------
        step : the training step (or epoch) to file the rows under; None uses the number of
            calls so far (0, 1, 2, ...).

        Returns
        -------
        concurrent.futures.Future or None : the future of this step's rows (a DataFrame, done
        at once in foreground mode; cancelled if a newer snapshot displaces this one), or None
        when nothing is recorded (not an ``every``-th call, or dropped with ``when_busy="drop"``).
        """
        if self._closed:
            raise RuntimeError("this Monitor is closed; create a new Monitor(model, ...) to record more steps")
        if self.model is None:
            raise RuntimeError("this Monitor was loaded from a file and has no model: "
                               "Monitor.load(path, model=model) records more steps")
        call = self._calls
        self._calls += 1
        if step is not None and (isinstance(step, bool) or not isinstance(step, Real)):
            raise TypeError(f"step must be a number (the training step or epoch) or None; got {step!r}")
        if call % self.every:
            return None
        key: Any = call if step is None else step
        wall_time = time.time()
        if self._worker is None:
            analysis = analyze(self.model, progress=False, device=self.device, include=self.include,
                               exclude=self.exclude, **self.params.as_dict())
            done: Future = Future()
            done.set_result(self._record(key, wall_time, analysis, analysis.to_pandas()))
            return done
        if self.when_busy == "drop" and not self._worker.has_room():
            self._drop(key, "was not recorded (and no copy was made)")
            return None
        when_full = "wait" if self.when_busy == "wait" else "latest"
        if isinstance(self._worker, ProcessAnalysis):
            items = list(iter_layers(self.model, include=self.include, exclude=self.exclude))
            analysed, displaced = self._worker.submit(items, key, when_full=when_full)
        else:
            snapshot = WeightSnapshot.take(self.model, include=self.include, exclude=self.exclude, device=self.device)
            analysed, displaced = self._worker.submit(lambda: self._analyse_here(snapshot), key, when_full=when_full)
        rows: Future = Future()
        analysed.add_done_callback(lambda done: self._finish(done, key, wall_time, rows))
        if displaced is not None:
            self._drop(displaced, f"was replaced by step {key}'s (not recorded)")
        return rows

    def _analyse_here(self, snapshot: WeightSnapshot) -> tuple[Analysis, pd.DataFrame]:
        """The thread worker's job: the snapshot's analysis (unchanged layers taken from the previous
        one) and its rows, as the analysis process returns them."""
        snapshot.share_unchanged(self._previous)
        self._previous = None  # free the older copy before the analysis allocates
        analysis = analyze_here(snapshot, self.params, self.device)
        self._previous = snapshot
        return analysis, analysis.to_pandas()

    def _finish(self, analysed: Future, step: Any, wall_time: float, rows: Future) -> None:
        """Record a finished analysis (on the worker's thread), or its failure."""
        if analysed.cancelled():  # displaced by a newer snapshot
            rows.cancel()
            return
        error = analysed.exception()
        if error is not None:
            with self._lock:
                self._errors.append((step, f"{type(error).__name__}: {error}"))
            self._warn_once(f"error:{type(error).__name__}",
                            f"farms_viz Monitor: the analysis of step {step} failed ({type(error).__name__}: "
                            f"{error}); later steps are still analysed, failures are in monitor.errors")
            rows.set_exception(error)
            return
        analysis, ready = analysed.result()  # the worker built the rows too
        whole = [n for (n, method), spectrum in analysis.spectra.items()
                 if method == "farms" and spectrum.grid is not None and spectrum.grid.covers_whole_matrix]
        if whole:
            self._warn_once("whole", f"window {self.params.window} covers the whole matrix of {len(whole)} "
                            f"layer(s) ({', '.join(whole[:3])}{' ...' if len(whole) > 3 else ''}): FARMS "
                            "equals the standard ESD there; use a smaller window to sample them.")
        try:
            rows.set_result(self._record(step, wall_time, analysis, ready))
        except Exception as failure:
            rows.set_exception(failure)

    def _record(self, step: Any, wall_time: float, analysis: Analysis, rows: pd.DataFrame) -> pd.DataFrame:
        rows.insert(0, "step", step)
        rows.insert(1, "wall_time", wall_time)
        with self._lock:
            if step in self._steps:
                self._warn_once(f"repeat:{step}", f"step {step} was recorded before; both sets of rows are kept")
            self._frames.append(rows)
            self._steps.append(step)
            self._latest = analysis
            if self.keep_analyses:
                self._analyses[step] = analysis
                while len(self._analyses) > self.keep_analyses:
                    self._analyses.popitem(last=False)
            listeners = list(self._listeners)
        for listener in listeners:
            try:
                listener(step, rows)
            except Exception as error:
                log.exception("Monitor listener %r failed at step %s", listener, step)
                self._warn_once(f"listener:{id(listener)}", f"a Monitor listener ({listener!r}) failed at step "
                                f"{step}: {type(error).__name__}: {error}; it stays registered")
        return rows

    def _drop(self, step: Any, what: str) -> None:
        with self._lock:
            self._dropped.append(step)
        log.info("Monitor: step %s %s: the analysis is behind", step, what)
        self._warn_once("drop", f"farms_viz Monitor: the analysis fell behind the training loop: step {step}'s "
                        f"snapshot {what}. Steps left out are listed in monitor.dropped_steps; record less "
                        "often (every=...), analyse fewer layers (include=...), or pass when_busy='wait' to "
                        "block the loop until the analysis catches up.")

    def _warn_once(self, key: str, message: str) -> None:
        if key not in self._warned:
            self._warned.add(key)
            warnings.warn(message, stacklevel=3)

    # --- results -------------------------------------------------------------------------

    @property
    def history(self) -> pd.DataFrame:
        """Every recorded row: step, wall_time (seconds since the epoch, when the weights were
        read), then :meth:`farms_viz.Analysis.to_pandas`'s columns; steps in recording order.
        A new frame each time (safe to modify), read consistently while the worker appends."""
        with self._lock:
            if self._frames:
                parts = ([self._history] if self._history is not None else []) + self._frames
                self._history = pd.concat(parts, ignore_index=True)
                self._frames = []
            history = self._history
        if history is None:
            return pd.DataFrame(columns=HISTORY_COLUMNS)
        return history.copy()

    @property
    def steps(self) -> list:
        """The recorded steps, in recording order."""
        with self._lock:
            return list(self._steps)

    @property
    def dropped_steps(self) -> list:
        """Steps not recorded because the analysis was behind (``when_busy="drop"``)."""
        with self._lock:
            return list(self._dropped)

    @property
    def errors(self) -> pd.DataFrame:
        """Steps whose analysis failed: columns step, error."""
        with self._lock:
            return pd.DataFrame(self._errors, columns=["step", "error"])

    @property
    def pending(self) -> int:
        """Snapshots taken and not yet analysed."""
        return self._worker.unfinished if self._worker is not None else 0

    @property
    def latest(self) -> Analysis | None:
        """The most recent step's :class:`~farms_viz.Analysis` (None before the first)."""
        with self._lock:
            return self._latest

    def analysis(self, step: Any = None) -> Analysis:
        """The :class:`~farms_viz.Analysis` of ``step`` (default: the latest), while it is kept."""
        with self._lock:
            if step is None and self._latest is not None:
                return self._latest
            if step in self._analyses:
                return self._analyses[step]
            kept = list(self._analyses)
        raise KeyError(f"no analysis kept for step {step!r}; kept steps: {kept} (the latest "
                       f"keep_analyses={self.keep_analyses}; monitor.history has every step's rows)")

    def add_listener(self, listener: Listener) -> Listener:
        """Call ``listener(step, rows)`` after each recorded step; returns it (usable as a decorator).

        ``rows`` are that step's new history rows. In background mode listeners run on the
        worker thread: keep them short, and hand work to your own thread if it is long.
        """
        if not callable(listener):
            raise TypeError(f"a listener must be callable as listener(step, rows); got {listener!r}")
        with self._lock:
            self._listeners.append(listener)
        return listener

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        with self._lock:
            if listener in self._listeners:
                self._listeners.remove(listener)

    def wait(self, timeout: float | None = None) -> Analysis | None:
        """Block until every snapshot taken so far is analysed; returns the latest analysis.

        Raises ``TimeoutError`` if ``timeout`` seconds pass first. Failed steps do not raise
        here: they were warned about and are listed in :attr:`errors`.
        """
        if self._worker is not None and not self._worker.join(timeout):
            raise TimeoutError(f"{self._worker.unfinished} snapshot(s) still being analysed after {timeout} s")
        return self.latest

    def close(self) -> None:
        """Finish the pending analyses and stop the worker thread. Further steps raise."""
        if self._closed:
            return
        self._closed = True
        if self._worker is not None:
            self._worker.close()
            self._worker.join()
            if isinstance(self._worker, ProcessAnalysis):
                self._worker.stop()
        self._previous = None

    def __enter__(self) -> Monitor:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def __repr__(self) -> str:
        mode = self.mode
        return (f"Monitor({len(self.steps)} steps recorded, every={self.every}, {mode}, "
                f"window={self.params.window}, q={self.params.q:g}, fit={self.params.fit!r})")

    # --- files ---------------------------------------------------------------------------

    def _metadata(self) -> dict[str, Any]:
        from .._version import __version__

        return {"format": FILE_FORMAT, "version": 1, "farms_viz": __version__, "params": self.params.as_dict(),
                "include": self.include, "exclude": self.exclude,
                "device": str(self.device) if self.device is not None else None, "every": self.every,
                "dropped_steps": _plain(self.dropped_steps)}

    def save(self, path: str | os.PathLike) -> Path:
        """Write the history and the parameters to ``path``; returns the path written.

        ``.parquet`` (needs pyarrow) or ``.csv``; with no suffix, Parquet when pyarrow is
        installed, else CSV. Written atomically; never over the file this Monitor was loaded
        from, a symbolic link or a device. Pending analyses are waited for first.
        """
        self.wait()
        inputs = [self._source_path] if self._source_path is not None else []
        return write_table(self.history, path, self._metadata(), inputs=inputs)

    @classmethod
    def load(cls, path: str | os.PathLike, model: nn.Module | Mapping[str, torch.Tensor] | None = None,
             **options: Any) -> Monitor:
        """A Monitor with the history and parameters :meth:`save` wrote.

        Parameters
        ----------
        path : a file written by :meth:`save`.
        model : the model to go on recording (same parameters); None gives a read-only
            Monitor (``history``, ``params``; :meth:`step` raises). The call counter starts
            again at 0: pass ``step=`` explicitly when resuming.
        **options : the Monitor's own options for the resumed recording (background,
            max_pending, when_busy, nice, keep_analyses); the analysis parameters are the file's.
        """
        frame, metadata = read_table(path, text_columns=TEXT_COLUMNS)
        if metadata.get("format") != FILE_FORMAT:
            raise ValueError(f"{path} was not written by Monitor.save (format {metadata.get('format')!r})")
        missing = [c for c in HISTORY_COLUMNS if c not in frame.columns]
        if missing:
            raise ValueError(f"{path} lacks the history column(s) {missing}; it is not a Monitor history")
        params = dict(metadata["params"], include=metadata.get("include"), exclude=metadata.get("exclude"),
                      device=metadata.get("device"))
        monitor = cls(_LOADED if model is None else model, every=metadata.get("every", 1), **options, **params)
        monitor._history = frame[HISTORY_COLUMNS + [c for c in frame.columns if c not in HISTORY_COLUMNS]]
        monitor._steps = list(pd.unique(frame["step"]))
        monitor._dropped = list(metadata.get("dropped_steps", []))
        monitor._source_path = Path(path).expanduser()
        return monitor


def _check_count(name: str, value: Any, hint: str, minimum: int = 1) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} ({hint}); got {value!r}")


def _patterns(value: Sequence[str] | str | None) -> list[str] | None:
    if value is None:
        return None
    return [value] if isinstance(value, str) else list(value)


def _check_has_layers(model: Any, params: AnalysisParams, include: list[str] | None,
                      exclude: list[str] | None) -> bool:
    """Fail at construction, not in the worker, when no layer would be analysed; True if every
    analysed weight is in CPU memory."""
    items = list(iter_layers(model, conv_norm=params.conv_norm, include=include, exclude=exclude))
    matrices = [item for item in items if isinstance(item, LayerMatrix)]
    if not matrices:
        reasons = "; ".join(f"{s.name}: {s.reason}" for s in items if isinstance(s, SkippedLayer)) or "no weights found"
        raise NothingToAnalyzeError(f"nothing to monitor: no Linear, Embedding, Conv or attention weight with "
                                    f"at least 8 eigenvalues passed ({reasons}). Check include/exclude, or "
                                    "pass a model with such layers.")
    return all(m.source is None or m.source.device.type == "cpu" for m in matrices)


def _plain(values: list) -> list:
    return [v.item() if hasattr(v, "item") else v for v in values]
