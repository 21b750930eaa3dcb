// The shipped front-end bundle against a fake anywidget model, in jsdom (no browser, no kernel).
// Run: node --test test/   (tests/test_widget.py runs it too)
import assert from "node:assert/strict";
import { readFileSync } from "node:fs";
import { test } from "node:test";
import { BUNDLE, fakeModel, openPage } from "../test-support/page.mjs";

const dom = openPage();
const { default: widget, staticModel } = await import(BUNDLE);


const TABLE = [
  { layer: "a", kind: "linear", shape: "64 x 64", aspect_ratio: 1, alpha_esd: 2.1, alpha_farms: 2.2, alpha_delta: 0.1, window: "32 x 32", num_windows: 9, coverage: 1, covers_whole_matrix: false, skipped_reason: "" },
  { layer: "b", kind: "linear", shape: "256 x 64", aspect_ratio: 4, alpha_esd: 3.5, alpha_farms: 2.1, alpha_delta: -1.4, window: "32 x 32", num_windows: 9, coverage: 1, covers_whole_matrix: false, skipped_reason: "" },
  { layer: "c", kind: "LayerNorm", shape: "64", skipped_reason: "1-D weight" },
];

mount.limits = { window_min: 2, window_max: 64, q_min: 0.1, q_max: 4, windows_per_dim_max: 30, fits: ["median", "peak", "ks"] };

function mount(extra = {}) {
  const state = {
    window: 32, q: 1, windows_per_dim: 3, stride: null, fit: "median", selected_layer: "a",
    status: "2 layers in 0.10 s", progress: 1, error: "", _running: false, _notice: "",
    _limits: mount.limits,
    _specs: {}, _datasets: {}, _table: TABLE,
    target: 0.7, epsilon: 0.2, groups: false, alphas_from: "farms",
    allocation_path: "farms_viz_allocation.json", sweep_windows: [8, 16, 32], sweep_status: "not run yet",
    _sweep_running: false, _allocation_note: "", ...extra,
  };
  const model = fakeModel(state);
  const el = document.createElement("div");
  document.body.appendChild(el);
  const cleanup = widget.render({ model, el });
  return { model, el, cleanup, root: el.querySelector(".farms-viz") };
}

const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

test("controls reflect the model and are bounded by its limits", () => {
  const { root, cleanup } = mount();
  const slider = root.querySelector("input[name='window']");
  assert.equal(slider.value, "32");
  assert.equal(slider.max, "64");
  assert.equal(root.querySelector("select[name='fit']").options.length, 3);
  cleanup();
});

test("a lone slider change goes at once; a burst sends its first value, then its last after the debounce", async () => {
  const { model, root, cleanup } = mount();
  const slider = root.querySelector("input[name='window']");
  for (const value of ["30", "28", "24"]) {
    slider.value = value;
    slider.dispatchEvent(new Event("input"));
    slider.dispatchEvent(new Event("change"));
  }
  assert.deepEqual(model.saved, [{ window: 30, fit: "median" }]);
  await sleep(260);
  assert.deepEqual(model.saved, [{ window: 30, fit: "median" }, { window: 24, fit: "median" }]);
  cleanup();
});

test("a stride of 2.5, 0 or -5 is refused where it was typed: marked, explained, not sent", async () => {
  const { model, root, cleanup } = mount();
  const stride = root.querySelector("input[name='stride']");
  const error = stride.closest(".fv-field").querySelector(".fv-field-error");
  for (const [typed, message] of [["2.5", /stride must be an integer >= 1; got 2.5/],
    ["0", /stride must be an integer >= 1 \(or leave it empty .*\); got 0/], ["-5", /got -5/]]) {
    stride.value = typed;
    stride.dispatchEvent(new Event("input"));
    stride.dispatchEvent(new Event("change"));
    assert.equal(error.hidden, false);
    assert.match(error.textContent, message);
    assert.ok(stride.classList.contains("fv-invalid"));
    model.set("status", "the kernel said something"); // an update from the kernel keeps the entry
    assert.equal(stride.value, typed);
  }
  await sleep(260);
  assert.deepEqual(model.savedState, []); // nothing sent: no run
  stride.value = "8";
  stride.dispatchEvent(new Event("input"));
  stride.dispatchEvent(new Event("change"));
  assert.equal(error.hidden, true);
  assert.equal(model.get("stride"), 8);
  stride.value = "";
  stride.dispatchEvent(new Event("change"));
  await sleep(260);
  assert.equal(model.get("stride"), null); // empty: the k x k grid
  cleanup();
});

