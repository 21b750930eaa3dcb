"""FARMS window geometry: where the fixed-aspect-ratio windows sit in a matrix (docs/spec.md, section 2)."""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class WindowGrid:
    """The windows FARMS takes from one (rows x cols) matrix.

    Attributes
    ----------
    window_rows, window_cols : the shape of every window (m' x w).
    row_starts, col_starts : top-left corners; the windows are their Cartesian product.
    clamped : True when the requested window did not fit and was shrunk.
    """

    rows: int
    cols: int
    window_rows: int
    window_cols: int
    row_starts: tuple[int, ...]
    col_starts: tuple[int, ...]
    clamped: bool

    @property
    def num_windows(self) -> int:
        return len(self.row_starts) * len(self.col_starts)

    @property
    def eigenvalues_per_window(self) -> int:
        return min(self.window_rows, self.window_cols)

    @property
    def covers_whole_matrix(self) -> bool:
        """A single window equal to the matrix: FARMS then equals the standard ESD."""
        return self.window_rows == self.rows and self.window_cols == self.cols

    @property
    def coverage(self) -> float:
        """Fraction of the matrix's entries that at least one window covers."""
        covered_rows = _covered(self.row_starts, self.window_rows)
        covered_cols = _covered(self.col_starts, self.window_cols)
        return covered_rows * covered_cols / (self.rows * self.cols)


def _covered(starts: tuple[int, ...], length: int) -> int:
    total, reach = 0, 0
    for start in starts:  # starts are ascending
        end = start + length
        total += end - max(start, reach)
        reach = end
    return total


