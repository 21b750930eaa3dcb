"""The Explorer's contract with its front end: synced state, messages, panels and control limits.

This module is the single source of these names on the Python side; ``js/src/contract.js`` states
the same contract for the front end (a JSDoc typedef of the state and the same name lists), and
``tests/test_contract.py`` fails when the two disagree, or when the :class:`Explorer` syncs a trait
that is not listed here (or the reverse), or when the front end reads state that is not listed.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..charts.spectrum import SHOWN_METHODS, UNITS
from ..charts.style import METHOD_LABELS
from ..engine.params import FITS, PARAMETER_RULES

# Synced traits: name -> what it holds. Public ones are the widget's API (setting one from Python
# does what its control does); "_" ones carry what the front end draws.
SYNCED_STATE: dict[str, str] = {
    "window": "rows m of every FARMS window",
    "q": "aspect ratio Q of every window (columns per row)",
    "windows_per_dim": "windows k along each dimension (a k x k grid), used when stride is null",
    "stride": "explicit stride in entries, or null for the k x k grid",
    "fit": "power-law fit: one of FITS",
    "selected_layer": "the layer whose spectrum is shown",
    "status": "what the widget is doing or did (read-only)",
    "progress": "0..1 of the current run (read-only)",
    "error": "the last error, empty when none (read-only)",
    "target": "allocation: parameter-weighted mean sparsity",
    "epsilon": "allocation: spread of the ratios around the target",
    "groups": "allocation: one ratio per transformer block",
    "alphas_from": "allocation: whose alphas, one of ALLOCATION_SOURCES",
    "allocation_path": "where 'save JSON' writes the allocation (kernel side)",
    "sweep_windows": "the window sizes the sweep tries",
    "sweep_status": "what the sweep is doing or did (read-only)",
    # the Tune tab (given evaluate=): farms_viz.tune in the background
    "tune_pruner": "tune: the pruner, one of farms_viz.tune's PRUNERS",
    "tune_target": "tune: the mean sparsity every setting prunes to",
    "tune_windows": "tune: the FARMS window sizes tried",
    "tune_epsilons": "tune: the allocation spreads tried",
    "tune_status": "what the tune is doing or did (read-only)",
    # view options: how the spectrum is drawn (no recomputation; the front end switches them)
    "spectrum_units": "the spectrum's eigenvalue axis: one of SPECTRUM_UNITS ('normalised': each method's "
                      "eigenvalues divided by their mean, so the methods compare; 'raw')",
    "spectrum_methods": "the methods the spectrum shows: one of SPECTRUM_METHODS",
    "_running": "an analysis is in flight",
    "_sweep_running": "a sweep is in flight",
    "_tune_running": "a tune is in flight",
    "_tune": "the Tune tab: available, how_to, calibration, pruners, metric, higher_is_better, done, planned, "
             "rows (the table), best (what 'apply best' sets, by method), failed, error, applied",
    "_allocation_note": "one line under the allocation chart",
    "_limits": "control bounds and choices (slider_limits)",
    "_specs": "panel name -> Vega-Lite spec without rows",
    "_datasets": "data set name -> rows, swapped into the specs by name",
    "_table": "the layer table's rows, skipped layers included",
    "_notice": "a warning about the current results (e.g. a window covering whole matrices)",
    # the run: its cost before it starts, what the results on screen come from (runtime)
    "budget_s": "a run estimated above this many seconds waits for 'run anyway' (null: no limit)",
    "_estimate": "the current settings' cost: windows, eigenvalues, seconds, cached, over_budget, waiting, text",
    "_results_for": "the settings the results on screen were computed with (kind: exact/provisional/partial)",
    "_provisional": "the results on screen are a coarse stand-in (fewer windows) for the exact ones, coming",
    "_partial": "the results on screen cover the layers done so far of a long first run",
    # over time (Explorer(monitor)) and across models (Explorer({name: model}))
    "step": "Explorer(monitor): the recorded step every panel but the time view shows (the step slider)",
    "follow_latest": "Explorer(monitor): step moves to each new recorded step (off once the slider leaves the newest)",
    "view_method": "the method the time view and the model comparison draw: one of ALLOCATION_SOURCES",
    "shown_model": "Explorer({name: model}): the model the single-model panels show (the model picker)",
    "_mode": "what the Explorer shows: one of EXPLORER_MODES",
    "_timeline": "the time view: spec (rows left out), datasets, steps (the slider's), recorded, note",
    "_comparison": "the comparison panels: specs (rows left out), datasets, models, layer, kind, note",
}
# State of the offline HTML page only (no kernel): set by the export, never synced.
STATIC_STATE: dict[str, str] = {
    "_static": "true on the offline page: controls that need a kernel are hidden",
    "_spectra_by_layer": "layer -> its spectrum data sets, so a click works without a kernel",
}
# Custom messages the front end sends to the kernel ({"type": name}).
MESSAGES = ("refresh", "save_allocation", "run_sweep", "stop", "run_anyway", "run_tune", "stop_tune",
            "apply_best_tune")
# Chart panels (keys of _specs) and the tabs that hold them.
PANELS = ("alpha_by_layer", "alpha_vs_aspect", "spectrum", "allocation", "sweep", "tune_window", "tune_epsilon")
TABS = ("spectra", "allocation", "sweep", "tune")
# One model, a Monitor's recorded steps, or several models side by side.
EXPLORER_MODES = ("model", "monitor", "models")
# Panels of the time view and of the model comparison (keys of _timeline's and _comparison's specs).
TIMELINE_PANEL = "timeline"
COMPARISON_PANELS = ("models_alpha", "models_delta", "models_spectra")
# Whose alphas an allocation can use, in the order the control offers them.
ALLOCATION_SOURCES = ("farms", "esd")
# The spectrum's view options, in the order the controls offer them.
SPECTRUM_UNITS = UNITS
SPECTRUM_METHODS = SHOWN_METHODS

WINDOW_MIN = 2
Q_MIN, Q_MAX = 0.1, 4.0
WINDOWS_PER_DIM_MAX = 30
# One step of each slider: the front end's sliders and the neighbours computed ahead use these.
SLIDER_STEPS = {"window": 1, "q": 0.05, "windows_per_dim": 1}


def slider_limits(short_sides: Sequence[int]) -> dict[str, Any]:
    """Bounds and choices of the controls (the ``_limits`` trait).

    The window slider reaches the largest layer's short side. ``rules`` are the engine's own
    (:data:`~farms_viz.engine.params.PARAMETER_RULES`): the front end checks typed values with them
    before it sends anything; ``steps`` are the sliders' steps.

    Examples
    --------
    >>> limits = slider_limits([64, 384])
    >>> limits["window_max"], limits["rules"]["stride"]["min"], limits["steps"]["q"]
    (384, 1, 0.05)
    """
    return {"window_min": WINDOW_MIN, "window_max": max(short_sides, default=WINDOW_MIN), "q_min": Q_MIN,
            "q_max": Q_MAX, "windows_per_dim_max": WINDOWS_PER_DIM_MAX, "fits": list(FITS),
            "allocation_sources": list(ALLOCATION_SOURCES), "method_labels": dict(METHOD_LABELS),
            "rules": {name: dict(rule) for name, rule in PARAMETER_RULES.items()}, "steps": dict(SLIDER_STEPS)}
