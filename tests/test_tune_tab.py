"""The Explorer's Tune tab from Python: run_tune in the background, rows as they come, stop, apply best."""

from __future__ import annotations

import threading
import time

import pandas as pd
import pytest
import torch
import traitlets
from torch import nn

import farms_viz
from farms_viz.widget import tune_tab

WINDOWS, EPSILONS = [16, 32], [0.1, 0.2]
SETTINGS = 1 + len(EPSILONS) + len(WINDOWS) * len(EPSILONS)  # uniform, ESD per epsilon, FARMS per window x epsilon


def _model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 96), nn.ReLU(), nn.Linear(96, 64), nn.ReLU(), nn.Linear(64, 8))


class OutputError:
    """evaluate(pruned): mean squared change of the outputs on fixed inputs (lower is better)."""

    def __init__(self, model: nn.Module, delay: float = 0.0) -> None:
        torch.manual_seed(1)
        self.inputs = torch.randn(256, 64)
        with torch.no_grad():
            self.dense = model(self.inputs)
        self.delay, self.calls, self.fail_at = delay, 0, None
        self.__name__ = "output_error"

    def __call__(self, pruned: nn.Module) -> float:
        self.calls += 1
        if self.fail_at is not None and self.calls >= self.fail_at:
            raise ValueError("the evaluation data could not be read")
        time.sleep(self.delay)
        with torch.no_grad():
            return float((pruned(self.inputs) - self.dense).pow(2).mean())


def _explorer(model, evaluate, **kwargs):
    explorer = farms_viz.Explorer(model, evaluate=evaluate, window=32, windows_per_dim=4, prefetch=False, **kwargs)
    explorer.wait()
    return explorer


def _snapshot(model: nn.Module) -> dict:
    return {name: value.detach().clone() for name, value in model.state_dict().items()}


def test_without_evaluate_the_tab_says_how_to_enable_it():
    explorer = farms_viz.Explorer(_model(), window=32, windows_per_dim=4, prefetch=False)
    assert not explorer._tune["available"]
    assert explorer._tune["how_to"].startswith("farms_viz.Explorer(model, evaluate=fn, calibration=batches)")
    with pytest.raises(RuntimeError, match=r"evaluate=fn"):
        explorer.run_tune()
    explorer._on_custom_message(explorer, {"type": "run_tune"}, [])  # the button: the error shows in the tab
    assert "evaluate=fn" in explorer._tune["error"] and not explorer._tune_running
    explorer.close()


def test_bad_tune_arguments_are_refused_with_what_to_do():
    model = _model()
    with pytest.raises(TypeError, match="nn.Module"):
        farms_viz.Explorer(model.state_dict(), evaluate=OutputError(model))
    with pytest.raises(TypeError, match="unknown tune option"):
        farms_viz.Explorer(model, evaluate=OutputError(model), tune_options={"epsilon": 0.2})
    with pytest.raises(TypeError, match="needs evaluate="):
        farms_viz.Explorer(model, calibration=[torch.randn(4, 64)])
    explorer = _explorer(model, OutputError(model))
    assert explorer.tune_pruner == "magnitude"  # no calibration given
    with pytest.raises(ValueError, match="needs calibration"):
        explorer.run_tune(pruner="wanda")
    with pytest.raises(traitlets.TraitError, match=r"\[0, 1\)"):
        explorer.tune_target = 1.5
    with pytest.raises(ValueError, match=">= 2"):
        explorer.run_tune(windows=[1, 16])
    explorer.close()


