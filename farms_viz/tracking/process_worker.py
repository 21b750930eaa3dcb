"""Analyses in a child process: snapshots travel through shared memory, results through a pipe.

A worker *thread* shares the interpreter lock with the training loop: while it runs the
fits and the bookkeeping, a Python training loop waits for the lock after every tensor op
(measured 2-4x slower on 2 cores while an analysis runs). A child process has its own
interpreter, so the training thread only copies the analysed weights into a shared-memory
slot and sends the slot's number; the child, at a raised nice value, analyses one snapshot
at a time with sequential BLAS and sends the :class:`~farms_viz.Analysis` back.

The weights' layout (names, kinds, shapes, strides, dtypes, tied weights) is fixed when the
first snapshot is taken; if it changes (a layer added, a dtype changed), the pending
analyses are finished and new slots are made.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import threading
from collections import deque
from collections.abc import Sequence
from concurrent.futures import Future
from dataclasses import dataclass
from typing import Any

import torch

from ..engine.matrices import LayerMatrix, SkippedLayer
from ..engine.params import AnalysisParams
from .snapshot import WeightSnapshot, _Copy

log = logging.getLogger(__name__)

_ALIGN = 64  # bytes: every region starts on a cache line (and any dtype's alignment)


@dataclass(frozen=True)
class _Region:
    """Where one weight lives in a slot: a byte offset, its dtype, shape and strides."""

    offset: int
    nbytes: int
    dtype: torch.dtype
    shape: tuple[int, ...]
    stride: tuple[int, ...]


def _is_dense(shape: Sequence[int], stride: Sequence[int]) -> bool:
    """Whether the strides tile exactly prod(shape) elements (a permutation of contiguous)."""
    expected = 1
    for dim in sorted(range(len(shape)), key=lambda d: stride[d]):
        if shape[dim] != 1 and stride[dim] != expected:
            return False
        expected *= shape[dim]
    return True


def _contiguous_strides(shape: Sequence[int]) -> tuple[int, ...]:
    strides, step = [], 1
    for size in reversed(shape):
        strides.append(step)
        step *= max(1, size)
    return tuple(reversed(strides))


class _Layout:
    """Where each analysed weight of a model goes in a flat byte slot; tied weights share a region."""

    def __init__(self, items: Sequence[LayerMatrix | SkippedLayer]):
        self.entries: list[tuple[str, str, int] | SkippedLayer] = []
        self.regions: list[_Region] = []
        self.sources: list[torch.Tensor] = []  # this step's live tensors, one per region
        index: dict[tuple, int] = {}
        offset = 0
        for item in items:
            if isinstance(item, SkippedLayer):
                self.entries.append(item)
                continue
            assert item.source is not None  # iter_layers gives every layer its tensor
            weight = item.source
            key = (weight.data_ptr(), tuple(weight.shape), weight.stride(), weight.dtype)
            if key not in index:
                shape, stride = tuple(weight.shape), weight.stride()
                if not _is_dense(shape, stride):  # a view with gaps: stored packed
                    stride = _contiguous_strides(shape)
                nbytes = weight.numel() * weight.element_size()
                index[key] = len(self.regions)
                self.regions.append(_Region(offset, nbytes, weight.dtype, shape, tuple(stride)))
                self.sources.append(weight)
                offset += -(-nbytes // _ALIGN) * _ALIGN
            self.entries.append((item.name, item.kind, index[key]))
        self.nbytes = max(offset, _ALIGN)
        self.signature = (tuple(e if isinstance(e, tuple) else (e.name, e.kind, e.shape, e.reason)
                                for e in self.entries), tuple(self.regions))


def _views(slot: torch.Tensor, regions: Sequence[_Region]) -> list[torch.Tensor]:
    return [slot[r.offset:r.offset + r.nbytes].view(r.dtype).as_strided(r.shape, r.stride) for r in regions]


class ProcessAnalysis:
    """A child process that analyses snapshots, at most ``max_pending`` waiting in the parent.

    Used by :class:`~farms_viz.tracking.Monitor` with ``background="process"``. Jobs are
    handed to the child one at a time, so a waiting snapshot can still be displaced.
    """

    def __init__(self, params: AnalysisParams, max_pending: int, nice: int):
        self.params = params
        self.max_pending = max_pending
        self.nice = nice
        self._changed = threading.Condition()
        self._layout: _Layout | None = None
        self._layout_id = 0
        self._slots: list[torch.Tensor] = []
        self._free: deque[int] = deque()
        self._waiting: deque[tuple[int, Future, Any]] = deque()
        self._in_flight: tuple[int, Future] | None = None
        self._filling = 0  # slots the training thread is copying into
        self._closed = False
        self._broken: str | None = None
        self._connection: Any = None  # multiprocessing Connection to the child
        self._process: Any = None  # the child (a spawn-context Process)
        self._receiver: threading.Thread | None = None
        self._ready = threading.Event()

    # --- parent side ----------------------------------------------------------------------

    def start(self, wait: bool = False, timeout: float = 120.0) -> None:
        """Start the child now (else the first snapshot does); ``wait`` until it has imported torch."""
        with self._changed:
            self._check_usable()
            if self._process is None:
                self._start()
        if wait:
            if not self._ready.wait(timeout):
                raise TimeoutError(f"the analysis process was not ready after {timeout} s")
            with self._changed:
                self._check_usable()  # it exited while starting (a script without a __main__ guard, say)

    def _start(self) -> None:
        import torch.multiprocessing as mp

        context = mp.get_context("spawn")  # fork would copy the training process's threads and locks
        parent, child = context.Pipe()
        self._process = context.Process(target=_serve, args=(child, self.params, self.nice), daemon=True,
                                         name="farms_viz-monitor")
        with _sigint_ignored():  # the child starts with Ctrl-C ignored: see _serve
            self._process.start()
        child.close()
        self._connection = parent
        self._receiver = threading.Thread(target=self._receive, name="farms_viz-monitor-results", daemon=True)
        self._receiver.start()

    def has_room(self) -> bool:
        with self._changed:
            return len(self._waiting) < self.max_pending

    @property
    def unfinished(self) -> int:
        with self._changed:
            return len(self._waiting) + (self._in_flight is not None) + self._filling

    def submit(self, items: Sequence[LayerMatrix | SkippedLayer], tag: Any = None, *, when_full: str = "wait"
               ) -> tuple[Future, Any]:
        """Copy ``items``' weights into a free slot and queue them; returns the future of the
        child's (Analysis, rows) and the tag of a waiting job it displaced (``when_full="latest"``)."""
        layout = _Layout(items)
        future: Future = Future()
        with self._changed:
            self._check_usable()
            if self._process is None:
                self._start()
            if self._layout is None or layout.signature != self._layout.signature:
                self._new_layout(layout)
            while when_full == "wait" and len(self._waiting) >= self.max_pending:
                self._changed.wait()
                self._check_usable()
            while not self._free:  # another thread is filling the spare slot
                self._changed.wait()
                self._check_usable()
            slot = self._free.popleft()
            self._filling += 1
        try:
            with torch.no_grad():
                for view, source in zip(_views(self._slots[slot], layout.regions), layout.sources):
                    view.copy_(source.detach())
        except BaseException:
            with self._changed:
                self._filling -= 1
                self._free.append(slot)
                self._changed.notify_all()
            raise
        displaced = None
        with self._changed:
            self._filling -= 1
            if len(self._waiting) >= self.max_pending:
                old_slot, old_future, displaced = self._waiting.popleft()
                old_future.cancel()
                self._free.append(old_slot)
            self._waiting.append((slot, future, tag))
            self._dispatch()
            self._changed.notify_all()
        return future, displaced

    def _check_usable(self) -> None:
        if self._broken is not None:
            raise RuntimeError(f"the Monitor's analysis process stopped ({self._broken}); "
                               "create the Monitor with background='thread' to analyse in this process")
        if self._closed:
            raise RuntimeError("the analysis process is closed")

    def _new_layout(self, layout: _Layout) -> None:
        """Slots for a new layout, once the child has finished every job in the old one (lock held)."""
        while self._waiting or self._in_flight is not None or self._filling:
            self._changed.wait()
            self._check_usable()
        self._layout = layout
        self._layout_id += 1
        self._slots = [torch.empty(layout.nbytes, dtype=torch.uint8).share_memory_()
                       for _ in range(self.max_pending + 2)]  # one analysed, max_pending waiting, one filling
        self._free = deque(range(len(self._slots)))
        self._send(("layout", layout.entries, layout.regions, self._slots))

    def _dispatch(self) -> None:
        """Hand the oldest waiting job to the child if it is idle (lock held)."""
        if self._in_flight is None and self._waiting and self._broken is None:
            slot, future, _ = self._waiting.popleft()
            if future.set_running_or_notify_cancel():
                self._in_flight = (slot, future)
                self._send(("job", slot))
            else:
                self._free.append(slot)
                self._dispatch()
        if self._closed and self._in_flight is None and not self._waiting and self._connection is not None:
            self._send(None)

    def _send(self, message: Any) -> None:
        try:
            self._connection.send(message)
        except (OSError, EOFError, BrokenPipeError) as error:
            self._fail(f"sending to it failed: {error}")

    def _receive(self) -> None:
        connection = self._connection
        while True:
            try:
                slot, ok, payload = connection.recv()
                if slot is None:  # the child is up
                    self._ready.set()
                    continue
            except (EOFError, OSError):
                with self._changed:
                    if not (self._closed and self._in_flight is None and not self._waiting):
                        if self._process is not None:
                            self._process.join(1.0)
                        code = self._process.exitcode if self._process is not None else None
                        self._fail(f"it exited unexpectedly, exit code {code}; in a script, run the training "
                                   "under `if __name__ == '__main__':`, since the process starts by "
                                   "importing the main module")
                self._ready.set()  # start(wait=True) returns and reports the failure
                return
            with self._changed:
                assert self._in_flight is not None and self._in_flight[0] == slot
                future = self._in_flight[1]
            # resolved before the job counts as finished: wait() returns with the step recorded
            if ok:
                future.set_result(payload)
            else:
                future.set_exception(payload if isinstance(payload, BaseException) else RuntimeError(payload))
            with self._changed:
                self._in_flight = None
                self._free.append(slot)
                self._dispatch()
                self._changed.notify_all()
            del future, payload

    def _fail(self, reason: str) -> None:
        """The child is gone: fail every pending job (lock held)."""
        self._broken = reason
        pending = [f for _, f, _ in self._waiting] + ([self._in_flight[1]] if self._in_flight else [])
        self._waiting.clear()
        self._in_flight = None
        for future in pending:
            if not future.done() and (future.running() or future.set_running_or_notify_cancel()):
                future.set_exception(RuntimeError(f"the Monitor's analysis process stopped: {reason}"))
        self._changed.notify_all()

    def join(self, timeout: float | None = None) -> bool:
        import time

        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while self._waiting or self._in_flight is not None or self._filling:
                remaining = None if deadline is None else deadline - time.monotonic()
                if remaining is not None and remaining <= 0:
                    return False
                self._changed.wait(remaining)
        return True

    def close(self) -> None:
        """Finish the queued jobs, then let the child exit (returns at once)."""
        with self._changed:
            if self._closed:
                return
            self._closed = True
            if self._process is not None and self._broken is None:
                self._dispatch()

    def stop(self, timeout: float = 30.0) -> None:
        """After :meth:`close` and :meth:`join`: wait for the child to exit."""
        if self._process is not None:
            self._process.join(timeout)
            if self._process.is_alive():
                self._process.terminate()


