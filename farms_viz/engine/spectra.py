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
from .windows import WindowGrid, window_index

# Upper bound on the float64 window batch materialised at once (bytes).
CHUNK_BYTES = 256 * 2**20
# The eigenvalues the fits see are float64 on every device (docs/spec.md, section 3).
COMPUTE_DTYPE = torch.float64
# Size of one float64 block of a large matrix while its Gram matrix is accumulated (bytes).
GRAM_BLOCK_BYTES = 16 * 2**20
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


def _gram_of_shorter_side(matrix: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    """The float64 Gram matrix of the shorter side, accumulated over blocks of the longer side
    so that no float64 copy of a large weight (an embedding table, say) is ever made whole."""
    rows, cols = matrix.shape
    tall = rows >= cols
    long_side, short_side = (rows, cols) if tall else (cols, rows)
    block = max(1, GRAM_BLOCK_BYTES // (8 * short_side))
    gram = torch.zeros(short_side, short_side, dtype=dtype, device=matrix.device)
    for start in range(0, long_side, block):
        piece = (matrix[start:start + block] if tall else matrix[:, start:start + block].T).to(dtype)
        gram.addmm_(piece.T, piece)
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


def window_batch(slices: torch.Tensor, grid: WindowGrid) -> torch.Tensor:
    """All windows of ``grid`` from every slice as one (S * windows, m, w) tensor (a copy)."""
    rows = torch.as_tensor(window_index(grid.row_starts, grid.window_rows), device=slices.device)
    cols = torch.as_tensor(window_index(grid.col_starts, grid.window_cols), device=slices.device)
    s = slices.shape[0]
    # (S, a, b, m, w) by broadcasting the row and column index sets
    windows = slices[:, rows[:, None, :, None], cols[None, :, None, :]]
    return windows.reshape(s * grid.num_windows, grid.window_rows, grid.window_cols)


def farms_window_eigenvalues(slices: torch.Tensor, grid: WindowGrid, scale: float = 1.0,
                             on_batch: Callable[[int], None] | None = None) -> np.ndarray:
    """Eigenvalues of every FARMS window: a (num_slices * num_windows, min(m, w)) array.

    Each row is one window's ESD (ascending); pooling them gives the FARMS ESD. Windows go
    through in batches bounded in bytes and in work; ``on_batch(windows)`` is called after each
    batch with its window count (it may raise to stop the computation there).
    """
    dtype = COMPUTE_DTYPE
    s = slices.shape[0]
    rows = torch.as_tensor(window_index(grid.row_starts, grid.window_rows), device=slices.device)
    cols = torch.as_tensor(window_index(grid.col_starts, grid.window_cols), device=slices.device)
    m, w = grid.window_rows, grid.window_cols
    n = min(m, w)
    windows_per_chunk = max(1, min(CHUNK_BYTES // (m * w * 8), BATCH_WORK // (m * w * n + n**3 + WINDOW_WORK)))
    # whole rows of windows when they fit, else parts of one row
    rows_per_chunk = max(1, windows_per_chunk // len(grid.col_starts))
    cols_per_chunk = min(len(grid.col_starts), windows_per_chunk)
    out = []
    for si in range(s):
        for r0 in range(0, len(grid.row_starts), rows_per_chunk):
            r_idx = rows[r0:r0 + rows_per_chunk]
            for c0 in range(0, len(grid.col_starts), cols_per_chunk):
                c_idx = cols[c0:c0 + cols_per_chunk]
                block = slices[si][r_idx[:, None, :, None], c_idx[None, :, None, :]].to(dtype)
                block = block.reshape(-1, m, w)
                out.append(gram_eigenvalues(block))
                if on_batch is not None:
                    on_batch(block.shape[0])
    eig = torch.cat(out, dim=0)
    if scale != 1.0:
        eig = eig * scale
    return eig.cpu().numpy()


def pooled(window_eigenvalues: np.ndarray) -> np.ndarray:
    """The FARMS ESD: every window's eigenvalues pooled and sorted ascending."""
    out = window_eigenvalues.reshape(-1).copy()
    out.sort()
    return out
