"""Magnitude pruning at per-layer sparsities, and the full digits loop: train, analyse, allocate, prune."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch import nn

import farms_viz
from farms_viz import allocate, prune
from farms_viz.sources import digits


def _state(model):
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def _assert_same(before, model):
    after = model.state_dict()
    assert before.keys() == after.keys()
    for k, v in before.items():
        assert torch.equal(v, after[k]), k


def test_zeroes_floor_s_numel_smallest_magnitudes():
    layer = nn.Linear(5, 2, bias=False)
    values = torch.tensor([[0.5, -0.1, 3.0, -2.0, 0.05], [1.0, -0.7, 0.2, 4.0, -0.3]])
    with torch.no_grad():
        layer.weight.copy_(values)
    model = nn.Sequential(layer)
    pruned, report = prune.magnitude(model, {"0": 0.45})  # floor(0.45 * 10) = 4
    expected = values.clone()
    expected[0, 4] = expected[0, 1] = expected[1, 2] = expected[1, 4] = 0  # |w| 0.05, 0.1, 0.2, 0.3
    assert torch.equal(pruned[0].weight, expected)
    assert report.iloc[0].to_dict() == {"layer": "0", "numel": 10, "pruned": 4, "zeros": 4, "target": 0.45,
                                        "reached": 0.4}
    assert torch.equal(model[0].weight, values)


@settings(max_examples=200, deadline=None)
@given(values=st.lists(st.integers(-4, 4), min_size=1, max_size=200), s=st.floats(0.0, 1.0))
def test_same_zeros_as_a_stable_sort_of_magnitudes(values, s):
    """Many ties and existing zeros: exactly floor(s * numel) entries go, the first ones on ties."""
    w = torch.tensor(values, dtype=torch.float32).reshape(1, -1) / 2
    expected = w.clone().reshape(-1)
    count = int(s * w.numel())
    expected[torch.argsort(expected.abs(), stable=True)[:count]] = 0
    model = nn.Sequential(nn.Linear(w.shape[1], 1, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(w)
    pruned, report = prune.magnitude(model, {"0": s})
    assert torch.equal(pruned[0].weight.reshape(-1), expected) and report["pruned"].iloc[0] == count


def test_ties_are_broken_to_exactly_the_count():
    model = nn.Sequential(nn.Linear(4, 4, bias=False))
    with torch.no_grad():
        model[0].weight.fill_(1.0)
    pruned, report = prune.magnitude(model, {"0": 0.5})
    assert int((pruned[0].weight == 0).sum()) == 8 and report["zeros"].iloc[0] == 8


def test_original_unchanged_by_default_and_changed_inplace():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(32, 32), nn.ReLU(), nn.Conv1d(4, 8, 3), nn.Embedding(50, 16))
    before = _state(model)
    targets = {"0": 0.3, "2": 0.6, "3": 0.9}
    pruned, _ = prune.magnitude(model, targets)
    _assert_same(before, model)
    assert pruned is not model
    for name, s in targets.items():
        w = dict(pruned.named_modules())[name].weight
        assert int((w == 0).sum()) == int(s * w.numel())
    assert torch.equal(pruned[0].bias, model[0].bias)  # biases are never pruned
    same, _ = prune.magnitude(model, targets, inplace=True)
    assert same is model and torch.equal(model[2].weight, pruned[2].weight)


def test_report_overall_is_parameter_weighted():
    model = nn.Sequential(nn.Linear(100, 10), nn.Linear(10, 10))
    _, report = prune.magnitude(model, {"0": 0.5, "1": 0.9})
    overall = report.iloc[-1]
    assert overall["layer"] == prune.OVERALL and overall["numel"] == 1100
    assert overall["pruned"] == 500 + 90 and overall["reached"] == pytest.approx(590 / 1100)
    assert overall["target"] == pytest.approx((0.5 * 1000 + 0.9 * 100) / 1100)


def test_attention_q_k_v_prune_their_slice_of_the_packed_weight():
    torch.manual_seed(0)
    model = nn.Sequential(nn.MultiheadAttention(16, 2))
    packed = model[0].in_proj_weight.detach().clone()
    pruned, report = prune.magnitude(model, {"0.k": 0.5, "0.out_proj": 0.25})
    w = pruned[0].in_proj_weight
    assert torch.equal(w[:16], packed[:16]) and torch.equal(w[32:], packed[32:])
    assert int((w[16:32] == 0).sum()) == 128
    assert report.set_index("layer").loc["0.out_proj", "pruned"] == 64


@pytest.mark.parametrize("targets, message", [
    ({"nope": 0.5}, "no layer 'nope'"),
    ({"0": 1.04}, "outside \\[0, 1\\].*redistribute"),
    ({"0": "half"}, "must be a number"),
    ({"1": 0.5}, "no weight matrix"),
])
def test_bad_names_and_sparsities_are_rejected_before_any_change(targets, message):
    model = nn.Sequential(nn.Linear(8, 8), nn.ReLU())
    before = _state(model)
    with pytest.raises(ValueError, match=message):
        prune.magnitude(model, targets, inplace=True)
    _assert_same(before, model)


def test_tied_weights_are_rejected():
    model = nn.Sequential(nn.Embedding(20, 8), nn.Linear(8, 20, bias=False))
    model[1].weight = model[0].weight
    with pytest.raises(ValueError, match="same weight"):
        prune.magnitude(model, {"0": 0.5, "1": 0.5})


# ---- the digits loop --------------------------------------------------------------------------

def test_digits_train_analyse_allocate_prune():
    data = digits.digits_data()
    model = digits.train_digits_mlp(data, epochs=8)
    assert digits.accuracy(model, data) > 0.9
    before = _state(model)

    analysis = farms_viz.analyze(model, window=16, windows_per_dim=5, progress=False)
    assert analysis.layers == ["0", "2", "4", "6"]
    ratios = allocate.sparsity_from_analysis(analysis, 0.8, 0.2, alphas_from="farms")
    assert len(set(np.round(list(ratios.values()), 6))) > 1  # not uniform: the alphas differ
    pruned, report = prune.magnitude(model, ratios)

    overall = report.set_index("layer").loc[prune.OVERALL]
    assert overall["reached"] == pytest.approx(0.8, abs=0.005)
    _assert_same(before, model)
    assert digits.accuracy(model, data) == digits.accuracy(nn.Sequential(*model), data)
    assert digits.accuracy(pruned, data) > 0.1  # still a working network


def test_a_bare_layer_is_named_as_the_analysis_names_it():
    layer = nn.Linear(32, 16)
    analysis = farms_viz.analyze(layer, window=8, progress=False)
    pruned, report = prune.magnitude(layer, allocate.sparsity_from_analysis(analysis, 0.5, 0.2))
    assert report["layer"].tolist() == analysis.layers + [prune.OVERALL]
    assert int((pruned.weight == 0).sum()) == 256
