"""``analyze``: the standard ESD and FARMS of every layer of a model, as one ``Analysis``."""

from __future__ import annotations

import logging
import time
import warnings
from collections import deque
from collections.abc import Callable, Generator, Mapping, Sequence
from concurrent.futures import FIRST_COMPLETED, wait
from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import pandas as pd
import torch
from torch import nn

from . import windows as _windows
from .baseline import alpha_baseline
from .cache import SPECTRA, fingerprint
from .cpu_threads import background_pool, compute_pool, workers
from .fits import PowerLawFit, fit_power_law
from .matrices import LayerMatrix, SkippedLayer, iter_layers
from .memory import release_free_memory
from .metrics import spectral_metrics
from .params import (
    DEFAULT_CONV_NORM,
    DEFAULT_FIT,
    DEFAULT_METHOD,
    DEFAULT_Q,
    DEFAULT_WINDOW,
    DEFAULT_WINDOWS_PER_DIM,
    AnalysisParams,
    check_device,
    check_max_eigenvalues,
    check_patterns,
)
from .progress import ProgressCallback, progress_reporter
from .run_control import RunControl
from .sampling import sampling_notes
from .spectra import CHUNK_BYTES, esd_eigenvalues, farms_window_eigenvalues, pooled
from .windows import WindowGrid, check_pooled_size, pooled_eigenvalue_count, spread_subgrid, window_grid

log = logging.getLogger(__name__)



class NothingToAnalyzeError(ValueError):
    """The model holds no weight that can be analysed."""


@dataclass(frozen=True)
class LayerSpectrum:
    """One layer's ESD under one method, with its fit.

    Attributes
    ----------
    layer, method, kind : the layer's qualified name, "esd" or "farms", and its module kind.
    rows, cols, num_slices : the matrix shape (per slice; convolutions have one slice per
        kernel position).
    eigenvalues : sorted float64 eigenvalues (for FARMS, every window's pooled).
    window_eigenvalues : FARMS only, one row per window (its own ESD).
    grid : FARMS only, the window geometry.
    fit : the power-law fit of ``eigenvalues``.
    metrics : WeightWatcher-named metrics of ``eigenvalues``.
    """

    layer: str
    method: str
    kind: str
    rows: int
    cols: int
    num_slices: int
    eigenvalues: np.ndarray
    fit: PowerLawFit
    metrics: dict
    grid: WindowGrid | None = None
    window_eigenvalues: np.ndarray | None = None

    @property
    def alpha_baseline(self) -> float:
        """The alpha an i.i.d. Gaussian matrix of this geometry gets under the same fit.

        The same shape (standard ESD) or the same windows (FARMS); see
        :func:`farms_viz.engine.baseline.alpha_baseline`. Below it: a heavier tail than noise.
        """
        if self.grid is None:
            return alpha_baseline(self.rows, self.cols, self.fit.rule, self.num_slices)
        g = self.grid
        return alpha_baseline(g.window_rows, g.window_cols, self.fit.rule, g.num_windows * self.num_slices)

    @property
    def sampling_note(self) -> str:
        """Why FARMS' sample of this layer may be too thin to trust ("" when fine; the ESD: always "")."""
        return "; ".join(sampling_notes(self.grid)) if self.grid is not None else ""

    def row(self) -> dict:
        """This spectrum as one row of :meth:`Analysis.to_pandas`."""
        g = self.grid
        return {
            "layer": self.layer,
            "method": self.method,
            "kind": self.kind,
            "rows": self.rows,
            "cols": self.cols,
            "num_slices": self.num_slices,
            "aspect_ratio": max(self.rows, self.cols) / min(self.rows, self.cols),
            "alpha": self.fit.alpha,
            "alpha_baseline": self.alpha_baseline,
            "xmin": self.fit.xmin,
            "D": self.fit.D,
            "n_tail": self.fit.n_tail,
            "fit": self.fit.rule,
            "num_windows": g.num_windows * self.num_slices if g is not None else self.num_slices,
            "window_rows": g.window_rows if g is not None else self.rows,
            "window_cols": g.window_cols if g is not None else self.cols,
            "coverage": g.coverage if g is not None else 1.0,
            "window_clamped": g.clamped if g is not None else False,
            "covers_whole_matrix": g.covers_whole_matrix if g is not None else True,
            "sampling_note": self.sampling_note,
            **self.metrics,
        }


