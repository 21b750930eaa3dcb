"""Sampling warnings: a FARMS alpha from too thin a sample says so in the results."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import farms_viz
from farms_viz.engine.sampling import LOW_COVERAGE, MIN_WINDOW_EIGENVALUES


def _note(model, **params) -> str:
    frame = farms_viz.analyze(model, method="farms", progress=False, **params).to_pandas()
    return frame.loc[0, "sampling_note"]


@pytest.fixture(scope="module")
def square():
    torch.manual_seed(0)
    return nn.Linear(96, 96)


def test_a_well_sampled_layer_has_no_note(square):
    assert _note(square, window=32, windows_per_dim=4) == ""


def test_windows_with_one_eigenvalue_are_flagged(square):
    # window 2, Q 0.1: 2 x 1 windows, one eigenvalue each, almost nothing covered
    note = _note(square, window=2, q=0.1, windows_per_dim=10)
    assert f"1 eigenvalue per window (fewer than {MIN_WINDOW_EIGENVALUES})" in note
    assert "windows cover 2% of the matrix" in note


def test_a_stride_beyond_the_matrix_leaves_one_window(square):
    assert _note(square, window=32, stride=100000).startswith("a single window per matrix")


def test_a_thinly_covered_embedding_is_flagged():
    torch.manual_seed(0)
    coverage = farms_viz.analyze(nn.Embedding(5000, 64), method="farms", window=32, windows_per_dim=4,
                                 progress=False).to_pandas().loc[0, "coverage"]
    assert coverage < LOW_COVERAGE
    assert _note(nn.Embedding(5000, 64), window=32, windows_per_dim=4) == f"windows cover {coverage:.0%} of the matrix"


def test_clamped_and_whole_matrix_windows_are_flagged():
    torch.manual_seed(0)
    assert _note(nn.Linear(128, 10), window=32, windows_per_dim=5).endswith("window clamped to 10 x 10")
    with pytest.warns(UserWarning, match="covers the whole matrix"):
        note = _note(nn.Linear(48, 48), window=64)
    assert note == "one window = the whole matrix: FARMS equals the standard ESD"


def test_the_standard_esd_has_no_sampling_note(square):
    frame = farms_viz.analyze(square, window=2, q=0.1, progress=False).to_pandas().set_index("method")
    assert frame.loc["esd", "sampling_note"] == "" and frame.loc["farms", "sampling_note"] != ""
