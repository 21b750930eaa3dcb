"""Bad input gets a clear error that says what to do; bad layers are skipped with a reason."""

import pytest
import torch
from torch import nn

import farms_viz


@pytest.fixture
def model():
    torch.manual_seed(0)
    return nn.Sequential(nn.Linear(64, 64), nn.ReLU(), nn.Linear(64, 32))


@pytest.mark.parametrize("kwargs, parameter", [
    ({"window": 1}, "window"),
    ({"window": 0}, "window"),
    ({"window": 2.5}, "window"),
    ({"q": 0}, "q"),
    ({"q": -1.0}, "q"),
    ({"q": float("nan")}, "q"),
    ({"windows_per_dim": 0}, "windows_per_dim"),
    ({"stride": 0}, "stride"),
    ({"fit": "mle"}, "fit"),
    ({"method": "svd"}, "method"),
    ({"conv_norm": 0}, "conv_norm"),
])
def test_invalid_parameters_name_the_parameter(model, kwargs, parameter):
    with pytest.raises(ValueError, match=rf"^{parameter} must be"):
        farms_viz.analyze(model, progress=False, **kwargs)


def test_unknown_fit_lists_allowed_values(model):
    with pytest.raises(ValueError, match="'median', 'peak', 'ks'"):
        farms_viz.analyze(model, fit="hill", progress=False)


def test_unknown_method_lists_allowed_values(model):
    with pytest.raises(ValueError, match="'esd', 'farms', 'both'"):
        farms_viz.analyze(model, method="all", progress=False)


def test_not_a_model():
    with pytest.raises(TypeError, match="nn.Module or a mapping"):
        farms_viz.analyze([1, 2, 3], progress=False)


def test_nothing_to_analyse_lists_what_was_skipped():
    tiny = nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4))
    with pytest.raises(farms_viz.NothingToAnalyzeError) as info:
        farms_viz.analyze(tiny, progress=False)
    message = str(info.value)
    assert "0 [4, 4]: too small" in message and "1 [4]: 1-D weight" in message


def test_filter_that_matches_nothing_is_a_clear_error(model):
    with pytest.raises(farms_viz.NothingToAnalyzeError, match="excluded by filter"):
        farms_viz.analyze(model, include=["decoder.*"], progress=False)


@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_layer_is_skipped_and_the_rest_analysed(model, bad):
    with torch.no_grad():
        model[0].weight[1, 2] = bad
    result = farms_viz.analyze(model, progress=False, window=16)
    assert result.layers == ["2"]
    assert any(s.name == "0" and "non-finite" in s.reason for s in result.skipped)


def test_meta_tensors_are_skipped_with_reason():
    with torch.device("meta"):
        meta = nn.Linear(64, 64)
    model = nn.ModuleDict({"meta": meta, "real": nn.Linear(64, 64)})
    result = farms_viz.analyze(model, window=16, progress=False)
    assert result.layers == ["real"]
    assert "meta tensor" in {s.name: s.reason for s in result.skipped}["meta"]


def test_sparse_and_integer_tensors_in_a_state_dict_are_skipped():
    state = {
        "sparse.weight": torch.eye(32).to_sparse(),
        "int8.weight": torch.ones(32, 32, dtype=torch.int8),
        "dense.weight": torch.randn(32, 32),
    }
    result = farms_viz.analyze(state, window=16, progress=False)
    reasons = {s.name: s.reason for s in result.skipped}
    assert result.layers == ["dense"]
    assert "sparse" in reasons["sparse"] and "to_dense" in reasons["sparse"]
    assert "int8" in reasons["int8"]


def test_quantized_weights_are_skipped_with_reason():
    q = torch.quantize_per_tensor(torch.randn(32, 32), 0.1, 0, torch.qint8)
    result = farms_viz.analyze({"q.weight": q, "f.weight": torch.randn(32, 32)}, window=16, progress=False)
    assert "quantized" in {s.name: s.reason for s in result.skipped}["q"]


def test_unknown_layer_lookup_says_what_exists(model):
    result = farms_viz.analyze(model, window=16, progress=False)
    with pytest.raises(KeyError, match="analysed layers: 0, 2"):
        result.eigenvalues("decoder", "farms")
