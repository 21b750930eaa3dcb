// @ts-check
// The Tune tab: the settings farms_viz.tune tries (pruner, target, windows, epsilons), a run button
// and a stop button, the run's progress, the best setting so far with "apply best" (it sets the
// sliders and the allocation), and the rows measured so far in a table. The charts are ChartPanels
// of widget.js (panels tune_window and tune_epsilon). Without evaluate= the tab says how to get it.
import { METHOD_LABELS } from "./contract.js";
import { formatNumber } from "./format.js";
import { checkValue, checkWindowList, DEFAULT_RULES } from "./validate.js";
import { element, button } from "./dom.js";

const PRUNER_LABELS = { magnitude: "magnitude", wanda: "Wanda", sparsegpt: "SparseGPT" };
const APPLY_FROM = [["", "any allocation"], ["farms", METHOD_LABELS.farms], ["esd", METHOD_LABELS.esd], ["uniform", "uniform"]];
const EPSILON_RULE = { integer: false, min: 0, hint: "the allocation's spread, in [0, 1)" };
const COLUMNS = [
  ["method", "allocation"], ["window", "window m"], ["grid", "grid"], ["q", "Q"], ["epsilon", "ε"],
  ["target", "target"], ["metric", "metric"], ["sparsity", "sparsity reached"], ["seconds", "seconds"],
];

function field(labelText, input, hint) {
  const wrap = element("label", "fv-field");
  wrap.title = hint;
  const error = element("span", "fv-field-error");
  error.setAttribute("role", "alert");
  error.hidden = true;
  wrap.append(element("span", "fv-label", labelText), input, error);
  return { wrap, error };
}

/**
 * Parse "0.1, 0.2 0.3" into sorted unique spreads in [0, 1), or say why not.
 * @param {string} text
 * @returns {{values?: number[], error?: string}}
 */
export function checkEpsilonList(text) {
  const tokens = String(text ?? "").split(/[\s,;]+/).filter(Boolean);
  if (!tokens.length) return { error: "type at least one spread, e.g. 0.1, 0.2, 0.3" };
  const refused = tokens.filter((token) => {
    const checked = checkValue("epsilon", token, EPSILON_RULE);
    return checked.error !== undefined || /** @type {number} */ (checked.value) >= 1;
  });
  if (refused.length) return { error: `spreads ε must be numbers in [0, 1); not: ${refused.join(", ")}` };
  return { values: [...new Set(tokens.map(Number))].sort((a, b) => a - b) };
}

/** One table cell's text. */
function cell(row, name, metricDigits) {
  if (name === "method") return row.method === "uniform" ? "uniform" : (METHOD_LABELS[row.method] ?? row.method);
  if (name === "grid") {
    if (row.stride !== null && row.stride !== undefined) return `stride ${row.stride}`;
    return row.windows_per_dim !== null && row.windows_per_dim !== undefined ? `k ${row.windows_per_dim}` : "";
  }
  if (name === "metric") return row.metric === null || row.metric === undefined ? (row.error ? "failed" : "") : Number(row.metric).toPrecision(metricDigits);
  if (name === "sparsity") return formatNumber(row.sparsity, 4);
  if (name === "seconds") return formatNumber(row.seconds, 2);
  if (name === "q" || name === "epsilon" || name === "target") return row[name] === null || row[name] === undefined ? "" : String(row[name]);
  return row[name] === null || row[name] === undefined ? "" : String(row[name]);
}

/**
 * The Tune tab's controls and table. Returns { element, table, sync(), dispose() }: `element` goes
 * above the charts, `table` below them.
 * @param {import("./contract.js").WidgetModel} model
 */
