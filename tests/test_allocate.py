"""Allocation from alphas: docs/spec.md section 7 (sparsity) and section 8 (learning rates), param groups."""

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from spec_tables import table
from torch import nn

import farms_viz
from farms_viz import allocate
from farms_viz.allocate import learning_rates, param_groups, sparsity, transformer_blocks

# ---- docs/spec.md section 7 table -------------------------------------------------------------------

# alpha, P, groups, S, eps, sparsities (as printed, 4 decimals): docs/spec.md section 7
SPEC7 = [(r["alpha"], r["params"], r["groups"], r["target"], r["epsilon"], r["sparsity (unclipped)"])
         for r in table("allocation")]


@pytest.mark.parametrize("alphas, params, groups, target, eps, expected", SPEC7)
def test_spec7_table_formula_values(alphas, params, groups, target, eps, expected):
    got = sparsity(alphas, target, eps, params=params, groups=groups, mode="unclipped")
    assert np.round(got, 4).tolist() == pytest.approx(expected, abs=1e-12)


def test_spec7_reference_clip_is_0998_without_redistribution():
    got = sparsity([2, 3, 4, 5], 0.8, 0.3, mode="reference")
    assert np.round(got, 4).tolist() == [0.56, 0.72, 0.88, 0.998]
    assert got.mean() < 0.8  # the reference loses the clipped excess


def test_spec7_redistribute_keeps_mean_on_target():
    got = sparsity([2, 3, 4, 5], 0.8, 0.3, max_sparsity=0.99)
    assert got[-1] == 0.99
    assert got.mean() == pytest.approx(0.8, abs=1e-12)
    assert np.all(np.diff(got) > 0)  # order kept


def test_rows_that_need_no_clipping_are_the_same_in_every_mode():
    for alphas, params, groups, target, eps, _ in SPEC7[:3] + SPEC7[4:]:
        raw = sparsity(alphas, target, eps, params=params, groups=groups, mode="unclipped")
        for mode in ("redistribute", "reference"):
            np.testing.assert_allclose(sparsity(alphas, target, eps, params=params, groups=groups, mode=mode), raw)


def test_epsilon_zero_gives_target_everywhere():
    assert sparsity([1.5, 7.0, 3.0], 0.6, 0.0).tolist() == [0.6, 0.6, 0.6]


# ---- properties -----------------------------------------------------------------------------

alpha_lists = st.lists(st.floats(0.5, 12.0, allow_nan=False), min_size=1, max_size=30)


@settings(max_examples=200, deadline=None)
@given(data=st.data(), alphas=alpha_lists, target=st.floats(0.0, 0.95), eps=st.floats(0.0, 0.99))
def test_weighted_mean_is_target_after_clip_and_redistribute(data, alphas, target, eps):
    params = data.draw(st.lists(st.integers(1, 10**7), min_size=len(alphas), max_size=len(alphas)))
    s = sparsity(alphas, target, eps, params=params, max_sparsity=0.99)
    weights = np.asarray(params, dtype=float)
    assert float((s * weights).sum() / weights.sum()) == pytest.approx(target, abs=1e-9)
    assert np.all(s <= 0.99 + 1e-12) and np.all(s >= 0)


@settings(max_examples=100, deadline=None)
@given(alphas=alpha_lists, target=st.floats(0.0, 0.95), eps=st.floats(0.0, 0.99))
def test_larger_alpha_is_never_pruned_less(alphas, target, eps):
    a = np.asarray(alphas)
    s = sparsity(a, target, eps)
    order = np.argsort(a, kind="stable")
    assert np.all(np.diff(s[order]) >= -1e-12)


@settings(max_examples=50, deadline=None)
@given(value=st.floats(0.5, 12.0), n=st.integers(1, 20), target=st.floats(0.0, 0.95),
       eps=st.floats(0.0, 0.99))
def test_all_equal_alphas_give_target_everywhere(value, n, target, eps):
    assert np.all(sparsity([value] * n, target, eps) == target)
    assert np.all(learning_rates([value] * n, 0.1) == 0.1)


