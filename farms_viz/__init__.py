"""farms_viz: weight eigenspectra without aspect-ratio bias (FARMS) beside the standard ESD.

The analysis (:func:`analyze`, :func:`sweep`) and the decisions (:mod:`allocate`, :mod:`prune`,
:func:`tune`)
import torch, numpy, scipy and pandas only. The widget (:class:`Explorer`) is imported on first
use, so a plain script or a training loop never loads Jupyter.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from . import allocate, prune
from ._version import __version__
from .decisions.tune import tune
from .engine import (
    Analysis,
    AnalysisParams,
    LayerSpectrum,
    NothingToAnalyzeError,
    PowerLawFit,
    WindowGrid,
    analyze,
    fit_power_law,
    sweep,
    window_grid,
)
from .tracking import Comparison, Monitor, compare

if TYPE_CHECKING:
    from .widget import Explorer

__all__ = [
    "Analysis",
    "AnalysisParams",
    "Comparison",
    "Explorer",
    "LayerSpectrum",
    "Monitor",
    "NothingToAnalyzeError",
    "PowerLawFit",
    "WindowGrid",
    "__version__",
    "allocate",
    "analyze",
    "compare",
    "fit_power_law",
    "prune",
    "sweep",
    "tune",
    "window_grid",
]


def __getattr__(name: str) -> Any:
    # the widget needs anywidget/ipywidgets: import it only when asked for
    if name == "Explorer":
        from .widget import Explorer

        return Explorer
    raise AttributeError(f"module 'farms_viz' has no attribute {name!r}")
