// Explorer(monitor) and Explorer({name: model}) front end in jsdom: the step slider, follow, the
// method and model pickers set the traits the kernel reads.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BUNDLE, fakeModel, openPage } from "../test-support/page.mjs";

const dom = openPage();
const { default: widget } = await import(BUNDLE);
const { stepIndex } = await import(new URL("../src/time.js", import.meta.url));


function mount(extra) {
  const state = {
    window: 16, q: 1, windows_per_dim: 3, stride: null, fit: "median", selected_layer: "a", status: "", progress: 1,
    error: "", _running: false, _notice: "", _limits: { window_min: 2, window_max: 64, q_min: 0.1, q_max: 4,
      windows_per_dim_max: 30, fits: ["median"] }, _specs: {}, _datasets: {},
    _table: [{ layer: "a", skipped_reason: "" }, { layer: "b", skipped_reason: "" }], target: 0.7, epsilon: 0.2,
    groups: false, alphas_from: "farms", allocation_path: "a.json", sweep_windows: [8], sweep_status: "",
    _sweep_running: false, _allocation_note: "", spectrum_units: "normalised", spectrum_methods: "both",
    step: null, follow_latest: true, view_method: "farms", shown_model: null, _timeline: {}, _comparison: {}, ...extra,
  };
  const model = fakeModel(state);
  const el = document.createElement("div");
  document.body.appendChild(el);
  const cleanup = widget.render({ model, el });
  return { model, cleanup, root: el.querySelector(".farms-viz") };
}

test("the step slider moves over the kept steps; leaving the newest stops following", () => {
  const { model, root, cleanup } = mount({ _mode: "monitor", step: 30, _timeline: { steps: [0, 10, 30], note: "" } });
  const slider = root.querySelector("input[name='step']");
  assert.equal(slider.max, "2");
  assert.equal(slider.value, "2");
  assert.ok(root.querySelector("input[name='window']").disabled); // the Monitor's parameters
  assert.equal(root.querySelector(".fv-tab[data-tab='sweep']"), null);
  slider.value = "1";
  slider.dispatchEvent(new Event("change"));
  assert.equal(model.get("step"), 10);
  assert.equal(model.get("follow_latest"), false);
  assert.equal(root.querySelector(".fv-timeline").dataset.step, "10");
  slider.value = "2";
  slider.dispatchEvent(new Event("change"));
  assert.deepEqual([model.get("step"), model.get("follow_latest")], [30, true]);
  model.set("_timeline", { steps: [0, 10, 30, 40], note: "" }); // a new step arrives
  assert.equal(slider.max, "3");
  root.querySelector(".fv-timeline button[value='esd']").dispatchEvent(new dom.window.MouseEvent("click"));
  assert.equal(model.get("view_method"), "esd");
  cleanup();
});

test("the model picker and the method set their traits", () => {
  const { model, root, cleanup } = mount({ _mode: "models", shown_model: "base",
    _comparison: { models: ["base", "tuned"], specs: {}, datasets: {}, note: "" } });
  const tuned = root.querySelector(".fv-models button[name='shown_model'][value='tuned']");
  assert.equal(root.querySelector(".fv-models button[value='base']").getAttribute("aria-checked"), "true");
  tuned.dispatchEvent(new dom.window.MouseEvent("click"));
  assert.equal(model.get("shown_model"), "tuned");
  assert.equal(tuned.getAttribute("aria-checked"), "true");
  assert.equal(root.querySelector("input[name='window']").disabled, false); // sliders re-run both
  cleanup();
});

test("a step the kernel no longer keeps puts the slider on the newest", () => {
  assert.equal(stepIndex([0, 10, 30], 10), 1);
  assert.equal(stepIndex([0, 10, 30], 5), 2);
  assert.equal(stepIndex([], 5), 0);
});
