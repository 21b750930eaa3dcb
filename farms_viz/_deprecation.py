"""Renamed public names keep working for a while, with a DeprecationWarning that names the new one."""

from __future__ import annotations

import warnings
from typing import Any

_MISSING: Any = object()


def renamed_argument(function: str, old: str, new: str, old_value: Any, new_value: Any, default: Any) -> Any:
    """The value of a renamed keyword: ``new_value``, or ``old_value`` (with a warning) if given.

    Examples
    --------
    >>> renamed_argument("f", "method", "alphas_from", _MISSING, "esd", "farms")
    'esd'
    """
    if old_value is _MISSING:
        return new_value
    if new_value != default:
        raise TypeError(f"{function}() got both {old}= and {new}=: use {new}= only")
    warnings.warn(f"{function}({old}=...) is deprecated: use {new}=", DeprecationWarning, stacklevel=3)
    return old_value


def warn_renamed(old: str, new: str, stacklevel: int = 3) -> None:
    """Warn that attribute ``old`` is now ``new``."""
    warnings.warn(f"{old} is deprecated: use {new}", DeprecationWarning, stacklevel=stacklevel)
