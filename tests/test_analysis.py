"""analyze(): layers, methods, metrics, caching, progress, and the model left untouched."""

import math
import re
import threading
import time

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import farms_viz
from farms_viz.engine.analysis import COLUMNS
from farms_viz.engine.cache import SPECTRA


class Conv1D(nn.Module):
    """A module shaped like transformers' GPT-2 Conv1D: weight stored (in, out)."""

    def __init__(self, nf, nx):
        super().__init__()
        self.nf = nf
        self.weight = nn.Parameter(torch.randn(nx, nf) / math.sqrt(nx))


class Zoo(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(300, 32)
        self.attn = nn.MultiheadAttention(32, 4)
        self.norm = nn.LayerNorm(32)
        self.fc = nn.Linear(32, 128)
        self.gpt2 = Conv1D(64, 128)
        self.conv = nn.Conv2d(16, 24, 3)
        self.head = nn.Linear(128, 4)


def test_layer_kinds_in_model_order_with_skips_listed():
    result = farms_viz.analyze(Zoo(), window=16, progress=False)
    assert result.layers == ["embed", "attn.q", "attn.k", "attn.v", "attn.out_proj", "fc", "gpt2", "conv"]
    df = result.to_pandas()
    kinds = df[df.method == "esd"].set_index("layer").kind.to_dict()
    assert kinds["attn.q"] == "attention_in_proj" and kinds["gpt2"] == "conv1d_hf"
    skipped = {s.name: s.reason for s in result.skipped}
    assert "too small" in skipped["head"]
    assert "1-D" in skipped["norm"]


def test_columns_are_documented_and_complete():
    df = farms_viz.analyze(nn.Linear(64, 32), window=16, progress=False).to_pandas()
    assert list(df.columns) == list(COLUMNS)
    for column in ["layer", "method", "kind", "rows", "cols", "aspect_ratio", "alpha", "xmin", "D",
                   "num_eigs", "num_windows", "window_rows", "window_cols", "coverage", "lambda_max",
                   "stable_rank", "log_norm", "log_spectral_norm", "alpha_weighted", "fit"]:
        assert column in df.columns


def test_hf_conv1d_is_transposed_to_match_linear():
    torch.manual_seed(3)
    linear = nn.Linear(48, 96)
    conv = Conv1D(96, 48)
    with torch.no_grad():
        conv.weight.copy_(linear.weight.t())
    a = farms_viz.analyze(nn.ModuleDict({"a": linear, "b": conv}), window=16, progress=False).to_pandas()
    a = a.set_index(["layer", "method"])
    assert (a.loc[("b", "farms"), ["rows", "cols"]] == a.loc[("a", "farms"), ["rows", "cols"]]).all()
    assert a.loc[("b", "farms"), "alpha"] == pytest.approx(a.loc[("a", "farms"), "alpha"], rel=1e-12)


def test_attention_q_k_v_are_the_packed_thirds():
    attn = nn.MultiheadAttention(32, 4)
    result = farms_viz.analyze(nn.ModuleDict({"attn": attn}), method="esd", progress=False)
    w = attn.in_proj_weight.detach().double()
    for i, part in enumerate("qkv"):
        expected = np.sort(torch.linalg.svdvals(w[i * 32:(i + 1) * 32]).numpy() ** 2)
        np.testing.assert_allclose(result.eigenvalues(f"attn.{part}", "esd"), expected, rtol=1e-9, atol=1e-12)


def test_conv_eigenvalues_are_pooled_slices_times_conv_norm():
    torch.manual_seed(1)
    conv = nn.Conv2d(12, 20, (2, 3))
    result = farms_viz.analyze(conv, method="esd", progress=False)
    w = conv.weight.detach().double()
    slices = [w[:, :, i, j] for i in range(2) for j in range(3)]
    expected = np.sort(np.concatenate([torch.linalg.svdvals(s).numpy() ** 2 for s in slices]) * 0.5)
    layer = result.layers[0]
    np.testing.assert_allclose(result.eigenvalues(layer, "esd"), expected, rtol=1e-9)
    assert result.to_pandas().iloc[0].num_eigs == 6 * 12


def test_metrics_follow_weightwatcher_names():
    torch.manual_seed(2)
    layer = nn.Linear(80, 40)
    row = farms_viz.analyze(layer, method="esd", progress=False).to_pandas().iloc[0]
    x = torch.linalg.svdvals(layer.weight.detach().double()).numpy() ** 2
    assert row.lambda_max == pytest.approx(x.max())
    assert row.log_norm == pytest.approx(np.log10((layer.weight.double() ** 2).sum().item()))
    assert row.stable_rank == pytest.approx(x.sum() / x.max())
    assert row.alpha_weighted == pytest.approx(row.alpha * np.log10(x.max()))
    assert row.aspect_ratio == 2.0 and row.num_eigs == 40


def test_state_dict_input_matches_module_input():
    torch.manual_seed(4)
    model = nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 256))
    a = farms_viz.analyze(model, window=32, progress=False).to_pandas()
    b = farms_viz.analyze(model.state_dict(), window=32, progress=False).to_pandas()
    pd.testing.assert_series_equal(a.alpha, b.alpha)


