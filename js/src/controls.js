// @ts-check
import { ALLOCATION_SOURCES, METHOD_LABELS } from "./contract.js";
import { button } from "./dom.js";
import { staleSettings } from "./status.js";
import { checkValue, checkWindowList, DEFAULT_RULES } from "./validate.js";

// The parameter controls. Values go to the kernel on release (change event): a lone change at
// once, a burst (key presses) as its first and then its last value, DEBOUNCE_MS after the burst.
// Typed values are checked with the engine's rules first; an invalid one stays on screen, marked,
// with the reason, and is not sent.
export const DEBOUNCE_MS = 200;

function field(labelText, input, hint) {
  const wrap = document.createElement("label");
  wrap.className = "fv-field";
  const caption = document.createElement("span");
  caption.className = "fv-label";
  caption.textContent = labelText;
  if (hint) wrap.title = hint;
  wrap.dataset.hint = hint || "";
  const readout = document.createElement("output");
  readout.className = "fv-readout";
  const error = document.createElement("span");
  error.className = "fv-field-error";
  error.setAttribute("role", "alert");
  error.hidden = true;
  wrap.append(caption, input, readout, error);
  return { wrap, readout, error };
}

/** Show (or clear, with message null) a field's error; the input is marked invalid meanwhile. */
function markInvalid(entry, input, message) {
  entry.error.textContent = message || "";
  entry.error.hidden = !message;
  input.classList.toggle("fv-invalid", Boolean(message));
  input.setAttribute("aria-invalid", String(Boolean(message)));
  entry.wrap.classList.toggle("fv-field-invalid", Boolean(message));
}

function slider(name, step) {
  const input = document.createElement("input");
  input.type = "range";
  input.name = name;
  input.step = String(step);
  return input;
}

/**
 * Build the controls. `model` is the anywidget model; returns { element, sync(), dispose() }.
 */
export function createControls(model, { debounceMs = DEBOUNCE_MS } = {}) {
  const element = document.createElement("div");
  element.className = "fv-controls";
  element.addEventListener("keydown", (event) => event.stopPropagation());
  const pending = new Map();
  const invalid = new Map(); // name -> the model's value when the entry was refused
  let timer = null;
  let lastSent = -Infinity;

  function flush() {
    timer = null;
    lastSent = performance.now();
    for (const [name, value] of pending) model.set(name, value);
    pending.clear();
    model.save_changes();
  }

  function send(name, value) {
    pending.set(name, value);
    if (timer === null && performance.now() - lastSent >= debounceMs) {
      flush(); // a lone change goes at once: a slider step computed ahead shows without delay
      return;
    }
    if (timer !== null) clearTimeout(timer);
    timer = setTimeout(flush, debounceMs);
  }

  const window = slider("window", 1);
  const q = slider("q", 0.05);
  const perDim = slider("windows_per_dim", 1);
  const stride = document.createElement("input");
  stride.type = "number";
  stride.name = "stride";
  stride.min = "1";
  stride.placeholder = "k×k grid";
  const fit = document.createElement("select");
  fit.name = "fit";

  const fields = {
    window: field("window m", window, "rows of every FARMS window (m); windows are m × ⌊m·Q⌋"),
    q: field("aspect ratio Q", q, "columns per row of every window"),
    windows_per_dim: field("windows / dim k", perDim, "a k × k grid of windows per matrix"),
    stride: field("stride", stride, "explicit stride in entries (leave empty for the k × k grid)"),
    fit: field("fit", fit, "median: PL_Alpha_Hill (paper); peak: reference xmin_peak; ks: WeightWatcher"),
  };
  const refresh = document.createElement("button");
  refresh.type = "button";
  refresh.className = "fv-button";
  refresh.textContent = "re-read weights";
  refresh.title = "recompute after training steps (unchanged layers come from the cache)";
  refresh.addEventListener("click", () => model.send({ type: "refresh" }));
  element.append(...Object.values(fields).map((f) => f.wrap), refresh);

  const readouts = {
    window: () => window.value,
    q: () => Number(q.value).toFixed(2),
    windows_per_dim: () => perDim.value,
  };
  for (const [name, input] of /** @type {Array<[string, HTMLInputElement]>} */ ([["window", window], ["q", q], ["windows_per_dim", perDim]])) {
    input.addEventListener("input", () => { fields[name].readout.textContent = readouts[name](); });
    input.addEventListener("change", () => send(name, Number(input.value)));
  }
  const rules = () => ({ ...DEFAULT_RULES, ...((model.get("_limits") || {}).rules || {}) });
  function checkStride() {
    const checked = checkValue("stride", stride.value, rules().stride, { badInput: stride.validity.badInput });
    markInvalid(fields.stride, stride, checked.error ?? null);
    if (checked.error !== undefined) invalid.set("stride", model.get("stride"));
    else invalid.delete("stride");
    return checked;
  }
  stride.addEventListener("input", checkStride);
  stride.addEventListener("change", () => {
    const checked = checkStride();
    if (checked.error !== undefined) return; // stays on screen, marked; nothing is sent
    perDim.disabled = checked.value !== null;
    send("stride", checked.value);
  });
  fit.addEventListener("change", () => send("fit", fit.value));

  function sync() {
    const limits = model.get("_limits") || {};
    window.min = String(limits.window_min ?? 2);
    window.max = String(limits.window_max ?? 1024);
    q.min = String(limits.q_min ?? 0.1);
    q.max = String(limits.q_max ?? 4);
    perDim.min = "1";
    perDim.max = String(limits.windows_per_dim_max ?? 30);
    const fits = limits.fits ?? ["median", "peak", "ks"];
    if (fit.options.length !== fits.length) {
      fit.replaceChildren(...fits.map((name) => new Option(name, name)));
    }
    // a value the user is still choosing is not overwritten by the kernel's echo
    if (!pending.has("window")) window.value = String(model.get("window"));
    if (!pending.has("q")) q.value = String(model.get("q"));
    if (!pending.has("windows_per_dim")) perDim.value = String(model.get("windows_per_dim"));
    const strideValue = model.get("stride");
    // a refused entry stays as typed until it is corrected or the kernel's value changes
    const keepRefused = invalid.has("stride") && invalid.get("stride") === strideValue;
    if (!pending.has("stride") && !keepRefused) {
      stride.value = strideValue === null || strideValue === undefined ? "" : String(strideValue);
      invalid.delete("stride");
      markInvalid(fields.stride, stride, null);
    }
    perDim.disabled = ((pending.has("stride") ? pending.get("stride") : strideValue) ?? null) !== null;
    if (!pending.has("fit")) fit.value = model.get("fit");
    for (const name of Object.keys(readouts)) fields[name].readout.textContent = readouts[name]();
    const isStatic = Boolean(model.get("_static"));
    // Explorer(monitor): the Monitor's parameters, fixed (the time view's note says why)
    const fixed = isStatic || model.get("_mode") === "monitor";
    for (const input of [window, q, perDim, stride, fit, refresh]) input.disabled = fixed || input.disabled;
    element.classList.toggle("fv-static", isStatic);
    markStale();
  }

  /** Controls whose value the results on screen do not come from are marked (dashed, with a title). */
  function markStale() {
    const stale = new Set(staleSettings(model));
    const shown = model.get("_results_for") || {};
    for (const [name, entry] of Object.entries(fields)) {
      const isStale = stale.has(name);
      entry.wrap.classList.toggle("fv-stale", isStale);
      const then = shown[name] === null || shown[name] === undefined ? "none (the k × k grid)" : String(shown[name]);
      entry.wrap.title = isStale ? `${entry.wrap.dataset.hint} · the results on screen are for ${name} = ${then}`
        : entry.wrap.dataset.hint;
    }
  }

  return {
    element,
    inputs: { window, q, windows_per_dim: perDim, stride, fit, refresh },
    errors: { stride: fields.stride.error },
    sync,
    dispose() { if (timer !== null) clearTimeout(timer); },
  };
}

