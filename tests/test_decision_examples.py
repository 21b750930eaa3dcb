"""The docstring examples of the allocation, pruning and sweep modules run as written."""

import doctest
import importlib

import pytest

MODULES = ["farms_viz.allocate", "farms_viz._optim", "farms_viz.prune", "farms_viz.sweep",
           "farms_viz.sweep_charts", "farms_viz.allocation_charts"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples(name):
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.NORMALIZE_WHITESPACE)
    assert result.attempted > 0 and result.failed == 0
