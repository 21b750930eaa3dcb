"""The CUDA code path: runs wherever a GPU is present, skipped elsewhere."""

import numpy as np
import pytest
import torch
from torch import nn

import farms_viz

pytestmark = [pytest.mark.gpu,
              pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(256, 1024), nn.Linear(1024, 256), nn.Conv2d(32, 64, 3))


@pytest.mark.parametrize("fit", ["median", "peak", "ks"])
def test_cuda_model_matches_cpu(fit):
    cpu = farms_viz.analyze(model(), window=64, fit=fit, progress=False).to_pandas()
    gpu_model = model().cuda()
    gpu = farms_viz.analyze(gpu_model, window=64, fit=fit, progress=False).to_pandas()
    np.testing.assert_allclose(gpu.alpha, cpu.alpha, rtol=1e-6)
    assert (gpu.num_eigs == cpu.num_eigs).all()


def test_device_argument_moves_one_layer_at_a_time_and_leaves_model_on_cpu():
    m = model()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    result = farms_viz.analyze(m, window=64, device="cuda", progress=False)
    assert all(p.device.type == "cpu" for p in m.parameters())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
    assert len(result.layers) == 3


def test_cuda_model_weights_unchanged_and_on_gpu():
    m = model().cuda()
    before = {k: v.clone() for k, v in m.state_dict().items()}
    farms_viz.analyze(m, window=64, progress=False)
    assert all(p.device.type == "cuda" for p in m.parameters())
    assert all(torch.equal(before[k], v) for k, v in m.state_dict().items())