/** Debounced model.set + save_changes; `pending` holds what the user is still choosing. */
function createSender(model, debounceMs) {
  const pending = new Map();
  let timer = null;
  function flush() {
    if (timer !== null) clearTimeout(timer);
    timer = null;
    if (!pending.size) return;
    for (const [name, value] of pending) model.set(name, value);
    pending.clear();
    model.save_changes();
  }
  return {
    pending,
    flush,
    send(name, value) {
      pending.set(name, value);
      if (timer !== null) clearTimeout(timer);
      timer = setTimeout(flush, debounceMs);
    },
    dispose() { if (timer !== null) clearTimeout(timer); },
  };
}

/**
 * The allocation controls: target sparsity, epsilon, block grouping, whose alphas, and
 * saving the ratios as JSON on the kernel's side. Returns { element, inputs, sync(), dispose() }.
 */
export function createAllocationControls(model, { debounceMs = DEBOUNCE_MS } = {}) {
  const element = document.createElement("div");
  element.className = "fv-controls fv-allocation-controls";
  element.addEventListener("keydown", (event) => event.stopPropagation());
  const sender = createSender(model, debounceMs);

  const target = slider("target", 0.01);
  target.min = "0.05";
  target.max = "0.95";
  const epsilon = slider("epsilon", 0.01);
  epsilon.min = "0";
  epsilon.max = "0.9";
  const grouping = document.createElement("input");
  grouping.type = "checkbox";
  grouping.name = "groups";
  const method = document.createElement("select");
  method.name = "alphas_from";
  const path = document.createElement("input");
  path.type = "text";
  path.name = "allocation_path";
  path.className = "fv-path";
  path.spellcheck = false;
  const save = button("save_allocation", "save JSON",
    "write the ratios (layer name -> sparsity) as JSON, on the kernel's side");

  const fields = {
    target: field("target sparsity S", target, "parameter-weighted mean sparsity of the analysed layers"),
    epsilon: field("spread ε", epsilon, "ratios span S(1 − ε) … S(1 + ε): larger α, more pruning"),
    grouping: field("group by block", grouping, "one ratio per transformer block (layers.N, h.N, blocks.N …)"),
    alphas_from: field("ratios from", method, "whose alphas `explorer.allocation` and the JSON use"),
    allocation_path: field("file", path, "where 'save JSON' writes, relative to the kernel's working directory"),
  };
  element.append(...Object.values(fields).map((f) => f.wrap), save);

  const readouts = {
    target: () => Number(target.value).toFixed(2),
    epsilon: () => Number(epsilon.value).toFixed(2),
  };
  for (const [name, input] of /** @type {Array<[string, HTMLInputElement]>} */ ([["target", target], ["epsilon", epsilon]])) {
    input.addEventListener("input", () => { fields[name].readout.textContent = readouts[name](); });
    input.addEventListener("change", () => sender.send(name, Number(input.value)));
  }
  grouping.addEventListener("change", () => sender.send("groups", grouping.checked));
  method.addEventListener("change", () => sender.send("alphas_from", method.value));
  path.addEventListener("change", () => sender.send("allocation_path", path.value));
  save.addEventListener("click", () => {
    if (path.value !== model.get("allocation_path")) sender.send("allocation_path", path.value);
    sender.flush(); // the kernel writes where the field says now
    model.send({ type: "save_allocation" });
  });

  function sync() {
    const limits = model.get("_limits") || {};
    const sources = limits.allocation_sources ?? ALLOCATION_SOURCES;
    const labels = limits.method_labels ?? METHOD_LABELS;
    if (method.options.length !== sources.length) {
      method.replaceChildren(...sources.map((name) => new Option(labels[name] ?? name, name)));
    }
    if (!sender.pending.has("target")) target.value = String(model.get("target"));
    if (!sender.pending.has("epsilon")) epsilon.value = String(model.get("epsilon"));
    if (!sender.pending.has("groups")) grouping.checked = Boolean(model.get("groups"));
    if (!sender.pending.has("alphas_from")) method.value = model.get("alphas_from");
    if (!sender.pending.has("allocation_path") && document.activeElement !== path) path.value = model.get("allocation_path") ?? "";
    for (const name of Object.keys(readouts)) fields[name].readout.textContent = readouts[name]();
  }

  return { element, inputs: { target: target, epsilon, grouping, alphas_from: method, allocation_path: path, save }, sync, dispose: sender.dispose };
}

