"""The Explorer's runs, driven as the front end drives them: cost before compute, stop, errors that
stay, provisional and partial results, work computed ahead, and Explorers that go away."""

from __future__ import annotations

import gc
import threading
import time
import weakref

import pytest
import torch
from torch import nn

from farms_viz.engine import analysis as engine
from farms_viz.widget import Explorer
from farms_viz.widget import explorer as widget_module
from farms_viz.widget.prefetch import result_key

# A run of ~1-4 s on a 2-core machine: 2 x 58,081 stride-1 windows of 16 x 16, a few dozen batches.
LONG = {"window": 16, "stride": 1}


def _model(seed: int, size: int = 256, layers: int = 2) -> nn.Module:
    torch.manual_seed(seed)  # fresh weights: nothing in the spectrum cache yet
    return nn.Sequential(*(nn.Linear(size, size) for _ in range(layers)))


class Shown:
    """Every result the Explorer puts on screen: (time, settings, kind), from the trait it syncs."""

    def __init__(self, explorer: Explorer) -> None:
        self.events: list[tuple[float, dict]] = []
        explorer.observe(lambda change: self.events.append((time.perf_counter(), dict(change["new"]))),
                         names=["_results_for"])

    def after(self, moment: float) -> list[dict]:
        return [shown for at, shown in self.events if at >= moment]


