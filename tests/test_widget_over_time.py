"""Explorer(monitor) and Explorer({name: model}): the step slider, the time view, the model
picker and the comparison panels, set as the front end sets them (no browser)."""

from __future__ import annotations

import copy

import numpy as np
import pytest
import torch
import torch.nn as nn

import farms_viz
from farms_viz.widget import Explorer
from farms_viz.widget.models import is_models

PARAMS = dict(window=16, windows_per_dim=3)


def _train(model: nn.Module, monitor: farms_viz.Monitor, steps: range, seed: int = 0) -> None:
    generator = torch.Generator().manual_seed(seed)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    for step in steps:
        x = torch.randn(16, 64, generator=generator)
        model(x).square().mean().backward()
        optimizer.step()
        optimizer.zero_grad()
        monitor.step(step)


def _as_front_end(explorer: Explorer, **values) -> None:
    """What a front-end message does: set the traits together, then wait for the kernel's work."""
    with explorer.hold_trait_notifications():
        for name, value in values.items():
            setattr(explorer, name, value)
    explorer.wait(timeout=60)


def _table_alphas(explorer: Explorer) -> dict[str, float]:
    return {row["layer"]: row["alpha_farms"] for row in explorer._table if not row.get("skipped_reason")}


@pytest.fixture
def trained():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 32))
    monitor = farms_viz.Monitor(model, background=False, **PARAMS)
    explorer = Explorer(monitor)
    _train(model, monitor, range(0, 50, 10))
    explorer.wait(timeout=60)
    yield model, monitor, explorer
    explorer.close()
    monitor.close()


def test_the_time_view_has_one_row_per_recorded_step_layer_and_method(trained):
    _, monitor, explorer = trained
    state = explorer._timeline
    assert state["steps"] == [0, 10, 20, 30, 40]
    rows = state["datasets"]["time_layers"]
    assert len(rows) == 5 * 3 * 2
    assert {(r["step"], r["layer"], r["method"]) for r in rows} == {
        (s, layer, m) for s in range(0, 50, 10) for layer in ("0", "2", "4") for m in ("esd", "farms")}
    history = monitor.history.set_index(["step", "layer", "method"])["alpha"]
    for row in rows:
        assert row["alpha"] == pytest.approx(history[(row["step"], row["layer"], row["method"])], rel=1e-4)
    means = {(r["step"], r["method"]): r["alpha"] for r in state["datasets"]["time_mean"]}
    expected = monitor.history.groupby(["step", "method"])["alpha"].mean()
    assert means == pytest.approx({k: float(v) for k, v in expected.items()}, rel=1e-4)
    assert explorer._mode == "monitor" and explorer.step == 40 and explorer.follow_latest


def test_the_step_slider_scrubs_every_panel_back_in_time(trained):
    _, monitor, explorer = trained
    newest = _table_alphas(explorer)
    assert newest == pytest.approx(monitor.analysis(40).alphas("farms"), rel=1e-4)
    _as_front_end(explorer, step=0, follow_latest=False)   # the slider moved to its first position
    first = _table_alphas(explorer)
    assert first == pytest.approx(monitor.analysis(0).alphas("farms"), rel=1e-4)
    assert first != pytest.approx(newest, rel=1e-4)  # training changed the alphas, so did the panels
    assert explorer.analysis is monitor.analysis(0)
    layers = {r["layer"]: r["alpha"] for r in explorer._datasets["layers"] if r["method"] == "farms"}
    assert layers == pytest.approx(first, rel=1e-4)
    assert "step 0" in explorer.status and explorer.error == ""
    # Python, as the slider: an older step stops following; the newest step follows again
    explorer.step = 20
    explorer.wait(timeout=60)
    assert not explorer.follow_latest and _table_alphas(explorer) == pytest.approx(
        monitor.analysis(20).alphas("farms"), rel=1e-4)
    explorer.step = 40
    explorer.wait(timeout=60)
    assert explorer.follow_latest


def test_new_steps_arrive_live_and_move_the_slider_only_while_following(trained):
    model, monitor, explorer = trained
    _as_front_end(explorer, step=10, follow_latest=False)
    _train(model, monitor, range(50, 70, 10), seed=1)
    explorer.wait(timeout=60)
    assert explorer._timeline["steps"][-2:] == [50, 60]
    assert len(explorer._timeline["datasets"]["time_layers"]) == 7 * 3 * 2
    assert explorer.step == 10  # the user moved it: new steps do not take it away
    assert _table_alphas(explorer) == pytest.approx(monitor.analysis(10).alphas("farms"), rel=1e-4)
    _as_front_end(explorer, follow_latest=True)
    assert explorer.step == 60
    assert _table_alphas(explorer) == pytest.approx(monitor.analysis(60).alphas("farms"), rel=1e-4)


