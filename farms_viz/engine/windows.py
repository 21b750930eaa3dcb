"""FARMS window geometry: where the fixed-aspect-ratio windows sit in a matrix (docs/spec.md, section 2)."""

from __future__ import annotations

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


def window_index(starts: tuple[int, ...], length: int) -> np.ndarray:
    """(len(starts), length) array of the indices each window spans along one axis."""
    return np.asarray(starts, dtype=np.int64)[:, None] + np.arange(length, dtype=np.int64)[None, :]
