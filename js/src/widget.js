// @ts-check
// farms_viz Explorer front end: controls, status, and four tabs: the spectra (alpha per layer,
// alpha vs aspect ratio, the selected layer's spectrum, the layer table), the pruning allocation,
// the window sweep and the tune (prune and measure, tune.js). Works with any object that has the anywidget model interface
// (get/set/on/off/save_changes/send), which is how the static HTML export reuses it (spectra only).
import "./widget.css";
import { ChartPanel } from "./charts.js";
import { PANELS, TABS as TAB_NAMES } from "./contract.js";
import { createAllocationControls, createControls, createSweepControls } from "./controls.js";
import { formatNumber } from "./format.js";
import { createComparison } from "./models.js";
import { createTimeline } from "./time.js";
import { createStatus } from "./status.js";
import { createTable } from "./table.js";
import { createTuneTab } from "./tune.js";
import { analysedLayers, createLayerPicker, createSpectrumOptions, stepLayer } from "./views.js";
import { element, listen } from "./dom.js";

export const ROOT_CLASS = "farms-viz";
const CAPTIONS = {
  alpha_by_layer: "Squares: standard ESD; circles: FARMS (hollow: the window covers the whole matrix, FARMS = ESD). " +
    "The short bar beside each point is the α a Gaussian random matrix of the same shape gets through the same windows and fit: " +
    "near it, the layer is as heavy-tailed as noise; below it, heavier. The median-fit α ranks layers within a model; it is not " +
    "an absolute grade. Dashed lines at α = 2 and 6 appear under the KS fit only, the fit that rule belongs to. ▲▼: beyond the axis " +
    "(hover for the value). Click a point or use the arrow keys to choose a layer.",
  alpha_vs_aspect: "Dashed lines: the α of Gaussian random matrices of each layer's geometry. The standard ESD's rises with the aspect ratio " +
    "(the bias, drawn); FARMS' stays flat because every window has the same shape.",
  spectrum: "Bars: density of the eigenvalues. Solid: fitted power-law tail from xmin (dotted). Dashed: Marchenko-Pastur density of a " +
    "random matrix of the window's shape. Divided by its mean eigenvalue, each method's spectrum is on one axis with the other's: " +
    "a random window's is then the MP law of mean 1, whatever its size.",
  allocation: "Top: each layer's α. Bottom: its pruning ratio from the standard ESD's α and from FARMS's α (dashed: the target; outlined: " +
    "held at the maximum sparsity; dotted: block boundaries when grouping). Larger α, more pruning; the parameter-weighted mean is the target.",
  sweep: "Top: the model's mean α per method against the window size (the standard ESD does not depend on it). Below: the chosen layer's " +
    "FARMS α of the pooled windows; band: mean ± std of each window fitted on its own (narrow: a stable window size); dashed: its " +
    "standard ESD α. Dotted: the current window.",
  tune_window: "Each FARMS window's best over ε (line), the standard ESD's and uniform's best (dashed rules): the pruned model's " +
    "metric, measured by your evaluate function. Ringed: the best setting.",
  tune_epsilon: "The metric against the allocation's spread ε: the standard ESD and one line per FARMS window; uniform (ε = 0 in " +
    "effect) as a dashed rule. Ringed: the best setting.",
};
const ZOOMABLE = new Set(["alpha_by_layer", "alpha_vs_aspect", "spectrum"]);
const STEPS_LAYERS = new Set(["alpha_by_layer", "alpha_vs_aspect"]);
const PANEL_TAB = { allocation: "allocation", sweep: "sweep", tune_window: "tune", tune_epsilon: "tune" }; // the rest: spectra
const CHARTS = PANELS.map((name) => ({ name, tab: PANEL_TAB[name], caption: CAPTIONS[name] }));
const TAB_LABELS = { spectra: "Spectra", allocation: "Allocation", sweep: "Sweep", tune: "Tune" };
export const TABS = TAB_NAMES.map((name) => ({ name, label: TAB_LABELS[name] }));
const LAYER_PX = 16;
const MIN_ALPHA_WIDTH = 420;

/** True when JupyterLab (or the page) shows a dark theme. */
export function isDarkTheme(doc = document) {
  const light = doc.body && doc.body.dataset ? doc.body.dataset.jpThemeLight : undefined;
  if (light === "false") return true;
  if (light === "true") return false;
  return Boolean(doc.defaultView && doc.defaultView.matchMedia &&
    doc.defaultView.matchMedia("(prefers-color-scheme: dark)").matches);
}

function layerSummary(rows, layer) {
  const row = (rows || []).find((r) => r.layer === layer);
  if (!row) return { text: layer ? `spectrum of ${layer}` : "spectrum", warning: "" };
  const window = row.window ? `, window ${row.window} × ${row.num_windows}` : "";
  const random = (value) => (value === null || value === undefined ? "" : ` (random ${formatNumber(value)})`);
  return {
    text: `spectrum of ${layer} (${row.shape}${window}): α ESD ${formatNumber(row.alpha_esd)}${random(row.baseline_esd)}, ` +
      `α FARMS ${formatNumber(row.alpha_farms)}${random(row.baseline_farms)}`,
    warning: row.sampling_note ? `⚠ FARMS sampled this layer thinly: ${row.sampling_note}` : "",
  };
}

