"""Chart rows travel as named data sets: one mechanism for the widget, the report and export.

Every chart builder reads its rows from ``alt.NamedData(name)`` and carries them in the spec's
top-level ``datasets`` (:func:`with_datasets`); the widget sends the spec once without rows
(:func:`spec_without_rows`) and swaps the rows by name through Vega changesets, which keeps zoom
and selection. The selected layer is the Vega parameter ``SELECTED``.
"""

from __future__ import annotations

import altair as alt
import numpy as np
import pandas as pd

SELECTED = "selected_layer"


def records(frame: pd.DataFrame, digits: int | None = None) -> list[dict]:
    """JSON-ready rows of a frame (NaN and inf become null, numpy scalars plain Python).

    ``digits`` rounds floats to that many significant digits (smaller pages, same picture).
    """
    clean = frame.replace([np.inf, -np.inf], np.nan).astype(object)
    clean = clean.where(pd.notna(clean), None)

    def plain(value):
        if isinstance(value, np.generic):
            value = value.item()
        if digits is not None and isinstance(value, float):
            value = float(f"{value:.{digits}g}")
        return value

    return [{k: plain(v) for k, v in row.items()} for row in clean.to_dict("records")]


def with_datasets(chart, frames: dict[str, pd.DataFrame], selected_layer: str | None = None,
                  selectable: bool = True):
    """``chart`` carrying ``frames`` as its named data sets (and the ``SELECTED`` parameter).

    Parameters
    ----------
    chart : an altair chart whose marks read ``alt.NamedData(name)`` for each name of ``frames``.
    frames : data set name -> rows.
    selected_layer : initial value of the ``SELECTED`` parameter.
    selectable : add the ``SELECTED`` parameter (charts that highlight a layer).
    """
    chart = chart.properties(datasets={name: records(f) for name, f in frames.items()})
    return chart.add_params(alt.param(name=SELECTED, value=selected_layer)) if selectable else chart


def spec_without_rows(chart) -> dict:
    """The chart's Vega-Lite spec with every named data set emptied (the rows travel apart)."""
    spec = chart.to_dict(validate=False)
    spec["datasets"] = {name: [] for name in spec.get("datasets", {})}
    return spec


def split_rows(chart) -> tuple[dict, dict[str, list[dict]]]:
    """(spec without rows, rows by data set name) of a chart built with :func:`with_datasets`."""
    spec = chart.to_dict(validate=False)
    rows = spec.get("datasets", {})
    spec["datasets"] = {name: [] for name in rows}
    return spec, rows


def strip_datasets(chart):
    """A sub-chart without its own data sets and variable parameters (``SELECTED`` and the
    view options: the parent carries them); its selections (zoom) stay."""
    clone = chart.copy(deep=True)
    clone.datasets = alt.Undefined
    clone.params = [prm for prm in (clone.params if clone.params is not alt.Undefined else [])
                    if getattr(prm, "select", alt.Undefined) is not alt.Undefined] or alt.Undefined
    return clone


def is_selected() -> str:
    """A Vega expression: this row is the selected layer."""
    return f"datum.layer === {SELECTED}"
