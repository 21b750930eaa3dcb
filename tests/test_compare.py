"""compare: several models analysed alike, layers matched by name, identical weights analysed once."""

from __future__ import annotations

import copy
import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

import farms_viz
from farms_viz.checkpoints import CheckpointError, open_checkpoint
from farms_viz.engine.cache import SPECTRA
from farms_viz.tracking import Comparison, compare
from farms_viz.tracking.compare import checkpoint_paths, steps_from_names

FAST = {"window": 16, "windows_per_dim": 3, "progress": False}


def _mlp(seed: int = 0) -> nn.Module:
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(64, 48), nn.ReLU(), nn.Linear(48, 48), nn.ReLU(), nn.Linear(48, 32),
                         nn.ReLU(), nn.Linear(32, 24))


def _student_t(shape, g: torch.Generator) -> torch.Tensor:
    """Student-t entries with 2 degrees of freedom: a normal over the root of a chi-square(2) / 2."""
    chi2 = torch.randn((2, *shape), generator=g).square().sum(0)
    return torch.randn(shape, generator=g) / (chi2 / 2).sqrt()


def _perturbed(model: nn.Module, indices: list[int]) -> nn.Module:
    tuned = copy.deepcopy(model)
    g = torch.Generator().manual_seed(1)
    with torch.no_grad():
        for i in indices:
            # a heavy-tailed update: the spectrum, not only its scale, changes
            tuned[i].weight.add_(_student_t(tuned[i].weight.shape, g) * 0.2)
    return tuned


def test_a_model_compared_with_itself_has_zero_deltas():
    model = _mlp()
    for other in (model, copy.deepcopy(model)):  # the same object, or an equal copy
        comparison = compare({"a": model, "b": other}, **FAST)
        delta = comparison.delta("a", "b")
        assert len(delta) == 4 * 2 and list(delta.columns) == ["layer", "method", "alpha_a", "alpha_b", "delta"]
        assert (delta["delta"] == 0).all()
        assert comparison.reused["b"] == ["0", "2", "4", "6"]


def test_identical_weights_are_not_recomputed():
    model = _mlp(seed=3)
    SPECTRA.clear()
    farms_viz.analyze(model, **FAST)
    alone = SPECTRA.misses
    SPECTRA.clear()
    compare({"a": model, "b": copy.deepcopy(model), "c": copy.deepcopy(model)}, **FAST)
    assert SPECTRA.misses == alone  # the copies cost comparisons, not spectra


def test_a_perturbed_copy_changes_alpha_exactly_on_the_perturbed_layers():
    base = _mlp()
    tuned = _perturbed(base, [2, 6])
    comparison = compare({"base": base, "tuned": tuned}, **FAST)
    delta = comparison.delta("base", "tuned")
    changed = delta[delta["delta"] != 0]
    assert sorted(set(changed.layer)) == ["2", "6"]
    assert len(changed) == 4  # both methods on each perturbed layer
    assert comparison.reused["tuned"] == ["0", "4"]
    # each model's rows are what analyze gives it alone
    expected = farms_viz.analyze(tuned, window=16, windows_per_dim=3, progress=False).to_pandas()
    rows = comparison.to_pandas()
    assert list(rows.columns[:2]) == ["model", "layer"]
    pd.testing.assert_frame_equal(rows[rows.model == "tuned"].drop(columns="model").reset_index(drop=True),
                                  expected, check_exact=True)
    farms = comparison.delta("base", "tuned", method="farms")
    assert set(farms.method) == {"farms"} and len(farms) == 4


def test_layers_are_matched_by_name_and_the_unmatched_listed():
    base = _mlp()
    wider = nn.Sequential(*list(copy.deepcopy(base)), nn.ReLU(), nn.Linear(24, 16))  # adds layer "8"
    state = {k: v for k, v in base.state_dict().items() if not k.startswith("0.")}  # a state dict without "0"
    comparison = compare({"base": base, "wider": wider, "state": state}, **FAST)
    assert comparison.layers == ["0", "2", "4", "6", "8"]
    assert comparison.matched == ["2", "4", "6"] and comparison.unmatched == ["0", "8"]
    assert comparison.missing().to_dict("list") == {"layer": ["0", "8", "8"], "model": ["state", "base", "state"]}
    assert set(comparison.delta("base", "wider").layer) == {"0", "2", "4", "6"}
    assert comparison.to_pandas().groupby("model", sort=False).size().to_dict() == {"base": 8, "wider": 10,
                                                                                     "state": 6}


def test_spectra_of_one_layer_from_each_model():
    base = _mlp()
    tuned = _perturbed(base, [2])
    comparison = compare({"base": base, "tuned": tuned}, **FAST)
    spectra = comparison.spectra("2", "farms")
    assert list(spectra) == ["base", "tuned"]
    alone = farms_viz.analyze(tuned, window=16, windows_per_dim=3, progress=False)
    np.testing.assert_array_equal(spectra["tuned"].eigenvalues, alone.eigenvalues("2", "farms"))
    assert spectra["tuned"].fit.alpha == alone.spectrum("2", "farms").fit.alpha
    with pytest.raises(KeyError, match="no model has"):
        comparison.spectra("nope")