def _starts(size: int, span: int, step: int, count: int | None) -> tuple[int, ...]:
    last = size - span
    if count is None:  # explicit stride: 0, s, 2s, ... while the window fits
        return tuple(range(0, last + 1, step))
    n = min(count, last // step + 1)
    return tuple(min(a * step, last) for a in range(n))


def window_grid(rows: int, cols: int, window: int, q: float, windows_per_dim: int,
                stride: int | None = None) -> WindowGrid:
    """The FARMS windows of a (rows x cols) matrix.

    Parameters
    ----------
    rows, cols : the matrix shape.
    window : requested window rows m.
    q : window aspect ratio; each window has floor(m * q) columns.
    windows_per_dim : k, windows along each dimension (ignored when ``stride`` is given).
    stride : explicit stride in entries, used for both dimensions.

    Examples
    --------
    >>> g = window_grid(10, 6, 4, 1.0, 3)
    >>> g.row_starts, g.col_starts
    ((0, 3, 6), (0, 1, 2))
    """
    m = min(window, rows, cols)
    # The reference does not guard w > cols; shrink m until the window fits.
    while m > 1 and math.floor(m * q) > cols:
        m -= 1
    w = min(cols, max(1, math.floor(m * q)))
    clamped = m != window or w != math.floor(window * q)
    if stride is not None:
        row_starts = _starts(rows, m, stride, None)
        col_starts = _starts(cols, w, stride, None)
    elif windows_per_dim == 1:
        row_starts, col_starts = (0,), (0,)
    else:
        k = windows_per_dim
        row_step = max(1, (rows - m) // (k - 1))
        col_step = max(1, (cols - w) // (k - 1))
        row_starts = _starts(rows, m, row_step, k)
        col_starts = _starts(cols, w, col_step, k)
    return WindowGrid(rows, cols, m, w, row_starts, col_starts, clamped)


# Positions along each axis of the coarse sub-grid a provisional result is computed on.
SUBGRID_PER_DIM = 3


def spread_subgrid(grid: WindowGrid, per_dim: int = SUBGRID_PER_DIM) -> WindowGrid | None:
    """A coarse sub-grid of ``grid``: ``per_dim`` of its row starts and of its column starts,
    spread from the first to the last (None when the grid has no more than that on either axis).

    Its windows are some of the grid's own, so a full run can reuse their eigenvalues.

    Examples
    --------
    >>> g = window_grid(384, 384, 100, 1.0, 10)
    >>> sub = spread_subgrid(g)
    >>> sub.row_starts, sub.num_windows, set(sub.col_starts) <= set(g.col_starts)
    ((0, 124, 279), 9, True)
    >>> spread_subgrid(window_grid(384, 384, 100, 1.0, 3)) is None
    True
    """
    rows, cols = _spread(grid.row_starts, per_dim), _spread(grid.col_starts, per_dim)
    if len(rows) == len(grid.row_starts) and len(cols) == len(grid.col_starts):
        return None
    return dataclasses.replace(grid, row_starts=rows, col_starts=cols)


def _spread(starts: tuple[int, ...], count: int) -> tuple[int, ...]:
    if len(starts) <= count:
        return starts
    picks = sorted({round(i * (len(starts) - 1) / (count - 1)) for i in range(count)})
    return tuple(starts[i] for i in picks)


def window_index(starts: tuple[int, ...], length: int) -> np.ndarray:
    """(len(starts), length) array of the indices each window spans along one axis."""
    return np.asarray(starts, dtype=np.int64)[:, None] + np.arange(length, dtype=np.int64)[None, :]


# --- how many eigenvalues a setting pools -------------------------------------------------

# The most eigenvalues one layer's FARMS windows may pool: 20 million float64 values are 160 MB,
# held about twice (per window and pooled). ``analyze(max_eigenvalues=...)`` overrides it per call.
MAX_POOLED_EIGENVALUES = 20_000_000


class TooManyEigenvaluesError(ValueError):
    """A FARMS setting whose windows would pool more eigenvalues than allowed on one layer.

    Attributes
    ----------
    layer, rows, cols, num_slices : the layer and its shape.
    count, num_windows : eigenvalues and windows the setting would pool.
    limit : the limit in force.
    stride, windows_per_dim : the smallest stride and the largest windows_per_dim that fit
        (None when no stride or grid does: the window itself must shrink).
    """

    def __init__(self, layer: str, grid: WindowGrid, num_slices: int, limit: int, setting: str):
        self.layer, self.rows, self.cols, self.num_slices = layer, grid.rows, grid.cols, num_slices
        self.count, self.num_windows = pooled_eigenvalue_count(grid, num_slices), grid.num_windows * num_slices
        self.limit = limit
        self.stride = _fitting_stride(grid, num_slices, limit)
        self.windows_per_dim = _fitting_k(grid, num_slices, limit)
        self.setting = setting
        super().__init__(self.describe())

    def describe(self, stride: str = "stride", k: str = "windows_per_dim",
                 limit: str = "max_eigenvalues (analyze's argument, or farms_viz.engine.windows.MAX_POOLED_EIGENVALUES)"
                 ) -> str:
        """The message, naming the parameters as the caller knows them (the CLI's options)."""
        slices = f" x {self.num_slices} slices" if self.num_slices > 1 else ""
        if self.stride is not None and self.windows_per_dim is not None:
            fix = f"use {stride} >= {self.stride} or {k} <= {self.windows_per_dim}, or raise {limit}"
        else:
            fix = f"even one window per slice is too many: use a smaller window, or raise {limit}"
        name = limit.split(" ")[0]
        return (f"layer {self.layer!r} ({self.rows} x {self.cols}{slices}): FARMS with {self.setting} would pool "
                f"{self.count:,} eigenvalues ({self.num_windows:,} windows of {self.count // self.num_windows}), "
                f"more than {name} = {self.limit:,}; {fix}")


def pooled_eigenvalue_count(grid: WindowGrid, num_slices: int = 1) -> int:
    """Eigenvalues FARMS pools on a layer: slices x windows x min(window rows, window cols).

    Examples
    --------
    >>> pooled_eigenvalue_count(window_grid(4096, 4096, 100, 1.0, 10, stride=1))
    1597600900
    """
    return num_slices * grid.num_windows * grid.eigenvalues_per_window


def _per_axis(size: int, span: int, stride: int) -> int:
    return (size - span) // stride + 1


def _fitting_stride(grid: WindowGrid, num_slices: int, limit: int) -> int | None:
    """The smallest stride whose windows pool at most ``limit`` eigenvalues (None if none does)."""
    per_window = num_slices * grid.eigenvalues_per_window

    def count(stride: int) -> int:
        return (per_window * _per_axis(grid.rows, grid.window_rows, stride)
                * _per_axis(grid.cols, grid.window_cols, stride))

    low, high = 1, max(grid.rows, grid.cols)
    if count(high) > limit:
        return None
    while low < high:  # count only falls as the stride grows
        middle = (low + high) // 2
        low, high = (middle + 1, high) if count(middle) > limit else (low, middle)
    return low


def _fitting_k(grid: WindowGrid, num_slices: int, limit: int) -> int | None:
    """The largest windows_per_dim whose grid pools at most ``limit`` eigenvalues (None if none does)."""
    per_window = num_slices * grid.eigenvalues_per_window
    rows_max, cols_max = grid.rows - grid.window_rows + 1, grid.cols - grid.window_cols + 1

    def count(k: int) -> int:  # a k-grid has min(k, positions) windows along each axis
        return per_window * min(k, rows_max) * min(k, cols_max)

    if count(1) > limit:
        return None
    low, high = 1, max(rows_max, cols_max)
    while low < high:  # count only grows with k
        middle = (low + high + 1) // 2
        low, high = (middle, high) if count(middle) <= limit else (low, middle - 1)
    return low


def check_pooled_size(layer: str, grid: WindowGrid, num_slices: int, limit: int, setting: str) -> None:
    """Refuse a grid whose windows would pool more than ``limit`` eigenvalues on one layer.

    Raises
    ------
    TooManyEigenvaluesError
        With the count, the window count, and the stride and windows_per_dim that would fit.

    Examples
    --------
    >>> try:
    ...     check_pooled_size("fc", window_grid(4096, 4096, 100, 1.0, 10, stride=1), 1, 20_000_000,
    ...                       "window 100, stride 1")
    ... except TooManyEigenvaluesError as error:
    ...     print(f"{error.count:,} eigenvalues; fits with stride {error.stride} or k {error.windows_per_dim}")
    1,597,600,900 eigenvalues; fits with stride 9 or k 447
    """
    if pooled_eigenvalue_count(grid, num_slices) > limit:
        raise TooManyEigenvaluesError(layer, grid, num_slices, limit, setting)
