"""One source of truth for analysis parameters: defaults, allowed values, validation."""

from __future__ import annotations

import math
import numbers
from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, replace
from typing import Any

import numpy as np
import torch

METHODS = ("esd", "farms", "both")
FITS = ("median", "peak", "ks")

DEFAULT_METHOD = "both"
DEFAULT_WINDOW = 100
DEFAULT_Q = 1.0
DEFAULT_WINDOWS_PER_DIM = 10
DEFAULT_FIT = "median"
DEFAULT_CONV_NORM = 0.5

# The numeric FARMS parameters' rules as data, for front ends that check a value before sending
# it (the Explorer's fields): "integer" (whole numbers only; 2.0 counts), "min" (smallest
# allowed), "above" (values must exceed it), "nullable" (None allowed), "hint" (what to do).
# AnalysisParams enforces exactly these (tests/test_parameter_rules.py checks the boundaries).
PARAMETER_RULES: dict[str, dict[str, Any]] = {
    "window": {"integer": True, "min": 2, "hint": "a window needs at least 2 rows"},
    "q": {"integer": False, "above": 0, "hint": "the window's columns per row, e.g. 1.0"},
    "windows_per_dim": {"integer": True, "min": 1, "hint": "use 1 for a single window at the origin"},
    "stride": {"integer": True, "min": 1, "nullable": True,
               "hint": "or leave it empty (None) for the k x k grid"},
}


@dataclass(frozen=True)
class AnalysisParams:
    """The parameters of one analysis run, validated.

    Attributes
    ----------
    method : "esd", "farms" or "both".
    window : rows of a FARMS window (m).
    q : the windows' aspect ratio Q (columns per row); a window is m x floor(m * Q).
    windows_per_dim : windows along each dimension (k) when ``stride`` is None.
    stride : explicit stride in entries; replaces the windows_per_dim grid when given.
    fit : power-law fit, "median" (PL_Alpha_Hill), "peak" or "ks".
    conv_norm : factor applied to the eigenvalues of convolution slices.
    """

    method: str = DEFAULT_METHOD
    window: int = DEFAULT_WINDOW
    q: float = DEFAULT_Q
    windows_per_dim: int = DEFAULT_WINDOWS_PER_DIM
    stride: int | None = None
    fit: str = DEFAULT_FIT
    conv_norm: float = DEFAULT_CONV_NORM

    def __post_init__(self) -> None:
        _check_choice("method", self.method, METHODS)
        _check_choice("fit", self.fit, FITS)
        _check_int("window", self.window, minimum=2, hint="a window needs at least 2 rows")
        _check_int("windows_per_dim", self.windows_per_dim, minimum=1,
                   hint="use 1 for a single window at the origin")
        if self.stride is not None:
            _check_int("stride", self.stride, minimum=1, hint="or pass stride=None for the windows_per_dim grid")
        if not (_is_real(self.q) and math.isfinite(self.q) and self.q > 0):
            raise ValueError(f"q must be a finite number > 0 (the window's columns per row, e.g. 1.0); got {self.q!r}")
        if not (_is_real(self.conv_norm) and math.isfinite(self.conv_norm) and self.conv_norm > 0):
            raise ValueError("conv_norm must be a finite number > 0 (0.5 as WeightWatcher does); "
                             f"got {self.conv_norm!r}")
        object.__setattr__(self, "q", float(self.q))
        object.__setattr__(self, "conv_norm", float(self.conv_norm))
        object.__setattr__(self, "window", int(self.window))
        object.__setattr__(self, "windows_per_dim", int(self.windows_per_dim))
        if self.stride is not None:
            object.__setattr__(self, "stride", int(self.stride))

    @property
    def wants_esd(self) -> bool:
        return self.method in ("esd", "both")

    @property
    def wants_farms(self) -> bool:
        return self.method in ("farms", "both")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def with_changes(self, **changes: Any) -> AnalysisParams:
        return replace(self, **changes)


def _is_real(value: Any) -> bool:
    """Python and numpy ints and floats; not booleans."""
    return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")


