"""Monitor: alphas recorded while a model trains, off the training thread, on a copy of the weights."""

from __future__ import annotations

import copy
import gc
import threading
import warnings
import weakref

import pandas as pd
import pytest
import torch
from torch import nn

import farms_viz
from farms_viz.engine.analysis import NothingToAnalyzeError
from farms_viz.tracking import Monitor
from farms_viz.tracking.snapshot import WeightSnapshot

FAST = {"window": 16, "windows_per_dim": 3}


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 48), nn.ReLU(), nn.Linear(48, 32))


class _Attention(nn.Module):
    """Embedding, packed multi-head attention, a Conv1d, a norm (skipped) and a head."""

    def __init__(self):
        super().__init__()
        self.embed = nn.Embedding(50, 32)
        self.attn = nn.MultiheadAttention(32, 4)
        self.conv = nn.Conv1d(32, 24, 3)
        self.norm = nn.LayerNorm(32)
        self.head = nn.Linear(32, 10)


def _gpt2() -> nn.Module:
    transformers = pytest.importorskip("transformers")
    torch.manual_seed(0)
    config = transformers.GPT2Config(n_embd=32, n_layer=2, n_head=2, vocab_size=64, n_positions=32,
                                     bos_token_id=0, eos_token_id=0)
    return transformers.GPT2LMHeadModel(config)


