"""What the Explorer computes ahead while it is idle, and where it keeps it.

One slider step answers at once when its result is ready before the step: while idle the Explorer
computes the neighbouring values (one step each way for window, Q and k) on the low-priority
background thread and keeps each result ready to show (its chart rows made) in a store bounded
in bytes. The keys are the parameters that decide the eigenvalues and the fit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Hashable, Mapping
from typing import Any

from .contract import SLIDER_STEPS as STEPS


def result_key(params: Mapping[str, Any]) -> tuple:
    """What decides a result: the windows (k only matters without a stride) and the fit.

    Examples
    --------
    >>> result_key(dict(window=64, q=1.0, windows_per_dim=10, stride=None, fit="median"))
    (64, 1.0, 10, None, 'median')
    >>> result_key(dict(window=64, q=1.0, windows_per_dim=3, stride=8, fit="median"))
    (64, 1.0, None, 8, 'median')
    """
    return windows_key(params) + (params["fit"],)


def windows_key(params: Mapping[str, Any]) -> tuple:
    """What decides the eigenvalues: the window shape and placement."""
    stride = params["stride"]
    return (int(params["window"]), float(params["q"]), None if stride is not None else int(params["windows_per_dim"]),
            None if stride is None else int(stride))


def neighbours(params: Mapping[str, Any], limits: Mapping[str, Any]) -> list[dict[str, Any]]:
    """The values one slider step away, likeliest first: window -1, +1, Q -/+ a step, k -/+ 1.

    Values outside the sliders' ranges are left out, and so is k while a stride replaces the grid.

    Examples
    --------
    >>> limits = {"window_min": 2, "window_max": 384, "q_min": 0.1, "q_max": 4.0, "windows_per_dim_max": 30}
    >>> [(p["window"], p["q"], p["windows_per_dim"])
    ...  for p in neighbours(dict(window=2, q=1.0, windows_per_dim=10, stride=None, fit="median"), limits)]
    [(3, 1.0, 10), (2, 0.95, 10), (2, 1.05, 10), (2, 1.0, 9), (2, 1.0, 11)]
    """
    out = []
    window, q, k = int(params["window"]), float(params["q"]), int(params["windows_per_dim"])
    for value in (window - STEPS["window"], window + STEPS["window"]):
        if limits.get("window_min", 2) <= value <= limits.get("window_max", value):
            out.append({**params, "window": value})
    for value in (round(q - STEPS["q"], 2), round(q + STEPS["q"], 2)):
        if limits.get("q_min", 0.1) - 1e-9 <= value <= limits.get("q_max", 4.0) + 1e-9:
            out.append({**params, "q": value})
    if params["stride"] is None:
        for value in (k - STEPS["windows_per_dim"], k + STEPS["windows_per_dim"]):
            if 1 <= value <= limits.get("windows_per_dim_max", 30):
                out.append({**params, "windows_per_dim": value})
    return out


class ResultStore:
    """Results ready to show, by :func:`result_key`, least recently used dropped past ``max_bytes``.

    Examples
    --------
    >>> store = ResultStore(max_bytes=100)
    >>> store.put("a", "result a", 60); store.put("b", "result b", 60)
    >>> store.get("a"), store.get("b"), store.nbytes
    (None, 'result b', 60)
    """

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._lock = threading.Lock()
        self.nbytes = 0

    def get(self, key: Hashable) -> Any:
        with self._lock:
            if key not in self._items:
                return None
            self._items.move_to_end(key)
            return self._items[key][0]

    def __contains__(self, key: Hashable) -> bool:
        with self._lock:
            return key in self._items

    def has_room(self, nbytes: int) -> bool:
        """Whether ``nbytes`` more fit without dropping anything."""
        with self._lock:
            return self.nbytes + nbytes <= self.max_bytes

    def put(self, key: Hashable, value: Any, nbytes: int) -> None:
        with self._lock:
            if key in self._items:
                self.nbytes -= self._items.pop(key)[1]
            self._items[key] = (value, nbytes)
            self.nbytes += nbytes
            while self.nbytes > self.max_bytes and len(self._items) > 1:
                self.nbytes -= self._items.popitem(last=False)[1][1]
            if self.nbytes > self.max_bytes:  # one item larger than the whole budget
                self._items.clear()
                self.nbytes = 0

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self.nbytes = 0
