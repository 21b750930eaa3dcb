"""The aspect-ratio bias, measured: docs/spec.md section 6 reproduced."""

import numpy as np
import pytest
import torch
from spec_tables import table
from torch import nn

import farms_viz

SHAPES = [(r["rows"], r["cols"]) for r in table("bias")]
STANDARD = [r["standard ESD alpha"] for r in table("bias")]
FARMS = [r["FARMS alpha"] for r in table("bias")]


def gaussian_layers(shapes, sample):
    """One Linear per shape (rows = out, cols = in), weights drawn in table order from one generator."""
    model = nn.Sequential(*[nn.Linear(c, r, bias=False) for r, c in shapes])
    with torch.no_grad():
        for layer, (r, c) in zip(model, shapes):
            layer.weight.copy_(torch.as_tensor(sample(r, c)))
    return model


@pytest.fixture(scope="module")
def gaussian_analysis():
    rng = np.random.default_rng(0)
    model = gaussian_layers(SHAPES, lambda r, c: rng.standard_normal((r, c)) / np.sqrt(c))
    return farms_viz.analyze(model, window=128, q=1.0, windows_per_dim=5, fit="median", progress=False)


def test_spec_table_standard_esd(gaussian_analysis):
    got = list(gaussian_analysis.alphas("esd").values())
    assert got == pytest.approx(STANDARD, abs=1e-3)


def test_spec_table_farms(gaussian_analysis):
    got = list(gaussian_analysis.alphas("farms").values())
    assert got == pytest.approx(FARMS, abs=1e-3)


def test_farms_is_flat_and_standard_rises_with_aspect_ratio(gaussian_analysis):
    df = gaussian_analysis.to_pandas()
    farms = df[df.method == "farms"]
    assert farms.alpha.max() - farms.alpha.min() < 0.02
    tall = df[(df.method == "esd") & (df.cols == 512)].sort_values("aspect_ratio")
    assert list(tall.aspect_ratio) == [1, 2, 4, 8]
    assert np.all(np.diff(tall.alpha.to_numpy()) > 0.4)


def test_student_t_heavy_tails_farms_flat_standard_biased():
    rows = table("student-t")
    rng = np.random.default_rng(0)
    model = gaussian_layers([(r["rows"], r["cols"]) for r in rows],
                            lambda r, c: rng.standard_t(3, (r, c)) / np.sqrt(c))
    result = farms_viz.analyze(model, window=128, q=1.0, windows_per_dim=5, progress=False)
    farms = np.array(list(result.alphas("farms").values()))
    standard = np.array(list(result.alphas("esd").values()))
    assert farms == pytest.approx([r["FARMS alpha"] for r in rows], abs=0.03)
    assert farms.max() - farms.min() < 0.02
    assert standard == pytest.approx([r["standard ESD alpha"] for r in rows], abs=0.1)
