"""A bounded in-process cache of spectra, keyed by a fingerprint of the weights' values.

New FARMS parameters never recompute the standard ESD, and the same parameters on
unchanged weights return at once. A fingerprint reads the whole tensor once: a float64 sum
and a position-weighted checksum (each entry times a pseudo-random weight of its position),
so any change of a value, or of where a value sits, changes the key, whether it came
through training, ``.data``, numpy or an optimizer that bumps no version counter. The key
holds no memory address: equal values read again (a checkpoint re-read from disk) hit.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Hashable
from typing import Any, NamedTuple

import numpy as np
import torch

# Entries per float64 chunk of the fingerprint (512 KiB: it stays in the CPU's cache).
_CHUNK = 1 << 16
_POSITION_WEIGHTS: dict[str, torch.Tensor] = {}
_WEIGHTS_LOCK = threading.Lock()


class WeightKey(NamedTuple):
    """Identifies a weight's values: shape, dtype, device, a float64 sum and a position-weighted checksum."""

    shape: tuple
    dtype: str
    device: str
    total: float
    checksum: float


def _position_weights(device: torch.device) -> torch.Tensor:
    """A (2, chunk) float64 matrix per device: ones (for the sum) over fixed pseudo-random
    weights in [0.5, 1.5), one per position in a chunk (for the checksum)."""
    key = str(device)
    with _WEIGHTS_LOCK:
        weights = _POSITION_WEIGHTS.get(key)
        if weights is None:
            generator = torch.Generator().manual_seed(0x5EED)
            random = torch.rand(_CHUNK, generator=generator, dtype=torch.float64) + 0.5
            weights = torch.stack([torch.ones_like(random), random]).to(device)
            _POSITION_WEIGHTS[key] = weights
    return weights


def _chunk_factor(index: int) -> float:
    """A pseudo-random factor in [1, 2) per chunk (a Weyl sequence): entries moved between
    chunks, at the same place within them, change the checksum too."""
    return 1.0 + ((index * 0x9E3779B97F4A7C15) & (2**64 - 1)) / 2**64


def fingerprint(weight: torch.Tensor) -> WeightKey:
    """A key that changes whenever any entry's value or position changes.

    One pass over the tensor in float64 chunks: the sum (non-finite when a NaN or Inf is
    inside) and sum_i w_i * h(i), with h a fixed pseudo-random weight of position i.

    Examples
    --------
    >>> w = torch.arange(12.0).reshape(3, 4)
    >>> fingerprint(w) == fingerprint(w.clone())
    True
    >>> swapped = w.clone(); swapped[0, 1], swapped[2, 3] = w[2, 3], w[0, 1]
    >>> fingerprint(swapped).total == fingerprint(w).total, fingerprint(swapped) == fingerprint(w)
    (True, False)
    """
    flat = weight.detach().reshape(-1)
    weights = _position_weights(flat.device)
    buffer = torch.empty(min(_CHUNK, flat.numel()), dtype=torch.float64, device=flat.device)
    parts = []  # per chunk: its sum and its position-weighted sum, from one matrix-vector product
    for start in range(0, flat.numel(), _CHUNK):
        chunk = flat[start:start + _CHUNK]
        parts.append(torch.mv(weights[:, :chunk.numel()], buffer[:chunk.numel()].copy_(chunk)))
    if not parts:
        return WeightKey(tuple(weight.shape), str(weight.dtype), str(weight.device), 0.0, 0.0)
    sums = torch.stack(parts)
    factors = torch.tensor([_chunk_factor(i) for i in range(len(parts))], dtype=torch.float64, device=sums.device)
    total, checksum = float(sums[:, 0].sum()), float(sums[:, 1] @ factors)
    return WeightKey(tuple(weight.shape), str(weight.dtype), str(weight.device), total, checksum)


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

    def peek(self, key: Hashable) -> Any:
        """The cached value of ``key`` or None (counted neither as a hit nor as a miss)."""
        with self._lock:
            item = self._items.get(key)
            if item is None:
                return None
            self._items.move_to_end(key)
            return item[0]

    def clear(self) -> None:
        with self._lock:
            self._items.clear()
            self._bytes = 0
            self.hits = self.misses = 0


SPECTRA = SpectrumCache()