def test_include_and_exclude_globs():
    model = Zoo()
    result = farms_viz.analyze(model, window=16, include=["attn.*"], exclude=["*.v"], progress=False)
    assert result.layers == ["attn.q", "attn.k", "attn.out_proj"]
    reasons = {s.name: s.reason for s in result.skipped}
    assert "excluded by filter" in reasons["attn.v"] and "excluded by filter" in reasons["fc"]


def test_farms_pools_every_window():
    torch.manual_seed(5)
    layer = nn.Linear(384, 1536)  # stored 1536 x 384, like MiniLM's FFN
    result = farms_viz.analyze(layer, window=100, q=1.0, windows_per_dim=10, progress=False)
    spectrum = result.spectrum(result.layers[0], "farms")
    assert spectrum.window_eigenvalues.shape == (100, 100)
    assert result.eigenvalues(result.layers[0], "farms").size == 10_000
    row = result.to_pandas().set_index("method").loc["farms"]
    assert row.num_windows == 100 and row.window_rows == 100 and row.window_cols == 100
    # rows: 10 windows of 100 at stride 159 leave gaps; columns: stride 31 overlaps up to 379
    assert row.coverage == pytest.approx((1000 / 1536) * (379 / 384))


def test_window_covering_whole_layer_is_clamped_flagged_and_equals_esd():
    layer = nn.Linear(64, 64)
    with pytest.warns(UserWarning, match="covers the whole matrix"):
        result = farms_viz.analyze(layer, window=2000, progress=False)
    df = result.to_pandas().set_index("method")
    assert bool(df.loc["farms", "covers_whole_matrix"]) and bool(df.loc["farms", "window_clamped"])
    assert df.loc["farms", "alpha"] == pytest.approx(df.loc["esd", "alpha"], rel=1e-12)


def test_method_selects_rows():
    layer = nn.Linear(64, 64)
    assert set(farms_viz.analyze(layer, method="esd", progress=False).to_pandas().method) == {"esd"}
    assert set(farms_viz.analyze(layer, method="farms", window=16, progress=False).to_pandas().method) == {"farms"}