export function createTuneTab(model) {
  const element_ = element("div", "fv-tune");
  const how = element("div", "fv-note fv-tune-how");
  const howCode = element("code", "fv-tune-how-code");

  const controls = element("div", "fv-controls fv-tune-controls");
  controls.addEventListener("keydown", (event) => event.stopPropagation());
  const pruner = document.createElement("select");
  pruner.name = "tune_pruner";
  const target = document.createElement("input");
  target.type = "range";
  target.name = "tune_target";
  target.min = "0.05";
  target.max = "0.95";
  target.step = "0.01";
  const targetReadout = element("output", "fv-readout");
  const windows = document.createElement("input");
  windows.type = "text";
  windows.name = "tune_windows";
  windows.className = "fv-path";
  windows.spellcheck = false;
  const epsilons = document.createElement("input");
  epsilons.type = "text";
  epsilons.name = "tune_epsilons";
  epsilons.spellcheck = false;
  const fields = {
    pruner: field("pruner", pruner, "magnitude needs nothing more; Wanda and SparseGPT need calibration= inputs"),
    target: field("target sparsity", target, "every setting prunes to this parameter-weighted mean sparsity"),
    windows: field("FARMS windows m", windows, "comma-separated; the current k (or stride), Q and fit are used"),
    epsilons: field("spreads ε", epsilons, "comma-separated, in [0, 1): the allocation's spread around the target"),
  };
  fields.target.wrap.insertBefore(targetReadout, fields.target.error);
  const warning = element("span", "fv-field-warning");
  warning.hidden = true;
  fields.windows.wrap.appendChild(warning);
  const run = button("run_tune", "run tune", "prune a copy of the model at every setting and measure it (in the background)");
  const stop = button("stop_tune", "stop", "stop after the setting being measured; the rows so far stay");
  controls.append(...Object.values(fields).map((f) => f.wrap), run, stop);

  const progressLine = element("div", "fv-tune-progress-line");
  const bar = element("div", "fv-progress");
  const fill = element("div", "fv-progress-fill");
  bar.appendChild(fill);
  bar.setAttribute("role", "progressbar");
  const status = element("span", "fv-tune-status");
  status.setAttribute("aria-live", "polite");
  progressLine.append(bar, status);

  const bestLine = element("div", "fv-tune-best");
  const bestText = element("span", "fv-tune-best-text");
  const from = document.createElement("select");
  from.name = "tune_apply_from";
  from.replaceChildren(...APPLY_FROM.map(([value, label]) => new Option(`best of ${label}`, value)));
  const apply = button("apply_best_tune", "apply best",
    "set the window (grid, Q, fit) and the allocation's target, ε and alphas to this setting");
  const applied = element("span", "fv-tune-applied");
  bestLine.append(bestText, from, apply, applied);
  const error = element("div", "fv-error fv-tune-error");
  error.hidden = true;
  element_.append(how, controls, progressLine, error, bestLine);

  const table = element("section", "fv-panel fv-panel-tune-table");
  const tableTitle = element("div", "fv-panel-title", "settings measured (in the order they ran; ★ the best)");
  const wrap = element("div", "fv-table-wrap");
  const grid = element("table", "fv-table fv-tune-table");
  const head = element("thead");
  const body = element("tbody");
  grid.append(head, body);
  wrap.appendChild(grid);
  table.append(tableTitle, wrap);

  const refused = { windows: false, epsilons: false };
  let pending = null; // a target still being chosen

  function checkWindows() {
    const limits = model.get("_limits") || {};
    const rule = { ...DEFAULT_RULES.window, ...((limits.rules || {}).window || {}) };
    const checked = checkWindowList(windows.value, rule, limits.window_max);
    refused.windows = checked.error !== undefined;
    markInvalid(fields.windows, windows, checked.error);
    warning.textContent = checked.warning ?? "";
    warning.hidden = !checked.warning;
    return checked.values;
  }
  function checkEpsilons() {
    const checked = checkEpsilonList(epsilons.value);
    refused.epsilons = checked.error !== undefined;
    markInvalid(fields.epsilons, epsilons, checked.error);
    return checked.values;
  }
  function markInvalid(entry, input, message) {
    entry.error.textContent = message || "";
    entry.error.hidden = !message;
    input.classList.toggle("fv-invalid", Boolean(message));
    input.setAttribute("aria-invalid", String(Boolean(message)));
    run.disabled = refused.windows || refused.epsilons || Boolean(model.get("_tune_running"));
  }
  const save = (values) => {
    for (const [name, value] of Object.entries(values)) model.set(name, value);
    model.save_changes();
  };
  pruner.addEventListener("change", () => save({ tune_pruner: pruner.value }));
  target.addEventListener("input", () => {
    pending = Number(target.value);
    targetReadout.textContent = Number(target.value).toFixed(2);
  });
  target.addEventListener("change", () => {
    pending = null;
    save({ tune_target: Number(target.value) });
  });
  windows.addEventListener("input", checkWindows);
  windows.addEventListener("change", () => { const v = checkWindows(); if (v) save({ tune_windows: v }); });
  epsilons.addEventListener("input", checkEpsilons);
  epsilons.addEventListener("change", () => { const v = checkEpsilons(); if (v) save({ tune_epsilons: v }); });
  run.addEventListener("click", () => {
    const w = checkWindows();
    const e = checkEpsilons();
    if (!w || !e) return; // the fields say why
    const settings = { pruner: pruner.value, target: Number(target.value), windows: w, epsilons: e };
    save({ tune_windows: w, tune_epsilons: e, tune_pruner: settings.pruner, tune_target: settings.target });
    // the settings travel with the request too: ipywidgets holds back a state update while an earlier
    // one is in flight, and this message would overtake it
    model.send({ type: "run_tune", ...settings });
  });
  stop.addEventListener("click", () => model.send({ type: "stop_tune" }));
  apply.addEventListener("click", () => model.send({ type: "apply_best_tune", method: from.value }));

  let headFor = "";
  function drawTable(state) {
    const metric = state.metric || "metric";
    if (headFor !== metric) {
      const tr = element("tr");
      for (const [name, label] of COLUMNS) tr.appendChild(element("th", "", name === "metric" ? metric : label));
      head.replaceChildren(tr);
      headFor = metric;
    }
    const rows = state.rows || [];
    body.replaceChildren(...rows.map((row) => {
      const tr = element("tr");
      tr.dataset.method = row.method;
      if (row.best) tr.classList.add("fv-best");
      if (row.error) {
        tr.classList.add("fv-warn");
        tr.title = row.error;
      }
      for (const [name] of COLUMNS) {
        const text = cell(row, name, 4);
        tr.appendChild(element("td", "", name === "metric" && row.best ? `★ ${text}` : text));
      }
      return tr;
    }));
    table.hidden = !rows.length;
  }

  function sync() {
    const state = model.get("_tune") || {};
    const available = Boolean(state.available);
    const running = Boolean(model.get("_tune_running"));
    how.hidden = available;
    howCode.textContent = state.how_to || "";
    how.replaceChildren("The Tune tab prunes a copy of the model at every setting and measures it with your evaluate " +
      "function, to choose the window, the allocation and its spread. Give it one: ", howCode);
    controls.hidden = progressLine.hidden = !available;
    const pruners = state.pruners || ["magnitude", "wanda", "sparsegpt"];
    if (pruner.options.length !== pruners.length) {
      pruner.replaceChildren(...pruners.map((name) => new Option(PRUNER_LABELS[name] ?? name, name)));
    }
    for (const option of pruner.options) {
      option.disabled = option.value !== "magnitude" && !state.calibration;
      option.title = option.disabled ? "needs calibration= inputs: Explorer(model, evaluate=fn, calibration=batches)" : "";
    }
    pruner.value = model.get("tune_pruner");
    if (pending === null) target.value = String(model.get("tune_target"));
    targetReadout.textContent = Number(target.value).toFixed(2);
    if (document.activeElement !== windows && !refused.windows) windows.value = (model.get("tune_windows") || []).join(", ");
    if (document.activeElement !== epsilons && !refused.epsilons) epsilons.value = (model.get("tune_epsilons") || []).join(", ");
    run.disabled = running || refused.windows || refused.epsilons;
    stop.hidden = !running;
    status.textContent = model.get("tune_status") || "";
    const planned = Number(state.planned || 0);
    const done = Number(state.done || 0);
    fill.style.width = `${planned ? Math.round((100 * done) / planned) : 0}%`;
    bar.setAttribute("aria-valuenow", String(planned ? Math.round((100 * done) / planned) : 0));
    element_.classList.toggle("fv-tune-running", running);
    element_.dataset.rows = String((state.rows || []).length);
    element_.dataset.running = String(running);
    const message = state.error || "";
    error.textContent = message;
    error.hidden = !message;
    const best = state.best || {};
    const choice = best[from.value || "all"];
    bestLine.hidden = !available || !Object.keys(best).length;
    bestText.textContent = choice ? `best${running ? " so far" : ""}: ${choice}` : "no row of this allocation yet";
    for (const option of from.options) option.disabled = !best[option.value || "all"];
    apply.disabled = !choice;
    applied.textContent = state.applied || "";
    drawTable(state);
  }
  from.addEventListener("change", sync);

  return { element: element_, table, inputs: { pruner, target, windows, epsilons, run, stop, apply, from }, sync,
    dispose() {} };
}