test("the rules come from the kernel's limits", () => {
  const rules = { stride: { integer: true, min: 4, nullable: true, hint: "kernel rule" } };
  const { root, cleanup } = mount({ _limits: { ...mount.limits, rules } });
  const stride = root.querySelector("input[name='stride']");
  stride.value = "3";
  stride.dispatchEvent(new Event("change"));
  assert.match(stride.closest(".fv-field").querySelector(".fv-field-error").textContent, /kernel rule/);
  cleanup();
});

test("controls the results on screen do not come from are marked, and the status says what they come from", () => {
  const shown = { window: 32, q: 1, windows_per_dim: 3, stride: null, fit: "median", kind: "exact", layers: 2 };
  const { model, root, cleanup } = mount({ _results_for: shown });
  const line = root.querySelector(".fv-results-for");
  assert.equal(line.textContent, "results on screen: window 32, Q 1.00, k 3, median fit");
  assert.equal(root.querySelectorAll(".fv-field.fv-stale").length, 0);
  model.set("window", 40);
  const stale = [...root.querySelectorAll(".fv-field.fv-stale")];
  assert.deepEqual(stale.map((f) => f.querySelector("input").name), ["window"]);
  assert.match(stale[0].title, /results on screen are for window = 32/);
  assert.ok(line.classList.contains("fv-stale"));
  assert.equal(root.querySelector("button[name='run_anyway']").hidden, false); // "run" the shown settings
  cleanup();
});

test("stop while running, run anyway while waiting; the estimate says the cost", () => {
  const { model, root, cleanup } = mount();
  const stop = root.querySelector("button[name='stop']");
  const run = root.querySelector("button[name='run_anyway']");
  assert.equal(stop.hidden, true);
  model.set("_running", true);
  assert.equal(stop.hidden, false);
  stop.dispatchEvent(new dom.window.MouseEvent("click"));
  model.set("_running", false);
  model.set("_estimate", { windows: 965000, eigenvalues: 48250000, layers: 39, seconds: 540, cached: false,
    over_budget: true, waiting: true, text: "965,000 windows: about 9 min 0 s (above the 20 s budget)" });
  assert.equal(run.hidden, false);
  assert.equal(run.textContent, "run anyway");
  assert.match(root.querySelector(".fv-estimate").textContent, /above the 20 s budget/);
  assert.equal(root.dataset.waiting, "true");
  run.dispatchEvent(new dom.window.MouseEvent("click"));
  assert.deepEqual(model.sent, [{ type: "stop" }, { type: "run_anyway" }]);
  cleanup();
});

test("a provisional or partial result is marked on the root and in a banner", () => {
  const { model, root, cleanup } = mount();
  const banner = root.querySelector(".fv-provisional-banner");
  assert.equal(banner.hidden, true);
  model.set("_provisional", true);
  assert.equal(root.dataset.provisional, "true");
  assert.ok(root.classList.contains("fv-provisional"));
  assert.match(banner.textContent, /Provisional/);
  model.set("_provisional", false);
  model.set("_results_for", { window: 32, q: 1, windows_per_dim: 3, stride: null, fit: "median", kind: "partial", layers: 5 });
  model.set("_partial", true);
  assert.equal(root.dataset.provisional, "false");
  assert.match(banner.textContent, /Partial: the 5 layers/);
  cleanup();
});

