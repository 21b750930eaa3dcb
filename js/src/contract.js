// @ts-check
// The Explorer's contract with the kernel, front-end side. farms_viz/widget/contract.py states
// the same names for Python; tests/test_contract.py fails when the two disagree, and when this
// front end reads or writes state that is not listed here.

/**
 * The synced state of one Explorer (traits of farms_viz.Explorer), plus the offline page's extras.
 * @typedef {Object} ExplorerState
 * @property {number} window rows m of every FARMS window
 * @property {number} q aspect ratio Q of every window
 * @property {number} windows_per_dim windows k along each dimension
 * @property {number | null} stride explicit stride in entries, or null for the k x k grid
 * @property {string} fit power-law fit ("median", "peak" or "ks")
 * @property {string | null} selected_layer the layer whose spectrum is shown
 * @property {string} status what the widget is doing or did
 * @property {number} progress 0..1 of the current run
 * @property {string} error the last error, empty when none
 * @property {number} target allocation: parameter-weighted mean sparsity
 * @property {number} epsilon allocation: spread of the ratios
 * @property {boolean} groups allocation: one ratio per transformer block
 * @property {string} alphas_from allocation: whose alphas ("farms" or "esd")
 * @property {string} allocation_path where "save JSON" writes (kernel side)
 * @property {number[]} sweep_windows window sizes the sweep tries
 * @property {string} sweep_status what the sweep is doing or did
 * @property {string} tune_pruner tune: the pruner ("magnitude", "wanda" or "sparsegpt")
 * @property {number} tune_target tune: the mean sparsity every setting prunes to
 * @property {number[]} tune_windows tune: the FARMS window sizes tried
 * @property {number[]} tune_epsilons tune: the allocation spreads tried
 * @property {string} tune_status what the tune is doing or did
 * @property {string} spectrum_units the spectrum's eigenvalue axis ("normalised": each method's ÷ its mean, or "raw")
 * @property {string} spectrum_methods the methods the spectrum shows ("both", "esd" or "farms")
 * @property {boolean} _running an analysis is in flight
 * @property {boolean} _sweep_running a sweep is in flight
 * @property {boolean} _tune_running a tune is in flight
 * @property {TuneState} _tune the Tune tab's state
 * @property {string} _allocation_note one line under the allocation chart
 * @property {Limits} _limits control bounds and choices
 * @property {Object<string, Object>} _specs panel name -> Vega-Lite spec without rows
 * @property {Object<string, Object[]>} _datasets data set name -> rows
 * @property {Object[]} _table the layer table's rows
 * @property {string} _notice a warning about the current results
 * @property {number | null} budget_s a run estimated above this many seconds waits for "run anyway"
 * @property {Estimate} _estimate the current settings' cost, and whether the run waits for "run anyway"
 * @property {Object} _results_for the settings the results on screen come from (window, q, windows_per_dim, stride, fit, kind, layers)
 * @property {boolean} _provisional the results on screen are a coarse stand-in for the exact ones
 * @property {boolean} _partial the results on screen cover the layers done so far
 * @property {number | null} step Explorer(monitor): the recorded step the panels show (the step slider)
 * @property {boolean} follow_latest Explorer(monitor): step moves to each newly recorded step
 * @property {string} view_method the method the time view and the model comparison draw ("farms" or "esd")
 * @property {string | null} shown_model Explorer({name: model}): the model the single-model panels show
 * @property {string} _mode "model", "monitor" or "models"
 * @property {Object} _timeline the time view: spec, datasets, steps (the slider's), recorded, note
 * @property {Object} _comparison the comparison panels: specs, datasets, models, layer, kind, note
 * @property {boolean} [_static] true on the offline page (no kernel)
 * @property {Object<string, Object<string, Object[]>>} [_spectra_by_layer] offline page: every layer's spectrum rows
 */

/**
 * @typedef {Object} Limits
 * @property {number} window_min
 * @property {number} window_max
 * @property {number} q_min
 * @property {number} q_max
 * @property {number} windows_per_dim_max
 * @property {string[]} fits
 * @property {string[]} [allocation_sources]
 * @property {Object<string, string>} [method_labels]
 * @property {Object<string, import("./validate.js").Rule>} [rules] the engine's parameter rules
 * @property {Object<string, number>} [steps] one step of each slider
 */

