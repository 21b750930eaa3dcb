"""What the Explorer says about a run: its cost before it starts, its progress, what is on screen.

Progress arrives from the engine's compute threads, a batch of windows at a time (several layers
may be in flight); :class:`RunProgress` adds it up and sends at most one status line per interval.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from ..engine.cost import RunCost

# At most one progress message to the front end per this many seconds.
PROGRESS_INTERVAL_S = 0.25


def format_seconds(seconds: float) -> str:
    """A duration as people read it.

    Examples
    --------
    >>> format_seconds(0.0123), format_seconds(1.234), format_seconds(95), format_seconds(7300)
    ('0.01 s', '1.2 s', '1 min 35 s', '2 h 1 min')
    """
    if seconds < 1:
        return f"{seconds:.2f} s"
    if seconds < 60:
        return f"{seconds:.1f} s"
    if seconds < 3600:
        return f"{int(seconds // 60)} min {int(seconds % 60)} s"
    return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60)} min"


def params_text(params: Mapping[str, Any]) -> str:
    """The settings of a result, as the status and the "results for" line write them.

    Examples
    --------
    >>> params_text(dict(window=100, q=1.0, windows_per_dim=10, stride=None, fit="median"))
    'window 100, Q 1.00, k 10, median fit'
    >>> params_text(dict(window=50, q=2.0, windows_per_dim=10, stride=3, fit="peak"))
    'window 50, Q 2.00, stride 3, peak fit'
    """
    grid = f"stride {params['stride']}" if params.get("stride") is not None else f"k {params['windows_per_dim']}"
    return f"window {params['window']}, Q {float(params['q']):.2f}, {grid}, {params['fit']} fit"


def estimate_state(cost: RunCost, budget_s: float | None, waiting: bool = False) -> dict[str, Any]:
    """The ``_estimate`` trait: the current settings' cost, and whether it waits for 'run anyway'.

    Examples
    --------
    >>> cost = RunCost(layers=2, windows=3900, eigenvalues=390000, seconds=42.0, layer_windows=(1900, 2000))
    >>> state = estimate_state(cost, 20.0, waiting=True)
    >>> state["over_budget"], state["text"]
    (True, '3,900 windows, 390,000 eigenvalues: about 42.0 s (above the 20 s budget)')
    """
    over = budget_s is not None and not cost.cached and cost.seconds > budget_s
    if cost.cached:
        text = f"{cost.windows:,} windows: cached"
    else:
        text = f"{cost.windows:,} windows, {cost.eigenvalues:,} eigenvalues: about {format_seconds(cost.seconds)}"
    if over:
        text += f" (above the {budget_s:g} s budget)"
    return {"windows": cost.windows, "eigenvalues": cost.eigenvalues, "layers": cost.layers,
            "seconds": round(cost.seconds, 3), "cached": cost.cached, "over_budget": over, "waiting": waiting,
            "text": text}


class RunProgress:
    """Windows and layers done in one run, added up across the compute threads.

    Parameters
    ----------
    cost : the run's estimate (its windows per layer, its seconds).
    layers : the layer names, in the order of ``cost.layer_windows``.
    what : what is computed ("FARMS", "both methods"), for the status line.
    send : ``f(fraction, status)``; called at most once per ``interval`` seconds (and at the end).

    Examples
    --------
    >>> cost = RunCost(layers=2, windows=10, eigenvalues=100, seconds=1.0, layer_windows=(4, 6))
    >>> lines = []
    >>> progress = RunProgress(cost, ["a", "b"], "FARMS", lambda f, s: lines.append((f, s)), interval=0)
    >>> progress.windows("b", 3, 6)
    >>> lines[-1][0]
    0.3
    >>> progress.layer("a", None)
    >>> lines[-1][0], lines[-1][1].split(" · ")[:2]
    (0.7, ['computing FARMS: layer 1/2', '7/10 windows'])
    """

    def __init__(self, cost: RunCost, layers: Sequence[str], what: str, send: Callable[[float, str], None],
                 interval: float = PROGRESS_INTERVAL_S) -> None:
        self._totals = dict(zip(layers, cost.layer_windows))
        self._done: dict[str, int] = {}
        self._layers_done = 0
        self._cost = cost
        self._what = what
        self._send = send
        self._interval = interval
        self._lock = threading.Lock()
        self._started = time.perf_counter()
        self._last = -float("inf")

    def windows(self, layer: str, done: int, total: int) -> None:
        """``on_windows`` of :class:`~farms_viz.engine.run_control.RunControl`."""
        with self._lock:
            self._done[layer] = done
        self._maybe_send()

    def layer(self, layer: str, _outcome: Any) -> None:
        """A layer is done (all its windows, whatever the batches said)."""
        with self._lock:
            self._done[layer] = self._totals.get(layer, 0)
            self._layers_done += 1
        self._maybe_send()

    def _maybe_send(self) -> None:
        now = time.perf_counter()
        with self._lock:
            if now - self._last < self._interval:
                return
            self._last = now
            windows = sum(self._done.values())
            total = self._cost.windows
            fraction = windows / total if total else self._layers_done / max(1, self._cost.layers)
            elapsed = now - self._started
            status = (f"computing {self._what}: layer {self._layers_done}/{self._cost.layers} · "
                      f"{windows:,}/{total:,} windows · {format_seconds(elapsed)} of "
                      f"~{format_seconds(max(self._cost.seconds, elapsed))}")
        self._send(round(fraction, 4), status)