@settings(max_examples=100, deadline=None)
@given(alphas=st.lists(st.floats(1.01, 12.0), min_size=2, max_size=15, unique=True),
       perm_seed=st.integers(0, 2**31 - 1), target=st.floats(0.05, 0.9), eps=st.floats(0.0, 0.9))
def test_unsorted_input_keeps_its_order(alphas, perm_seed, target, eps):
    perm = np.random.default_rng(perm_seed).permutation(len(alphas))
    base = sparsity(alphas, target, eps)
    shuffled = sparsity([alphas[i] for i in perm], target, eps)
    np.testing.assert_allclose(shuffled, base[perm], atol=1e-12)
    names = [f"layer{i}" for i in perm]
    as_dict = sparsity(dict(zip(names, (alphas[i] for i in perm))), target, eps)
    assert list(as_dict) == names
    for mapping in allocate.MAPPINGS:
        lr = learning_rates(alphas, 0.1, mapping=mapping)
        np.testing.assert_allclose(learning_rates([alphas[i] for i in perm], 0.1, mapping=mapping), lr[perm],
                                   atol=1e-12)


# ---- grouping -------------------------------------------------------------------------------

def test_transformer_blocks_patterns():
    names = ["embeddings.word_embeddings", "encoder.layer.0.attention.self.query", "encoder.layer.0.output.dense",
             "encoder.layer.11.intermediate.dense", "model.layers.3.mlp.experts.2.w1", "transformer.h.0.attn.c_attn",
             "blocks.7.mlp.fc1", "lm_head", "pooler.dense", "highway.0"]
    assert transformer_blocks(names) == {
        "embeddings.word_embeddings": "embeddings.word_embeddings",
        "encoder.layer.0.attention.self.query": "encoder.layer.0",
        "encoder.layer.0.output.dense": "encoder.layer.0",
        "encoder.layer.11.intermediate.dense": "encoder.layer.11",
        "model.layers.3.mlp.experts.2.w1": "model.layers.3",
        "transformer.h.0.attn.c_attn": "transformer.h.0",
        "blocks.7.mlp.fc1": "blocks.7",
        "lm_head": "lm_head",
        "pooler.dense": "pooler.dense",
        "highway.0": "highway.0",  # "h" must be a whole path component
    }


def test_block_grouping_by_name_matches_explicit_groups():
    alphas = {"layers.0.q": 2.0, "layers.0.k": 4.0, "layers.1.q": 3.0, "layers.1.k": 5.0}
    by_name = sparsity(alphas, 0.7, 0.2, groups="blocks")
    assert [round(v, 4) for v in by_name.values()] == [0.56, 0.56, 0.84, 0.84]
    assert by_name == sparsity(alphas, 0.7, 0.2, groups={"layers.0.q": "a", "layers.0.k": "a",
                                                        "layers.1.q": "b", "layers.1.k": "b"})


def test_groups_none_label_means_own_group():
    got = sparsity([2, 4, 3, 5], 0.7, 0.2, groups=[0, 0, None, None], mode="unclipped")
    np.testing.assert_allclose(got, sparsity([3, 3, 3, 5], 0.7, 0.2, mode="unclipped"))


# ---- docs/spec.md section 8 table -------------------------------------------------------------------

# docs/spec.md section 8
SPEC8 = {r["mapping"]: r["learning rates for alpha 2 3 4 5, eta 0.1"] for r in table("learning-rates")}


@pytest.mark.parametrize("mapping", list(SPEC8))
def test_spec8_table(mapping):
    got = learning_rates([2, 3, 4, 5], 0.1, lr_min_ratio=0.5, lr_max_ratio=1.5, mapping=mapping)
    assert np.round(got, 4).tolist() == pytest.approx(SPEC8[mapping], abs=1e-12)


