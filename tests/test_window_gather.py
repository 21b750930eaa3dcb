"""The FARMS windows gathered as whole blocks are exactly the submatrices the grid names."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from farms_viz.engine import spectra
from farms_viz.engine.windows import window_grid


def sliced_windows(slices: torch.Tensor, grid) -> torch.Tensor:
    """The plain way: one slice per window, in slice, row-start, column-start order."""
    return torch.stack([s[r:r + grid.window_rows, c:c + grid.window_cols]
                        for s in slices for r in grid.row_starts for c in grid.col_starts])


@pytest.mark.parametrize("shape, window, q, k, stride", [
    ((1, 97, 61), 20, 1.0, 4, None),     # last starts clamped to the edge: unequal steps
    ((1, 40, 130), 16, 2.0, 5, None),    # wide windows
    ((3, 50, 45), 12, 1.0, 3, None),     # three slices (a convolution)
    ((1, 64, 64), 16, 1.0, 10, 7),       # explicit stride
    ((1, 30, 30), 30, 1.0, 10, None),    # one window covering the matrix
])
def test_window_batch_equals_plain_slicing(shape, window, q, k, stride):
    torch.manual_seed(0)
    slices = torch.randn(*shape)
    grid = window_grid(shape[1], shape[2], window, q, k, stride)
    got = spectra.window_batch(slices, grid, torch.float64)
    assert got.dtype == torch.float64
    assert torch.equal(got, sliced_windows(slices, grid).double())
    assert torch.equal(spectra.window_batch(slices, grid), sliced_windows(slices, grid))


def test_window_eigenvalues_do_not_depend_on_the_chunk_size(monkeypatch):
    torch.manual_seed(1)
    slices = torch.randn(2, 90, 70)
    grid = window_grid(90, 70, 24, 1.0, 5)
    whole = spectra.farms_window_eigenvalues(slices, grid)
    monkeypatch.setattr(spectra, "CHUNK_BYTES", 1)  # one row of windows per batched call
    chunked = spectra.farms_window_eigenvalues(slices, grid)
    assert whole.shape == (2 * grid.num_windows, 24)
    np.testing.assert_allclose(chunked, whole, rtol=1e-12, atol=1e-12)
    windows = sliced_windows(slices, grid).double()
    expected = torch.linalg.svdvals(windows).flip(-1).numpy() ** 2
    np.testing.assert_allclose(whole, expected, rtol=1e-9, atol=1e-10)
