"""CPU threading for the spectra: one layer per core, each on sequential BLAS/LAPACK.

MKL and OpenMP thread every small call internally; with anything else on the cores (a
training loop in the same kernel, another process) their threads spin at barriers and a
batch of 100x100 eigenvalue problems runs 5-25x slower than on one thread (measured here).
farms_viz instead runs each layer's work on a thread of its own compute pool that asks
OpenMP and MKL for one thread (``omp_set_num_threads`` and ``MKL_Set_Num_Threads_Local``
act on the calling thread only: the rest of the process is untouched), and keeps as many
layers in flight as torch has intra-op threads (at most the usable cores). Single matrices
above ``THREADED_MIN_SIZE`` have enough work to use MKL's threads again.

torch sets each thread's OpenMP and MKL thread counts lazily, on the thread's first parallel
op (or ``torch.get_num_threads()``): once the user has called ``torch.set_num_threads(n)``,
that first op sets n in the thread, undoing a sequential setting made before it (FARMS on
MiniLM then ran 2x slower). Each pool thread therefore lets torch initialise first and asks
for one thread afterwards; torch does not initialise a thread twice. The user's own settings
(their threads, torch's intra-op pool, the environment) are never changed.
"""

from __future__ import annotations

import ctypes
import logging
import os
import sys
import threading
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager

import torch

# From this size on, one eigenvalue problem has enough work for MKL's own threads.
THREADED_MIN_SIZE = 1024

log = logging.getLogger(__name__)
# Added to the background thread's nice value (Linux): it then gets a small share of a busy core.
BACKGROUND_NICE = 10

_LIB_DIR = os.path.join(os.path.dirname(torch.__file__), "lib")
_state = threading.local()


def _symbol(libraries: tuple[str, ...], name: str, argtypes: tuple = (ctypes.c_int,)):
    for library in libraries:
        for candidate in (os.path.join(_LIB_DIR, library), library):
            try:
                fn = getattr(ctypes.CDLL(candidate), name)
            except (OSError, AttributeError):
                continue
            fn.argtypes = list(argtypes)
            fn.restype = ctypes.c_int
            return fn
    return None


# The by-value C entry points (the lower-case names are MKL's Fortran ones, by reference).
_MKL_LIBRARIES = ("libtorch_cpu.so", "libmkl_rt.so.2", "libmkl_rt.so")
_OMP_LIBRARIES = ("libgomp.so.1", "libiomp5.so", "libomp.so")
_MKL_LOCAL_THREADS = _symbol(_MKL_LIBRARIES, "MKL_Set_Num_Threads_Local")
_OMP_THREADS = _symbol(_OMP_LIBRARIES, "omp_set_num_threads")
_MKL_MAX_THREADS = _symbol(_MKL_LIBRARIES, "MKL_Get_Max_Threads", ())
_OMP_MAX_THREADS = _symbol(_OMP_LIBRARIES, "omp_get_max_threads", ())

_POOL: ThreadPoolExecutor | None = None
_POOL_LOCK = threading.Lock()


def _let_torch_initialise_thread() -> None:
    """Run torch's lazy per-thread thread-count initialisation now (it runs once per thread)."""
    torch.get_num_threads()


def _make_sequential() -> None:
    _let_torch_initialise_thread()  # first: it would reset the counts set below
    if _OMP_THREADS is not None:
        _OMP_THREADS(1)
    if _MKL_LOCAL_THREADS is not None:
        _MKL_LOCAL_THREADS(1)
    _state.sequential = True


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def workers() -> int:
    """Layers computed at once: torch's intra-op thread count, at most the usable cores."""
    return max(1, min(torch.get_num_threads(), _usable_cores()))


def blas_threads() -> tuple[int | None, int | None]:
    """The calling thread's (OpenMP, MKL) maximum thread counts; None where a library is absent.

    Examples
    --------
    >>> compute_pool().submit(blas_threads).result()[0] in (1, None)
    True
    """
    return (_OMP_MAX_THREADS() if _OMP_MAX_THREADS is not None else None,
            _MKL_MAX_THREADS() if _MKL_MAX_THREADS is not None else None)


def compute_pool() -> ThreadPoolExecutor:
    """The shared pool whose threads run sequential BLAS/LAPACK (created on first use)."""
    global _POOL
    with _POOL_LOCK:
        if _POOL is None or _POOL._max_workers != workers():
            _POOL = ThreadPoolExecutor(max_workers=workers(), thread_name_prefix="farms_viz",
                                       initializer=_make_sequential)
        return _POOL


_BACKGROUND: ThreadPoolExecutor | None = None


def lower_priority(increment: int = BACKGROUND_NICE) -> bool:
    """Raise the calling thread's nice value by ``increment`` (Linux only); True if done.

    Raising it needs no privilege; lowering it back would, so only a thread that does
    low-priority work for its whole life calls this.
    """
    if not sys.platform.startswith("linux") or increment <= 0:
        return False
    try:
        thread = threading.get_native_id()  # on Linux a thread id is a valid PRIO_PROCESS target
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + increment))
        return True
    except (OSError, AttributeError) as error:
        log.debug("could not lower the background thread's priority: %s", error)
        return False


def _start_background_thread() -> None:
    _make_sequential()
    lower_priority()


def background_pool() -> ThreadPoolExecutor:
    """One thread at a lower CPU priority, with sequential BLAS/LAPACK (created on first use).

    For work that may wait (precomputing the next slider values): when the cores are busy the
    scheduler serves every other thread first.
    """
    global _BACKGROUND
    with _POOL_LOCK:
        if _BACKGROUND is None:
            _BACKGROUND = ThreadPoolExecutor(max_workers=1, thread_name_prefix="farms_viz-background",
                                             initializer=_start_background_thread)
        return _BACKGROUND


@contextmanager
def _mkl_threads(count: int):
    if _MKL_LOCAL_THREADS is None:
        yield
        return
    previous = _MKL_LOCAL_THREADS(count)
    try:
        yield
    finally:
        _MKL_LOCAL_THREADS(previous)


def eigvalsh(matrices: torch.Tensor) -> torch.Tensor:
    """``torch.linalg.eigvalsh`` with the threading policy above (CPU); unchanged elsewhere."""
    if matrices.device.type != "cpu":
        return torch.linalg.eigvalsh(matrices)
    if matrices.shape[-1] >= THREADED_MIN_SIZE:
        with _mkl_threads(0):  # 0: back to MKL's process-wide thread count
            return torch.linalg.eigvalsh(matrices)
    if getattr(_state, "sequential", False):
        return torch.linalg.eigvalsh(matrices)
    _let_torch_initialise_thread()  # else it could reset MKL's count inside the call below
    with _mkl_threads(1):
        return torch.linalg.eigvalsh(matrices)