test("the table lists skipped layers, sorts on a header click and selects on a row click", () => {
  const { model, root, cleanup } = mount();
  const layers = () => [...root.querySelectorAll(".fv-table tbody tr")].map((tr) => tr.dataset.layer);
  assert.deepEqual(layers(), ["a", "b", "c"]);
  assert.match(root.querySelector("tr.fv-skipped").textContent, /skipped: 1-D weight/);
  const header = [...root.querySelectorAll(".fv-table th")].find((th) => th.dataset.key === "alpha_esd")
    .querySelector("button.fv-sort"); // a button: reachable by keyboard
  header.dispatchEvent(new dom.window.MouseEvent("click"));
  root.querySelector(".fv-table th[data-key='alpha_esd'] button").dispatchEvent(new dom.window.MouseEvent("click"));
  assert.deepEqual(layers(), ["b", "a", "c"]); // descending, blanks last
  assert.equal(root.querySelector(".fv-table th[data-key='alpha_esd']").getAttribute("aria-sort"), "descending");
  root.querySelector("tr[data-layer='b']").dispatchEvent(new dom.window.MouseEvent("click"));
  assert.equal(model.get("selected_layer"), "b");
  assert.equal(root.querySelector("tr.fv-selected").dataset.layer, "b");
  cleanup();
});

test("status, errors and the refresh button", () => {
  const { model, root, cleanup } = mount();
  assert.equal(root.querySelector(".fv-status-text").textContent, "2 layers in 0.10 s");
  assert.equal(root.querySelector(".fv-error").hidden, true);
  model.set("error", "RuntimeError: boom");
  assert.equal(root.querySelector(".fv-error").hidden, false);
  assert.match(root.querySelector(".fv-error").textContent, /boom/);
  model.set("_running", true);
  assert.ok(root.classList.contains("fv-running"));
  model.set("_running", false);
  root.querySelector(".fv-controls .fv-button").dispatchEvent(new dom.window.MouseEvent("click"));
  assert.deepEqual(model.sent, [{ type: "refresh" }]);
  cleanup();
});

test("cleanup removes every listener it added", () => {
  const { model, cleanup } = mount();
  assert.ok(model.listenerCount() > 0);
  cleanup();
  assert.equal(model.listenerCount(), 0);
});

