"""Renamed public names keep working, with a DeprecationWarning that names the new one."""

from __future__ import annotations

import importlib
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
    sys.modules.pop("farms_viz.sweep_charts", None)
    with pytest.warns(DeprecationWarning, match="farms_viz.charts"):
        module = importlib.import_module("farms_viz.sweep_charts")
    from farms_viz.charts import alpha_vs_window

    assert module.alpha_vs_window is alpha_vs_window
