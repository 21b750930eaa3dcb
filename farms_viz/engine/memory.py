"""Give freed heap memory back to the operating system between layers.

Many short-lived numpy/torch temporaries of a few MiB raise glibc's dynamic mmap threshold,
after which freed blocks stay in the heap and the process's resident size creeps up layer
after layer. ``malloc_trim(0)`` returns them; elsewhere (macOS, Windows, musl) it is a no-op.

Trimming has a price: every page handed back is faulted in and zeroed again by the next
allocation (trimming after every layer cost 0.7 s of system time per FARMS run on MiniLM, a
quarter of the run). So the heap is trimmed only once the resident size has grown by
``HEAP_SLACK_BYTES`` since the last trim: consecutive layers reuse the freed blocks, and the
creep stays bounded.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys
import threading


def _load_trim():
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return libc.malloc_trim
    except (OSError, AttributeError):
        return None


_TRIM = _load_trim()
# Growth of the resident size since the last trim that is tolerated before trimming again.
HEAP_SLACK_BYTES = 32 * 2**20
_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096
_lock = threading.Lock()
_resident_after_trim = 0


def _resident_bytes() -> int | None:
    try:
        with open("/proc/self/statm", "rb") as statm:
            return int(statm.read().split()[1]) * _PAGE_BYTES
    except (OSError, ValueError, IndexError):
        return None


def release_free_memory(*, force: bool = False) -> None:
    """Return free heap pages to the OS once the resident size has grown by
    ``HEAP_SLACK_BYTES`` since the last time, or now with ``force=True`` (glibc only).

    ``force`` is for a caller that has just freed a large working set and is about to start
    another, on other threads (whose allocations come from other malloc arenas and cannot
    reuse the freed pages)."""
    global _resident_after_trim
    if _TRIM is None:
        return
    with _lock:
        resident = _resident_bytes()
        if not force and resident is not None and resident <= _resident_after_trim + HEAP_SLACK_BYTES:
            return
        _TRIM(0)
        _resident_after_trim = _resident_bytes() or 0
