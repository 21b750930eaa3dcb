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
