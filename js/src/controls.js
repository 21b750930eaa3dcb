// The parameter controls. Values go to the kernel on release (change event), debounced, so a
// drag sends one value and a burst of key presses sends the last one.
export const DEBOUNCE_MS = 200;

function field(labelText, input, hint) {
  const wrap = document.createElement("label");
  wrap.className = "fv-field";
  const caption = document.createElement("span");
  caption.className = "fv-label";
  caption.textContent = labelText;
  if (hint) wrap.title = hint;
  const readout = document.createElement("output");
  readout.className = "fv-readout";
  wrap.append(caption, input, readout);
  return { wrap, readout };
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
  let timer = null;

  function flush() {
    timer = null;
    for (const [name, value] of pending) model.set(name, value);
    pending.clear();
    model.save_changes();
  }

  function send(name, value) {
    pending.set(name, value);
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
  for (const [name, input] of [["window", window], ["q", q], ["windows_per_dim", perDim]]) {
    input.addEventListener("input", () => { fields[name].readout.textContent = readouts[name](); });
    input.addEventListener("change", () => send(name, Number(input.value)));
  }
  stride.addEventListener("change", () => {
    const value = stride.value === "" ? null : Math.max(1, Math.round(Number(stride.value)));
    perDim.disabled = value !== null;
    send("stride", value);
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
    if (!pending.has("stride")) stride.value = strideValue === null || strideValue === undefined ? "" : String(strideValue);
    perDim.disabled = stride.value !== "";
    if (!pending.has("fit")) fit.value = model.get("fit");
    for (const name of Object.keys(readouts)) fields[name].readout.textContent = readouts[name]();
    const isStatic = Boolean(model.get("_static"));
    for (const input of [window, q, perDim, stride, fit, refresh]) input.disabled = isStatic || input.disabled;
    element.classList.toggle("fv-static", isStatic);
  }

  return {
    element,
    inputs: { window, q, windows_per_dim: perDim, stride, fit, refresh },
    sync,
    dispose() { if (timer !== null) clearTimeout(timer); },
  };
}
