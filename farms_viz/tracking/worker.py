"""Analyses off the training thread: one worker thread, a bounded queue, a lower CPU priority.

The worker computes layer after layer itself, with sequential BLAS/LAPACK (as each thread of
the engine's compute pool does) and, on Linux, a raised nice value: when the cores are busy
the scheduler gives the training loop's threads the CPU first. It never touches the engine's
shared compute pool, so an Explorer in the same kernel keeps its own speed and priority.

A thread shares Python's interpreter lock with the training loop: while it runs the fits and
the bookkeeping, a Python training loop waits for the lock between tensor ops. The Monitor
therefore uses it for weights on a GPU (where the child process of ``process_worker`` would
need a device-to-host copy per step) and analyses weights in CPU memory in a child process.
``analyze_here`` is what either runs.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from concurrent.futures import Future
from typing import Any

import torch
from torch import nn

from ..engine.analysis import Analysis, LayerSpectrum, NothingToAnalyzeError, _compute_layer
from ..engine.cpu_threads import _make_sequential
from ..engine.matrices import SkippedLayer, iter_layers
from ..engine.params import AnalysisParams

log = logging.getLogger(__name__)

# Added to the worker thread's nice value (Linux): 10 gives it about a tenth of a contended core.
NICE_INCREMENT = 10


def analyze_here(model: nn.Module | Mapping[str, torch.Tensor], params: AnalysisParams,
                 device: str | torch.device | None = None) -> Analysis:
    """:func:`~farms_viz.analyze` computed layer by layer on the calling thread.

    The same per-layer computation as the engine's pool threads run (same cache, same
    numbers); no filters (a snapshot has applied them), no progress, no warnings.

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> from farms_viz.engine.params import AnalysisParams
    >>> model = nn.Linear(64, 48)
    >>> here = analyze_here(model, AnalysisParams(window=16)).to_pandas()
    >>> here.equals(farms_viz.analyze(model, window=16, progress=False).to_pandas())
    True
    """
    start = time.perf_counter()
    target = torch.device(device) if device is not None else None
    layers: list[str] = []
    skipped: list[SkippedLayer] = []
    spectra: dict[tuple[str, str], LayerSpectrum] = {}
    for item in iter_layers(model, conv_norm=params.conv_norm):
        outcome = item if isinstance(item, SkippedLayer) else _compute_layer(item, params, target)
        if isinstance(outcome, SkippedLayer):
            skipped.append(outcome)
            continue
        for spectrum in outcome:
            spectra[(item.name, spectrum.method)] = spectrum
        layers.append(item.name)
    if not layers:
        raise NothingToAnalyzeError("nothing to analyse: " + "; ".join(f"{s.name}: {s.reason}" for s in skipped))
    return Analysis(params, layers, skipped, spectra, time.perf_counter() - start)


def lower_priority(increment: int = NICE_INCREMENT) -> bool:
    """Raise the calling thread's nice value by ``increment`` (Linux); True if done."""
    if not sys.platform.startswith("linux") or increment <= 0:
        return False
    try:
        thread = threading.get_native_id()  # on Linux a thread's id is a valid PRIO_PROCESS target
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + increment))
        return True
    except (OSError, AttributeError) as error:
        log.debug("could not lower the analysis thread's priority: %s", error)
        return False


class AnalysisThread:
    """One daemon thread that runs submitted jobs in order, with at most ``max_pending`` waiting.

    It holds no reference to whoever submits jobs (only to the jobs themselves while they
    wait), so an owner that is garbage-collected can stop it from a finalizer.
    """

    def __init__(self, max_pending: int, nice: int = NICE_INCREMENT, name: str = "farms_viz-monitor"):
        self.max_pending = max_pending
        self.nice = nice
        self._waiting: deque[tuple[Callable[[], object], Future, Any]] = deque()
        self._unfinished = 0
        self._changed = threading.Condition()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._started = False
        self._closed = False
        self.lowered_priority = False

    def has_room(self) -> bool:
        """Whether a job submitted now would wait without blocking the caller or displacing another."""
        with self._changed:
            return len(self._waiting) < self.max_pending

    @property
    def unfinished(self) -> int:
        """Jobs submitted and not yet finished (waiting or running)."""
        with self._changed:
            return self._unfinished

    def submit(self, job: Callable[[], object], tag: Any = None, *, when_full: str = "wait"
               ) -> tuple[Future, Any]:
        """Queue ``job``; returns its future and the tag of the job it displaced (None if none).

        ``when_full="wait"`` blocks while ``max_pending`` jobs wait; ``"latest"`` displaces the
        oldest waiting job instead (its future is cancelled).
        """
        future: Future = Future()
        displaced = None
        with self._changed:
            if self._closed:
                raise RuntimeError("the analysis thread is closed")
            if not self._started:
                self._started = True
                self._thread.start()
            while when_full == "wait" and len(self._waiting) >= self.max_pending:
                self._changed.wait()
            if len(self._waiting) >= self.max_pending:
                _, old_future, displaced = self._waiting.popleft()
                old_future.cancel()
                self._unfinished -= 1
            self._waiting.append((job, future, tag))
            self._unfinished += 1
            self._changed.notify_all()
        return future, displaced

    def join(self, timeout: float | None = None) -> bool:
        """Wait until every submitted job has finished; False if ``timeout`` ran out first."""
        with self._changed:
            return self._changed.wait_for(lambda: not self._unfinished, timeout)

    def close(self) -> None:
        """Finish the queued jobs, then stop the thread (returns at once; ``join`` waits)."""
        with self._changed:
            self._closed = True
            self._changed.notify_all()

    def _run(self) -> None:
        _make_sequential()
        self.lowered_priority = lower_priority(self.nice)
        while True:
            with self._changed:
                while not self._waiting and not self._closed:
                    self._changed.wait()
                if not self._waiting:  # closed, and nothing left to do
                    return
                job, future, _ = self._waiting.popleft()
                self._changed.notify_all()  # a slot is free
            try:
                if future.set_running_or_notify_cancel():
                    try:
                        future.set_result(job())
                    except Exception as error:
                        future.set_exception(error)
            finally:
                del job, future
                with self._changed:
                    self._unfinished -= 1
                    self._changed.notify_all()