COLUMNS = (
    "layer", "method", "kind", "rows", "cols", "num_slices", "aspect_ratio", "alpha", "alpha_baseline", "xmin",
    "D", "n_tail", "fit", "num_windows", "window_rows", "window_cols", "coverage", "window_clamped",
    "covers_whole_matrix", "sampling_note", "lambda_max", "spectral_norm", "norm", "log_norm",
    "log_spectral_norm", "stable_rank", "alpha_weighted", "num_eigs",
)


@dataclass
class Analysis:
    """The result of :func:`analyze`.

    Attributes
    ----------
    params : the parameters used (``params.as_dict()`` for a plain dict).
    layers : analysed layer names in model order.
    skipped : every weight-holding module that was not analysed, with its reason.
    spectra : (layer, method) -> :class:`LayerSpectrum`.
    seconds : wall time of the run.
    """

    params: AnalysisParams
    layers: list[str]
    skipped: list[SkippedLayer]
    spectra: dict[tuple[str, str], LayerSpectrum] = field(repr=False)
    seconds: float = 0.0

    @property
    def methods(self) -> list[str]:
        return [m for m in ("esd", "farms") if any(k[1] == m for k in self.spectra)]

    def spectrum(self, layer: str, method: str = "farms") -> LayerSpectrum:
        """The :class:`LayerSpectrum` of one layer under one method."""
        try:
            return self.spectra[(layer, method)]
        except KeyError:
            known = ", ".join(self.layers[:5]) + (" ..." if len(self.layers) > 5 else "")
            raise KeyError(f"no {method!r} spectrum for layer {layer!r}; analysed layers: {known}; "
                           f"methods: {self.methods}") from None

    def eigenvalues(self, layer: str, method: str = "farms") -> np.ndarray:
        """Sorted eigenvalues of one layer (pooled over the windows for FARMS)."""
        return self.spectrum(layer, method).eigenvalues

    def to_pandas(self) -> pd.DataFrame:
        """One row per (layer, method), layers in model order.

        Columns: layer, method, kind, rows, cols, num_slices, aspect_ratio (long side /
        short side), alpha, alpha_baseline (the alpha an i.i.d. Gaussian matrix of the same
        shape gets under the same windows and fit: docs/spec.md, section 6), xmin, D, n_tail,
        fit, num_windows, window_rows, window_cols, coverage (fraction of entries some window
        covers), window_clamped, covers_whole_matrix (FARMS equals the ESD there),
        sampling_note (why FARMS' sample may be too thin to trust: low coverage, few
        eigenvalues per window, a single window, a clamped window; "" when fine), lambda_max,
        spectral_norm, norm, log_norm, log_spectral_norm, stable_rank, alpha_weighted,
        num_eigs. For FARMS the spectral metrics describe the pooled window sample. The
        standard ESD counts as one window covering the whole matrix.
        """
        methods = self.methods
        rows = [self.spectra[(layer, m)].row() for layer in self.layers for m in methods
                if (layer, m) in self.spectra]
        return pd.DataFrame(rows, columns=COLUMNS)

    def skipped_frame(self) -> pd.DataFrame:
        """The skipped layers as a DataFrame: layer, kind, shape, reason."""
        return pd.DataFrame([{"layer": s.name, "kind": s.kind, "shape": "x".join(map(str, s.shape)),
                              "reason": s.reason} for s in self.skipped],
                            columns=["layer", "kind", "shape", "reason"])

    def alphas(self, method: str = "farms") -> dict[str, float]:
        """layer -> alpha for one method, in model order."""
        return {layer: self.spectra[(layer, method)].fit.alpha for layer in self.layers
                if (layer, method) in self.spectra}


def _grid_for(matrix: LayerMatrix, params: AnalysisParams) -> WindowGrid:
    return window_grid(matrix.rows, matrix.cols, params.window, params.q, params.windows_per_dim,
                       params.stride)


def _load(matrix: LayerMatrix, device: torch.device | None) -> torch.Tensor:
    slices = matrix.load()
    if device is not None:
        slices = slices.to(device)
    return slices


def _fit(key: tuple, eigenvalues: np.ndarray, fit: str) -> PowerLawFit:
    return SPECTRA.get_or_compute(("fit", key, fit), lambda: fit_power_law(eigenvalues, fit))


