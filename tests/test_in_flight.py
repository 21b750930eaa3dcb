"""Layers in flight: a slow layer at the head of the model order does not idle the other
workers, results still come in model order, and large layers never run two at a time."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import torch
from torch import nn

import farms_viz
from farms_viz.engine import analysis

LARGE = analysis.IN_FLIGHT_BYTES + 1


def test_a_small_layer_fits_beside_a_large_one_but_two_large_ones_do_not():
    assert analysis._fits_beside([], LARGE)
    assert analysis._fits_beside([LARGE], 2**20)
    assert analysis._fits_beside([2**20], LARGE)
    assert not analysis._fits_beside([LARGE], LARGE)
    half = analysis.IN_FLIGHT_BYTES // 2
    assert analysis._fits_beside([LARGE, half], half)
    assert not analysis._fits_beside([LARGE, half, half], 1)


@pytest.fixture
def two_workers(monkeypatch):
    pool = ThreadPoolExecutor(max_workers=2)
    monkeypatch.setattr(analysis, "compute_pool", lambda: pool)
    monkeypatch.setattr(analysis, "workers", lambda: 2)
    yield
    pool.shutdown()


def test_workers_keep_going_while_the_first_layer_computes(two_workers, monkeypatch):
    real = analysis._compute_layer
    first_done = threading.Event()
    started_before_first_done = []

    def compute(matrix, params, target, control=None):
        if matrix.name == "0":
            time.sleep(1.0)
            outcome = real(matrix, params, target, control)
            first_done.set()
            return outcome
        if not first_done.is_set():
            started_before_first_done.append(matrix.name)
        return real(matrix, params, target, control)

    monkeypatch.setattr(analysis, "_compute_layer", compute)
    torch.manual_seed(0)
    model = nn.Sequential(*[nn.Linear(32, 32) for _ in range(12)])
    result = farms_viz.analyze(model, method="esd", progress=False)
    assert result.layers == [str(i) for i in range(12)]
    # 2 workers x AHEAD_PER_WORKER finished layers may wait for the head: more than the old
    # fixed limit of twice the workers in flight (which let 3 layers start)
    assert len(started_before_first_done) >= 8


def test_large_layers_run_one_at_a_time(two_workers, monkeypatch):
    real = analysis._compute_layer
    running, most = [], [0]
    lock = threading.Lock()

    def compute(matrix, params, target, control=None):
        with lock:
            running.append(matrix.name)
            most[0] = max(most[0], len(running))
        time.sleep(0.05)
        try:
            return real(matrix, params, target, control)
        finally:
            with lock:
                running.remove(matrix.name)

    monkeypatch.setattr(analysis, "_compute_layer", compute)
    monkeypatch.setattr(analysis, "IN_FLIGHT_BYTES", 8 * 64 * 64 - 1)  # every 64x64 layer is large
    model = nn.Sequential(*[nn.Linear(64, 64) for _ in range(4)])
    farms_viz.analyze(model, method="esd", progress=False)
    assert most[0] == 1
