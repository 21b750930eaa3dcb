"""farms_viz: weight eigenspectra without aspect-ratio bias (FARMS) beside the standard ESD."""

from . import allocate, prune
from ._params import AnalysisParams
from .analysis import Analysis, LayerSpectrum, NothingToAnalyzeError, analyze
from .fits import PowerLawFit, fit_power_law
from .sweep import sweep
from .windows import WindowGrid, window_grid

__all__ = [
    "Analysis",
    "AnalysisParams",
    "Explorer",
    "LayerSpectrum",
    "NothingToAnalyzeError",
    "PowerLawFit",
    "WindowGrid",
    "allocate",
    "analyze",
    "fit_power_law",
    "prune",
    "sweep",
    "window_grid",
]
__version__ = "0.1.0"


def __getattr__(name: str):
    # the widget needs anywidget/ipywidgets: import it only when asked for, so the
    # analysis core runs in a plain script or a training loop without Jupyter
    if name == "Explorer":
        from .widget import Explorer

        return Explorer
    raise AttributeError(f"module 'farms_viz' has no attribute {name!r}")