def analyze_matrix(matrix: LayerMatrix, slices: torch.Tensor, params: AnalysisParams,
                   weight_key: tuple | None = None, control: RunControl | None = None) -> list[LayerSpectrum]:
    """The spectra of one layer's (num_slices, rows, cols) weight under ``params``.

    ``weight_key`` (a fingerprint of the weight) enables the cache; None computes afresh.
    ``control`` hears of every batch of windows and may stop the computation between them.
    """
    out = []
    common: dict = dict(layer=matrix.name, kind=matrix.kind, rows=matrix.rows, cols=matrix.cols,
                        num_slices=matrix.num_slices)
    scale = matrix.eigenvalue_scale

    def cached(key, compute):
        return compute() if weight_key is None else SPECTRA.get_or_compute(key, compute)

    if params.wants_esd:
        key: tuple = ("esd", weight_key, scale)
        eig = cached(key, lambda: _finite(esd_eigenvalues(slices, scale)))
        fit = _fit(key, eig, params.fit) if weight_key is not None else fit_power_law(eig, params.fit)
        out.append(LayerSpectrum(method="esd", eigenvalues=eig, fit=fit,
                                 metrics=spectral_metrics(eig, fit), **common))
    if params.wants_farms:
        grid = _grid_for(matrix, params)
        sub = spread_subgrid(grid)
        if control is not None and control.subgrid and sub is not None:
            grid, sub = sub, None  # a provisional stand-in: the coarse sub-grid's windows only
        key = ("farms", weight_key, scale, grid)
        on_batch = None if control is None else _batch_reporter(control, matrix.name,
                                                                grid.num_windows * matrix.num_slices)

        def window_eigenvalues() -> np.ndarray:
            # the sub-grid's windows, if a provisional run computed them, are not computed again
            values = None if sub is None or weight_key is None else SPECTRA.peek(("farms", weight_key, scale, sub))
            known = None if sub is None or values is None else (sub, values)
            return _finite(farms_window_eigenvalues(slices, grid, scale, on_batch, known))

        windows = cached(key, window_eigenvalues)
        eig = cached(("pooled",) + key, lambda: pooled(windows))
        fit = _fit(key, eig, params.fit) if weight_key is not None else fit_power_law(eig, params.fit)
        out.append(LayerSpectrum(method="farms", eigenvalues=eig, fit=fit, grid=grid,
                                 window_eigenvalues=windows, metrics=spectral_metrics(eig, fit),
                                 **common))
    return out


def _covers_whole(spectrum: LayerSpectrum) -> bool:
    return spectrum.grid is not None and spectrum.grid.covers_whole_matrix


class EigensolverError(ArithmeticError):
    """The eigenvalues of a layer came out NaN or infinite."""


def _finite(eigenvalues: np.ndarray) -> np.ndarray:
    if not np.isfinite(eigenvalues).all():
        raise EigensolverError("the eigensolver returned NaN or infinite eigenvalues")
    return eigenvalues


def _spectra_or_skip(matrix: LayerMatrix, slices: torch.Tensor, params: AnalysisParams,
                     weight_key: tuple | None, control: RunControl | None = None
                     ) -> list[LayerSpectrum] | SkippedLayer:
    """The layer's spectra, or a SkippedLayer saying why its eigenvalues could not be computed."""
    try:
        return analyze_matrix(matrix, slices, params, weight_key, control)
    except (torch.linalg.LinAlgError, EigensolverError) as error:
        largest = float(slices.abs().max()) if slices.numel() else 0.0
        what = " ".join(str(error).split())[:160]
        hint = ("its squares overflow float64 in the Gram matrix above ~1e154: rescale the weight"
                if largest > 1e150 else "rescale the weight or check it for extreme values")
        log.warning("layer %s skipped: %s", matrix.name, what)
        return SkippedLayer(matrix.name, matrix.kind, tuple(slices.shape[1:]),
                            f"eigenvalues could not be computed ({what}); largest |entry| {largest:.3g}: {hint}")


def _batch_reporter(control: RunControl, layer: str, total: int) -> Callable[[int], None]:
    """``on_batch`` for one layer: its windows done so far go to ``control`` (which may stop the run)."""
    control.check()
    done = 0

    def report(count: int) -> None:
        nonlocal done
        done += count
        control.windows_done(layer, done, total)

    return report


