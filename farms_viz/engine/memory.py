"""Give freed heap memory back to the operating system between layers.

Many short-lived numpy/torch temporaries of a few MiB raise glibc's dynamic mmap threshold,
after which freed blocks stay in the heap and the process's resident size creeps up layer
after layer. ``malloc_trim(0)`` returns them; elsewhere (macOS, Windows, musl) it is a no-op.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import sys


def _load_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _load_trim()


def release_free_memory() -> None:
    """Return free heap pages to the OS (glibc only)."""
    if _TRIM is not None:
        _TRIM(0)
