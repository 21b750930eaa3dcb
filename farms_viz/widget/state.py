"""What the explorer's front end receives: chart specs without rows, and rows by data set.

Kept apart from the widget class (as lonboard does) so the HTML export sends the very
same state to the very same renderer.
"""

from __future__ import annotations

import functools

import numpy as np
import pandas as pd

from ..charts.allocation import allocation_comparison, allocation_data
from ..charts.data import layer_frame, spectrum_frames, table_frame
from ..charts.datasets import records, spec_without_rows, split_rows
from ..charts.layers import alpha_aspect_chart, default_layer, layer_alpha_chart
from ..charts.spectrum import spectrum_chart
from ..charts.style import alpha_rules, layer_chart_width
from ..charts.sweep import sweep_overview
from ..engine.analysis import Analysis
from .contract import slider_limits

_LAYER_COLUMNS = ["layer", "order", "method", "method_label", "shape", "aspect_ratio", "alpha", "D", "xmin",
                  "n_tail", "window", "num_windows", "coverage", "covers_whole_matrix", "alpha_delta",
                  "alpha_baseline", "alpha_shown", "alpha_clip", "baseline_shown", "baseline_clip", "sampling_note"]


@functools.lru_cache(maxsize=16)
def explorer_specs(layer_count: int) -> dict[str, dict]:
    """Vega-Lite specs of the explorer's charts, rows left out (they travel as data sets).

    They depend on the number of layers only, so a slider move never re-sends them and
    the front end updates the rows through Vega changesets.
    """
    width = layer_chart_width(layer_count)
    empty = pd.DataFrame(columns=_LAYER_COLUMNS)
    return {
        "alpha_by_layer": spec_without_rows(layer_alpha_chart(empty, width=width, layer_count=layer_count)),
        "alpha_vs_aspect": spec_without_rows(alpha_aspect_chart(empty)),
        "spectrum": spec_without_rows(spectrum_chart({})),
    }


def spectrum_datasets(analysis: Analysis, layer: str) -> dict[str, list[dict]]:
    """The spectrum panel's rows for one layer, by data set name."""
    return {f"spectrum_{name}": records(frame, digits=5) for name, frame in spectrum_frames(analysis, layer).items()}


def explorer_datasets(analysis: Analysis, layer: str | None = None,
                      only_spectrum: bool = False) -> tuple[dict[str, list[dict]], str]:
    """Rows of every data set the explorer's charts read, and the layer they show.

    Parameters
    ----------
    analysis : the analysis to show.
    layer : the layer whose spectrum to include (None: :func:`~farms_viz.charts.default_layer`).
    only_spectrum : leave out the per-layer rows (the selected layer changed, nothing else).
    """
    layer = layer if layer in analysis.layers else default_layer(analysis)
    datasets = spectrum_datasets(analysis, layer)
    if not only_spectrum:
        datasets["layers"] = records(layer_frame(analysis)[_LAYER_COLUMNS])
        datasets["alpha_rules"] = [{"alpha": a} for a in alpha_rules(analysis.params.fit)]
    return datasets, layer


def table_records(analysis: Analysis) -> list[dict]:
    """The layer table's rows (analysed and skipped layers, model order)."""
    return records(table_frame(analysis))


def explorer_state(analysis: Analysis, selected_layer: str | None = None, all_spectra: bool = True,
                   spectrum_units: str = "normalised", spectrum_methods: str = "both") -> dict:
    """The front end's whole state for a static page (the HTML export).

    With ``all_spectra`` every layer's spectrum rows are included so that clicking a layer
    works without a kernel. ``spectrum_units`` and ``spectrum_methods``: the spectrum's view.
    """
    datasets, layer = explorer_datasets(analysis, selected_layer)
    p = analysis.params
    state = {
        "window": p.window, "q": p.q, "windows_per_dim": p.windows_per_dim, "stride": p.stride, "fit": p.fit,
        "selected_layer": layer, "status": f"{len(analysis.layers)} layers analysed in {analysis.seconds:.2f} s",
        "spectrum_units": spectrum_units, "spectrum_methods": spectrum_methods,
        "progress": 1.0, "error": "", "_running": False, "_notice": "", "_static": True,
        "_limits": {**slider_limits([p.window]), "fits": [p.fit]},
        "_specs": explorer_specs(len(analysis.layers)), "_datasets": datasets, "_table": table_records(analysis),
    }
    if all_spectra:
        state["_spectra_by_layer"] = {name: spectrum_datasets(analysis, name) for name in analysis.layers}
    return state


def allocation_layers(analysis: Analysis) -> list[str]:
    """The layers an allocation can use: every method's alpha is finite there (model order)."""
    return [name for name in analysis.layers
            if all(np.isfinite(analysis.spectra[(name, m)].fit.alpha)
                   for m in analysis.methods if (name, m) in analysis.spectra)]


def allocation_datasets(frame: pd.DataFrame) -> tuple[dict, dict[str, list[dict]]]:
    """The allocation panel: its spec (rows left out) and its rows, by data set name.

    Parameters
    ----------
    frame : :func:`farms_viz.allocate.allocation_frame` output.
    """
    data = allocation_data(frame)
    spec = _allocation_spec(tuple(dict.fromkeys(frame["layer"])), tuple(dict.fromkeys(frame["method"])),
                            tuple(frame.columns))
    return spec, {"allocation": records(data, digits=5)}


@functools.lru_cache(maxsize=8)
def _allocation_spec(layers: tuple[str, ...], methods: tuple[str, ...], columns: tuple[str, ...]) -> dict:
    """The allocation chart for these layers and methods; built once, the rows change."""
    sample = pd.DataFrame([dict.fromkeys(columns, 0.5) | {"layer": name, "method": method, "group": name}
                           for method in methods for name in layers])
    return spec_without_rows(allocation_comparison(sample, height=170))


def sweep_datasets(frame: pd.DataFrame, current_window: int | None,
                   selected_layer: str | None = None) -> tuple[dict, dict[str, list[dict]]]:
    """The sweep panel: the model's mean alpha per method against the window, then the selected
    layer's (current window marked), and its rows.

    Parameters
    ----------
    frame : :func:`farms_viz.sweep` output.
    current_window : the window in use, drawn as a rule in both panels.
    selected_layer : the layer drawn at first (the front end follows the selection).
    """
    chart = sweep_overview(frame, current_window=current_window, selected_layer=selected_layer)
    spec, rows = split_rows(chart)
    return spec, {name: _rounded(value) for name, value in rows.items()}


def _rounded(rows: list[dict], digits: int = 5) -> list[dict]:
    return records(pd.DataFrame(rows), digits=digits) if rows else []