class Executor(Protocol):
    """What ``analyze(executor=...)`` needs: ``submit(fn, *args)`` -> a future with ``result()``."""

    def submit(self, fn: Callable, /, *args, **kwargs): ...


LayerOutcome = tuple[str, "list[LayerSpectrum] | SkippedLayer"]


def _non_finite(matrix: LayerMatrix, slices: torch.Tensor) -> SkippedLayer | None:
    if bool(torch.isfinite(slices).all()):
        return None
    return SkippedLayer(matrix.name, matrix.kind, tuple(slices.shape[1:]),
                        "non-finite values (NaN or Inf) in the weight")


# Layers run concurrently only while their estimated working sets fit in this budget: small
# layers share the cores, two large ones (an LLM's 11008 x 4096) never run at once, and a large
# one (an embedding table) runs beside small ones worth at most the budget.
IN_FLIGHT_BYTES = 128 * 2**20
# Finished layers waiting for an earlier, slower one to be reported, per worker: the workers keep
# going while the head of the model order (often a large embedding) is still computing.
AHEAD_PER_WORKER = 8


def _working_set(matrix: LayerMatrix, params: AnalysisParams) -> int:
    """A float64-sized proxy of one layer's peak working set: the weight read, a batch of
    windows, and the eigenvalues (FARMS: per window and pooled, each pooled eigenvalue twice)."""
    weight = 8 * matrix.rows * matrix.cols * matrix.num_slices
    eigenvalues = 2 * matrix.num_slices * min(matrix.rows, matrix.cols) if params.wants_esd else 0
    batch = 0
    if params.wants_farms:
        grid = _grid_for(matrix, params)
        eigenvalues += 2 * pooled_eigenvalue_count(grid, matrix.num_slices)
        batch = min(CHUNK_BYTES, 8 * grid.num_windows * grid.window_rows * grid.window_cols)
    return weight + 8 * eigenvalues + batch


def _fits_beside(running: list[int], candidate: int) -> bool:
    """May a layer of working set ``candidate`` start beside layers of working sets ``running``?"""
    sizes = running + [candidate]
    return sum(sizes) - max(sizes) <= IN_FLIGHT_BYTES or len(sizes) == 1


def _compute_layer(matrix: LayerMatrix, params: AnalysisParams, target: torch.device | None,
                   control: RunControl | None = None) -> list[LayerSpectrum] | SkippedLayer:
    if control is not None:
        control.check()
    with torch.no_grad():
        slices = _load(matrix, target)
        key = fingerprint(slices)
        # a float64 sum of finite weights cannot overflow: a non-finite sum means NaN/Inf inside
        problem = None if np.isfinite(key.total) else _non_finite(matrix, slices)
        outcome = problem or _spectra_or_skip(matrix, slices, params, key, control)
        del slices
    release_free_memory()
    return outcome


def _local_results(matrices: deque, params: AnalysisParams, target: torch.device | None,
                   control: RunControl | None = None) -> Generator[LayerOutcome, None, None]:
    """Layers on this machine's compute pool (one background thread for a background run),
    reported in model order.

    At most twice the workers' layers are computing or queued at once (within the memory
    budget); more may have finished and wait for an earlier one to be reported.
    """
    background = control is not None and control.background
    pool = background_pool() if background else compute_pool()
    slots = 1 if background else workers()
    in_flight: deque = deque()  # (name, future, estimated bytes), in model order
    ahead = AHEAD_PER_WORKER * slots
    try:
        while matrices or in_flight:
            running = [b for _, f, b in in_flight if not f.done()]
            while matrices and len(running) < 2 * slots and len(in_flight) < ahead and (
                    _fits_beside(running, _working_set(matrices[0], params))):
                matrix = matrices.popleft()
                size = _working_set(matrix, params)
                in_flight.append((matrix.name, pool.submit(_compute_layer, matrix, params, target, control),
                                  size))
                running.append(size)
                del matrix
            name, future, _ = in_flight[0]
            if not future.done() and matrices:
                # wake when any layer finishes: a free worker may take the next one
                wait([f for _, f, _ in in_flight if not f.done()], return_when=FIRST_COMPLETED)
                continue
            in_flight.popleft()
            yield name, future.result()
    finally:
        for _, future, _ in in_flight:  # abandoned (an error or a cancelled run): drop queued layers
            future.cancel()
        if control is not None and control.cancelled:
            # a stopped run ends when its layers have: they stop at their next batch of windows
            wait([future for _, future, _ in in_flight])


