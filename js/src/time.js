// @ts-check
// Explorer(monitor): the step slider and the time view. The slider moves over the recorded steps
// whose analysis the kernel keeps (_timeline.steps) and sets `step`, which every other panel shows;
// leaving the newest step turns `follow_latest` off (new steps then no longer move the slider), and
// going back to it, or ticking "follow", turns it on. The time view is one chart (the mean alpha
// per method, then every layer's alpha for `view_method`): new steps swap its rows, the step,
// method and selected layer are Vega parameters, so scrubbing sends no rows.
import { ChartPanel } from "./charts.js";
import { METHOD_LABELS, TIMELINE_PANEL } from "./contract.js";
import { listen } from "./dom.js";
import { analysedLayers, createLayerPicker, segmented } from "./views.js";

const CAPTION = "Top: the mean α over the layers per method at each recorded step. Below: every layer's α for the chosen " +
  "method (click a line, or pick a layer, to highlight it). Dotted: the step the panels below show; move the step slider " +
  "to scrub them back in time.";

/** Text of a step for the readout: numbers as the kernel sent them. */
export function stepText(step) {
  return step === null || step === undefined ? "–" : String(step);
}

/** The slider position of `step` in `steps` (the newest when absent). */
export function stepIndex(steps, step) {
  const at = steps.indexOf(step);
  return at < 0 ? Math.max(0, steps.length - 1) : at;
}

/**
 * The time view block above the tabs. Returns { element, sync(), dispose() }.
 * @param {import("./contract.js").WidgetModel} model
 * @param {(layer: string) => void} select
 * @param {() => boolean} dark
 */
export function createTimeline(model, select, dark) {
  const element = document.createElement("section");
  element.className = "fv-timeline";
  element.addEventListener("keydown", (event) => event.stopPropagation());
  const bar = document.createElement("div");
  bar.className = "fv-step-bar";
  const label = document.createElement("label");
  label.className = "fv-field fv-step-field";
  const caption = document.createElement("span");
  caption.className = "fv-label";
  caption.textContent = "step (the panels below show it)";
  const slider = document.createElement("input");
  slider.type = "range";
  slider.name = "step";
  slider.min = "0";
  slider.step = "1";
  const readout = document.createElement("output");
  readout.className = "fv-readout fv-step-readout";
  label.append(caption, slider, readout);
  const follow = document.createElement("label");
  follow.className = "fv-check fv-follow";
  const followBox = document.createElement("input");
  followBox.type = "checkbox";
  followBox.name = "follow_latest";
  follow.append(followBox, " follow the newest step");
  follow.title = "move to each newly recorded step (turned off when you move the slider back)";
  const method = segmented("view_method", "method", ["farms", "esd"], METHOD_LABELS, null);
  const picker = createLayerPicker(model);
  picker.element.querySelector("select").name = "time_layer";
  bar.append(label, follow, method.group, picker.element);
  const note = document.createElement("div");
  note.className = "fv-note fv-timeline-note";
  const chartBox = document.createElement("div");
  chartBox.className = "fv-chart";
  chartBox.dataset.chart = TIMELINE_PANEL;
  const panel = document.createElement("section");
  panel.className = `fv-panel fv-panel-${TIMELINE_PANEL}`;
  const captionText = document.createElement("p");
  captionText.className = "fv-caption";
  captionText.textContent = CAPTION;
  panel.append(chartBox, captionText);
  element.append(bar, note, panel);
  const chart = new ChartPanel(chartBox, TIMELINE_PANEL, select, { zoomable: true });

  const steps = () => (model.get("_timeline") || {}).steps || [];
  slider.addEventListener("input", () => { readout.textContent = stepText(steps()[Number(slider.value)]); });
  slider.addEventListener("change", () => {
    const all = steps();
    const at = Number(slider.value);
    if (!all.length) return;
    model.set("step", all[at]);
    model.set("follow_latest", at === all.length - 1);
    model.save_changes();
  });
  followBox.addEventListener("change", () => {
    model.set("follow_latest", followBox.checked);
    model.save_changes();
  });
  for (const button of Object.values(method.buttons)) {
    button.addEventListener("click", () => {
      model.set("view_method", button.value);
      model.save_changes();
    });
  }

  let version = 0;
  function drawData() {
    const state = model.get("_timeline") || {};
    const all = state.steps || [];
    slider.max = String(Math.max(0, all.length - 1));
    slider.disabled = all.length < 2;
    const params = `window ${model.get("window")}, Q ${model.get("q")}, ` +
      (model.get("stride") === null ? `k ${model.get("windows_per_dim")}` : `stride ${model.get("stride")}`) +
      `, ${model.get("fit")} fit: the Monitor's parameters, fixed (its history was computed with them; ` +
      "explore others with Explorer(monitor.model, ...))";
    note.textContent = [state.note, params].filter(Boolean).join(" · ");
    element.dataset.steps = String(all.length);
    if (!state.spec) return;
    version += 1;
    chart.setSignals(signals());
    chart.setSpec(state.spec, state.datasets || {}, { dark: dark(), selected: model.get("selected_layer"), version });
    chart.setData(state.datasets || {}, version);
    drawStep();
  }

  function signals() {
    return { current_step: model.get("step") ?? null, view_method: model.get("view_method") || "farms" };
  }

  function drawStep() {
    const all = steps();
    const step = model.get("step");
    slider.value = String(stepIndex(all, step));
    readout.textContent = `${stepText(step)}${all.length ? ` (${stepIndex(all, step) + 1} of ${all.length})` : ""}`;
    followBox.checked = Boolean(model.get("follow_latest"));
    for (const [option, button] of Object.entries(method.buttons)) {
      const on = option === (model.get("view_method") || "farms");
      button.setAttribute("aria-checked", String(on));
      button.tabIndex = on ? 0 : -1;
    }
    element.dataset.step = stepText(step);
    chart.setSignals(signals());
  }

  function drawSelection() {
    chart.setSelected(model.get("selected_layer"));
    picker.sync();
    element.dataset.layers = String(analysedLayers(model.get("_table")).length);
  }

  const stopListening = listen(model, {
    "change:_timeline": drawData,
    "change:step change:follow_latest change:view_method": drawStep,
    "change:selected_layer change:_table": drawSelection,
  });
  drawData();
  drawStep();
  drawSelection();

  return {
    element,
    sync: drawData,
    /** Redraw in the page's theme. */
    retheme() { chart.specKey = null; drawData(); },
    dispose() {
      stopListening();
      chart.dispose();
    },
  };
}