def test_run_tune_measures_what_farms_viz_tune_measures_and_leaves_the_model_unchanged():
    model = _model()
    model(torch.randn(8, 64)).sum().backward()  # gradients, to check they are kept too
    weights, grads = _snapshot(model), {n: p.grad.clone() for n, p in model.named_parameters()}
    evaluate = OutputError(model)
    explorer = _explorer(model, evaluate)
    assert explorer.tune_windows == [8, 13, 23, 32, 38, 64]  # from the prunable layers' sizes, + the current window
    explorer.run_tune(windows=WINDOWS, epsilons=EPSILONS, target=0.6)
    frame = explorer.tune_results
    assert len(frame) == SETTINGS and not frame.attrs["stopped"]
    # the tab's grid, Q and fit are the Explorer's: the same rows as farms_viz.tune called directly
    direct = farms_viz.tune(model, evaluate, pruner="magnitude", target=0.6, windows=WINDOWS, epsilons=EPSILONS,
                            windows_per_dim=4, q=1.0, fit=explorer.fit, progress=False)
    pd.testing.assert_series_equal(frame["metric"], direct["metric"])
    assert frame["windows_per_dim"].dropna().eq(4).all() and frame["fit"].dropna().eq(explorer.fit).all()
    assert all(torch.equal(weights[n], v) for n, v in model.state_dict().items())
    assert all(torch.equal(grads[n], p.grad) for n, p in model.named_parameters())
    # drawn: both charts, every finite row, the table, the best setting in words
    assert {"tune_window", "tune_epsilon"} <= set(explorer._specs)
    assert len(explorer._datasets["tune"]) == SETTINGS and len(explorer._tune["rows"]) == SETTINGS
    best = frame.loc[frame["metric"].idxmin()]
    assert explorer._tune["best"]["all"].endswith(f"(output_error {best['metric']:.4g})")
    assert explorer.tune_status.startswith(f"{SETTINGS} settings pruned and measured")
    # a new analysis keeps the tune's charts
    explorer.window = 24
    explorer.wait()
    assert {"tune_window", "tune_epsilon"} <= set(explorer._specs) and len(explorer._datasets["tune"]) == SETTINGS
    explorer.close()


def test_rows_are_drawn_while_the_tune_runs_and_sliders_do_not_stop_it(monkeypatch):
    monkeypatch.setattr(tune_tab, "UPDATE_EVERY_S", 0.0)
    model = _model()
    explorer = _explorer(model, OutputError(model, delay=0.15))
    explorer.run_tune(windows=WINDOWS, epsilons=EPSILONS)
    deadline = time.monotonic() + 30
    while len(explorer._tune["rows"]) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert explorer._tune_running and 2 <= len(explorer._tune["rows"]) < SETTINGS
    assert explorer.tune_status.startswith("tune: ") and explorer._tune["planned"] == SETTINGS
    explorer.window = 20  # the sliders run on the Explorer's own worker
    assert explorer.wait(timeout=30).params.window == 20
    frame = explorer.tune_results
    assert len(frame) == SETTINGS and not frame.attrs["stopped"] and not explorer._tune_running
    explorer.close()


def test_stop_tune_keeps_the_rows_so_far():
    model = _model()
    evaluate = OutputError(model, delay=0.1)
    explorer = _explorer(model, evaluate)
    explorer.run_tune(windows=WINDOWS, epsilons=EPSILONS)
    deadline = time.monotonic() + 30
    while evaluate.calls < 2 and time.monotonic() < deadline:
        time.sleep(0.01)
    explorer._on_custom_message(explorer, {"type": "stop_tune"}, [])  # the button
    frame = explorer.tune_results
    assert frame.attrs["stopped"] and 2 <= len(frame) < SETTINGS
    assert explorer.tune_status.startswith(f"stopped after {len(frame)} of {SETTINGS} settings")
    assert len(explorer._tune["rows"]) == len(frame) and not explorer._tune_running
    explorer.close()


