// @ts-check
// Explorer({name: model}): the model picker (`shown_model`: the model the single-model panels show)
// and three comparison panels: each model's alpha per layer side by side, the change in alpha per
// layer from the first model (sorted), and the selected layer's spectra overlaid. `view_method`
// picks the method they draw and `selected_layer` the layer; both are Vega parameters, so
// switching sends no rows. The kernel re-analyses every model when a slider moves.
import { ChartPanel } from "./charts.js";
import { COMPARISON_PANELS, METHOD_LABELS } from "./contract.js";
import { listen } from "./dom.js";
import { segmented } from "./views.js";

const CAPTIONS = {
  models_alpha: "Each model's α per layer (model order) for the chosen method; click a point to pick a layer.",
  models_delta: "The change in α per layer from the first model (each other model minus it), largest increase on top; " +
    "zero: the layer's spectrum did not change.",
  models_spectra: "The picked layer's eigenvalue density in each model (log-log, the same windows); dotted: each fit's xmin.",
};

/**
 * The comparison block above the tabs. Returns { element, sync(), retheme(), dispose() }.
 * @param {import("./contract.js").WidgetModel} model
 * @param {(layer: string) => void} select
 * @param {() => boolean} dark
 */
export function createComparison(model, select, dark) {
  const element = document.createElement("section");
  element.className = "fv-models";
  element.addEventListener("keydown", (event) => event.stopPropagation());
  const bar = document.createElement("div");
  bar.className = "fv-models-bar";
  const method = segmented("view_method", "method", ["farms", "esd"], METHOD_LABELS, null);
  let picker = segmented("shown_model", "panels below show", [], {}, null);
  bar.append(picker.group, method.group);
  const note = document.createElement("div");
  note.className = "fv-note fv-models-note";
  const row = document.createElement("div");
  row.className = "fv-row";
  const panels = {};
  const sections = {};
  for (const name of COMPARISON_PANELS) {
    const section = document.createElement("section");
    section.className = `fv-panel fv-panel-${name}`;
    const box = document.createElement("div");
    box.className = "fv-chart";
    box.dataset.chart = name;
    const caption = document.createElement("p");
    caption.className = "fv-caption";
    caption.textContent = CAPTIONS[name];
    section.append(box, caption);
    sections[name] = section;
    panels[name] = new ChartPanel(box, name, select, { zoomable: name !== "models_delta" });
  }
  row.append(sections.models_delta, sections.models_spectra);
  element.append(bar, note, sections.models_alpha, row);

  const set = (name, value) => {
    model.set(name, value);
    model.save_changes();
  };
  for (const button of Object.values(method.buttons)) button.addEventListener("click", () => set("view_method", button.value));

  let shownNames = "";
  function drawPicker(names) {
    if (names.join("\n") === shownNames) return;
    shownNames = names.join("\n");
    const next = segmented("shown_model", "panels below show", names, {}, null);
    for (const button of Object.values(next.buttons)) button.addEventListener("click", () => set("shown_model", button.value));
    picker.group.replaceWith(next.group);
    picker = next;
  }

  let version = 0;
  function drawData() {
    const state = model.get("_comparison") || {};
    drawPicker(state.models || []);
    note.textContent = state.note || "";
    note.hidden = !state.note;
    element.dataset.kind = state.kind || "";
    const specs = state.specs || {};
    version += 1;
    for (const [name, panel] of Object.entries(panels)) {
      if (!specs[name]) continue;
      panel.setSignals({ view_method: model.get("view_method") || "farms" });
      panel.setSpec(specs[name], state.datasets || {}, { dark: dark(), selected: model.get("selected_layer"), version });
      panel.setData(state.datasets || {}, version);
    }
    element.dataset.version = String(version);
    drawChoice();
  }

  function drawChoice() {
    const chosen = { view_method: model.get("view_method") || "farms", shown_model: model.get("shown_model") };
    for (const [name, part] of /** @type {Array<[string, any]>} */ ([["view_method", method], ["shown_model", picker]])) {
      for (const [option, button] of Object.entries(part.buttons)) {
        const on = option === chosen[name];
        button.setAttribute("aria-checked", String(on));
        button.tabIndex = on ? 0 : -1;
      }
    }
    element.dataset.shownModel = chosen.shown_model || "";
    for (const panel of Object.values(panels)) panel.setSignals({ view_method: chosen.view_method });
  }

  function drawSelection() {
    for (const panel of Object.values(panels)) panel.setSelected(model.get("selected_layer"));
  }

  const stopListening = listen(model, {
    "change:_comparison": drawData,
    "change:view_method change:shown_model": drawChoice,
    "change:selected_layer": drawSelection,
  });
  drawData();

  return {
    element,
    sync: drawData,
    retheme() { for (const panel of Object.values(panels)) panel.specKey = null; drawData(); },
    dispose() {
      stopListening();
      for (const panel of Object.values(panels)) panel.dispose();
    },
  };
}