def _rows(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.drop(columns=["step", "wall_time"]).reset_index(drop=True)


def _reference(model, **params) -> pd.DataFrame:
    return farms_viz.analyze(model, progress=False, **params).to_pandas()


def _perturb(layer: nn.Linear, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        layer.weight.add_(torch.randn(layer.weight.shape, generator=g) * 0.5)


# --- history -----------------------------------------------------------------------------

@pytest.mark.parametrize("background", [False, "thread", "process"])
def test_one_set_of_rows_per_recorded_step_and_alphas_follow_the_weights(background):
    model = _mlp()
    monitor = Monitor(model, every=2, background=background, when_busy="wait", **FAST)
    for call in range(6):
        _perturb(model[2], seed=call)  # the middle layer changes every call; the others never do
        monitor.step(10 * call)
        if call == 4:
            at_40 = copy.deepcopy(model)
    monitor.wait()
    history = monitor.history
    assert monitor.steps == [0, 20, 40]
    assert history.groupby("step").size().to_dict() == {0: 6, 20: 6, 40: 6}  # 3 layers x 2 methods
    assert list(history.columns[:2]) == ["step", "wall_time"] and history["wall_time"].is_monotonic_increasing
    alphas = history.pivot_table(index="step", columns=["layer", "method"], values="alpha")
    for method in ("esd", "farms"):
        assert alphas[("2", method)].nunique() == 3  # changed weights, changed alpha
        assert alphas[("0", method)].nunique() == 1 and alphas[("4", method)].nunique() == 1
    pd.testing.assert_frame_equal(_rows(history[history.step == 40]), _reference(at_40, **FAST))
    monitor.close()


@pytest.mark.parametrize("mode", ["thread", "process"])
@pytest.mark.parametrize("make", [_mlp, _Attention, pytest.param(_gpt2, marks=pytest.mark.slow)],
                         ids=["mlp", "multihead-attention", "gpt2"])
def test_background_rows_equal_foreground_rows_and_analyze(make, mode):
    model = make()
    foreground = Monitor(model, background=False, **FAST)
    background = Monitor(model, background=mode, **FAST)
    assert background.mode == mode
    foreground.step()
    background.step()
    background.wait()
    expected = _reference(model, **FAST)
    pd.testing.assert_frame_equal(_rows(background.history), expected, check_exact=True)
    pd.testing.assert_frame_equal(_rows(foreground.history), expected, check_exact=True)
    if make is _Attention:
        assert {"attn.q", "attn.k", "attn.v", "conv"} <= set(expected.layer)
    if make is _gpt2:
        assert set(expected[expected.layer.str.endswith("c_attn")].kind) == {"conv1d_hf"}
    background.close()


def test_filters_copy_and_analyse_only_the_chosen_layers():
    model = _mlp()
    monitor = Monitor(model, background="thread", include="[24]", method="farms", **FAST)
    snapshot = WeightSnapshot.take(model, include=["[24]"])
    assert list(snapshot) == ["2.weight", "4.weight"] and [s.name for s in snapshot.skipped] == ["0"]
    monitor.step()
    monitor.wait()
    pd.testing.assert_frame_equal(_rows(monitor.history), _reference(model, include="[24]", method="farms", **FAST))
    assert [s.name for s in monitor.latest.skipped] == ["0"]
    monitor.close()


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_forgotten_monitor_stops_its_worker_and_releases_the_model(mode):
    model = _mlp()
    monitor = Monitor(model, background=mode, **FAST)
    monitor.step()
    monitor.wait()
    worker = monitor._worker
    model_ref = weakref.ref(model)
    del monitor, model
    gc.collect()
    if mode == "thread":
        worker._thread.join(10)
        assert not worker._thread.is_alive()
    else:
        worker._process.join(30)
        worker._receiver.join(10)
        assert worker._process.exitcode == 0 and not worker._receiver.is_alive()
    assert model_ref() is None


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_the_analysis_reads_the_snapshot_not_the_live_weights(mode):
    model = _mlp()
    monitor = Monitor(model, background=mode, when_busy="wait", max_pending=2, **FAST)
    gate = threading.Event()
    monitor.add_listener(lambda step, rows: gate.wait(30) if step == 0 else None)  # holds the worker after step 0
    monitor.step(0)
    _perturb(model[0], seed=1)
    at_step_1 = copy.deepcopy(model)
    monitor.step(1)  # snapshot taken now, analysed only after the gate opens
    for layer in (model[0], model[2], model[4]):
        _perturb(layer, seed=2)  # the live weights move on before the analysis runs
    gate.set()
    monitor.wait()
    pd.testing.assert_frame_equal(_rows(monitor.history[monitor.history.step == 1]),
                                  _reference(at_step_1, **FAST), check_exact=True)
    monitor.close()


def test_frozen_layers_share_the_previous_copy_and_are_not_recomputed():
    model = _mlp()
    monitor = Monitor(model, background="thread", **FAST)
    monitor.step(0)
    monitor.wait()
    _perturb(model[2], seed=0)
    monitor.step(1)
    monitor.wait()
    before, after = monitor.analysis(0), monitor.analysis(1)
    # the cache hands back the very same arrays for unchanged weights
    assert after.eigenvalues("0", "farms") is before.eigenvalues("0", "farms")
    assert after.eigenvalues("4", "esd") is before.eigenvalues("4", "esd")
    assert after.eigenvalues("2", "farms") is not before.eigenvalues("2", "farms")
    monitor.close()


# --- the training loop is never touched ----------------------------------------------------

def _train(model: nn.Module, monitor: Monitor | None, steps: int = 12):
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    g = torch.Generator().manual_seed(0)
    for step in range(steps):
        x = torch.randn(16, 64, generator=g)
        y = torch.randint(0, 32, (16,), generator=g)
        optimizer.zero_grad(set_to_none=False)
        nn.functional.cross_entropy(model(x), y).backward()
        if monitor is not None:
            monitor.step(step)  # between backward and the optimizer step: gradients are live
        optimizer.step()
    return optimizer


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_training_loop_is_bit_for_bit_the_same_with_a_monitor(mode):
    plain, watched = _mlp(), _mlp()
    monitor = Monitor(watched, background=mode, **FAST)  # a copy every step; analyses run while the loop trains
    _train(plain, None)
    _train(watched, monitor)
    monitor.wait()
    # the last step is always recorded (wait() drains it); earlier ones may be replaced by a newer
    # snapshot while the worker is busy (a loaded machine), and then are listed as dropped
    assert monitor.steps and monitor.steps[-1] == 11
    assert sorted(monitor.steps + monitor.dropped_steps) == list(range(12))
    for (name, p), (_, q) in zip(plain.named_parameters(), watched.named_parameters()):
        assert torch.equal(p, q) and torch.equal(p.grad, q.grad), name
        assert p._version == q._version and p.grad._version == q.grad._version, name  # no in-place writes
        assert q.requires_grad and q.grad_fn is None
    assert not any(m._forward_hooks or m._forward_pre_hooks or m._backward_hooks for m in watched.modules())
    monitor.close()


def test_snapshot_is_a_state_dict_of_detached_clones():
    model = _Attention()
    snapshot = WeightSnapshot.take(model)
    assert list(snapshot) == ["embed.weight", "attn.q.weight", "attn.k.weight", "attn.v.weight",
                              "attn.out_proj.weight", "conv.weight", "head.weight"]
    assert [s.name for s in snapshot.skipped] == ["norm"]
    for tensor in snapshot.values():
        assert not tensor.requires_grad and tensor.grad_fn is None
    assert snapshot["attn.k.weight"].data_ptr() != model.attn.in_proj_weight.data_ptr()
    assert torch.equal(snapshot["attn.k.weight"], model.attn.in_proj_weight[32:64])
    pd.testing.assert_frame_equal(_reference(snapshot, **FAST), _reference(model, **FAST), check_exact=True)


# --- when the analysis falls behind -----------------------------------------------------------

def _held(monitor: Monitor) -> threading.Event:
    """Step 0's listener holds the worker until the returned gate opens; step 0 is recorded."""
    entered, gate = threading.Event(), threading.Event()

    def hold(step, rows):
        if step == 0:
            entered.set()
            gate.wait(30)

    monitor.add_listener(hold)
    monitor.step(0)
    assert entered.wait(30)
    return gate


@pytest.mark.parametrize("mode", ["thread", "process"])
def test_a_busy_worker_keeps_the_latest_snapshot_waiting(mode):
    model = _mlp()
    monitor = Monitor(model, background=mode, max_pending=1, **FAST)  # when_busy="latest"
    gate = _held(monitor)
    first = monitor.step(1)
    with pytest.warns(UserWarning, match="step 1's snapshot was replaced by step 2's"):
        monitor.step(2)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        _perturb(model[0], seed=3)
        final = copy.deepcopy(model)
        last = monitor.step(3)
    assert first.cancelled() and monitor.dropped_steps == [1, 2]
    gate.set()
    assert set(last.result(timeout=60).step) == {3}
    monitor.wait()
    assert monitor.steps == [0, 3]  # the newest weights are always recorded
    pd.testing.assert_frame_equal(_rows(monitor.history[monitor.history.step == 3]), _reference(final, **FAST))
    monitor.close()


def test_when_busy_drop_skips_the_new_step_and_takes_no_copy(monkeypatch):
    model = _mlp()
    monitor = Monitor(model, background="thread", max_pending=1, when_busy="drop", **FAST)
    gate = _held(monitor)
    assert monitor.step(1) is not None  # waits in the queue
    copies = []
    monkeypatch.setattr(WeightSnapshot, "take", classmethod(lambda cls, *a, **k: copies.append(1)))
    with pytest.warns(UserWarning, match="step 2's snapshot was not recorded"):
        assert monitor.step(2) is None
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # warned once only
        assert monitor.step(3) is None
    assert copies == [] and monitor.dropped_steps == [2, 3]
    gate.set()
    monitor.wait()
    assert monitor.steps == [0, 1]
    monitor.close()


def test_when_busy_wait_blocks_the_loop_until_the_worker_catches_up():
    model = _mlp()
    monitor = Monitor(model, background="thread", max_pending=1, when_busy="wait", **FAST)
    gate = _held(monitor)
    monitor.step(1)
    third = threading.Thread(target=monitor.step, args=(2,))
    third.start()
    third.join(0.5)
    assert third.is_alive()  # blocked: the queue is full
    gate.set()
    third.join(30)
    monitor.wait()
    assert monitor.steps == [0, 1, 2] and monitor.dropped_steps == []
    monitor.close()


# --- listeners, results, errors ---------------------------------------------------------------

def test_listeners_get_each_steps_rows():
    model = _mlp()
    seen = []
    monitor = Monitor(model, background="thread", **FAST)
    monitor.add_listener(lambda step, rows: seen.append((step, len(rows), threading.current_thread().name)))
    future = monitor.step(7)
    rows = future.result(timeout=60)
    monitor.wait()
    assert seen == [(7, 6, "farms_viz-monitor")] and set(rows.step) == {7}
    monitor.close()


def test_history_can_be_read_while_the_worker_appends():
    model = _mlp()
    monitor = Monitor(model, background="thread", when_busy="wait", **FAST)
    sizes = []
    for step in range(8):
        _perturb(model[0], seed=step)
        monitor.step(step)
        sizes.append(len(monitor.history))  # read while the worker appends
    monitor.wait()
    assert all(n % 6 == 0 for n in sizes) and sizes == sorted(sizes)
    assert len(monitor.history) == 8 * 6
    monitor.close()


def test_bad_arguments_get_clear_errors():
    with pytest.raises(TypeError, match="unexpected parameter.*progress"):
        Monitor(_mlp(), progress=True)
    with pytest.raises(ValueError, match="every must be an integer >= 1"):
        Monitor(_mlp(), every=0)
    with pytest.raises(ValueError, match="when_busy must be 'latest'"):
        Monitor(_mlp(), when_busy="queue")
    with pytest.raises(ValueError, match="background must be"):
        Monitor(_mlp(), background="gpu")
    with pytest.raises(ValueError, match="window must be"):
        Monitor(_mlp(), window=1)
    with pytest.raises(NothingToAnalyzeError, match="nothing to monitor"):
        Monitor(nn.Sequential(nn.LayerNorm(8)))
    with pytest.raises(TypeError, match="torch.nn.Module"):
        Monitor("model.pt")
    monitor = Monitor(_mlp(), **FAST)
    with pytest.raises(TypeError, match="step must be a number"):
        monitor.step("last")
    monitor.close()
    with pytest.raises(RuntimeError, match="closed"):
        monitor.step()


# --- files -------------------------------------------------------------------------------------

def _recorded() -> Monitor:
    model = _mlp()
    monitor = Monitor(model, background="thread", every=1, when_busy="wait", fit="ks", **FAST)
    for step in range(3):
        _perturb(model[2], seed=step)
        monitor.step(step * 100)
    monitor.wait()
    return monitor


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_save_load_round_trip(tmp_path, suffix):
    if suffix == ".parquet":
        pytest.importorskip("pyarrow")
    monitor = _recorded()
    path = monitor.save(tmp_path / f"history{suffix}")
    assert sorted(p.name for p in tmp_path.iterdir()) == [f"history{suffix}"]  # no temporary file left
    loaded = Monitor.load(path)
    pd.testing.assert_frame_equal(loaded.history, monitor.history, check_exact=True)
    assert loaded.params == monitor.params and loaded.every == 1 and loaded.steps == [0, 100, 200]
    with pytest.raises(RuntimeError, match="loaded from a file"):
        loaded.step()
    with pytest.raises(ValueError, match="read from"):
        loaded.save(path)  # never over its input
    assert loaded.mode == "read-only" and loaded.pending == 0
    monitor.close()


def test_csv_keeps_text_that_looks_missing(tmp_path):
    # layer names "NA" and "nan", and empty sampling notes, come back as written, not as NaN
    model = nn.Sequential()
    model.add_module("NA", nn.Linear(48, 48))
    model.add_module("nan", nn.Linear(48, 32))
    monitor = Monitor(model, background=False, **FAST)
    monitor.step(0)
    loaded = Monitor.load(monitor.save(tmp_path / "history.csv"))
    assert sorted(set(loaded.history["layer"])) == ["NA", "nan"]
    assert set(loaded.history["sampling_note"]) <= set(monitor.history["sampling_note"])
    pd.testing.assert_frame_equal(loaded.history, monitor.history, check_exact=True)
    monitor.close()


def test_a_loaded_monitor_goes_on_recording_with_a_model(tmp_path):
    monitor = _recorded()
    path = monitor.save(tmp_path / "history.csv")
    model = _mlp()
    resumed = Monitor.load(path, model=model, background="thread")
    resumed.step(300)
    resumed.wait()
    assert resumed.steps == [0, 100, 200, 300] and resumed.params.fit == "ks"
    pd.testing.assert_frame_equal(_rows(resumed.history[resumed.history.step == 300]),
                                  _reference(model, fit="ks", **FAST))
    monitor.close()
    resumed.close()


def test_save_refuses_links_and_folders_and_unknown_formats(tmp_path):
    monitor = _recorded()
    target = tmp_path / "real.csv"
    target.write_text("keep me")
    (tmp_path / "link.csv").symlink_to(target)
    with pytest.raises(ValueError, match="symbolic link"):
        monitor.save(tmp_path / "link.csv")
    assert target.read_text() == "keep me"
    (tmp_path / "folder.csv").mkdir()
    with pytest.raises(ValueError, match="not a regular file"):
        monitor.save(tmp_path / "folder.csv")
    with pytest.raises(ValueError, match="use a .parquet or .csv"):
        monitor.save(tmp_path / "history.xlsx")
    with pytest.raises(ValueError, match="not a farms_viz table"):
        Monitor.load(target)
    monitor.close()
