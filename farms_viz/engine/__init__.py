"""The analysis engine: model -> layers -> windows -> spectra -> fits -> :class:`Analysis`.

Imports torch, numpy, scipy and pandas only, so it runs in a plain script or a training loop
with no Jupyter installed.
"""

from .analysis import Analysis, LayerSpectrum, NothingToAnalyzeError, analyze
from .fits import PowerLawFit, fit_power_law
from .params import AnalysisParams
from .run_control import AnalysisCancelled, RunControl
from .sweep import sweep
from .windows import WindowGrid, window_grid

__all__ = [
    "Analysis",
    "AnalysisCancelled",
    "AnalysisParams",
    "LayerSpectrum",
    "NothingToAnalyzeError",
    "PowerLawFit",
    "RunControl",
    "WindowGrid",
    "analyze",
    "fit_power_law",
    "sweep",
    "window_grid",
]