def test_apply_best_sets_the_sliders_and_the_allocation():
    model = _model()
    explorer = _explorer(model, OutputError(model))
    with pytest.raises(RuntimeError, match="run the tune first"):
        explorer.apply_best_tune()
    # the button sends the tab's fields with its request
    explorer._on_custom_message(explorer, {"type": "run_tune", "windows": [16, 8], "epsilons": [0.3, 0.1],
                                           "target": 0.6, "pruner": "magnitude"}, [])
    frame = explorer.tune_results
    assert (explorer.tune_windows, explorer.tune_epsilons, explorer.tune_target) == ([8, 16], [0.1, 0.3], 0.6)
    assert sorted(frame["window"].dropna().unique()) == [8, 16] and frame["target"].eq(0.6).all()
    farms = frame[frame["method"] == "farms"]
    best = farms.loc[farms["metric"].idxmin()]
    explorer._on_custom_message(explorer, {"type": "apply_best_tune", "method": "farms"}, [])  # the button
    assert (explorer.window, explorer.windows_per_dim, explorer.epsilon, explorer.target, explorer.alphas_from) == (
        int(best["window"]), 4, float(best["epsilon"]), 0.6, "farms")
    assert explorer.wait().params.window == int(best["window"])  # the analysis followed
    assert explorer._tune["applied"].startswith(f"applied: FARMS, ε {best['epsilon']:g}, window {int(best['window'])}")
    row = explorer.apply_best_tune("uniform")
    assert row["method"] == "uniform" and explorer.epsilon == 0.0
    ratios = explorer.allocation
    assert max(ratios.values()) == pytest.approx(min(ratios.values()))  # epsilon 0: every layer at the target
    explorer.close()


def test_an_error_in_evaluate_shows_in_the_tab_and_the_widget_stays_usable():
    model = _model()
    weights = _snapshot(model)
    evaluate = OutputError(model)
    evaluate.fail_at = 3
    explorer = _explorer(model, evaluate)
    explorer.run_tune(windows=WINDOWS, epsilons=EPSILONS)
    with pytest.warns(RuntimeWarning, match="the evaluation data could not be read"):
        frame = explorer.tune_results
    assert len(frame) == 2 and not explorer._tune_running and explorer._tune["failed"]
    assert "ValueError: the evaluation data could not be read" in explorer.tune_status
    assert "could not be read" in explorer._tune["error"] and explorer.error == ""
    assert all(torch.equal(weights[n], v) for n, v in model.state_dict().items())  # restored after the failure
    explorer.window = 16  # the rest of the widget works
    assert explorer.wait().params.window == 16
    evaluate.fail_at = None
    explorer.run_tune()  # and so does the next tune
    assert len(explorer.tune_results) == SETTINGS and explorer._tune["error"] == ""
    explorer.close()


def test_wanda_with_calibration_through_the_explorer():
    model = _model()
    weights = _snapshot(model)
    batches = [torch.randn(32, 64) for _ in range(2)]
    explorer = _explorer(model, OutputError(model), calibration=iter(batches))  # a one-shot iterator is kept
    assert explorer.tune_pruner == "wanda" and explorer._tune["calibration"]
    frames = []
    for _ in range(2):  # twice: the calibration was not used up by the first run
        explorer.run_tune(windows=[16], epsilons=[0.2])
        frame = explorer.tune_results
        assert frame["pruner"].eq("wanda").all() and len(frame) == 3
        assert (frame["sparsity"] - 0.7).abs().max() < 1 / 64  # Wanda prunes whole entries of each 64-wide row
        frames.append(frame)
    pd.testing.assert_series_equal(frames[0]["metric"], frames[1]["metric"])
    assert all(torch.equal(weights[n], v) for n, v in model.state_dict().items())
    explorer.close()


def test_a_new_run_stops_the_one_in_progress():
    model = _model()
    release = threading.Event()
    evaluate = OutputError(model)
    first_call = threading.Event()

    def slow(pruned):
        first_call.set()
        release.wait(10)
        return evaluate(pruned)

    explorer = _explorer(model, slow)
    explorer.run_tune(windows=WINDOWS, epsilons=EPSILONS)
    assert first_call.wait(30)
    explorer.run_tune(windows=[16], epsilons=[0.2])
    release.set()
    frame = explorer.tune_results
    assert len(frame) == 3 and frame["window"].dropna().tolist() == [16]
    explorer.close()