def test_a_background_monitor_updates_the_explorer_from_its_worker():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))
    monitor = farms_viz.Monitor(model, background="thread", when_busy="wait", **PARAMS)
    explorer = Explorer(monitor)
    try:
        assert explorer.step is None and "monitor.step()" in explorer._timeline["note"]
        _train(model, monitor, range(3))
        monitor.wait(timeout=60)
        explorer.wait(timeout=60)
        assert explorer._timeline["steps"] == [0, 1, 2] and explorer.step == 2
        assert _table_alphas(explorer) == pytest.approx(monitor.analysis(2).alphas("farms"), rel=1e-4)
    finally:
        explorer.close()
        monitor.close()


def test_the_monitors_parameters_are_fixed(trained):
    _, monitor, explorer = trained
    shown = _table_alphas(explorer)
    _as_front_end(explorer, window=32)
    assert explorer.window == 16  # set back: the history was computed with the Monitor's window
    assert "fixed" in explorer.error and "Explorer(monitor.model" in explorer.error
    assert _table_alphas(explorer) == shown
    _as_front_end(explorer, step=35)  # never recorded
    assert "step 35" in explorer.error and explorer.analysis is monitor.analysis(40)
    assert explorer.step == 40  # set back to the step on screen
    with pytest.raises(TypeError, match="Monitor's analyses"):
        Explorer(monitor, window=32)


@pytest.fixture
def pair():
    torch.manual_seed(2)
    base = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 48), nn.Linear(48, 32))
    tuned = copy.deepcopy(base)
    with torch.no_grad():
        tuned[1].weight.mul_(3).add_(torch.randn(48, 64))  # only layer "1" changes
    explorer = Explorer({"base": base, "tuned": tuned}, **PARAMS)
    explorer.wait(timeout=60)
    yield base, tuned, explorer
    explorer.close()


def _deltas(explorer: Explorer, method: str = "farms") -> dict[str, float]:
    return {r["layer"]: r["delta"] for r in explorer._comparison["datasets"]["models_delta"] if r["method"] == method}


def test_the_comparison_shows_both_models_and_the_delta_of_the_changed_layer_only(pair):
    base, tuned, explorer = pair
    assert explorer._mode == "models" and explorer.shown_model == "base"
    assert explorer._comparison["models"] == ["base", "tuned"]
    for method in ("esd", "farms"):
        deltas = _deltas(explorer, method)
        assert deltas["0"] == 0 and deltas["2"] == 0 and deltas["1"] != 0
        on_screen = explorer.comparison.delta("base", "tuned", method=method)
        assert dict(zip(on_screen["layer"], on_screen["delta"])) == pytest.approx(deltas, rel=1e-4, abs=1e-6)
    expected = farms_viz.compare({"base": base, "tuned": tuned}, progress=False, **PARAMS).to_pandas()
    shown = explorer._comparison["datasets"]["models_layers"]
    rows = {(r["model"], r["layer"], r["method"]): r["alpha"] for r in shown}
    assert rows == pytest.approx({(r.model, r.layer, r.method): r.alpha for r in expected.itertuples()}, rel=1e-4)
    assert _table_alphas(explorer) == pytest.approx(farms_viz.analyze(base, progress=False, **PARAMS).alphas("farms"),
                                                    rel=1e-4)


def test_the_model_picker_switches_the_single_model_panels(pair):
    _, tuned, explorer = pair
    _as_front_end(explorer, shown_model="tuned")
    assert _table_alphas(explorer) == pytest.approx(farms_viz.analyze(tuned, progress=False, **PARAMS).alphas("farms"),
                                                    rel=1e-4)
    assert _deltas(explorer)["1"] != 0  # the comparison stays
    _as_front_end(explorer, shown_model="nope")
    assert "shown_model must be one of ['base', 'tuned']" in explorer.error


