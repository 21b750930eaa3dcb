"""One source of truth for analysis parameters: defaults, allowed values, validation."""

from __future__ import annotations

from dataclasses import asdict, dataclass, replace
from typing import Any

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
        if not _is_real(self.q) or not self.q > 0 or self.q != self.q or self.q == float("inf"):
            raise ValueError(f"q must be a finite number > 0 (the window's columns per row, e.g. 1.0); got {self.q!r}")
        if not _is_real(self.conv_norm) or not self.conv_norm > 0:
            raise ValueError(f"conv_norm must be a number > 0 (0.5 as WeightWatcher does); got {self.conv_norm!r}")
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
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_choice(name: str, value: Any, allowed: tuple[str, ...]) -> None:
    if value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(repr(a) for a in allowed)}; got {value!r}")


def _check_int(name: str, value: Any, *, minimum: int, hint: str) -> None:
    if isinstance(value, bool) or (not isinstance(value, (int,)) and not (
        isinstance(value, float) and value.is_integer()
    )):
        raise ValueError(f"{name} must be an integer >= {minimum}; got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum} ({hint}); got {value!r}")