def _unavailable() -> torch.Tensor:
    raise RuntimeError("this layer's weight travels with the task; it has no loader here")


def analyze_layer_task(matrix: LayerMatrix, slices: torch.Tensor, params: AnalysisParams,
                       device: str | None = None) -> list[LayerSpectrum] | SkippedLayer:
    """One layer's spectra on whichever process runs it: the unit ``analyze(executor=...)`` submits.

    ``matrix`` carries the layer's metadata only (its loader cannot travel); ``slices`` is the
    (num_slices, rows, cols) weight itself. No cache: the worker computes afresh.
    """
    with torch.no_grad():
        if device is not None:
            slices = slices.to(device)
        return _spectra_or_skip(matrix, slices, params, None)


def _in_flight_limit(executor: Executor) -> int:
    """Twice the executor's parallelism: workers stay busy, and few layers wait in memory."""
    slots = getattr(executor, "_max_workers", None)  # concurrent.futures pools
    client = getattr(executor, "_client", executor)  # dask's ClientExecutor wraps a Client
    if slots is None and hasattr(client, "nthreads"):
        try:
            slots = sum(client.nthreads().values())  # dask: threads over all workers
        except Exception:
            slots = None
    return 2 * max(1, slots or 2)


def _executor_results(matrices: deque, params: AnalysisParams, device: str | torch.device | None,
                      executor: Executor, control: RunControl | None = None
                      ) -> Generator[LayerOutcome, None, None]:
    limit = _in_flight_limit(executor)
    device = str(device) if device is not None else None
    in_flight: deque = deque()  # (name, future or finished outcome), in model order
    while matrices or in_flight:
        if control is not None:
            control.check()
        while matrices and len(in_flight) < limit:
            matrix = matrices.popleft()
            with torch.no_grad():
                # A compact CPU copy: a view would pickle its whole (possibly mapped) storage.
                slices = matrix.load().detach().to("cpu", copy=True).contiguous()
            problem = _non_finite(matrix, slices)
            if problem is not None:
                in_flight.append((matrix.name, problem))
            else:
                metadata = replace(matrix, load=_unavailable, source=None)
                in_flight.append((matrix.name, executor.submit(analyze_layer_task, metadata, slices,
                                                               params, device)))
            del matrix, slices
        name, pending = in_flight.popleft()
        yield name, pending if isinstance(pending, SkippedLayer) else pending.result()


