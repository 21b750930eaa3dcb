"""Stopping a running :func:`~farms_viz.analyze` and following it window by window.

``analyze(progress=...)`` reports whole layers. A :class:`RunControl` adds what an interactive
front end needs: a cancel flag checked between batches of windows inside a layer and between
layers, the windows done within each layer, each layer's result as it completes (in model
order), and the choice of the low-priority background thread instead of the compute pool.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Protocol

# f(layer, windows done in that layer, windows of that layer); called from the compute threads
WindowProgress = Callable[[str, int, int], None]
# f(layer, its spectra or the SkippedLayer): called in model order from the thread running analyze
LayerResult = Callable[[str, Any], None]


class AnalysisCancelled(Exception):
    """The run was stopped through its :class:`RunControl`; no result."""


class CancelFlag(Protocol):
    """What ``RunControl(cancel=...)`` needs: a ``threading.Event`` or anything with ``is_set()``."""

    def is_set(self) -> bool: ...


class RunControl:
    """Cancellation and fine-grained progress of one :func:`~farms_viz.analyze` run.

    Parameters
    ----------
    cancel : a ``threading.Event`` (or any object with ``is_set()``); a new Event when None.
        Once set, the run stops at the next check (between window batches of a layer, and
        between layers) and ``analyze`` raises :class:`AnalysisCancelled`.
    on_windows : ``f(layer, done, total)``: FARMS windows done so far in that layer, after each
        batch. Called from the compute threads (several layers may be in flight); it may raise
        to stop the run.
    on_layer : ``f(layer, outcome)``: a layer's list of spectra (or its ``SkippedLayer``) as soon
        as it and every layer before it are done; called from the thread running ``analyze``.
    subgrid : compute each layer's FARMS windows on a coarse sub-grid only (three of the grid's
        positions along each axis, :func:`~farms_viz.engine.windows.spread_subgrid`): a quick
        provisional stand-in whose windows a later full run with the same settings reuses.
    background : compute on the process's one low-priority thread
        (:func:`~farms_viz.engine.cpu_threads.background_pool`) instead of the compute pool: for
        work that may wait, such as precomputing the values a slider may take next.

    Examples
    --------
    >>> import threading, torch.nn as nn, farms_viz
    >>> stop = threading.Event()
    >>> control = RunControl(stop, on_windows=lambda layer, done, total: stop.set())
    >>> try:
    ...     farms_viz.analyze(nn.Linear(256, 256), window=32, control=control, progress=False)
    ... except AnalysisCancelled:
    ...     print("stopped after the first batch of windows")
    stopped after the first batch of windows
    """

    def __init__(self, cancel: CancelFlag | None = None, *, on_windows: WindowProgress | None = None,
                 on_layer: LayerResult | None = None, background: bool = False, subgrid: bool = False) -> None:
        self.cancel: CancelFlag = cancel if cancel is not None else threading.Event()
        self.subgrid = subgrid
        self.on_windows = on_windows
        self.on_layer = on_layer
        self.background = background

    @property
    def cancelled(self) -> bool:
        return bool(self.cancel.is_set())

    def stop(self) -> None:
        """Set the cancel flag (an Event's ``set()``)."""
        setter = getattr(self.cancel, "set", None)
        if setter is None:
            raise TypeError("this RunControl's cancel flag has no set(): set it where it comes from")
        setter()

    def check(self) -> None:
        """Raise :class:`AnalysisCancelled` once the cancel flag is set."""
        if self.cancel.is_set():
            raise AnalysisCancelled("the analysis was stopped")

    def windows_done(self, layer: str, done: int, total: int) -> None:
        """A batch of ``layer``'s windows is done: report it, then stop here if cancelled."""
        if self.on_windows is not None:
            self.on_windows(layer, done, total)
        self.check()

    def layer_done(self, layer: str, outcome: Any) -> None:
        if self.on_layer is not None:
            self.on_layer(layer, outcome)
