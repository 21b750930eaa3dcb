"""The Explorer's worker: one thread that runs jobs one at a time, the user's first.

Three kinds of job:

- ``"user"``: the values on screen changed. It stops the job that runs (its cancel flag is set;
  the engine checks it between batches of windows) and every job that waits, then runs.
- ``"queued"``: asked for by the user but not superseding (a sweep): waits its turn; stops only
  background work.
- ``"background"``: work that may wait (precomputing the next slider values). It runs only when
  no other job waits, after its delay and after the job that runs; any other submission drops it
  (and stops it if it runs).

A stopped or dropped user job still runs, with its cancel flag set, so that it can say it
stopped (a sweep's status); an analysis job returns at once. The thread holds no reference to
whoever submits jobs (only to the jobs, while they wait or run): an Explorer nobody references
can be collected, and its finalizer closes the runner, which ends the thread.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Callable

from ..engine.run_control import AnalysisCancelled

log = logging.getLogger(__name__)

Job = Callable[[threading.Event], None]
KINDS = ("user", "queued", "background")


class Runner:
    """One worker thread running :data:`Job` callables ``job(cancel)`` (see the module docstring).

    Examples
    --------
    >>> runner = Runner()
    >>> seen = []
    >>> runner.submit(lambda cancel: seen.append("first"))
    >>> runner.wait(timeout=10)
    True
    >>> seen
    ['first']
    >>> runner.close()
    """

    def __init__(self, name: str = "farms_viz-explorer") -> None:
        self._name = name
        self._changed = threading.Condition()
        self._waiting: deque[tuple[str, Job, threading.Event]] = deque()  # user and queued jobs, in order
        self._background: tuple[Job, threading.Event, float] | None = None  # (job, cancel, not before)
        self._running: tuple[str, threading.Event] | None = None  # (kind, cancel) of the job that runs
        self._closed = False
        self._thread: threading.Thread | None = None

    # ----- submitting -----------------------------------------------------------------------
    def submit(self, job: Job, kind: str = "user", delay: float = 0.0) -> None:
        """Queue ``job`` as ``kind`` ("user", "queued" or "background"; see the module docstring).

        ``delay``: background jobs start no earlier than this many seconds from now.
        """
        if kind not in KINDS:
            raise ValueError(f"kind must be one of {KINDS}; got {kind!r}")
        with self._changed:
            if self._closed:
                return
            self._drop_background()
            if kind == "background":
                if not self._waiting:  # (a job that runs may submit the work to follow it)
                    self._background = (job, threading.Event(), time.monotonic() + delay)
            else:
                if kind == "user":
                    self._cancel_foreground()
                self._waiting.append((kind, job, threading.Event()))
            self._start()
            self._changed.notify_all()

    def cancel(self) -> None:
        """Stop the job that runs and every job that waits (user jobs still run, cancelled)."""
        with self._changed:
            self._drop_background()
            self._cancel_foreground()
            self._changed.notify_all()

    def cancel_background(self) -> None:
        """Stop and drop background work only."""
        with self._changed:
            self._drop_background()
            self._changed.notify_all()

    def _cancel_foreground(self) -> None:
        for _, _, cancel in self._waiting:
            cancel.set()
        if self._running is not None:
            self._running[1].set()

    def _drop_background(self) -> None:
        self._background = None
        if self._running is not None and self._running[0] == "background":
            self._running[1].set()

    # ----- state ----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """A user or queued job waits or runs."""
        with self._changed:
            return bool(self._waiting) or (self._running is not None and self._running[0] != "background")

    @property
    def running_kind(self) -> str | None:
        """The kind of the job that runs now, or None."""
        with self._changed:
            return None if self._running is None else self._running[0]

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until no user or queued job waits or runs; False if ``timeout`` passed first."""
        with self._changed:
            return self._changed.wait_for(
                lambda: not self._waiting and (self._running is None or self._running[0] == "background"), timeout)

    def close(self) -> None:
        """Stop everything; the thread ends after the job that runs returns."""
        with self._changed:
            self._closed = True
            self._drop_background()
            self._cancel_foreground()
            self._waiting.clear()
            self._changed.notify_all()

    @property
    def alive(self) -> bool:
        """The worker thread exists and has not ended."""
        return self._thread is not None and self._thread.is_alive()

    # ----- the thread -----------------------------------------------------------------------
    def _start(self) -> None:
        if self._thread is None or not self._thread.is_alive():
            # the target is a plain function of the runner's state: nothing else is kept alive
            self._thread = threading.Thread(target=_work, args=(self,), name=self._name, daemon=True)
            self._thread.start()

    def _next(self) -> tuple[str, Job, threading.Event] | None:
        """The next job to run (waiting for one), or None once closed."""
        with self._changed:
            while True:
                if self._closed:
                    return None
                if self._waiting:
                    kind, job, cancel = self._waiting.popleft()
                    self._running = (kind, cancel)
                    return kind, job, cancel
                if self._background is not None:
                    job, cancel, not_before = self._background
                    wait = not_before - time.monotonic()
                    if wait <= 0:
                        self._background = None
                        self._running = ("background", cancel)
                        return "background", job, cancel
                    self._changed.wait(wait)
                else:
                    self._changed.wait()

    def _done(self) -> None:
        with self._changed:
            self._running = None
            self._changed.notify_all()


def _work(runner: Runner) -> None:
    while True:
        task = runner._next()
        if task is None:
            return
        kind, job, cancel = task
        try:
            job(cancel)
        except AnalysisCancelled:
            pass
        except Exception:  # a job shows its own errors; this is a bug in the job itself
            log.exception("a %s job of the Explorer failed", kind)
        finally:
            del task, job
            runner._done()