def test_the_sliders_re_run_every_model_and_the_spectra_follow_the_selected_layer(pair):
    base, tuned, explorer = pair
    before = _deltas(explorer)
    _as_front_end(explorer, window=8)
    expected = farms_viz.compare({"base": base, "tuned": tuned}, progress=False, window=8,
                                 windows_per_dim=3).delta("base", "tuned", method="farms")
    assert _deltas(explorer) == pytest.approx(dict(zip(expected["layer"], expected["delta"])), rel=1e-4, abs=1e-6)
    assert _deltas(explorer)["1"] != pytest.approx(before["1"], rel=1e-4)
    _as_front_end(explorer, selected_layer="1")
    state = explorer._comparison
    assert state["layer"] == "1"
    spectra = state["datasets"]["models_spectra"]
    assert {r["model"] for r in spectra} == {"base", "tuned"}
    marks = {(r["model"], r["method"]): r["alpha"] for r in state["datasets"]["models_xmin"]}
    spectra_1 = farms_viz.compare({"base": base, "tuned": tuned}, progress=False, window=8,
                                  windows_per_dim=3).spectra("1", "farms")
    assert marks[("tuned", "farms")] == pytest.approx(spectra_1["tuned"].fit.alpha, rel=1e-4)


def test_a_state_dict_is_one_model_and_a_mapping_of_models_is_several():
    model = nn.Linear(32, 16)
    assert not is_models(model.state_dict()) and is_models({"a": model, "b": model.state_dict()})
    with pytest.raises(ValueError, match="at least two"):
        Explorer({"only": model})
    assert np.isfinite(Explorer(model.state_dict(), window=8).wait().alphas("farms")["weight"])


def test_the_cost_and_the_progress_of_a_comparison_count_every_model(pair):
    """Before a run the estimate covers both models (not the shown one only), and the run's
    progress reaches the end only once both are done."""
    base, _, explorer = pair
    one = Explorer(base, **PARAMS)
    try:
        one.wait(timeout=60)
        _as_front_end(one, window=12)
        _as_front_end(explorer, window=12)
        assert explorer._estimate["windows"] == 2 * one._estimate["windows"] > 0
        assert explorer._estimate["layers"] == 2 * one._estimate["layers"]
    finally:
        one.close()
    sent = []
    explorer.observe(lambda change: sent.append(change["new"]), names=["progress"])
    _as_front_end(explorer, window=10)
    explorer.wait(timeout=60)
    running = [value for value in sent if 0 < value < 1]
    assert sent[-1] == 1.0 and all(value <= 1.0 for value in sent)
    assert not running or max(running) < 1.0


def test_save_html_over_a_monitor_writes_the_time_view_and_never_follows_a_link(trained, tmp_path):
    _, monitor, explorer = trained
    page = explorer.save_html(tmp_path / "run.html").read_text(encoding="utf-8")
    assert "alpha over training" in page and "<script" in page
    steps = sorted(set(monitor.history["step"]))
    assert f'"step":{steps[-1]}' in page.replace(" ", "")
    panels = explorer.save_html(tmp_path / "panels.html", view="panels").read_text(encoding="utf-8")
    assert "farms_viz report" in panels
    with pytest.raises(ValueError, match="'panels', 'time' or 'comparison'"):
        explorer.save_html(tmp_path / "x.html", view="spectra")
    target = tmp_path / "keep.txt"
    target.write_text("mine")
    (tmp_path / "link.html").symlink_to(target)
    with pytest.raises(Exception, match="link"):
        explorer.save_html(tmp_path / "link.html")
    assert target.read_text() == "mine"


def test_save_html_of_several_models_writes_the_comparison_offline(pair, tmp_path):
    _, _, explorer = pair
    _as_front_end(explorer, selected_layer="1", view_method="esd")
    page = explorer.save_html(tmp_path / "compare.html").read_text(encoding="utf-8")
    assert "base vs tuned (spectra of layer 1)" in page
    assert "cdn.jsdelivr" not in page and "<script" in page  # vega inlined: opens offline
    shown = {(r["model"], r["layer"], r["method"]) for r in explorer._comparison["datasets"]["models_layers"]}
    for model, layer, method in shown:
        assert f'"model":"{model}","layer":"{layer}","method":"{method}"' in page.replace(" ", "")
    assert '"value":"esd"' in page.replace(" ", "")  # opens on the method on screen
    single = Explorer(nn.Linear(8, 8), window=4, windows_per_dim=2)
    try:
        with pytest.raises(ValueError, match="Explorer of several models"):
            single.save_html(tmp_path / "x.html", view="comparison")
    finally:
        single.close()