function render({ model, el }) {
  const root = element("div", ROOT_CLASS);
  // keys typed in the controls belong to them, not to JupyterLab's notebook shortcuts
  root.dataset.lmSuppressShortcuts = "true";
  const header = element("div", "fv-header");
  const mode = model.get("_mode") || "model";
  const title = element("div", "fv-title", `farms_viz · standard ESD vs FARMS${{ monitor: " over training", models: " across models" }[mode] ?? ""}`);
  const status = createStatus(model, root);
  header.append(title, status.header);

  const controls = createControls(model);
  const error = element("div", "fv-error");
  const notice = element("div", "fv-notice");
  error.hidden = notice.hidden = true;

  const select = (layer) => {
    model.set("selected_layer", layer);
    model.save_changes();
  };
  // arrow keys on a chart move the selection through the layers in model order
  const step = (by) => {
    const next = stepLayer(analysedLayers(model.get("_table")), model.get("selected_layer"), by);
    if (next && next !== model.get("selected_layer")) select(next);
  };
  const spectrumOptions = createSpectrumOptions(model);

  const isStatic = Boolean(model.get("_static"));
  const charts = CHARTS.filter(({ tab }) => !tab || !isStatic); // a static page has no kernel to allocate or sweep
  const panels = {};
  const sections = {};
  for (const { name, caption } of charts) {
    const section = element("section", `fv-panel fv-panel-${name}`);
    const chart = element("div", "fv-chart");
    chart.dataset.chart = name;
    if (name === "spectrum") section.append(element("div", "fv-panel-title fv-spectrum-title"), spectrumOptions.element);
    section.append(chart, element("p", "fv-caption", caption));
    panels[name] = new ChartPanel(chart, name, select, { onStep: STEPS_LAYERS.has(name) ? step : null,
      zoomable: ZOOMABLE.has(name) });
    sections[name] = section;
  }
  const row = element("div", "fv-row");
  row.append(sections.alpha_by_layer, sections.alpha_vs_aspect);
  const table = createTable(select);
  const tableSection = element("section", "fv-panel fv-panel-table");
  const tableTitle = element("div", "fv-panel-title fv-table-title", "layers (click a header to sort, a row to select; ↑ ↓ move)");
  tableTitle.appendChild(table.tools);
  tableSection.append(tableTitle, table.element);

  const pages = { spectra: element("div", "fv-page fv-page-spectra") };
  pages.spectra.append(row, sections.spectrum, tableSection);
  const extras = [];
  let allocation = null;
  let sweep = null;
  let tune = null;
  let allocationNote = null;
  const layerPicker = createLayerPicker(model);
  if (!isStatic) {
    allocation = createAllocationControls(model);
    sweep = createSweepControls(model);
    allocationNote = element("div", "fv-note fv-allocation-note");
    pages.allocation = element("div", "fv-page fv-page-allocation");
    pages.allocation.append(allocation.element, allocationNote, sections.allocation);
    if (mode !== "monitor") { // the sweep re-reads weights: a Monitor's past weights are gone
      pages.sweep = element("div", "fv-page fv-page-sweep");
      pages.sweep.append(sweep.element, layerPicker.element, sections.sweep);
    }
    tune = createTuneTab(model);
    const tuneCharts = element("div", "fv-row fv-tune-charts");
    tuneCharts.append(sections.tune_window, sections.tune_epsilon);
    pages.tune = element("div", "fv-page fv-page-tune");
    pages.tune.append(tune.element, tuneCharts, tune.table);
    extras.push(allocation, sweep, tune);
  }
  const tabBar = element("div", "fv-tabs");
  tabBar.setAttribute("role", "tablist");
  const tabButtons = {};
  for (const { name, label } of TABS) {
    if (!pages[name]) continue;
    const tab = element("button", "fv-tab", label);
    tab.type = "button";
    tab.dataset.tab = name;
    tab.setAttribute("role", "tab");
    tab.addEventListener("click", () => showTab(name));
    tabButtons[name] = tab;
    tabBar.appendChild(tab);
  }
  tabBar.hidden = Object.keys(tabButtons).length < 2;

  function showTab(name) {
    for (const [key, page] of Object.entries(pages)) page.hidden = key !== name;
    for (const [key, tab] of Object.entries(tabButtons)) tab.setAttribute("aria-selected", String(key === name));
    root.dataset.tab = name;
  }

  // over time or across models: their block sits above the tabs, whose panels it drives
  const over = mode === "monitor" ? createTimeline(model, select, () => isDarkTheme())
    : mode === "models" ? createComparison(model, select, () => isDarkTheme()) : null;
  root.dataset.mode = mode;
  root.append(header, controls.element, status.line, error, notice, status.banner, ...(over ? [over.element] : []), tabBar,
    ...Object.values(pages));
  el.appendChild(root);
  showTab("spectra");

  let dataVersion = 0;

  function drawMessages() {
    const message = model.get("error") || "";
    error.textContent = message;
    error.hidden = !message;
    const text = model.get("_notice") || "";
    notice.textContent = text;
    notice.hidden = !text;
  }

  function drawSpecs() {
    const specs = model.get("_specs") || {};
    const datasets = model.get("_datasets") || {};
    const options = { dark: isDarkTheme(), selected: model.get("selected_layer"), version: dataVersion };
    for (const name of Object.keys(panels)) {
      if (specs[name]) panels[name].setSpec(specs[name], datasets, options);
    }
  }

  function drawData() {
    root.dataset.dataVersion = String(++dataVersion); // lets tests and benchmarks wait for new rows
    const datasets = model.get("_datasets") || {};
    for (const panel of Object.values(panels)) panel.setData(datasets, dataVersion);
  }

  let spectrumLayer = model.get("selected_layer");
  function drawSelection() {
    const layer = model.get("selected_layer");
    for (const panel of Object.values(panels)) panel.setSelected(layer);
    if (layer !== spectrumLayer) { // a new layer starts unzoomed
      spectrumLayer = layer;
      panels.spectrum.resetZoom({ onlyIfZoomed: true });
    }
    table.select(layer);
    layerPicker.sync();
    const summary = layerSummary(model.get("_table"), layer);
    const warning = element("span", "fv-sampling-warning", summary.warning);
    warning.hidden = !summary.warning;
    sections.spectrum.querySelector(".fv-spectrum-title").replaceChildren(summary.text, warning);
    root.dataset.selectedLayer = layer || "";
  }

  function drawView() {
    spectrumOptions.sync();
    panels.spectrum.setSignals(spectrumOptions.values(), { reembed: true });
  }

  function drawTable() {
    const rows = model.get("_table") || [];
    table.update(rows);
    // alpha per layer wants ~16 px a layer: beside alpha vs aspect ratio when that fits, above it otherwise
    row.style.setProperty("--fv-alpha-basis", `${Math.max(MIN_ALPHA_WIDTH, LAYER_PX * rows.length + 100)}px`);
    drawSelection();
  }

  function drawExtras() {
    for (const part of extras) part.sync();
    if (tune) pages.tune.querySelector(".fv-tune-charts").hidden = !model.get("_tune")?.available || !model.get("_specs")?.tune_window;
    if (allocationNote) {
      const text = model.get("_allocation_note") || "";
      allocationNote.textContent = text;
      allocationNote.hidden = !text;
      allocationNote.classList.toggle("fv-warn-note", text.startsWith("⚠"));
    }
  }

  const stopListening = listen(model, {
    "change:status change:progress change:_running change:_estimate change:_results_for change:_provisional change:_partial change:error change:window change:q change:windows_per_dim change:stride change:fit": status.sync,
    "change:error change:_notice": drawMessages,
    "change:_specs": drawSpecs,
    "change:_datasets": drawData,
    "change:_table": drawTable,
    "change:selected_layer": drawSelection,
    "change:spectrum_units change:spectrum_methods": drawView,
    "change:window change:q change:windows_per_dim change:stride change:fit change:_limits change:_results_for": controls.sync,
    "change:target change:epsilon change:groups change:alphas_from change:allocation_path change:sweep_windows change:sweep_status change:_sweep_running change:_allocation_note change:_limits change:tune_pruner change:tune_target change:tune_windows change:tune_epsilons change:tune_status change:_tune_running change:_tune change:_specs": drawExtras,
  });

  // JupyterLab flips the attribute while it swaps the theme's style sheets: redraw once it settles
  let themeTimer = null;
  let shownDark = isDarkTheme();
  const observer = new MutationObserver(() => {
    clearTimeout(themeTimer);
    themeTimer = setTimeout(() => {
      if (isDarkTheme() === shownDark) return;
      shownDark = isDarkTheme();
      for (const panel of Object.values(panels)) panel.specKey = null; // force a re-embed in the new theme
      drawSpecs();
      if (over) over.retheme();
    }, 250);
  });
  observer.observe(document.body, { attributes: true, attributeFilter: ["data-jp-theme-light"] });

  controls.sync();
  drawView();
  drawExtras();
  status.sync();
  drawMessages();
  drawTable();
  drawSpecs();

  return () => {
    observer.disconnect();
    clearTimeout(themeTimer);
    stopListening();
    status.dispose();
    controls.dispose();
    for (const part of extras) part.dispose();
    if (over) over.dispose();
    for (const panel of Object.values(panels)) panel.dispose();
  };
}

export { staticModel } from "./static_model.js";
export default { render };
