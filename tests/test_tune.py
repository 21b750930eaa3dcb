"""tune: one row per setting, spectra computed once per window setting, the model untouched, the best row, errors."""

import threading

import numpy as np
import pytest
import torch
from torch import nn

import farms_viz
from farms_viz.charts.tune import tune_chart_data, tune_metric_vs_epsilon, tune_metric_vs_window
from farms_viz.decisions.prunable import prunable_layers
from farms_viz.decisions.tune import TUNE_COLUMNS, best, sparsities_for
from farms_viz.engine import analysis as analysis_module
from farms_viz.engine.cache import SPECTRA
from farms_viz.sources import language_model as lm


def _mlp(seed=0):
    torch.manual_seed(seed)
    return nn.Sequential(nn.Linear(48, 96), nn.ReLU(), nn.Linear(96, 64), nn.ReLU(), nn.Linear(64, 80), nn.ReLU(),
                         nn.Linear(80, 10))


def _output_error(model, seed=1):
    """Mean squared distance of a pruned copy's outputs to the dense model's: lower is better."""
    x = torch.randn(128, 48, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        dense = model(x)

    def evaluate(pruned):
        with torch.no_grad():
            return float((pruned(x) - dense).square().mean())

    return evaluate, x


def _snapshot(model):
    return {name: (p.detach().clone(), None if p.grad is None else p.grad.clone(), p.requires_grad)
            for name, p in model.named_parameters()}, {n: b.clone() for n, b in model.named_buffers()}


def _assert_unchanged(before, model):
    parameters, buffers = before
    after = dict(model.named_parameters())
    assert parameters.keys() == after.keys()
    for name, (value, grad, requires_grad) in parameters.items():
        p = after[name]
        assert torch.equal(p.detach(), value), name
        assert (p.grad is None and grad is None) or torch.equal(p.grad, grad), name
        assert p.requires_grad == requires_grad, name
    assert all(torch.equal(b, buffers[n]) for n, b in model.named_buffers())


@pytest.fixture
def eigenvalue_calls(monkeypatch):
    """Counts of the ESD and FARMS eigensolver calls (one per layer each), on an empty spectrum cache."""
    SPECTRA.clear()
    calls = {"esd": 0, "farms": 0}
    esd, farms = analysis_module.esd_eigenvalues, analysis_module.farms_window_eigenvalues

    def counting_esd(*args, **kwargs):
        calls["esd"] += 1
        return esd(*args, **kwargs)

    def counting_farms(*args, **kwargs):
        calls["farms"] += 1
        return farms(*args, **kwargs)

    monkeypatch.setattr(analysis_module, "esd_eigenvalues", counting_esd)
    monkeypatch.setattr(analysis_module, "farms_window_eigenvalues", counting_farms)
    yield calls
    SPECTRA.clear()


def test_one_row_per_setting_in_the_order_they_ran():
    model = _mlp()
    evaluate, _ = _output_error(model)
    frame = farms_viz.tune(model, evaluate, pruner="magnitude", target=[0.5, 0.7], windows=[16, 32],
                           windows_per_dim=[3, 5], epsilons=[0.1, 0.3], progress=False)
    # uniform: one per target; ESD: targets x epsilons; FARMS: windows x grids x targets x epsilons
    assert len(frame) == 2 + 2 * 2 + 2 * 2 * 2 * 2 == frame.attrs["planned"]
    assert list(frame.columns) == TUNE_COLUMNS
    assert frame["method"].tolist() == ["uniform"] * 2 + ["esd"] * 4 + ["farms"] * 16
    farms = frame[frame["method"] == "farms"]
    assert sorted(set(zip(farms["window"], farms["windows_per_dim"], farms["epsilon"], farms["target"]))) == sorted(
        (w, k, e, t) for w in (16, 32) for k in (3, 5) for e in (0.1, 0.3) for t in (0.5, 0.7))
    assert frame.loc[frame["method"] == "uniform", ["window", "epsilon"]].isna().all().all()
    # every row reached its target over the pruned layers (magnitude: floor(s * numel) per layer)
    assert np.allclose(frame["sparsity"], frame["target"], atol=1e-3)
    assert frame.attrs["layers"] == ["0", "2", "4"]  # the 10-way head (6) is left dense
    assert not frame.attrs["stopped"] and frame["error"].isna().all()


def test_strides_replace_the_grid_and_are_recorded():
    model = _mlp()
    evaluate, _ = _output_error(model)
    frame = farms_viz.tune(model, evaluate, pruner="magnitude", windows=[16], strides=[8, 16], epsilons=[0.2],
                           methods=["farms"], progress=False)
    assert frame["stride"].tolist() == [8, 16] and frame["windows_per_dim"].isna().all()


def test_spectra_computed_once_per_window_setting_never_per_epsilon_or_target(eigenvalue_calls):
    model = _mlp()
    evaluate, _ = _output_error(model)
    kwargs = dict(pruner="magnitude", windows=[8, 16], windows_per_dim=[4], progress=False)
    farms_viz.tune(model, evaluate, target=[0.5, 0.7], epsilons=[0.1, 0.2, 0.3], **kwargs)
    layers = 3  # the pruned layers only are analysed
    assert eigenvalue_calls == {"esd": layers, "farms": 2 * layers}
    # more epsilons and targets on the same weights: every spectrum comes from the cache
    farms_viz.tune(model, evaluate, target=[0.6], epsilons=[0.05, 0.25], **kwargs)
    assert eigenvalue_calls == {"esd": layers, "farms": 2 * layers}


def test_identical_sparsities_are_pruned_and_evaluated_once():
    # windows of 128 and 256 are both clamped to every (at most 96 x 80) layer: the same windows, the same ratios
    model = _mlp()
    evaluate, _ = _output_error(model)
    calls = []
    frame = farms_viz.tune(model, lambda m: calls.append(1) or evaluate(m), pruner="magnitude", windows=[128, 256],
                           epsilons=[0.1, 0.2], fit="median", progress=False)
    assert len(frame) == 1 + 2 + 2 * 2 and len(calls) == 1 + 2 + 2
    farms = frame[frame["method"] == "farms"]
    assert (farms["clamped_layers"] == 3).all()
    assert farms[farms["window"] == 128]["metric"].tolist() == farms[farms["window"] == 256]["metric"].tolist()


@pytest.mark.parametrize("pruner", ["wanda", "sparsegpt"])
def test_the_model_and_its_gradients_are_unchanged_bit_for_bit(pruner):
    config = lm.LanguageModelConfig.tiny()
    torch.manual_seed(0)
    model = lm.CharacterLanguageModel(config, vocab_size=63)
    tokens = torch.randint(0, 63, (4, 33), generator=torch.Generator().manual_seed(0))
    model.train()
    logits = model(tokens[:, :-1])
    nn.functional.cross_entropy(logits.reshape(-1, 63), tokens[:, 1:].reshape(-1)).backward()
    before = _snapshot(model)
    seen = []

    def evaluate(pruned):
        seen.append(pruned)
        return lm.perplexity(pruned, tokens.reshape(-1), seq_len=32)

    frame = farms_viz.tune(model, evaluate, calibration=[tokens[:2, :32], tokens[2:, :32]], pruner=pruner,
                           target=0.6, windows=[16, 64], windows_per_dim=4, epsilons=[0.2], progress=False)
    _assert_unchanged(before, model)
    assert model.training and all(m.training for m in model.modules())
    assert all(p is not model for p in seen) and len({id(p) for p in seen}) == 1  # one working copy
    # the default layers: the blocks' linear maps; the embeddings and the head stay dense
    assert frame.attrs["layers"] == [f"blocks.{b}.{part}" for b in range(2) for part in
                                     ("attention.q", "attention.k", "attention.v", "attention.out", "mlp.up",
                                      "mlp.down")]
    # within one column per row of the target (Wanda prunes floor(s * in) per row)
    assert np.all(np.abs(frame["sparsity"] - 0.6) < 1 / 64)
    dense = lm.perplexity(model, tokens.reshape(-1), seq_len=32)
    assert (frame["metric"] != dense).all()


def test_the_working_copy_is_emptied_while_spectra_are_computed_and_reset_before_each_pruning(monkeypatch):
    """The copy and the analysis' working set are never in memory at once; each pruning starts from the model."""
    from farms_viz.decisions import tune as tune_module

    model = _mlp()
    evaluate, _ = _output_error(model)
    copies, copy_sizes_during_analysis = [], []
    analyze = tune_module.analyze

    def watched_analyze(*args, **kwargs):
        copy_sizes_during_analysis.append(sum(t.numel() for c in copies[:1] for t in c.state_dict().values()))
        return analyze(*args, **kwargs)

    def checked_evaluate(pruned):
        copies.append(pruned)
        for (name, value), dense in zip(pruned.state_dict().items(), model.state_dict().values()):
            if name.endswith(".weight") and name[0] in "024":  # pruned: zeros where the model has none
                assert (value == 0).sum() > (dense == 0).sum() and torch.equal(value[value != 0], dense[value != 0])
            else:
                assert torch.equal(value, dense), name
        return evaluate(pruned)

    monkeypatch.setattr(tune_module, "analyze", watched_analyze)
    frame = farms_viz.tune(model, checked_evaluate, pruner="magnitude", target=0.5, windows=[8, 16],
                           epsilons=[0.1, 0.3], progress=False)
    assert len(frame) == len(copies) == 1 + 2 + 2 * 2 and len({id(c) for c in copies}) == 1
    assert copy_sizes_during_analysis == [0, 0, 0]  # ESD and two FARMS settings, all after the uniform row
    assert np.allclose(frame["sparsity"], 0.5, atol=1e-3)


def test_the_best_row_is_the_lowest_metric_or_with_higher_is_better_the_highest():
    model = _mlp()
    evaluate, _ = _output_error(model)
    kwargs = dict(pruner="magnitude", target=[0.6, 0.8], windows=[8, 16, 32], epsilons=[0.1, 0.3], progress=False)
    lower = farms_viz.tune(model, evaluate, **kwargs)
    higher = farms_viz.tune(model, lambda m: -evaluate(m), higher_is_better=True, **kwargs)
    for target in (0.6, 0.8):
        rows = lower[lower["target"] == target]
        assert rows["best"].sum() == 1 and rows["metric"].idxmin() == rows.index[rows["best"]][0]
        assert best(lower, target=target).name == rows["metric"].idxmin()
        assert best(higher, target=target).name == best(lower, target=target).name  # the same setting
        assert higher.loc[higher["target"] == target, "metric"].idxmax() == best(higher, target=target).name
        farms = rows[rows["method"] == "farms"]
        assert best(lower, "farms", target=target).name == farms["metric"].idxmin()
    with pytest.raises(ValueError, match="several targets"):
        best(lower)


class Blocks(nn.Module):
    """Three residual MLP blocks (``blocks.N``): block-wise grouping applies."""

    def __init__(self):
        super().__init__()
        self.blocks = nn.ModuleList(nn.Sequential(nn.Linear(48, 96), nn.ReLU(), nn.Linear(96, 48)) for _ in range(3))

    def forward(self, x):
        for block in self.blocks:
            x = x + block(x)
        return x


@pytest.mark.parametrize("groups", [None, "blocks"])
def test_the_sparsities_of_a_row_reproduce_its_metric(groups):
    torch.manual_seed(0)
    model = Blocks()
    x = torch.randn(64, 48, generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        dense = model(x)

    def evaluate(pruned):
        with torch.no_grad():
            return float((pruned(x) - dense).square().mean())

    frame = farms_viz.tune(model, evaluate, pruner="magnitude", windows=[16, 32], windows_per_dim=3,
                           epsilons=[0.2, 0.3], groups=groups, progress=False)
    for _, row in frame.iterrows():
        ratios = sparsities_for(model, row, frame.attrs["layers"])
        pruned, _ = farms_viz.prune.magnitude(model, ratios)
        assert evaluate(pruned) == row["metric"] > 0
        if groups == "blocks" and row["method"] != "uniform":  # one ratio per block
            assert len({round(v, 12) for v in ratios.values()}) <= 3


def test_stop_between_settings_returns_the_rows_done_and_progress_counts_them():
    model = _mlp()
    evaluate, _ = _output_error(model)
    stop = threading.Event()
    reports = []

    def progress(done, total, label):
        reports.append((done, total, label))
        if done == 3:
            stop.set()

    streamed = []
    frame = farms_viz.tune(model, evaluate, pruner="magnitude", windows=[8, 16], epsilons=[0.1, 0.2],
                           progress=progress, should_stop=stop.is_set, on_row=streamed.append)
    assert len(frame) == 3 and frame.attrs["stopped"] and frame.attrs["planned"] == 1 + 2 + 2 * 2
    assert [r["metric"] for r in streamed] == frame["metric"].tolist()
    assert [r[:2] for r in reports] == [(1, 7), (2, 7), (3, 7)]
    assert reports[0][2] == "uniform target=0.7" and reports[1][2] == "esd target=0.7 eps=0.1"


def test_prunable_layers_leave_out_embeddings_and_the_output_head():
    names, excluded = prunable_layers(lm.CharacterLanguageModel(lm.LanguageModelConfig.tiny(), vocab_size=63))
    assert set(excluded) == {"token_embedding", "position_embedding", "head"}
    assert "get_output_embeddings" not in excluded["head"] and len(names) == 12

    class WithHead(nn.Module):  # a Hugging Face style model names its own head
        def __init__(self):
            super().__init__()
            self.layers = nn.ModuleList([nn.Linear(16, 16), nn.Linear(16, 16)])
            self.lm_head = nn.Linear(16, 40)
            self.classifier = nn.Linear(16, 12)  # last in model order, but not the head

        def get_output_embeddings(self):
            return self.lm_head

    names, excluded = prunable_layers(WithHead())
    assert names == ["layers.0", "layers.1", "classifier"] and list(excluded) == ["lm_head"]
    assert prunable_layers(nn.Linear(32, 16))[0] == ["(model)"]  # a single layer is not a head


@pytest.mark.parametrize(("kwargs", "error", "message"), [
    (dict(evaluate="ppl"), TypeError, "evaluate must be a callable"),
    (dict(pruner="wanda"), ValueError, "needs calibration inputs"),
    (dict(pruner="obs"), ValueError, "pruner must be one of"),
    (dict(windows_per_dim=[5], strides=[8]), ValueError, "not both"),
    (dict(epsilons=[0.2, 1.5]), ValueError, "epsilons must be a number in"),
    (dict(epsilons=[]), ValueError, "epsilons is empty"),
    (dict(target=-0.1), ValueError, "target must be a number in"),
    (dict(windows=[1]), ValueError, "window"),
    (dict(windows=[]), ValueError, "windows is empty"),
    (dict(methods=["farms", "alpha"]), ValueError, "unknown methods"),
    (dict(fit="mean"), ValueError, "fit must be one of"),
    (dict(layers=["0", "9"]), ValueError, "layers not analysable"),
    (dict(layers="0"), ValueError, "sequence of layer names"),
    (dict(higher_is_better="yes"), TypeError, "higher_is_better"),
    (dict(should_stop=True), TypeError, "should_stop"),
    (dict(on_row=[]), TypeError, "on_row"),
    (dict(pruner_options={"damp": 0.1}), ValueError, "takes no options"),
    (dict(evaluate=lambda m: "fine"), TypeError, "evaluate must return one number"),
])
def test_bad_input_gets_a_clear_error_and_leaves_the_model_alone(kwargs, error, message):
    model = _mlp()
    before = _snapshot(model)
    evaluate, _ = _output_error(model)
    arguments = dict(evaluate=evaluate, pruner="magnitude", windows=[16], epsilons=[0.2], progress=False)
    arguments.update(kwargs)
    with pytest.raises(error, match=message):
        farms_viz.tune(model, **arguments)
    _assert_unchanged(before, model)


def test_activation_pruners_refuse_an_embedding_before_any_work():
    model = lm.CharacterLanguageModel(lm.LanguageModelConfig.tiny(), vocab_size=63)
    calls = []
    with pytest.raises(ValueError, match="token_embedding.*cannot be pruned with calibration data"):
        farms_viz.tune(model, lambda m: calls.append(1) or 0.0, calibration=[torch.zeros(1, 8, dtype=torch.long)],
                       layers=["token_embedding", "blocks.0.mlp.up"], progress=False)
    assert calls == []
    with pytest.raises(TypeError, match="torch.nn.Module"):
        farms_viz.tune({"w": torch.zeros(4, 4)}, lambda m: 0.0, pruner="magnitude")


def test_charts_mark_the_best_setting_of_each_target():
    model = _mlp()
    evaluate, _ = _output_error(model)
    frame = farms_viz.tune(model, evaluate, pruner="magnitude", target=[0.6, 0.8], windows=[8, 16, 32],
                           epsilons=[0.1, 0.3], progress=False)
    data = tune_chart_data(frame)
    assert data.loc[data["best"]].index.tolist() == frame.index[frame["best"]].tolist()
    for chart in (tune_metric_vs_window(frame, metric="output error"), tune_metric_vs_epsilon(frame)):
        spec = chart.to_dict()
        assert spec["facet"]["column"]["field"] == "target"  # one panel per target
        assert len(spec["title"]["subtitle"]) == 2
    with pytest.raises(ValueError, match="farms_viz.tune returns"):
        tune_metric_vs_window(frame.drop(columns="epsilon"))
