"""analyze(executor=...): per-layer work on other processes gives the local run's results."""

from __future__ import annotations

import os
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import farms_viz
from farms_viz.checkpoints import open_checkpoint

PARAMS = dict(window=32, windows_per_dim=4, fit="peak")


def _model() -> nn.Module:
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(256, 128), nn.Linear(128, 512), nn.Conv2d(16, 32, 3),
                          nn.Embedding(400, 64), nn.LayerNorm(64), nn.Linear(64, 64))
    with torch.no_grad():
        model[5].weight[3, 3] = float("nan")  # skipped the same way on both paths
    return model


def _assert_same(local: farms_viz.Analysis, remote: farms_viz.Analysis, exact: bool = True) -> None:
    pd.testing.assert_frame_equal(local.to_pandas(), remote.to_pandas(), check_exact=exact)
    pd.testing.assert_frame_equal(local.skipped_frame(), remote.skipped_frame())
    for key, spectrum in local.spectra.items():
        np.testing.assert_allclose(spectrum.eigenvalues, remote.spectra[key].eigenvalues,
                                   rtol=0 if exact else 1e-12, atol=0)


@pytest.fixture(scope="module")
def dask_client():
    distributed = pytest.importorskip("dask.distributed")
    cluster = distributed.LocalCluster(n_workers=2, processes=True, threads_per_worker=1,
                                       dashboard_address=None, silence_logs=40)
    client = distributed.Client(cluster)
    yield client
    client.close()
    cluster.close()


@pytest.mark.slow
def test_dask_cluster_of_worker_processes_gives_the_local_dataframe(dask_client):
    model = _model()
    local = farms_viz.analyze(model, progress=False, **PARAMS)
    remote = farms_viz.analyze(model, progress=False, executor=dask_client, **PARAMS)
    # Dask's workers run BLAS on one thread, this process on several: float64 rounding
    # in the last digits (about 1e-14 relative), the same table.
    _assert_same(local, remote, exact=False)
    pids = dask_client.run(os.getpid)
    assert len(pids) == 2 and os.getpid() not in pids.values()


@pytest.mark.slow
def test_dask_executor_interface_and_a_lazy_checkpoint(dask_client, tmp_path):
    save_file({f"{name}.weight": module.weight.detach().clone() for name, module in _model().named_modules()
               if isinstance(module, (nn.Linear, nn.Embedding, nn.Conv2d))}, tmp_path / "m.safetensors")
    local = farms_viz.analyze(open_checkpoint(tmp_path / "m.safetensors"), progress=False, **PARAMS)
    remote = farms_viz.analyze(open_checkpoint(tmp_path / "m.safetensors"), progress=False,
                               executor=dask_client.get_executor(), **PARAMS)
    _assert_same(local, remote, exact=False)


def test_thread_pool_gives_the_local_results():
    model = _model()
    with ThreadPoolExecutor(2) as pool:
        remote = farms_viz.analyze(model, progress=False, executor=pool, **PARAMS)
    _assert_same(farms_viz.analyze(model, progress=False, **PARAMS), remote)


class _CountingExecutor:
    """Runs tasks when their result is asked for, counting how many wait at once."""

    _max_workers = 2

    def __init__(self):
        self.pending = 0
        self.most_pending = 0
        self.submitted = 0

    def submit(self, fn, *args):
        self.pending += 1
        self.submitted += 1
        self.most_pending = max(self.most_pending, self.pending)
        future: Future = Future()
        outer = self

        class Lazy:
            def result(self, timeout=None):
                if not future.done():
                    outer.pending -= 1
                    future.set_result(fn(*args))
                return future.result()

        return Lazy()


def test_layers_in_flight_are_bounded():
    model = nn.Sequential(*[nn.Linear(64, 64) for _ in range(12)])
    executor = _CountingExecutor()
    result = farms_viz.analyze(model, window=16, progress=False, executor=executor)
    assert executor.submitted == 12 and len(result.layers) == 12
    assert executor.most_pending <= 2 * executor._max_workers


def test_progress_reports_every_layer_in_model_order():
    model = nn.Sequential(*[nn.Linear(64, 32 + 8 * i) for i in range(5)])
    seen = []
    with ThreadPoolExecutor(3) as pool:
        farms_viz.analyze(model, window=16, executor=pool, progress=lambda d, t, name: seen.append((d, t, name)))
    assert seen == [(i + 1, 5, str(i)) for i in range(5)]