def test_new_farms_parameters_never_recompute_the_esd(monkeypatch):
    import farms_viz.engine.analysis as analysis_module

    calls = []
    real = analysis_module.esd_eigenvalues
    monkeypatch.setattr(analysis_module, "esd_eigenvalues", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(6)
    model = nn.Sequential(nn.Linear(64, 128), nn.Linear(128, 64))
    farms_viz.analyze(model, window=16, progress=False)
    first = len(calls)
    farms_viz.analyze(model, window=24, q=0.5, windows_per_dim=3, progress=False)
    assert first == 2 and len(calls) == 2


def test_same_parameters_return_cached_spectra_and_training_is_picked_up():
    torch.manual_seed(7)
    model = nn.Sequential(nn.Linear(64, 128), nn.Linear(128, 64))
    first = farms_viz.analyze(model, window=16, progress=False)
    hits = SPECTRA.hits
    again = farms_viz.analyze(model, window=16, progress=False)
    assert SPECTRA.hits > hits
    assert again.eigenvalues("0", "farms") is first.eigenvalues("0", "farms")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model(torch.randn(8, 64)).pow(2).sum().backward()
    optimizer.step()
    trained = farms_viz.analyze(model, window=16, progress=False)
    assert not np.array_equal(trained.eigenvalues("0", "farms"), first.eigenvalues("0", "farms"))
    np.testing.assert_allclose(
        trained.eigenvalues("0", "esd"),
        np.sort(torch.linalg.svdvals(model[0].weight.detach().double()).numpy() ** 2), rtol=1e-9)


def test_changes_through_data_attribute_are_picked_up():
    layer = nn.Linear(64, 64)
    before = farms_viz.analyze(layer, method="esd", progress=False).eigenvalues("(model)", "esd")
    layer.weight.data.mul_(2.0)  # .data bypasses the version counter
    after = farms_viz.analyze(layer, method="esd", progress=False).eigenvalues("(model)", "esd")
    np.testing.assert_allclose(after, 4 * before, rtol=1e-9)


def test_progress_callback_reports_every_layer():
    seen = []
    model = nn.Sequential(nn.Linear(64, 64), nn.Linear(64, 64), nn.Linear(64, 64))
    farms_viz.analyze(model, window=16, progress=lambda done, total, name: seen.append((done, total, name)))
    assert seen == [(1, 3, "0"), (2, 3, "1"), (3, 3, "2")]


def test_tqdm_progress_bar_writes_to_stderr(capsys):
    farms_viz.analyze(nn.Linear(64, 64), window=16, progress=True)
    assert "farms_viz" in capsys.readouterr().err


def test_model_parameters_bit_for_bit_unchanged():
    model = Zoo()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    versions = {k: p._version for k, p in model.named_parameters()}
    requires = {k: p.requires_grad for k, p in model.named_parameters()}
    for fit in ("median", "peak", "ks"):
        farms_viz.analyze(model, window=16, fit=fit, progress=False)
    farms_viz.analyze(model, window=16, device="cpu", stride=4, progress=False)
    after = model.state_dict()
    for k, v in before.items():
        assert torch.equal(v, after[k]) and v.dtype == after[k].dtype, k
    assert {k: p._version for k, p in model.named_parameters()} == versions
    assert {k: p.requires_grad for k, p in model.named_parameters()} == requires
    assert all(p.grad is None for p in model.parameters())


def test_half_precision_weights_are_analysed_in_float64():
    torch.manual_seed(8)
    layer = nn.Linear(64, 64).to(torch.bfloat16)
    result = farms_viz.analyze(layer, method="esd", progress=False)
    expected = np.sort(torch.linalg.svdvals(layer.weight.detach().double()).numpy() ** 2)
    np.testing.assert_allclose(result.eigenvalues("(model)", "esd"), expected, rtol=1e-9)


# --- the cache is keyed by the weights' content -------------------------------------------

def test_a_permutation_the_old_sample_missed_is_not_served_stale():
    """Values on a 1/1024 grid sum exactly in any order, so the sum cannot tell; the swapped
    entries sit between the strided sample's positions; numpy writes bump no version counter."""
    g = torch.Generator().manual_seed(9)
    layer = nn.Linear(512, 256)
    with torch.no_grad():
        layer.weight.copy_(torch.randint(-64, 65, (256, 512), generator=g) / 1024)
    first = farms_viz.analyze(layer, window=64, progress=False)
    flat = layer.weight.detach().numpy().reshape(-1)
    flat[[1, 600]] = flat[[600, 1]]  # 1 and 600: not multiples of the sample's step (32)
    assert flat[1] != flat[600]
    served = farms_viz.analyze(layer, window=64, progress=False)
    SPECTRA.clear()
    fresh = farms_viz.analyze(layer, window=64, progress=False)
    for method in ("esd", "farms"):
        assert not np.array_equal(fresh.eigenvalues("(model)", method), first.eigenvalues("(model)", method))
        np.testing.assert_array_equal(served.eigenvalues("(model)", method), fresh.eigenvalues("(model)", method))


def test_a_checkpoint_read_again_from_disk_hits_the_cache(tmp_path, monkeypatch):
    """Each run reads the tensors afresh (new memory): equal content is still a cache hit."""
    from safetensors.torch import save_file

    import farms_viz.engine.analysis as analysis_module
    from farms_viz.checkpoints import open_checkpoint

    calls = []
    real = analysis_module.esd_eigenvalues
    monkeypatch.setattr(analysis_module, "esd_eigenvalues", lambda *a: calls.append(1) or real(*a))
    torch.manual_seed(10)
    save_file({"a.weight": torch.randn(96, 64), "b.weight": torch.randn(64, 80)}, tmp_path / "m.safetensors")
    farms_viz.analyze(open_checkpoint(tmp_path / "m.safetensors"), window=16, progress=False)
    farms_viz.analyze(open_checkpoint(tmp_path / "m.safetensors"), window=24, progress=False)
    assert len(calls) == 2


# --- windows: bounded, budgeted, refused when too many ---------------------------------------

@pytest.mark.parametrize("shape, kwargs, count, windows", [
    ((11008, 4096), {"window": 2, "windows_per_dim": 10**6}, "90,147,330", "45,073,665"),
    ((4096, 4096), {"window": 100, "stride": 1}, "1,597,600,900", "15,976,009"),
])
def test_a_setting_pooling_too_many_eigenvalues_is_refused_fast(shape, kwargs, count, windows):
    state = {"mlp.weight": torch.zeros(shape)}
    start = time.perf_counter()
    with pytest.raises(ValueError, match=rf"'mlp' .*{count} eigenvalues .*{windows} windows") as info:
        farms_viz.analyze(state, method="farms", progress=False, **kwargs)
    assert time.perf_counter() - start < 10
    message = str(info.value)
    assert "max_eigenvalues" in message and "windows_per_dim <=" in message
    stride = int(re.search(r"stride >= (\d+)", message).group(1))
    allowed = farms_viz.engine.windows.MAX_POOLED_EIGENVALUES
    grid = farms_viz.engine.windows.window_grid(*shape, kwargs["window"], 1.0, 10, stride)
    fewer = farms_viz.engine.windows.window_grid(*shape, kwargs["window"], 1.0, 10, stride - 1)
    assert grid.num_windows * grid.eigenvalues_per_window <= allowed < fewer.num_windows * fewer.eigenvalues_per_window


def test_the_eigenvalue_limit_is_configurable_and_its_suggestion_fits(monkeypatch):
    torch.manual_seed(11)
    state = {"w.weight": torch.randn(256, 256)}
    setting = {"method": "farms", "window": 8, "stride": 1, "progress": False}  # 249 x 249 windows of 8
    assert farms_viz.analyze(state, max_eigenvalues=496_008, **setting).eigenvalues("w").size == 496_008
    with pytest.raises(ValueError, match=r"496,008 eigenvalues .*more than max_eigenvalues = 100,000") as info:
        farms_viz.analyze(state, max_eigenvalues=100_000, **setting)
    stride = int(re.search(r"stride >= (\d+)", str(info.value)).group(1))
    assert farms_viz.analyze(state, max_eigenvalues=100_000, **{**setting, "stride": stride}).layers == ["w"]
    monkeypatch.setattr(farms_viz.engine.windows, "MAX_POOLED_EIGENVALUES", 100_000)  # the module-wide default
    with pytest.raises(ValueError, match="496,008 eigenvalues"):
        farms_viz.analyze(state, **setting)
    with pytest.raises(ValueError, match="max_eigenvalues must be an integer >= 1"):
        farms_viz.analyze(state, max_eigenvalues=0, **setting)


def test_windows_are_computed_in_bounded_batches(monkeypatch):
    """One row of windows larger than the batch budget is split, with the same eigenvalues."""
    from farms_viz.engine import spectra

    torch.manual_seed(12)
    slices = torch.randn(1, 64, 512)
    grid = farms_viz.engine.windows.window_grid(64, 512, 16, 1.0, 10, stride=2)  # 25 x 249 windows of 16 x 16
    whole = spectra.farms_window_eigenvalues(slices, grid)
    batches = []
    real = spectra.gram_eigenvalues
    monkeypatch.setattr(spectra, "gram_eigenvalues", lambda batch: batches.append(batch.shape[0]) or real(batch))
    per_window = 16 * 16 * 8
    monkeypatch.setattr(spectra, "CHUNK_BYTES", 40 * per_window)  # fewer windows than one row holds (249)
    np.testing.assert_array_equal(spectra.farms_window_eigenvalues(slices, grid), whole)
    assert max(batches) <= 40 and sum(batches) == grid.num_windows


def test_the_in_flight_budget_counts_pooled_eigenvalues(monkeypatch):
    """Two small weights with huge window pools must not be in flight together."""
    import farms_viz.engine.analysis as analysis_module
    import farms_viz.engine.cpu_threads as lapack

    monkeypatch.setattr(lapack, "workers", lambda: 2)
    monkeypatch.setattr(analysis_module, "workers", lambda: 2)
    # each weight is 128 KiB as float64; its 121 x 121 windows of 8 pool 117,128 eigenvalues (~1.8 MiB twice over)
    monkeypatch.setattr(analysis_module, "IN_FLIGHT_BYTES", 2**20)
    running, most = [0], [0]
    lock = threading.Lock()
    real = analysis_module.analyze_matrix

    def watched(*args, **kwargs):
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(0.3)
        try:
            return real(*args, **kwargs)
        finally:
            with lock:
                running[0] -= 1

    monkeypatch.setattr(analysis_module, "analyze_matrix", watched)
    torch.manual_seed(13)
    state = {f"l{i}.weight": torch.randn(128, 128) for i in range(3)}
    result = farms_viz.analyze(state, method="farms", window=8, stride=1, progress=False)
    assert result.layers == ["l0", "l1", "l2"] and most[0] == 1
    # the same weights with few windows share the budget
    running[0] = most[0] = 0
    farms_viz.analyze(state, method="farms", window=8, windows_per_dim=2, progress=False)
    assert most[0] == 2