@contextlib.contextmanager
def _sigint_ignored():
    """SIGINT ignored while the child is started from the main thread (a started Python keeps an
    ignored SIGINT ignored), so that Ctrl-C cannot stop it while it imports torch, before
    :func:`_serve` ignores SIGINT itself. Elsewhere, where signals cannot be set, nothing changes."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


# --- child side -------------------------------------------------------------------------

def _serve(connection: Any, params: AnalysisParams, nice: int) -> None:
    """The child's loop: receive slots and jobs, send back (slot, ok, (Analysis, its to_pandas() rows) or error)."""
    # Jupyter's Interrupt (and Ctrl-C in a terminal) sends SIGINT to the whole process group: it is
    # meant for the training loop, not for this worker, which would die and leave the Monitor broken.
    # The parent stops the child by closing the pipe (or terminate()), never by SIGINT.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    from ..engine.cpu_threads import _make_sequential
    from .worker import analyze_here

    if nice > 0 and hasattr(os, "nice"):
        try:
            os.nice(nice)
        except OSError:
            pass
    torch.set_num_threads(1)
    _make_sequential()
    entries: list = []
    views: list[list[torch.Tensor]] = []
    previous: WeightSnapshot | None = None
    connection.send((None, True, "ready"))
    while True:
        try:
            message = connection.recv()
        except (EOFError, OSError):
            return
        if message is None:
            return
        if message[0] == "layout":
            _, entries, regions, slots = message
            views = [_views(slot, regions) for slot in slots]
            previous = None
            continue
        slot = message[1]
        try:
            items = [e if isinstance(e, SkippedLayer) else _Copy(e[0], e[1], views[slot][e[2]]) for e in entries]
            snapshot = WeightSnapshot(items)
            private = {id(c.weight) for c in previous._copies.values()} if previous is not None else set()
            snapshot.share_unchanged(previous)
            analysis = analyze_here(snapshot, params)
            rows = analysis.to_pandas()  # built here, not on the training process's interpreter lock
            # the slot is reused once this job is answered: keep a private copy for the next comparison
            previous = WeightSnapshot([item if isinstance(item, SkippedLayer) or id(item.weight) in private
                                       else _Copy(item.name, item.kind, item.weight.clone())
                                       for item in snapshot._items])
            reply: tuple = (slot, True, (analysis, rows))
        except Exception as error:
            reply = (slot, False, RuntimeError(f"{type(error).__name__}: {error}"))
        try:
            connection.send(reply)
        except (OSError, BrokenPipeError):
            return
