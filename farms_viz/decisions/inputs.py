"""Validation of per-layer inputs shared by the allocation and the learning rates."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np


def layer_values(alphas: Mapping[str, float] | Sequence[float] | np.ndarray, what: str = "alphas"
            ) -> tuple[list[str] | None, np.ndarray]:
    """(names or None, float64 values) of a mapping or a 1-D sequence, validated finite."""
    names: list[str] | None = None
    raw: Any = alphas
    if isinstance(alphas, Mapping):
        names = list(alphas.keys())
        raw = list(alphas.values())
    try:
        values = np.asarray(raw, dtype=np.float64)
    except (TypeError, ValueError):
        raise ValueError(f"{what} must be numbers (a name -> alpha dict or a 1-D sequence); "
                         f"got {type(alphas).__name__}") from None
    if values.ndim != 1:
        raise ValueError(f"{what} must be one-dimensional (one value per layer); got shape {values.shape}")
    if values.size == 0:
        raise ValueError(f"{what} is empty: pass at least one layer (e.g. analysis.alphas('farms'))")
    bad = np.flatnonzero(~np.isfinite(values))
    if bad.size:
        where = [names[i] if names else int(i) for i in bad[:5]]
        raise ValueError(
            f"{what} has {bad.size} non-finite value(s) (NaN or Inf) at {where}: the power-law fit "
            "failed there (too few or zero eigenvalues). Drop those layers, or give them a value, "
            "before allocating.")
    return names, values


def per_layer(value: Any, names: list[str] | None, n: int, what: str) -> list | None:
    """A per-layer argument (mapping keyed like ``alphas`` or a sequence of length n) as a list."""
    if value is None:
        return None
    if isinstance(value, Mapping):
        if names is None:
            raise ValueError(f"{what} is a mapping but alphas is a sequence: pass {what} as a "
                             f"sequence of {n} values in the order of alphas, or alphas as a dict")
        missing = [k for k in names if k not in value]
        if missing:
            raise ValueError(f"{what} has no entry for {len(missing)} layer(s), e.g. {missing[:3]}; "
                             "give every layer of alphas a value")
        return [value[k] for k in names]
    if isinstance(value, (str, bytes)):
        raise ValueError(f"{what} must be a mapping or a sequence; got the string {value!r}")
    out = list(value)
    if len(out) != n:
        raise ValueError(f"{what} has {len(out)} entries but alphas has {n}: give one per layer, "
                         "in the same order")
    return out


def check_fraction(name: str, value: Any, hint: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.floating, np.integer)) or not (
            0.0 <= float(value) < 1.0):
        raise ValueError(f"{name} must be a number in [0, 1) ({hint}); got {value!r}")
    return float(value)
