"""Eigenvalues: the standard ESD of a layer and the FARMS pooled ESD of its windows.

All windows of one shape go through one batched call (chunked to bound memory), on the
weight's device. The eigenvalues the fits see are computed in float64 (docs/spec.md section 3:
float32 flips the argmin of the peak and KS fits on some layers).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch

from .cpu_threads import eigvalsh
from .windows import WindowGrid

# Upper bound on the float64 window batch materialised at once (bytes).
CHUNK_BYTES = 256 * 2**20
# The eigenvalues the fits see are float64 on every device (docs/spec.md, section 3).
COMPUTE_DTYPE = torch.float64
# Size of one float64 block of a large matrix while its Gram matrix is accumulated (bytes).
GRAM_BLOCK_BYTES = 16 * 2**20
# Narrowest column block of a Gram matrix computed block by block (one triangle only).
SYMMETRIC_BLOCK = 192
# Work of one window batch (multiply-adds of the Grams, n^3 per eigenvalue problem and a fixed
# cost per window): about 0.1 s on one core, so a run stops within a fraction of a second.
BATCH_WORK = 2**28
WINDOW_WORK = 2**15


def gram_eigenvalues(batch: torch.Tensor) -> torch.Tensor:
    """Eigenvalues (squared singular values) of each matrix in a (B, m, w) batch.

    Uses the Gram matrix of the shorter side, so each matrix gives min(m, w) eigenvalues,
    clipped at zero, ascending.
    """
    if batch.shape[-2] <= batch.shape[-1]:
        gram = batch @ batch.transpose(-1, -2)
    else:
        gram = batch.transpose(-1, -2) @ batch
    return eigvalsh(gram).clamp_min_(0.0)


def _column_blocks(size: int) -> list[tuple[int, int]]:
    """Up to four column ranges of at least ``SYMMETRIC_BLOCK`` columns each."""
    parts = max(1, min(4, size // SYMMETRIC_BLOCK))
    edges = [round(i * size / parts) for i in range(parts + 1)]
    return list(zip(edges[:-1], edges[1:]))


def _gram_of_shorter_side(matrix: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The float64 Gram matrix of the shorter side, accumulated over blocks of the longer side
    so that no float64 copy of a large weight (an embedding table, say) is ever made whole.

    The Gram matrix is symmetric: only the blocks on and above the diagonal are multiplied
    (10 of 16 for four column blocks; measured 25-30% less time on 768-wide layers), then
    mirrored. Every entry is the same dot product as in the full product.
    """
    rows, cols = matrix.shape
    tall = rows >= cols
    long_side, short_side = (rows, cols) if tall else (cols, rows)
    block = max(1, GRAM_BLOCK_BYTES // (8 * short_side))
    gram = torch.zeros(short_side, short_side, dtype=dtype, device=matrix.device)
    ranges = _column_blocks(short_side)
    for start in range(0, long_side, block):
        piece = (matrix[start:start + block] if tall else matrix[:, start:start + block].T).to(dtype)
        for i, (a0, a1) in enumerate(ranges):
            for b0, b1 in ranges[i:]:
                gram[a0:a1, b0:b1].addmm_(piece[:, a0:a1].T, piece[:, b0:b1])
    for i, (a0, a1) in enumerate(ranges):
        for b0, b1 in ranges[i + 1:]:
            gram[b0:b1, a0:a1] = gram[a0:a1, b0:b1].T
    return gram


def esd_eigenvalues(slices: torch.Tensor, scale: float = 1.0) -> np.ndarray:
    """The standard ESD: eigenvalues of W^T W for each slice, pooled, sorted ascending.

    Parameters
    ----------
    slices : (S, rows, cols) tensor (S = 1 except for convolutions).
    scale : factor for every eigenvalue (conv_norm for convolutions).
    """
    dtype = COMPUTE_DTYPE
    if slices.shape[0] == 1:
        eig = eigvalsh(_gram_of_shorter_side(slices[0], dtype)).clamp_min_(0.0)
    else:
        eig = gram_eigenvalues(slices.to(dtype))
    if scale != 1.0:
        eig = eig * scale
    out = eig.reshape(-1).cpu().numpy()
    out.sort()
    return out


def _windows_of_rows(matrix: torch.Tensor, grid: WindowGrid, row_starts: tuple[int, ...],
                     dtype: torch.dtype, col_starts: tuple[int, ...] | None = None) -> torch.Tensor:
    """The windows of ``grid`` whose top rows are ``row_starts`` and left columns ``col_starts``
    (all of the grid's by default), as one (len(row_starts) * len(col_starts), m, w) tensor of
    ``dtype`` (a copy).

    ``unfold`` views every (m x w) block of the matrix without copying; each row of windows is
    then one ``index_select`` of whole blocks, far cheaper than indexing every entry.
    """
    m, w = grid.window_rows, grid.window_cols
    blocks = matrix.unfold(0, m, 1).unfold(1, w, 1)  # [r, c, i, j] = matrix[r + i, c + j]
    col_starts = grid.col_starts if col_starts is None else col_starts
    cols = torch.as_tensor(col_starts, device=matrix.device)
    out = torch.empty(len(row_starts), len(col_starts), m, w, dtype=dtype, device=matrix.device)
    for a, r in enumerate(row_starts):
        out[a] = blocks[r].index_select(0, cols)
    return out.reshape(-1, m, w)


def window_batch(slices: torch.Tensor, grid: WindowGrid, dtype: torch.dtype | None = None) -> torch.Tensor:
    """All windows of ``grid`` from every slice as one (S * windows, m, w) tensor (a copy, in
    ``dtype``; the weight's own dtype by default)."""
    dtype = slices.dtype if dtype is None else dtype
    return torch.cat([_windows_of_rows(matrix, grid, grid.row_starts, dtype) for matrix in slices])


def farms_window_eigenvalues(slices: torch.Tensor, grid: WindowGrid, scale: float = 1.0,
                             on_batch: Callable[[int], None] | None = None,
                             known: tuple[WindowGrid, np.ndarray] | None = None) -> np.ndarray:
    """Eigenvalues of every FARMS window: a (num_slices * num_windows, min(m, w)) array.

    Each row is one window's ESD (ascending), slice by slice, window rows then columns; pooling
    them gives the FARMS ESD. Windows go through in batches bounded in bytes and in work;
    ``on_batch(windows)`` is called after each batch with its window count (it may raise to stop
    the computation there). ``known``: a sub-grid of ``grid`` (:func:`~farms_viz.engine.windows.
    spread_subgrid`) and its windows' eigenvalues from this function, with the same ``scale``:
    only the other windows are computed, and the result is the same as without it.
    """
    dtype = COMPUTE_DTYPE
    m, w = grid.window_rows, grid.window_cols
    n = min(m, w)
    # batches of at most CHUNK_BYTES of float64 windows and BATCH_WORK of arithmetic: whole rows
    # of windows when they fit, else parts of one row (a stride-1 grid's row alone can exceed it)
    windows_per_chunk = max(1, min(CHUNK_BYTES // (m * w * 8), BATCH_WORK // (m * w * n + n**3 + WINDOW_WORK)))
    rows, cols = len(grid.row_starts), len(grid.col_starts)
    out = torch.empty(slices.shape[0], rows, cols, n, dtype=dtype, device=slices.device)
    parts: list[tuple[list[int], list[int]]] = [(list(range(rows)), list(range(cols)))]
    if known is not None:
        sub, values = known
        known_rows = [grid.row_starts.index(r) for r in sub.row_starts]
        known_cols = [grid.col_starts.index(c) for c in sub.col_starts]
        given = torch.from_numpy(values).to(device=slices.device, dtype=dtype)
        out[:, torch.tensor(known_rows)[:, None], torch.tensor(known_cols)[None, :]] = given.reshape(
            slices.shape[0], len(known_rows), len(known_cols), n)
        parts = [([a for a in range(rows) if a not in known_rows], list(range(cols))),
                 (known_rows, [b for b in range(cols) if b not in known_cols])]
        if on_batch is not None:
            on_batch(values.shape[0])
    for index, matrix in enumerate(slices):
        for part_rows, part_cols in parts:
            if not part_rows or not part_cols:
                continue
            rows_per_chunk = max(1, windows_per_chunk // len(part_cols))
            cols_per_chunk = min(len(part_cols), windows_per_chunk)
            for r0 in range(0, len(part_rows), rows_per_chunk):
                chunk_rows = part_rows[r0:r0 + rows_per_chunk]
                for c0 in range(0, len(part_cols), cols_per_chunk):
                    chunk_cols = part_cols[c0:c0 + cols_per_chunk]
                    block = _windows_of_rows(matrix, grid, tuple(grid.row_starts[a] for a in chunk_rows), dtype,
                                             tuple(grid.col_starts[b] for b in chunk_cols))
                    eig = gram_eigenvalues(block)
                    if scale != 1.0:
                        eig = eig * scale
                    out[index, torch.tensor(chunk_rows)[:, None], torch.tensor(chunk_cols)[None, :]] = eig.reshape(
                        len(chunk_rows), len(chunk_cols), n)
                    if on_batch is not None:
                        on_batch(block.shape[0])
    return out.reshape(-1, n).cpu().numpy()


def pooled(window_eigenvalues: np.ndarray) -> np.ndarray:
    """The FARMS ESD: every window's eigenvalues pooled and sorted ascending."""
    out = window_eigenvalues.reshape(-1).copy()
    out.sort()
    return out