/**
 * @typedef {Object} TuneState
 * @property {boolean} available the Explorer was given evaluate=
 * @property {string} how_to the call that enables the tab
 * @property {boolean} calibration calibration inputs were given (Wanda, SparseGPT)
 * @property {string[]} pruners
 * @property {string} metric the metric's name (evaluate's)
 * @property {boolean} higher_is_better
 * @property {number} done settings measured
 * @property {number} planned settings planned
 * @property {Object[]} rows the rows measured so far (farms_viz.tune's columns)
 * @property {Object<string, string>} best what "apply best" sets: "all", "farms", "esd", "uniform"
 * @property {boolean} failed the run ended with an error
 * @property {string} error the last error of the tab, empty when none
 * @property {string} applied what "apply best" set last
 */

/**
 * @typedef {Object} Estimate
 * @property {number} windows
 * @property {number} eigenvalues
 * @property {number} layers
 * @property {number} seconds
 * @property {boolean} cached
 * @property {boolean} over_budget
 * @property {boolean} waiting
 * @property {string} text
 */

/**
 * What render() needs of a model: anywidget's model interface.
 * @typedef {Object} WidgetModel
 * @property {(name: string) => any} get
 * @property {(name: string, value: any) => void} set
 * @property {(event: string, callback: () => void) => void} on
 * @property {(event: string, callback: () => void) => void} off
 * @property {() => void} save_changes
 * @property {(message: Object) => void} send
 */

/** Names of the synced state, in the order of the contract. */
export const SYNCED_STATE = Object.freeze([
  "window", "q", "windows_per_dim", "stride", "fit", "selected_layer", "status", "progress", "error",
  "target", "epsilon", "groups", "alphas_from", "allocation_path", "sweep_windows", "sweep_status",
  "tune_pruner", "tune_target", "tune_windows", "tune_epsilons", "tune_status",
  "spectrum_units", "spectrum_methods",
  "_running", "_sweep_running", "_tune_running", "_tune", "_allocation_note", "_limits", "_specs", "_datasets", "_table", "_notice",
  "budget_s", "_estimate", "_results_for", "_provisional", "_partial",
  "step", "follow_latest", "view_method", "shown_model", "_mode", "_timeline", "_comparison",
]);
/** State of the offline page only. */
export const STATIC_STATE = Object.freeze(["_static", "_spectra_by_layer"]);
/** Custom messages sent to the kernel as {type: name}. */
export const MESSAGES = Object.freeze(["refresh", "save_allocation", "run_sweep", "stop", "run_anyway", "run_tune",
  "stop_tune", "apply_best_tune"]);
/** Chart panels (keys of _specs). */
export const PANELS = Object.freeze(["alpha_by_layer", "alpha_vs_aspect", "spectrum", "allocation", "sweep", "tune_window",
  "tune_epsilon"]);
/** Tabs, in display order. */
export const TABS = Object.freeze(["spectra", "allocation", "sweep", "tune"]);
/** One model, a Monitor's recorded steps, or several models side by side. */
export const EXPLORER_MODES = Object.freeze(["model", "monitor", "models"]);
/** The time view's panel, and the comparison's panels. */
export const TIMELINE_PANEL = "timeline";
export const COMPARISON_PANELS = Object.freeze(["models_alpha", "models_delta", "models_spectra"]);
/** Whose alphas an allocation can use. */
export const ALLOCATION_SOURCES = Object.freeze(["farms", "esd"]);
/** The spectrum's eigenvalue axis: each method's eigenvalues ÷ their mean, or as computed. */
export const SPECTRUM_UNITS = Object.freeze(["normalised", "raw"]);
/** The methods the spectrum shows. */
export const SPECTRUM_METHODS = Object.freeze(["both", "esd", "farms"]);
/** One label per method, as every chart and the table write it. */
export const METHOD_LABELS = Object.freeze({ esd: "standard ESD", farms: "FARMS" });
