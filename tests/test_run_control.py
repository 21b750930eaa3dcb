"""analyze() stopped between batches of windows, followed window by window; the cost estimate."""

from __future__ import annotations

import os
import sys
import threading

import pytest
import torch
from torch import nn

import farms_viz
from farms_viz.engine import cost as cost_module
from farms_viz.engine.params import AnalysisParams
from farms_viz.engine.run_control import AnalysisCancelled, RunControl


def _model(seed: int, *shapes: tuple[int, int]) -> nn.Module:
    torch.manual_seed(seed)  # fresh weights: nothing cached
    return nn.Sequential(*(nn.Linear(cols, rows) for rows, cols in shapes))


def test_a_cancel_stops_inside_a_layer_between_batches_of_windows():
    model = _model(1, (256, 256))
    batches = []
    stop = threading.Event()

    def on_windows(layer, done, total):
        batches.append(done)
        stop.set()  # after the first batch

    with pytest.raises(AnalysisCancelled):
        farms_viz.analyze(model, window=16, stride=1, method="farms", progress=False,
                          control=RunControl(stop, on_windows=on_windows))
    total = 241 * 241  # stride-1 windows of 16 x 16 in a 256 x 256 matrix
    assert len(batches) == 1 and 0 < batches[0] < total  # stopped inside the layer, after one batch


def test_window_progress_and_layer_results_arrive_in_order_and_change_nothing():
    model = _model(2, (96, 64), (64, 96), (128, 64))
    seen: dict[str, list[int]] = {}
    totals: dict[str, int] = {}
    layers = []

    def on_windows(layer, done, total):
        seen.setdefault(layer, []).append(done)
        totals[layer] = total

    control = RunControl(on_windows=on_windows, on_layer=lambda name, outcome: layers.append((name, outcome)))
    with_control = farms_viz.analyze(model, window=8, stride=4, progress=False, control=control)
    plain = farms_viz.analyze(model, window=8, stride=4, progress=False)
    frame = with_control.to_pandas()
    assert frame.equals(plain.to_pandas())
    assert [name for name, _ in layers] == with_control.layers  # model order
    windows = dict(zip(frame[frame.method == "farms"].layer, frame[frame.method == "farms"].num_windows))
    for layer, counts in seen.items():
        assert counts == sorted(counts) and counts[-1] == totals[layer] == windows[layer]
    for name, outcome in layers:  # each layer's own spectra, as the Analysis holds them
        assert [s.method for s in outcome] == ["esd", "farms"]
        assert all(s is with_control.spectra[(name, s.method)] for s in outcome)


def test_background_runs_on_the_low_priority_thread():
    where = set()

    def on_windows(layer, done, total):
        thread = threading.current_thread()
        nice = os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) if sys.platform.startswith("linux") else 0
        where.add((thread.name.rsplit("_", 1)[0], nice))

    farms_viz.analyze(_model(3, (64, 64), (64, 64)), window=16, progress=False,
                      control=RunControl(on_windows=on_windows, background=True))
    ((name, nice),) = where  # one thread did every layer
    assert name == "farms_viz-background"
    if sys.platform.startswith("linux"):
        assert nice >= os.getpriority(os.PRIO_PROCESS, 0) + 1  # lower priority than the process


def test_the_estimate_counts_the_windows_and_eigenvalues_analyze_pools():
    model = _model(4, (300, 200), (64, 512))
    shapes = [(300, 200, 1), (64, 512, 1)]
    for kwargs in (dict(window=32, windows_per_dim=5), dict(window=20, q=2.0, stride=7)):
        estimate = cost_module.estimate_cost(shapes, AnalysisParams(**kwargs))
        farms = farms_viz.analyze(model, progress=False, **kwargs).to_pandas().query("method == 'farms'")
        assert estimate.windows == farms.num_windows.sum()
        assert estimate.layer_windows == tuple(farms.num_windows)
        assert estimate.eigenvalues == (farms.num_windows * farms.window_rows.clip(upper=farms.window_cols)).sum()
        assert estimate.seconds > 0
        cached = cost_module.estimate_cost(shapes, AnalysisParams(**kwargs), farms_cached=True, esd_cached=True,
                                           fits_cached=True)
        assert cached.cached and cached.seconds < estimate.seconds


def test_finished_runs_correct_later_estimates(monkeypatch):
    monkeypatch.setattr(cost_module, "_CORRECTION", 1.0)
    estimate = cost_module.estimate_cost([(512, 512, 1)], AnalysisParams(window=64, stride=8))
    cost_module.record_run(estimate, 4 * estimate.seconds)  # the machine was 4x slower than measured
    again = cost_module.estimate_cost([(512, 512, 1)], AnalysisParams(window=64, stride=8))
    assert again.seconds == pytest.approx(2 * estimate.seconds, rel=1e-9)  # halfway, in log


@pytest.mark.parametrize("layer", [nn.Linear(200, 120), nn.Conv2d(8, 16, 3)], ids=["linear", "conv"])
def test_a_subgrid_run_then_the_full_run_equals_the_full_run_alone_and_computes_each_window_once(layer):
    """The provisional stand-in (RunControl(subgrid=True)) computes a 3 x 3 sub-grid of each
    layer's windows; the full run then computes only the others, and its eigenvalues and fit are
    the same, bit for bit, as those of a full run with nothing cached."""
    import numpy as np

    from farms_viz.engine.cache import SPECTRA

    params = dict(window=40, windows_per_dim=7, method="farms", progress=False)
    SPECTRA.clear()
    alone = farms_viz.analyze(layer, **params)
    SPECTRA.clear()
    done: list[tuple[str, int, int]] = []
    provisional = farms_viz.analyze(layer, control=RunControl(subgrid=True, on_windows=lambda *a: done.append(a)),
                                    **params)
    for name, spectrum in provisional.spectra.items():
        sub = spectrum.grid
        full = alone.spectra[name].grid
        assert len(sub.row_starts) <= 3 and len(sub.col_starts) <= 3 and sub.num_windows < full.num_windows
        assert set(sub.row_starts) <= set(full.row_starts) and set(sub.col_starts) <= set(full.col_starts)
    reported: list[tuple[str, int, int]] = []
    exact = farms_viz.analyze(layer, control=RunControl(on_windows=lambda *a: reported.append(a)), **params)
    for name, spectrum in alone.spectra.items():
        again = exact.spectra[name]
        assert np.array_equal(again.window_eigenvalues, spectrum.window_eigenvalues)
        assert again.fit.alpha == spectrum.fit.alpha and again.grid == spectrum.grid
    # progress: the windows already known count first, then every batch up to the whole grid
    first, last = reported[0], reported[-1]
    whole = alone.spectra[last[0], "farms"]
    assert first[1] == done[-1][1] < first[2] and last[1] == last[2] == whole.grid.num_windows * whole.num_slices