def analyze(model: nn.Module | Mapping[str, torch.Tensor], *, method: str = DEFAULT_METHOD,
            window: int = DEFAULT_WINDOW, q: float = DEFAULT_Q, windows_per_dim: int = DEFAULT_WINDOWS_PER_DIM,
            stride: int | None = None, fit: str = DEFAULT_FIT, conv_norm: float = DEFAULT_CONV_NORM,
            device: str | torch.device | None = None, include: Sequence[str] | str | None = None,
            exclude: Sequence[str] | str | None = None, progress: bool | ProgressCallback = True,
            executor: Executor | None = None, max_eigenvalues: int | None = None,
            control: RunControl | None = None) -> Analysis:
    """Standard ESD and/or FARMS of every weight matrix of ``model``.

    Parameters
    ----------
    model : an ``nn.Module`` or a state dict (name -> tensor). Never modified.
    method : "esd" (standard ESD), "farms" or "both".
    window : rows m of a FARMS window (clamped to the layer; flagged in the results).
    q : aspect ratio Q of every window: m x floor(m * Q).
    windows_per_dim : windows k along each dimension (a k x k grid).
    stride : explicit stride in entries instead of the k x k grid.
    fit : "median" (PL_Alpha_Hill, the paper's metric), "peak" (reference xmin_peak, used for
        LLM pruning) or "ks" (WeightWatcher's default).
    conv_norm : eigenvalue factor for convolution slices.
    device : compute device ("cpu", "cuda", "cuda:1", a ``torch.device``); None computes each
        layer on the device its weight lives on.
    include, exclude : a glob pattern on layer names, or a list of them.
    progress : True for a tqdm bar, False for none, or a callback ``f(done, total, layer)``.
    executor : any ``concurrent.futures``-style executor (an object with ``submit`` returning
        futures with ``result()``), e.g. a ``dask.distributed.Client``: each layer's spectra are
        computed there (on ``device``, if given) with the same results as locally. A bounded
        number of layers is in flight at once. None computes here.
    max_eigenvalues : the most eigenvalues one layer's FARMS windows may pool (default
        ``farms_viz.engine.windows.MAX_POOLED_EIGENVALUES``, 20 million: 160 MB of float64). A
        setting above it on any layer is refused before anything is computed, with the count
        and the stride and windows_per_dim that would fit.
    control : a :class:`~farms_viz.engine.run_control.RunControl`: a cancel flag checked between
        batches of windows and between layers (``analyze`` then raises ``AnalysisCancelled``),
        window-by-window progress, each layer's result as it completes, and the background
        thread. With an executor, only the checks between layers apply.

    Returns
    -------
    Analysis

    Examples
    --------
    >>> import torch.nn as nn, farms_viz
    >>> result = farms_viz.analyze(nn.Linear(256, 64), window=32, progress=False)
    >>> result.to_pandas()[["method", "alpha"]].shape
    (2, 2)
    """
    params = AnalysisParams(method=method, window=window, q=q, windows_per_dim=windows_per_dim,
                            stride=stride, fit=fit, conv_norm=conv_norm)
    include, exclude = check_patterns("include", include), check_patterns("exclude", exclude)
    if executor is not None and not callable(getattr(executor, "submit", None)):
        raise TypeError("executor must have a submit(fn, *args) method returning futures, as a "
                        "concurrent.futures executor or a dask.distributed.Client; got "
                        f"{executor!r} ({type(executor).__name__})")
    # with an executor the device is the workers': it need not exist on this machine
    target = check_device(device, here=executor is None)
    limit = check_max_eigenvalues(_windows.MAX_POOLED_EIGENVALUES if max_eigenvalues is None else max_eigenvalues)
    start = time.perf_counter()

    items = list(iter_layers(model, conv_norm=params.conv_norm, include=include, exclude=exclude))
    order = {item.name: i for i, item in enumerate(items)}
    # A deque popped as we go: each layer's weight is released once analysed (a lazily opened
    # checkpoint then unmaps it), so memory holds about one layer, not the model.
    matrices = deque(m for m in items if isinstance(m, LayerMatrix))
    skipped = [s for s in items if isinstance(s, SkippedLayer)]
    del items
    if params.wants_farms:  # refuse a setting too large for any layer before computing anything
        sampling = f"stride {params.stride}" if params.stride else f"windows_per_dim {params.windows_per_dim}"
        setting = f"window {params.window}, q {params.q:g}, {sampling}"
        for matrix in matrices:
            check_pooled_size(matrix.name, _grid_for(matrix, params), matrix.num_slices, limit, setting)
    total = len(matrices)
    spectra: dict[tuple[str, str], LayerSpectrum] = {}
    layers: list[str] = []
    results: Generator[LayerOutcome, None, None] = (
        _local_results(matrices, params, target, control) if executor is None
        else _executor_results(matrices, params, device, executor, control))
    with progress_reporter(progress) as report:
        try:
            for done, (name, outcome) in enumerate(results, start=1):
                if isinstance(outcome, SkippedLayer):
                    skipped.append(outcome)
                else:
                    for spectrum in outcome:
                        spectra[(name, spectrum.method)] = spectrum
                    layers.append(name)
                if control is not None:
                    control.layer_done(name, outcome)
                    control.check()
                if report is not None:
                    report(done, total, name)
        finally:
            results.close()

    if not layers:
        reasons = "\n".join(f"  {s.name} {list(s.shape)}: {s.reason}" for s in skipped) or "  (no weights found)"
        raise NothingToAnalyzeError(
            "nothing to analyse: no Linear, Embedding, Conv or attention weight with at least 8 "
            f"eigenvalues passed. Skipped:\n{reasons}\nCheck include/exclude, or pass a model with such layers.")
    whole = [n for n in layers if (n, "farms") in spectra and _covers_whole(spectra[(n, "farms")])]
    if whole:
        warnings.warn(
            f"window {params.window} covers the whole matrix of {len(whole)} layer(s) "
            f"({', '.join(whole[:3])}{' ...' if len(whole) > 3 else ''}): FARMS equals the standard ESD "
            "there; use a smaller window to sample them.", stacklevel=2)
    skipped.sort(key=lambda s: order.get(s.name, len(order)))
    return Analysis(params, layers, skipped, spectra, time.perf_counter() - start)
