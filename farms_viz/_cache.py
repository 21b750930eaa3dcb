"""A bounded in-process cache of spectra, keyed by a fingerprint of the weights.

New FARMS parameters never recompute the standard ESD, and the same parameters on
unchanged weights return at once. A fingerprint reads the tensor (pointer, version
counter, a float64 sum and a strided sample), so weights changed by training steps,
in place or through ``.data``, are picked up on the next read.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import numpy as np
import torch

_SAMPLE = 4096
_SUM_CHUNK = 1 << 20


class WeightKey(NamedTuple):
    """Identifies a weight's values: storage, version counter, a float64 sum and a sample."""

    data_ptr: int
    shape: tuple
    stride: tuple
    dtype: str
    device: str
    version: int
    total: float
    sample: float


def _float64_sum(flat: torch.Tensor) -> float:
    """The sum of a 1-D tensor accumulated in float64, without a float64 copy of the tensor."""
    if flat.device.type == "cpu" and flat.dtype in (torch.float32, torch.float64, torch.float16):
        # numpy casts in small buffers as it sums: half the time of torch's chunked casts
        return float(flat.numpy().sum(dtype=np.float64))
    # chunked: torch's float64 sum of a whole tensor would first make a float64 copy of it
    return sum(float(torch.sum(flat[i:i + _SUM_CHUNK], dtype=torch.float64))
               for i in range(0, flat.numel(), _SUM_CHUNK))


def fingerprint(weight: torch.Tensor) -> WeightKey:
    """A key that changes whenever the tensor's values (very likely) change."""
    flat = weight.detach().reshape(-1)
    step = max(1, flat.numel() // _SAMPLE)
    sample = flat[::step][:_SAMPLE].to(torch.float64)
    total = _float64_sum(flat)
    sample_key = float((sample * torch.arange(1, sample.numel() + 1, dtype=torch.float64,
                                              device=sample.device)).sum())
    return WeightKey(weight.data_ptr(), tuple(weight.shape), tuple(weight.stride()), str(weight.dtype),
                     str(weight.device), weight._version, total, sample_key)


class SpectrumCache:
    """LRU cache of numpy arrays and fit results, bounded by total array bytes."""

    def __init__(self, max_bytes: int = 512 * 2**20) -> None:
        self.max_bytes = max_bytes
        self._items: OrderedDict[Hashable, tuple[Any, int]] = OrderedDict()
        self._bytes = 0
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def get_or_compute(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            if key in self._items:
                self._items.move_to_end(key)
                self.hits += 1
                return self._items[key][0]
        value = compute()
        size = value.nbytes if isinstance(value, np.ndarray) else 256
        with self._lock:
            self.misses += 1
            if key not in self._items:
                self._items[key] = (value, size)
                self._bytes += size
            while self._bytes > self.max_bytes and len(self._items) > 1:
                _, (_, dropped) = self._items.popitem(last=False)
                self._bytes -= dropped
        return value

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
            self.hits = self.misses = 0


SPECTRA = SpectrumCache()