def test_learning_rates_keyed_by_name_in_input_order():
    got = learning_rates({"fc2": 5.0, "fc1": 2.0, "conv": 3.5}, 0.1)
    assert list(got) == ["fc2", "fc1", "conv"]
    assert got == pytest.approx({"fc2": 0.15, "fc1": 0.05, "conv": 0.1})


# ---- validation -----------------------------------------------------------------------------

@pytest.mark.parametrize("call, message", [
    (lambda: sparsity([2, 3], 1.0, 0.2), "target must be a number in \\[0, 1\\)"),
    (lambda: sparsity([2, 3], -0.1, 0.2), "target"),
    (lambda: sparsity([2, 3], 0.7, 1.0), "epsilon must be a number in \\[0, 1\\)"),
    (lambda: sparsity([2, float("nan")], 0.7, 0.2), "non-finite .* Drop those layers"),
    (lambda: sparsity({"a": 2.0, "b": float("nan")}, 0.7, 0.2), "\\['b'\\]"),
    (lambda: sparsity([2, 3], 0.7, 0.2, params=[1, 2, 3]), "params has 3 entries but alphas has 2"),
    (lambda: sparsity([2, 3], 0.7, 0.2, groups=[0]), "groups has 1 entries"),
    (lambda: sparsity({"a": 2.0}, 0.7, 0.2, params={"b": 3}), "no entry for 1 layer"),
    (lambda: sparsity([2, 3], 0.7, 0.2, params=[1, 0]), "positive"),
    (lambda: sparsity([2, 3], 0.7, 0.2, mode="clip"), "mode must be one of"),
    (lambda: sparsity([2, 3], 0.95, 0.2, max_sparsity=0.9), "above max_sparsity"),
    (lambda: sparsity([2, 3], 0.7, 0.2, groups="blocks"), "needs layer names"),
    (lambda: sparsity([], 0.7, 0.2), "empty"),
    (lambda: learning_rates([2, 3], 0.1, mapping="cosine"), "mapping must be one of"),
    (lambda: learning_rates([0.5, 3], 0.1, mapping="log2"), "every alpha > 1"),
    (lambda: learning_rates([2, 3], 0.0), "base_lr"),
    (lambda: learning_rates([2, 3], 0.1, lr_min_ratio=2, lr_max_ratio=1), "lr_min_ratio <= lr_max_ratio"),
])
def test_bad_input_says_what_to_do(call, message):
    with pytest.raises(ValueError, match=message):
        call()


# ---- param groups ---------------------------------------------------------------------------

class Net(nn.Module):
    def __init__(self, order=("fc1", "norm1", "fc2", "head")):
        super().__init__()
        torch.manual_seed(0)
        made = {"fc1": nn.Linear(64, 96), "norm1": nn.LayerNorm(96), "fc2": nn.Linear(96, 64),
                "head": nn.Linear(64, 16)}
        for name in order:
            self.add_module(name, made[name])
        self.scale = nn.Parameter(torch.ones(1))

    def forward(self, x):
        return self.head(self.fc2(self.norm1(self.fc1(x)))) * self.scale


def _analysis(model):
    return farms_viz.analyze(model, window=16, windows_per_dim=4, progress=False)


def test_param_groups_cover_every_parameter_once_and_norm_follows_its_layer():
    model = Net()
    analysis = _analysis(model)
    groups = param_groups(model, analysis, 0.1, weight_decay=1e-4)
    ids = [id(p) for g in groups for p in g["params"]]
    assert sorted(ids) == sorted(id(p) for p in model.parameters())
    by_name = {g["name"]: g for g in groups}
    assert list(by_name) == ["fc1", "norm1", "fc2", "head", allocate.OTHER_GROUP]
    assert by_name["norm1"]["follows"] == "fc1" and by_name["norm1"]["lr"] == by_name["fc1"]["lr"]
    assert by_name[allocate.OTHER_GROUP]["lr"] == 0.1 and by_name["fc1"]["weight_decay"] == 1e-4
    expected = learning_rates(analysis.alphas("farms"), 0.1)
    assert {k: by_name[k]["lr"] for k in expected} == pytest.approx(expected)
    torch.optim.SGD(groups, lr=0.1)  # a valid optimizer


