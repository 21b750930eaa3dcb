// @ts-check
// View options: how the charts read, not what is computed. The spectrum's axis (each method's
// eigenvalues ÷ their mean, or raw) and which methods it shows; the sweep tab's layer picker;
// the keyboard step through layers that the alpha charts and the picker share. Each control sets
// a synced trait (so the kernel, the offline page and Python see the same choice) and nothing
// is recomputed: the charts switch Vega parameters.
import { METHOD_LABELS, SPECTRUM_METHODS, SPECTRUM_UNITS } from "./contract.js";

const UNIT_LABELS = { normalised: "÷ mean eigenvalue", raw: "raw eigenvalues" };
const UNIT_TITLES = {
  normalised: "each method's eigenvalues divided by their own mean: FARMS' smaller windows and the whole " +
    "matrix land on one axis, and only the shapes of their spectra differ",
  raw: "the eigenvalues as computed: FARMS' windows are smaller than the matrix, so its spectrum sits to the left",
};
const SHOWN_LABELS = { both: "both", ...METHOD_LABELS };

/** The analysed layers in model order (the table's rows that were not skipped). */
export function analysedLayers(rows) {
  return (rows || []).filter((row) => !row.skipped_reason).map((row) => row.layer);
}

/** The layer `step` places after `current` in `layers`, held at the ends. */
export function stepLayer(layers, current, step) {
  if (!layers.length) return null;
  const at = layers.indexOf(current);
  if (at < 0) return layers[0];
  return layers[Math.min(layers.length - 1, Math.max(0, at + step))];
}

/** A radio group of buttons (one per option); returns { group, buttons }. */
export function segmented(name, label, options, labels, titles) {
  const group = document.createElement("div");
  group.className = "fv-segmented";
  group.setAttribute("role", "radiogroup");
  group.setAttribute("aria-label", label);
  const caption = document.createElement("span");
  caption.className = "fv-label";
  caption.textContent = label;
  group.appendChild(caption);
  /** @type {Object<string, HTMLButtonElement>} */
  const buttons = {};
  for (const option of options) {
    const button = document.createElement("button");
    button.type = "button";
    button.className = "fv-segment";
    button.name = name;
    button.value = option;
    button.textContent = labels[option] ?? option;
    if (titles && titles[option]) button.title = titles[option];
    button.setAttribute("role", "radio");
    buttons[option] = button;
    group.appendChild(button);
  }
  return { group, buttons };
}

/**
 * The spectrum's view options above its chart. Returns { element, sync(), values() }.
 * @param {import("./contract.js").WidgetModel} model
 */
export function createSpectrumOptions(model) {
  const element = document.createElement("div");
  element.className = "fv-view-options";
  const units = segmented("spectrum_units", "x axis", SPECTRUM_UNITS, UNIT_LABELS, UNIT_TITLES);
  const shown = segmented("spectrum_methods", "show", SPECTRUM_METHODS, SHOWN_LABELS, null);
  element.append(units.group, shown.group);
  const set = (name, value) => {
    model.set(name, value);
    model.save_changes();
  };
  /** @type {Array<[string, {group: HTMLDivElement, buttons: Object<string, HTMLButtonElement>}]>} */
  const parts = [["spectrum_units", units], ["spectrum_methods", shown]];
  for (const [name, part] of parts) {
    for (const button of Object.values(part.buttons)) {
      button.addEventListener("click", () => set(name, button.value));
    }
    // arrow keys move within a group, as in any radio group
    part.group.addEventListener("keydown", (event) => {
      const options = Object.keys(part.buttons);
      const at = options.indexOf(model.get(name));
      const step = { ArrowRight: 1, ArrowDown: 1, ArrowLeft: -1, ArrowUp: -1 }[event.key];
      if (!step) return;
      event.preventDefault();
      event.stopPropagation();
      const next = options[(at + step + options.length) % options.length];
      set(name, next);
      part.buttons[next].focus();
    });
  }

  function values() {
    return { spectrum_units: model.get("spectrum_units") || SPECTRUM_UNITS[0],
      spectrum_methods: model.get("spectrum_methods") || SPECTRUM_METHODS[0] };
  }

  function sync() {
    const now = values();
    for (const [name, part] of parts) {
      for (const [option, button] of Object.entries(part.buttons)) {
        const on = option === now[name];
        button.setAttribute("aria-checked", String(on));
        button.tabIndex = on ? 0 : -1;
      }
    }
    element.dataset.units = now.spectrum_units;
    element.dataset.methods = now.spectrum_methods;
  }

  return { element, sync, values };
}

/**
 * The sweep tab's layer picker: the layer whose alpha-against-window the lower panel draws (the
 * explorer's selected layer). Returns { element, sync() }.
 * @param {import("./contract.js").WidgetModel} model
 */
export function createLayerPicker(model) {
  const element = document.createElement("label");
  element.className = "fv-field fv-layer-picker";
  const caption = document.createElement("span");
  caption.className = "fv-label";
  caption.textContent = "layer (↑ ↓ step through them)";
  const select = document.createElement("select");
  select.name = "sweep_layer";
  element.append(caption, select);
  element.addEventListener("keydown", (event) => event.stopPropagation());
  select.addEventListener("change", () => {
    model.set("selected_layer", select.value);
    model.save_changes();
  });
  let shown = "";

  function sync() {
    const layers = analysedLayers(model.get("_table"));
    const key = layers.join("\n");
    if (key !== shown) {
      select.replaceChildren(...layers.map((name) => new Option(name, name)));
      shown = key;
    }
    const layer = model.get("selected_layer");
    if (layer && layers.includes(layer)) select.value = layer;
  }

  return { element, sync };
}