/** Parse "32, 64 128" into sorted unique window sizes, or null when any entry is refused. */
export function parseWindows(text) {
  return checkWindowList(text, DEFAULT_RULES.window).values ?? null;
}

/** The sweep controls: the windows to try and a button that runs the sweep in the kernel. */
export function createSweepControls(model, { debounceMs = DEBOUNCE_MS } = {}) {
  const element = document.createElement("div");
  element.className = "fv-controls fv-sweep-controls";
  element.addEventListener("keydown", (event) => event.stopPropagation());
  const sender = createSender(model, debounceMs);
  const windows = document.createElement("input");
  windows.type = "text";
  windows.name = "sweep_windows";
  windows.className = "fv-path";
  windows.spellcheck = false;
  const run = button("run_sweep", "run sweep",
    "fit FARMS at every window size (a few analyses: runs in the background)");
  const windowsField = field("window sizes m", windows, "comma-separated; the current q, k and fit are used");
  const warning = document.createElement("span");
  warning.className = "fv-field-warning";
  warning.hidden = true;
  windowsField.wrap.appendChild(warning);
  const status = document.createElement("span");
  status.className = "fv-sweep-status";
  element.append(windowsField.wrap, run, status);
  let refused = false;

  function check() {
    const limits = model.get("_limits") || {};
    const rule = { ...DEFAULT_RULES.window, ...((limits.rules || {}).window || {}) };
    const checked = checkWindowList(windows.value, rule, limits.window_max);
    refused = checked.error !== undefined;
    markInvalid(windowsField, windows, checked.error ?? null);
    warning.textContent = checked.warning ?? "";
    warning.hidden = !checked.warning;
    run.disabled = refused || Boolean(model.get("_sweep_running"));
    return checked.values;
  }
  windows.addEventListener("input", check);
  windows.addEventListener("change", () => {
    const values = check();
    if (values) sender.send("sweep_windows", values);
  });
  run.addEventListener("click", () => {
    const values = check();
    if (!values) return; // the field says why
    sender.send("sweep_windows", values);
    sender.flush();
    model.send({ type: "run_sweep" });
  });

  function sync() {
    if (!sender.pending.has("sweep_windows") && document.activeElement !== windows && !refused) {
      windows.value = (model.get("sweep_windows") || []).join(", ");
    }
    status.textContent = model.get("sweep_status") || "";
    const running = Boolean(model.get("_sweep_running"));
    run.disabled = running || refused;
    element.classList.toggle("fv-sweep-running", running);
  }

  return { element, inputs: { sweep_windows: windows, run }, sync, dispose: sender.dispose };
}