def _wait_until(condition, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(0.005)


def _computing(explorer: Explorer) -> bool:
    return explorer.status.startswith("computing") and explorer.progress > 0


def test_a_run_estimated_above_the_budget_waits_for_run_anyway():
    explorer = Explorer(_model(1, 128), window=32, windows_per_dim=3, budget_s=None, prefetch=False)
    first = explorer.wait()
    explorer.budget_s = 1e-4  # every uncached run is above it now
    explorer.window = 16
    assert explorer._estimate["waiting"] and explorer._estimate["over_budget"]
    assert explorer._estimate["windows"] == 2 * 9 and "above the 0.0001 s budget" in explorer._estimate["text"]
    assert "budget" in explorer.status and "run anyway" in explorer.status and not explorer._running
    with pytest.warns(RuntimeWarning, match="waits for run_anyway"):
        assert explorer.wait() is first  # nothing ran
    assert explorer._results_for["window"] == 32
    explorer.run_anyway()  # what the button sends
    assert explorer.wait().params.window == 16 and not explorer._estimate["waiting"]
    explorer.window = 32  # computed before: cached, runs whatever the budget
    assert explorer.wait().params.window == 32
    explorer.close()


def test_progress_counts_windows_within_a_layer_and_the_status_never_says_queued():
    explorer = Explorer(_model(2), window=32, windows_per_dim=3, prefetch=False)
    explorer.wait()
    statuses = []
    explorer.observe(lambda change: statuses.append((change["new"], explorer.progress)), names=["status"])
    explorer.set_state(LONG)
    analysis = explorer.wait()
    total = sum(analysis.spectrum(name).grid.num_windows for name in analysis.layers)
    assert explorer._estimate["windows"] == total == 2 * 241 * 241
    # (set_state sets window, then stride: a run for the window alone may start and report first)
    windows = [(s, p) for s, p in statuses if s.startswith("computing FARMS: layer 0/2") and f"/{total:,} " in s]
    assert any(0 < p < 1 for _, p in windows)  # progress before any layer ended
    assert all(0 < p <= 1 for _, p in windows) and [p for _, p in windows] == sorted(p for _, p in windows)
    assert not any("queued" in s for s, _ in statuses)
    explorer.close()


def test_stop_ends_a_long_run_within_a_second_and_keeps_the_last_results():
    explorer = Explorer(_model(3), window=32, windows_per_dim=3, prefetch=False)
    before = explorer.wait()
    shown = Shown(explorer)
    explorer.set_state(LONG)
    _wait_until(lambda: _computing(explorer))
    stopped = time.perf_counter()
    explorer.stop()  # what the Stop button sends
    assert not explorer._running and explorer._runner.wait(timeout=1.0)  # the worker is free within 1 s
    assert time.perf_counter() - stopped < 1.0
    assert explorer.wait() is before and explorer._results_for["window"] == 32
    assert explorer.status.startswith("stopped: showing the results for window 32, Q 1.00, k 3, median fit")
    time.sleep(0.3)
    # nothing of the stopped run shows; its provisional result (if any) gave way to the last exact one
    assert all((s["window"], s["kind"]) == (32, "exact") for s in shown.after(stopped))
    explorer.run_anyway()  # runs the settings on the controls
    assert explorer.wait().params.stride == 1
    explorer.close()


def test_an_invalid_value_during_a_run_keeps_its_error_after_the_run():
    explorer = Explorer(_model(4), window=32, windows_per_dim=3, prefetch=False)
    before = explorer.wait()
    shown = Shown(explorer)
    explorer.set_state(LONG)
    _wait_until(lambda: _computing(explorer))
    refused = time.perf_counter()
    explorer.window = 1  # set from Python while the run is in flight
    assert "window must be an integer >= 2" in explorer.error
    assert explorer.wait() is before  # the run that was in flight never finishes as if current
    time.sleep(0.3)
    assert "window must be an integer >= 2" in explorer.error and not explorer._running
    assert all((s["window"], s["kind"]) == (32, "exact") for s in shown.after(refused))
    assert explorer._results_for["window"] == 32
    explorer.window = 24  # a valid value: its run clears the error when it completes
    assert explorer.wait().params.window == 24 and explorer.error == ""
    explorer.close()


def test_a_superseding_change_never_shows_the_older_result():
    explorer = Explorer(_model(5), window=32, windows_per_dim=3, prefetch=False)
    explorer.wait()
    shown = Shown(explorer)
    explorer.set_state(LONG)
    _wait_until(lambda: _computing(explorer))
    superseded = time.perf_counter()
    explorer.set_state({"window": 20, "stride": None})
    assert explorer.wait().params.window == 20
    assert {s["window"] for s in shown.after(superseded)} == {20}
    explorer.close()


def test_a_provisional_result_is_marked_and_replaced_by_the_exact_one(monkeypatch):
    monkeypatch.setattr(widget_module, "PROVISIONAL_MIN_S", 0.0)  # a provisional result for any change
    explorer = Explorer(_model(6, 192), window=32, windows_per_dim=8, prefetch=False)
    explorer.wait()
    marks = []

    def windows_on_screen() -> set[int]:
        return {s.grid.num_windows for s in explorer._shown.analysis.spectra.values() if s.grid is not None}

    explorer.observe(lambda change: marks.append((windows_on_screen(), change["new"])), names=["_provisional"])
    computed: list[int] = []
    real_windows = engine.farms_window_eigenvalues

    def counted(slices, grid, *args, **kwargs):
        out = real_windows(slices, grid, *args, **kwargs)
        known = kwargs.get("known") if "known" in kwargs else (args[2] if len(args) > 2 else None)
        computed.append(out.shape[0] - (0 if known is None else known[1].shape[0]))
        return out

    monkeypatch.setattr(engine, "farms_window_eigenvalues", counted)
    explorer.window = 24
    assert explorer.wait().params.window == 24
    assert marks == [({9}, True), ({64}, False)]  # a 3 x 3 sub-grid first, marked; then the exact 8 x 8
    assert explorer._results_for["kind"] == "exact" and not explorer._provisional
    # the exact run computed only the windows the provisional one had not: 64 per layer in all
    assert sum(computed) == 64 * len(explorer.analysis.layers)
    # stopped while the exact one computes: the provisional result gives way to the last exact one
    explorer.set_state({"window": 16, "stride": 1})
    _wait_until(lambda: explorer._provisional)
    explorer.stop()
    assert not explorer._provisional
    assert (explorer._results_for["window"], explorer._results_for["kind"]) == (24, "exact")
    explorer.close()


def test_a_long_first_run_shows_its_layers_as_they_complete(monkeypatch):
    monkeypatch.setattr(widget_module, "PARTIAL_AFTER_S", 0.0)  # a long run, as far as partial results go
    monkeypatch.setattr(widget_module, "PARTIAL_EVERY_S", 0.0)  # every layer, here
    explorer = Explorer(_model(7, 96, layers=4), window=8, stride=4, prefetch=False)
    kinds = []
    explorer.observe(lambda change: kinds.append((change["new"]["kind"], change["new"]["layers"])),
                     names=["_results_for"])
    analysis = explorer.wait()
    assert kinds[-1] == ("exact", 4) and not explorer._partial
    partial = [layers for kind, layers in kinds if kind == "partial"]
    assert partial and partial == sorted(partial) and partial[-1] <= 4
    assert len(analysis.layers) == 4
    explorer.close()


def test_a_step_computed_ahead_shows_at_once_and_prefetch_never_runs_during_a_user_run(monkeypatch):
    batches: list[tuple[str, float, float]] = []
    runs: list[tuple[float, float]] = []
    real_windows, real_run = engine.farms_window_eigenvalues, Explorer._run

    def timed_windows(*args, **kwargs):
        start = time.perf_counter()
        try:
            return real_windows(*args, **kwargs)
        finally:
            batches.append((threading.current_thread().name, start, time.perf_counter()))

    def timed_run(self, *args):
        start = time.perf_counter()
        try:
            return real_run(self, *args)
        finally:
            runs.append((start, time.perf_counter()))

    monkeypatch.setattr(engine, "farms_window_eigenvalues", timed_windows)
    monkeypatch.setattr(Explorer, "_run", timed_run)
    explorer = Explorer(_model(8, 128), window=32, windows_per_dim=6)
    explorer.wait()
    ahead = dict(window=31, q=1.0, windows_per_dim=6, stride=None, fit="median")
    _wait_until(lambda: result_key(ahead) in explorer._ahead)  # computed while idle
    explorer.window = 31  # one slider step
    _wait_until(lambda: explorer._results_for.get("window") == 31, timeout=5)
    assert "computed ahead" in explorer.status
    for window in (12, 40, 20):  # user runs while prefetch works
        explorer.window = window
        time.sleep(0.6)
    explorer.wait()
    _wait_until(lambda: explorer._runner.running_kind is None, timeout=120)
    background = [(s, e) for name, s, e in batches if name.startswith("farms_viz-background")]
    assert background  # it did compute ahead
    overlaps = [(b, r) for b in background for r in runs if b[0] < r[1] and r[0] < b[1]]
    assert overlaps == []
    explorer.close()


def test_dropped_explorers_release_their_models_and_threads():
    warm = Explorer(_model(9, 64), window=16, windows_per_dim=2)  # the shared pools exist from here on
    warm.wait()
    _wait_until(lambda: warm._runner.running_kind is None and len(warm._ahead._items) > 1)
    warm.close()
    _wait_until(lambda: not warm._runner.alive)
    before = threading.active_count()
    models = []
    for seed in range(8):
        model = _model(10 + seed, 64)
        explorer = Explorer(model, window=16, windows_per_dim=2)
        explorer.wait()
        models.append(weakref.ref(model))
    assert threading.active_count() > before  # at least the last one's worker
    del model, explorer

    def released() -> bool:
        gc.collect()
        return all(ref() is None for ref in models) and threading.active_count() <= before

    try:
        _wait_until(released, timeout=60)
    except AssertionError:
        raise AssertionError(f"{sum(ref() is not None for ref in models)} models alive; threads "
                             f"{[t.name for t in threading.enumerate()]}, {before} before") from None
    still = Explorer(_model(20, 64), window=16, windows_per_dim=2)  # close() stays available
    still.wait()
    still.close()
    _wait_until(lambda: not still._runner.alive)
