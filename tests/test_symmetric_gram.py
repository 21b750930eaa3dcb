"""The standard ESD's Gram matrix, multiplied one triangle at a time, is the full product."""

from __future__ import annotations

import pytest
import torch

from farms_viz.engine import spectra


@pytest.mark.parametrize("shape", [(3000, 768), (768, 1000), (700, 384), (384, 384), (100, 37)])
def test_blocked_symmetric_gram_equals_the_full_product(shape, monkeypatch):
    monkeypatch.setattr(spectra, "GRAM_BLOCK_BYTES", 2**20)  # several row blocks too
    torch.manual_seed(0)
    w = torch.randn(*shape)
    w64 = w.double()
    full = w64.T @ w64 if shape[0] >= shape[1] else w64 @ w64.T
    got = spectra._gram_of_shorter_side(w, torch.float64)
    assert torch.equal(got, got.T)  # mirrored exactly
    torch.testing.assert_close(got, full, rtol=1e-13, atol=1e-12 * float(full.abs().max()))


def test_column_blocks_cover_the_side_once():
    for size in (8, 191, 192, 384, 767, 768, 4096):
        blocks = spectra._column_blocks(size)
        assert blocks[0][0] == 0 and blocks[-1][1] == size
        assert all(a1 == b0 for (_, a1), (b0, _) in zip(blocks, blocks[1:]))
        assert len(blocks) == max(1, min(4, size // spectra.SYMMETRIC_BLOCK))