test("the bundle imports nothing from the network", () => {
  const source = readFileSync(new URL("../../farms_viz/widget/static/widget.js", import.meta.url), "utf8");
  assert.doesNotMatch(source, /\bimport\s*\(?\s*["'`]https?:/);
  assert.doesNotMatch(source, /\bfrom\s*["'`]https?:/);
  assert.doesNotMatch(source, /esm\.sh|cdn\.jsdelivr|unpkg\.com/);
});

test("tabs: spectra first; allocation and sweep pages shown on a click", () => {
  const { root, cleanup } = mount();
  const visible = () => [...root.querySelectorAll(".fv-page")].filter((p) => !p.hidden).map((p) => p.className);
  assert.deepEqual([...root.querySelectorAll(".fv-tab")].map((t) => t.textContent), ["Spectra", "Allocation", "Sweep", "Tune"]);
  assert.deepEqual(visible(), ["fv-page fv-page-spectra"]);
  root.querySelector(".fv-tab[data-tab='allocation']").dispatchEvent(new dom.window.MouseEvent("click"));
  assert.deepEqual(visible(), ["fv-page fv-page-allocation"]);
  assert.equal(root.dataset.tab, "allocation");
  assert.equal(root.querySelector(".fv-chart[data-chart='allocation']").closest(".fv-page").hidden, false);
  cleanup();
});

test("allocation controls send their traits after the debounce; save asks the kernel", async () => {
  const { model, root, cleanup } = mount();
  const target = root.querySelector("input[name='target']");
  assert.equal(target.value, "0.7");
  target.value = "0.8";
  target.dispatchEvent(new Event("input"));
  target.dispatchEvent(new Event("change"));
  const grouping = root.querySelector("input[name='groups']");
  grouping.checked = true;
  grouping.dispatchEvent(new Event("change"));
  await sleep(260);
  assert.equal(model.savedState.length, 1);
  assert.equal(model.get("target"), 0.8);
  assert.equal(model.get("groups"), true);
  const path = root.querySelector("input[name='allocation_path']");
  path.value = "ratios.json";
  root.querySelector("button[name='save_allocation']").dispatchEvent(new dom.window.MouseEvent("click"));
  assert.equal(model.get("allocation_path"), "ratios.json"); // sent before the save request
  assert.deepEqual(model.sent, [{ type: "save_allocation" }]);
  model.set("_allocation_note", "saved 3 ratios");
  assert.equal(root.querySelector(".fv-allocation-note").textContent, "saved 3 ratios");
  cleanup();
});

test("the sweep button sends the windows typed, then asks for a sweep; refused entries are named", () => {
  const { model, root, cleanup } = mount();
  const windows = root.querySelector("input[name='sweep_windows']");
  const run = root.querySelector("button[name='run_sweep']");
  assert.equal(windows.value, "8, 16, 32");
  windows.value = "64 16, 16; abc 1 2.5";
  windows.dispatchEvent(new Event("input"));
  assert.match(windows.closest(".fv-field").querySelector(".fv-field-error").textContent, /not: abc, 1, 2.5/);
  assert.equal(run.disabled, true);
  run.dispatchEvent(new dom.window.MouseEvent("click"));
  assert.deepEqual(model.sent, []); // the old list is not run instead
  windows.value = "64 16, 16; 100000";
  windows.dispatchEvent(new Event("input"));
  assert.match(windows.closest(".fv-field").querySelector(".fv-field-warning").textContent, /100000 is larger than every layer's short side \(64\)/);
  run.dispatchEvent(new dom.window.MouseEvent("click"));
  assert.deepEqual(model.get("sweep_windows"), [16, 64, 100000]);
  assert.deepEqual(model.sent, [{ type: "run_sweep" }]);
  model.set("_sweep_running", true);
  assert.equal(root.querySelector("button[name='run_sweep']").disabled, true);
  model.set("sweep_status", "sweep: 1/2 windows");
  assert.equal(root.querySelector(".fv-sweep-status").textContent, "sweep: 1/2 windows");
  cleanup();
});

const TUNE = {
  available: true, how_to: "farms_viz.Explorer(model, evaluate=fn, calibration=batches)", calibration: false,
  pruners: ["magnitude", "wanda", "sparsegpt"], metric: "perplexity", higher_is_better: false, done: 0, planned: 0,
  rows: [], best: {}, failed: false, error: "", applied: "",
};
const TUNE_TRAITS = { tune_pruner: "magnitude", tune_target: 0.7, tune_windows: [16, 32], tune_epsilons: [0.1, 0.2],
  tune_status: "not run yet", _tune_running: false };

test("without evaluate the Tune tab shows the call that enables it, and no controls", () => {
  const { root, cleanup } = mount({ ...TUNE_TRAITS, _tune: { ...TUNE, available: false } });
  const how = root.querySelector(".fv-tune-how");
  assert.equal(how.hidden, false);
  assert.match(how.textContent, /evaluate function/);
  assert.equal(how.querySelector("code").textContent, "farms_viz.Explorer(model, evaluate=fn, calibration=batches)");
  assert.equal(root.querySelector(".fv-tune-controls").hidden, true);
  assert.equal(root.querySelector(".fv-tune-charts").hidden, true);
  cleanup();
});

test("the Tune tab sends its settings, then asks for a run; rows, best and apply follow the kernel", () => {
  const { model, root, cleanup } = mount({ ...TUNE_TRAITS, _tune: { ...TUNE } });
  assert.equal(root.querySelector(".fv-tune-how").hidden, true);
  const pruner = root.querySelector("select[name='tune_pruner']");
  assert.deepEqual([...pruner.options].map((o) => o.disabled), [false, true, true]); // no calibration given
  const epsilons = root.querySelector("input[name='tune_epsilons']");
  const run = root.querySelector("button[name='run_tune']");
  assert.equal(root.querySelector("input[name='tune_windows']").value, "16, 32");
  epsilons.value = "0.1, 1.5 x";
  epsilons.dispatchEvent(new Event("input"));
  assert.match(epsilons.closest(".fv-field").querySelector(".fv-field-error").textContent, /not: 1.5, x/);
  assert.equal(run.disabled, true);
  epsilons.value = "0.3 0.1, 0.1";
  epsilons.dispatchEvent(new Event("input"));
  run.dispatchEvent(new dom.window.MouseEvent("click"));
  assert.deepEqual(model.get("tune_epsilons"), [0.1, 0.3]);
  assert.deepEqual(model.sent, [{ type: "run_tune", pruner: "magnitude", target: 0.7, windows: [16, 32], epsilons: [0.1, 0.3] }]);
  model.set("_tune_running", true);
  assert.equal(run.disabled, true);
  assert.equal(root.querySelector("button[name='stop_tune']").hidden, false);
  const rows = [
    { method: "uniform", window: null, windows_per_dim: null, stride: null, q: null, epsilon: null, target: 0.7, metric: 12.5, sparsity: 0.7, seconds: 0.1, best: false, error: null },
    { method: "farms", window: 16, windows_per_dim: 4, stride: null, q: 1, epsilon: 0.1, target: 0.7, metric: 11.25, sparsity: 0.7, seconds: 0.2, best: true, error: null },
  ];
  model.set("_tune", { ...TUNE, done: 2, planned: 6, rows, best: { all: "FARMS, ε 0.1, window 16", farms: "FARMS, ε 0.1, window 16", uniform: "uniform" } });
  assert.equal(root.querySelector(".fv-tune").dataset.rows, "2");
  const cells = [...root.querySelectorAll(".fv-tune-table tbody tr")].map((tr) => [...tr.children].map((td) => td.textContent));
  assert.deepEqual(cells[1].slice(0, 7), ["FARMS", "16", "k 4", "1", "0.1", "0.7", "★ 11.25"]);
  assert.equal(root.querySelector(".fv-tune-table th:nth-child(7)").textContent, "perplexity");
  assert.equal(root.querySelector(".fv-tune-best-text").textContent, "best so far: FARMS, ε 0.1, window 16");
  const from = root.querySelector("select[name='tune_apply_from']");
  assert.deepEqual([...from.options].map((o) => o.disabled), [false, false, true, false]); // no ESD row yet
  root.querySelector("button[name='stop_tune']").dispatchEvent(new dom.window.MouseEvent("click"));
  from.value = "farms";
  from.dispatchEvent(new Event("change"));
  root.querySelector("button[name='apply_best_tune']").dispatchEvent(new dom.window.MouseEvent("click"));
  assert.deepEqual(model.sent.slice(1), [{ type: "stop_tune" }, { type: "apply_best_tune", method: "farms" }]);
  model.set("_tune", { ...model.get("_tune"), error: "ValueError: evaluate broke" });
  assert.equal(root.querySelector(".fv-tune-error").textContent, "ValueError: evaluate broke");
  cleanup();
});

test("a static page (the HTML export) has the spectra only, without tabs", () => {
  const { root, cleanup } = mount({ _static: true });
  assert.equal(root.querySelector(".fv-tabs").hidden, true);
  assert.deepEqual([...root.querySelectorAll(".fv-chart")].map((c) => c.dataset.chart),
    ["alpha_by_layer", "alpha_vs_aspect", "spectrum"]);
  assert.equal(root.querySelector("input[name='target']"), null);
  cleanup();
});

test("the offline page's model (the HTML export's shim) swaps in a clicked layer's spectrum", () => {
  const spectrumOf = (layer) => ({ spectrum_xmin: [{ layer }] });
  const state = {
    window: 32, q: 1, windows_per_dim: 3, stride: null, fit: "median", selected_layer: "a",
    status: "", progress: 1, error: "", _running: false, _notice: "", _static: true,
    _limits: { window_min: 2, window_max: 64, q_min: 0.1, q_max: 4, windows_per_dim_max: 30, fits: ["median"] },
    _specs: {}, _datasets: { layers: [], ...spectrumOf("a") }, _table: TABLE,
    _spectra_by_layer: { a: spectrumOf("a"), b: spectrumOf("b") },
  };
  const model = staticModel(state);
  const el = document.createElement("div");
  document.body.appendChild(el);
  const cleanup = widget.render({ model, el });
  el.querySelector("tr[data-layer='b']").dispatchEvent(new dom.window.MouseEvent("click"));
  assert.equal(model.get("selected_layer"), "b");
  assert.deepEqual(model.get("_datasets").spectrum_xmin, [{ layer: "b" }]);
  assert.deepEqual(model.get("_datasets").layers, []); // the other rows stay
  cleanup();
});
