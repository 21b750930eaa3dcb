"""Bad input gets a clear error that says what to do; bad layers are skipped with a reason."""

from concurrent.futures import ThreadPoolExecutor

import numpy as np
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


# --- numbers, devices, filters and executors: accepted where meant, refused with the parameter named

@pytest.mark.parametrize("name, value", [
    ("window", np.int64(16)),
    ("window", np.int32(16)),
    ("windows_per_dim", np.int64(3)),
    ("stride", np.int64(8)),
    ("q", np.float32(0.5)),
    ("q", np.float64(1.0)),
    ("conv_norm", np.float64(0.25)),
])
def test_numpy_numbers_are_accepted_like_python_ones(model, name, value):
    base = {"window": 16, "progress": False}
    result = farms_viz.analyze(model, **{**base, name: value})
    expected = farms_viz.analyze(model, **{**base, name: value.item()})
    assert type(getattr(result.params, name)) is type(value.item())
    assert result.alphas("farms") == expected.alphas("farms")


@pytest.mark.parametrize("kwargs, parameter", [
    ({"conv_norm": float("inf")}, "conv_norm"),
    ({"conv_norm": np.float64("inf")}, "conv_norm"),
    ({"conv_norm": "0.5"}, "conv_norm"),
    ({"q": np.float64("inf")}, "q"),
    ({"window": np.float64(16.5)}, "window"),
    ({"window": np.bool_(True)}, "window"),
])
def test_non_finite_or_mistyped_numbers_are_refused(model, kwargs, parameter):
    with pytest.raises(ValueError, match=rf"^{parameter} must be"):
        farms_viz.analyze(model, progress=False, **kwargs)


@pytest.mark.parametrize("device, message", [
    ("nonsense", r"device 'nonsense' is not a device .*'cpu'"),
    ("cpu:zero", r"device 'cpu:zero' is not a device"),
    ("meta", r"device 'meta' .*no values.*'cpu'"),
    (torch.device("meta"), r"device 'meta' .*no values"),
    pytest.param("cuda", r"device 'cuda' .*CUDA is not available.*device='cpu'", marks=pytest.mark.skipif(
        torch.cuda.is_available(), reason="CUDA is available here")),
    pytest.param("cuda:1000", r"device 'cuda:1000'", marks=pytest.mark.skipif(
        torch.cuda.device_count() > 1000, reason="a machine with 1000 GPUs")),
])
def test_a_bad_device_is_refused_naming_the_parameter(model, device, message):
    with pytest.raises(ValueError, match=message):
        farms_viz.analyze(model, window=16, device=device, progress=False)


def test_a_device_of_the_wrong_type_is_refused(model):
    with pytest.raises(TypeError, match=r"device must be a string .* or a torch.device; got 3.5 \(float\)"):
        farms_viz.analyze(model, window=16, device=3.5, progress=False)


@pytest.mark.parametrize("kwargs, message", [
    ({"include": 5}, r"include must be a glob pattern \(str\) or a list of them; got 5 \(int\)"),
    ({"include": [None]}, r"include must hold glob patterns \(str\); item 0 is None \(NoneType\)"),
    ({"exclude": ["0", 2]}, r"exclude must hold glob patterns \(str\); item 1 is 2 \(int\)"),
    ({"include": b"0"}, r"include must be a glob pattern \(str\) or a list of them; got b'0' \(bytes\)"),
])
def test_filters_must_be_glob_patterns(model, kwargs, message):
    with pytest.raises(TypeError, match=message):
        farms_viz.analyze(model, window=16, progress=False, **kwargs)


def test_filters_accept_a_tuple_and_a_single_pattern(model):
    assert farms_viz.analyze(model, window=16, progress=False, include=("0",)).layers == ["0"]
    assert farms_viz.analyze(model, window=16, progress=False, exclude="0").layers == ["2"]


@pytest.mark.parametrize("executor", [object(), [1, 2], "dask"])
def test_an_executor_without_submit_is_refused(model, executor):
    with pytest.raises(TypeError, match=r"executor must have a submit\(fn, \*args\) method .*Client; got "):
        farms_viz.analyze(model, window=16, progress=False, executor=executor)


def test_non_string_keys_in_a_state_dict_are_refused_naming_the_key():
    with pytest.raises(TypeError, match=r"state dict keys must be layer names \(str\); got 0 \(int\)"):
        farms_viz.analyze({0: torch.randn(32, 32), "a.weight": torch.randn(32, 32)}, progress=False)


# --- a layer the eigensolver cannot handle ----------------------------------------------------

@pytest.mark.parametrize("where", ["local", "executor"])
def test_a_layer_whose_eigensolver_fails_is_skipped_with_its_reason_and_the_rest_kept(where):
    g = torch.Generator().manual_seed(0)
    state = {"huge.weight": torch.randn(64, 48, generator=g, dtype=torch.float64) * 1e154,  # Gram overflows
             "fine.weight": torch.randn(64, 48, generator=g, dtype=torch.float64)}
    with ThreadPoolExecutor(2) as pool:
        result = farms_viz.analyze(state, window=16, progress=False,
                                   executor=pool if where == "executor" else None)
    assert result.layers == ["fine"]
    reason = {s.name: s.reason for s in result.skipped}["huge"]
    assert reason.startswith("eigenvalues could not be computed") and "rescale" in reason
    alone = farms_viz.analyze({"fine.weight": state["fine.weight"]}, window=16, progress=False)
    assert result.alphas("farms") == alone.alphas("farms") and result.alphas("esd") == alone.alphas("esd")
