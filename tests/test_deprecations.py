"""Renamed public names keep working, with a DeprecationWarning that names the new one."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch
from torch import nn

import farms_viz
from farms_viz import allocate


@pytest.fixture(scope="module")
def analysis():
    torch.manual_seed(0)
    return farms_viz.analyze(nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 64)), window=16, progress=False)


def test_method_and_grouping_are_now_alphas_from_and_groups(analysis):
    new = allocate.sparsity_from_analysis(analysis, 0.5, 0.2, alphas_from="esd", groups=None)
    with pytest.warns(DeprecationWarning, match="use alphas_from="):
        old = allocate.sparsity_from_analysis(analysis, 0.5, 0.2, method="esd")
    assert old == new
    with pytest.warns(DeprecationWarning, match="use groups="):
        allocate.sparsity_from_analysis(analysis, 0.5, 0.2, grouping=False)
    with pytest.raises(TypeError, match="use alphas_from= only"):
        allocate.sparsity_from_analysis(analysis, 0.5, 0.2, method="farms", alphas_from="esd")
    with pytest.warns(DeprecationWarning, match="use alphas_from="):
        frame = allocate.allocation_frame(analysis, 0.5, 0.2, methods=("farms",))
    assert set(frame["method"]) == {"farms"}


def test_param_groups_method_is_now_alphas_from(analysis):
    model = nn.Sequential(nn.Linear(64, 32), nn.Linear(32, 64))
    result = farms_viz.analyze(model, window=16, progress=False)
    with pytest.warns(DeprecationWarning, match="use alphas_from="):
        groups = allocate.param_groups(model, result, 0.1, method="esd")
    assert [g["lr"] for g in groups] == [g["lr"] for g in allocate.param_groups(model, result, 0.1,
                                                                                  alphas_from="esd")]


def test_the_fit_name_is_now_rule(analysis):
    fit = analysis.spectrum("0", "farms").fit
    with pytest.warns(DeprecationWarning, match="PowerLawFit.rule"):
        assert fit.fit == fit.rule == "median"


def test_the_explorer_allocation_traits_keep_their_old_names():
    from farms_viz.widget import Explorer

    with pytest.warns(DeprecationWarning, match="target="):
        explorer = Explorer(nn.Linear(64, 32), window=16, target_sparsity=0.6)
    assert explorer.target == 0.6
    with pytest.warns(DeprecationWarning, match="Explorer.groups"):
        explorer.grouping = True
    assert explorer.groups is True
    with pytest.warns(DeprecationWarning, match="Explorer.alphas_from"):
        assert explorer.allocation_method == "farms"
    explorer.close()


def test_the_sweep_charts_module_moved_to_charts():
    # a fresh interpreter: the warning fires on the first import, whatever this process imported before
    code = ("import warnings\nwith warnings.catch_warnings(record=True) as caught:\n"
            "    warnings.simplefilter('always')\n    import farms_viz.sweep_charts as module\n"
            "from farms_viz.charts import alpha_vs_window\n"
            "print(module.alpha_vs_window is alpha_vs_window, [str(w.message) for w in caught "
            "if issubclass(w.category, DeprecationWarning)])")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    same, messages = result.stdout.strip().split(" ", 1)
    assert same == "True"
    assert "farms_viz.sweep_charts is deprecated" in messages and "farms_viz.charts" in messages