def _check_int(name: str, value: Any, *, minimum: int, hint: str) -> None:
    """An integer (Python or numpy, or a float with an integer value) of at least ``minimum``."""
    whole = isinstance(value, numbers.Integral) or (
        isinstance(value, (float, np.floating)) and math.isfinite(value) and float(value).is_integer())
    if not _is_real(value) or not whole:
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} ({hint}); got {value!r}")


def check_max_eigenvalues(value: Any) -> int:
    """The limit on one layer's pooled FARMS eigenvalues, validated."""
    _check_int("max_eigenvalues", value, minimum=1, hint="the most eigenvalues one layer's windows may pool")
    return int(value)


def check_patterns(name: str, value: Any) -> list[str] | None:
    """``include``/``exclude``: None, one glob pattern, or an iterable of them, as a list.

    Examples
    --------
    >>> check_patterns("include", "*.mlp.*"), check_patterns("exclude", ("a", "b"))
    (['*.mlp.*'], ['a', 'b'])
    """
    if value is None:
        return None
    if isinstance(value, str):
        return [value]
    if isinstance(value, (bytes, Mapping)) or not isinstance(value, Iterable):
        raise TypeError(f"{name} must be a glob pattern (str) or a list of them; got {value!r} "
                        f"({type(value).__name__})")
    patterns = list(value)
    for i, pattern in enumerate(patterns):
        if not isinstance(pattern, str):
            raise TypeError(f"{name} must hold glob patterns (str); item {i} is {pattern!r} "
                            f"({type(pattern).__name__})")
    return patterns


def _device_available(device: torch.device, name: str) -> None:
    if device.type == "cuda":
        if not torch.cuda.is_available():
            why = "torch was built without CUDA" if torch.version.cuda is None else "no GPU is visible"
            raise ValueError(f"device {name!r} was asked for, but CUDA is not available here ({why}); "
                             "use device='cpu', or None for each layer's own device")
        count = torch.cuda.device_count()
        if device.index is not None and device.index >= count:
            raise ValueError(f"device {name!r}: this machine has {count} CUDA device(s), "
                             f"cuda:0 to cuda:{count - 1}")
        return
    backend = getattr(torch.backends, device.type, None) if device.type == "mps" else getattr(torch, device.type, None)
    is_available = getattr(backend, "is_available", None)
    if device.type != "cpu" and callable(is_available) and not is_available():
        raise ValueError(f"device {name!r} was asked for, but it is not available here; use device='cpu', or None")


def check_device(device: Any, *, here: bool = True) -> torch.device | None:
    """A compute device, validated: parsed, not ``meta``, and (``here``) present on this machine.

    Parameters
    ----------
    device : None, a string such as ``"cpu"`` or ``"cuda:1"``, or a ``torch.device``.
    here : check that the device exists on this machine (not when an executor computes
        elsewhere).

    Examples
    --------
    >>> check_device("cpu")
    device(type='cpu')
    >>> check_device("gpu0")
    Traceback (most recent call last):
    ...
    ValueError: device 'gpu0' is not a device torch knows; use 'cpu', 'cuda', 'cuda:1' or 'mps' (or None ...
    """
    if device is None:
        return None
    if not isinstance(device, (str, torch.device)):
        raise TypeError(f"device must be a string such as 'cpu' or 'cuda:0', or a torch.device; got {device!r} "
                         f"({type(device).__name__})")
    name = device if isinstance(device, str) else str(device)
    try:
        parsed = torch.device(device)
    except (RuntimeError, ValueError):
        raise ValueError(f"device {name!r} is not a device torch knows; use 'cpu', 'cuda', 'cuda:1' or 'mps' "
                         "(or None for each layer's own device)") from None
    if parsed.type == "meta":
        raise ValueError(f"device {name!r} holds no values (shapes only), so there are no eigenvalues to compute; "
                         "use device='cpu' or 'cuda', or None for each layer's own device")
    if here:
        _device_available(parsed, name)
    return parsed