def _save(model: nn.Module, path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)


def test_a_folder_of_checkpoints_in_natural_order(tmp_path):
    models = {step: _perturbed(_mlp(), [2]) if step % 2 else _mlp() for step in (2, 5, 10)}
    _save(models[2], tmp_path / "ckpt-2.safetensors")
    _save(models[10], tmp_path / "ckpt-10.safetensors")
    _save(models[5], tmp_path / "checkpoint-5" / "model.safetensors")  # a Hugging Face Trainer folder
    torch.save({"lr": torch.tensor(0.1)}, tmp_path / "checkpoint-5" / "optimizer.pt")
    (tmp_path / "checkpoint-5" / "trainer_state.json").write_text(json.dumps({"global_step": 5}))
    (tmp_path / "notes.txt").write_text("not a checkpoint")
    (tmp_path / "runs").mkdir()  # no weights inside: ignored
    assert [p.relative_to(tmp_path).as_posix() for p in checkpoint_paths(tmp_path)] == [
        "checkpoint-5", "ckpt-2.safetensors", "ckpt-10.safetensors"]
    comparison = compare(tmp_path, **FAST)
    assert comparison.names == ["checkpoint-5", "ckpt-2", "ckpt-10"]
    assert comparison.steps == {"checkpoint-5": 5, "ckpt-2": 2, "ckpt-10": 10}
    history = comparison.history()
    assert list(history.columns[:3]) == ["step", "model", "layer"]
    expected = farms_viz.analyze(open_checkpoint(tmp_path / "ckpt-10.safetensors"), window=16,
                                 windows_per_dim=3, progress=False).to_pandas()
    got = history[history.model == "ckpt-10"].drop(columns=["step", "model"]).reset_index(drop=True)
    pd.testing.assert_frame_equal(got, expected, check_exact=True)
    # ckpt-2 and ckpt-10 hold the same weights, but checkpoint-5 sits between them
    assert comparison.reused["ckpt-2"] == ["0", "4", "6"] and comparison.reused["ckpt-10"] == ["0", "2", "4", "6"]


def test_steps_come_from_trailing_numbers_else_the_order():
    assert steps_from_names(["ckpt-1000", "ckpt-2000"]) == {"ckpt-1000": 1000, "ckpt-2000": 2000}
    assert steps_from_names(["base", "tuned"]) == {"base": 0, "tuned": 1}
    assert steps_from_names(["run-1", "run"]) == {"run-1": 0, "run": 1}  # one without a number: order
    assert steps_from_names(["a-1", "b-1"]) == {"a-1": 0, "b-1": 1}  # repeated numbers: order


def test_progress_counts_every_layer_of_every_model():
    calls = []
    base = _mlp()
    compare({"a": base, "b": _perturbed(base, [2])}, window=16, windows_per_dim=3,
            progress=lambda done, total, layer: calls.append((done, total, layer)))
    assert calls[-1][:2] == (8, 8) and all(total == 8 for _, total, _ in calls)
    assert [done for done, _, _ in calls] == sorted(done for done, _, _ in calls)
    assert calls[0][2] == "a: 0"


def test_bad_input_gets_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="looks like one state dict"):
        compare(_mlp().state_dict(), **FAST)
    with pytest.raises(ValueError, match="is empty"):
        compare({}, **FAST)
    with pytest.raises(TypeError, match="must be an nn.Module"):
        compare({"a": 3}, **FAST)
    _save(_mlp(), tmp_path / "one.safetensors")
    with pytest.raises(ValueError, match="not a folder"):
        compare(tmp_path / "one.safetensors", **FAST)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="no checkpoints in"):
        compare(tmp_path / "empty", **FAST)
    (tmp_path / "sharded").mkdir()
    _save(_mlp(), tmp_path / "sharded" / "model-00001-of-00002.safetensors")
    with pytest.raises(ValueError, match="one sharded checkpoint"):
        compare(tmp_path / "sharded", **FAST)
    with pytest.raises(farms_viz.NothingToAnalyzeError, match="model 'norm'"):
        compare({"ok": _mlp(), "norm": nn.LayerNorm(8)}, **FAST)
    with pytest.raises(KeyError, match="no model 'c'"):
        compare({"a": _mlp()}, **FAST).delta("a", "c")


def test_repr_and_type():
    comparison = compare({"a": _mlp(), "b": _mlp(seed=1)}, **FAST)
    assert isinstance(comparison, Comparison)
    assert "2 models" in repr(comparison) and "4 layers matched" in repr(comparison)