def test_name_keyed_groups_survive_reordering_of_modules():
    a, b = Net(), Net(order=("head", "fc2", "fc1", "norm1"))
    b.load_state_dict(a.state_dict())
    rates_a = allocate.group_learning_rates(a, _analysis(a), 0.1)
    rates_b = allocate.group_learning_rates(b, _analysis(b), 0.1)
    for name in ("fc1", "fc2", "head"):
        assert rates_a[name] == pytest.approx(rates_b[name])
    # the optimizer's groups in another order still get their own rate, by name
    groups = param_groups(a, _analysis(a), 0.1)
    optimizer = torch.optim.SGD(list(reversed(groups)), lr=0.1)
    allocate.update_learning_rates(optimizer, rates_b | {"norm1": rates_a["norm1"]})
    for g in optimizer.param_groups:
        if g["name"] in rates_a:
            assert g["lr"] == pytest.approx(rates_a[g["name"]])


def test_rebalance_per_epoch_updates_rates_by_name():
    model = Net()
    optimizer = torch.optim.SGD(param_groups(model, _analysis(model), 0.1), lr=0.1)
    with torch.no_grad():
        model.fc2.weight.mul_(torch.linspace(0.1, 3.0, 96))  # change the spectrum
    rates = allocate.rebalance(optimizer, model, _analysis(model), 0.05, mapping="step")
    assert rates[allocate.OTHER_GROUP] == 0.05
    assert {g["name"]: g["lr"] for g in optimizer.param_groups} == rates


def test_update_learning_rates_rejects_unknown_names():
    optimizer = torch.optim.SGD([{"name": "fc", "params": [nn.Parameter(torch.zeros(1))]}], lr=0.1)
    with pytest.raises(ValueError, match="no optimizer group named \\['conv'\\]"):
        allocate.update_learning_rates(optimizer, {"conv": 0.1})


def test_attention_q_k_v_share_the_packed_weight_at_their_mean_rate():
    model = nn.Sequential(nn.Linear(64, 64), nn.MultiheadAttention(64, 4))
    analysis = _analysis(model)
    rates = learning_rates(analysis.alphas("farms"), 0.1)
    groups = {g["name"]: g for g in param_groups(model, analysis, 0.1)}
    assert groups["1"]["lr"] == pytest.approx(np.mean([rates["1.q"], rates["1.k"], rates["1.v"]]))
    assert any(p is model[1].in_proj_weight for p in groups["1"]["params"])
    assert groups["1.out_proj"]["lr"] == pytest.approx(rates["1.out_proj"])


def test_analysis_of_another_model_is_rejected():
    with pytest.raises(ValueError, match="not a module of this model"):
        param_groups(nn.Sequential(nn.Linear(64, 64)), _analysis(Net()), 0.1)


def test_sparsity_from_analysis_is_parameter_weighted():
    model = Net()
    analysis = _analysis(model)
    ratios = allocate.sparsity_from_analysis(analysis, 0.8, 0.3)
    counts = allocate.layer_params(analysis)
    assert counts == {"fc1": 96 * 64, "fc2": 64 * 96, "head": 16 * 64}
    mean = sum(ratios[k] * counts[k] for k in ratios) / sum(counts.values())
    assert mean == pytest.approx(0.8, abs=1e-12)
    frame = allocate.allocation_frame(analysis, 0.8, 0.3)
    assert frame.groupby("method")["layer"].apply(list).to_dict() == {"esd": list(counts), "farms": list(counts)}


def test_a_bare_layer_gets_its_own_group():
    layer = nn.Linear(32, 16)
    groups = param_groups(layer, farms_viz.analyze(layer, window=8, progress=False), 0.1)
    assert len(groups) == 1 and groups[0]["lr"] == 0.1 and len(groups[0]["params"]) == 2
