// How the Explorer's views read and respond: keyboard, wheel, the spectrum's view options, the
// sweep's layer picker, the table's CSV and copy. The shipped bundle in jsdom, and the table's
// pure functions from src/.
import assert from "node:assert/strict";
import { test } from "node:test";
import { BUNDLE, fakeModel, openPage } from "../test-support/page.mjs";

const dom = openPage();
const { default: widget } = await import(BUNDLE);
const { tableCsv, tableTsv, safeCell } = await import(new URL("../src/table.js", import.meta.url));

const ROWS = [
  { layer: "a", kind: "linear", shape: "64 x 64", aspect_ratio: 1, alpha_esd: 2.1, alpha_farms: 2.2, alpha_delta: 0.1,
    baseline_esd: 2.12, baseline_farms: 2.11, window: "32 x 32", num_windows: 9, coverage: 1, covers_whole_matrix: false,
    sampling_note: "", skipped_reason: "" },
  { layer: "c", kind: "LayerNorm", shape: "64", skipped_reason: "1-D weight" },
  { layer: "=HYPERLINK(\"x\")", kind: "linear", shape: "256 x 64", aspect_ratio: 4, alpha_esd: 3.5, alpha_farms: 2.1,
    alpha_delta: -1.4, baseline_esd: 3.45, baseline_farms: 2.11, window: "32 x 32", num_windows: 1, coverage: 0.03,
    covers_whole_matrix: false, sampling_note: "a single window per matrix; windows cover 3% of the matrix", skipped_reason: "" },
  { layer: "b", kind: "linear", shape: "64 x 256", aspect_ratio: 4, alpha_esd: 3.4, alpha_farms: 2.0, alpha_delta: -1.4,
    baseline_esd: 3.45, baseline_farms: 2.11, window: "32 x 32", num_windows: 9, coverage: 1, covers_whole_matrix: false,
    sampling_note: "", skipped_reason: "" },
];


function mount(extra = {}) {
  const state = {
    window: 32, q: 1, windows_per_dim: 3, stride: null, fit: "median", selected_layer: "a",
    status: "", progress: 1, error: "", _running: false, _notice: "",
    _limits: { window_min: 2, window_max: 64, q_min: 0.1, q_max: 4, windows_per_dim_max: 30, fits: ["median"] },
    _specs: {}, _datasets: {}, _table: ROWS, target: 0.7, epsilon: 0.2, groups: false, alphas_from: "farms",
    allocation_path: "a.json", sweep_windows: [8, 16], sweep_status: "", _sweep_running: false, _allocation_note: "",
    spectrum_units: "normalised", spectrum_methods: "both", ...extra,
  };
  const model = fakeModel(state);
  const el = document.createElement("div");
  document.body.appendChild(el);
  const cleanup = widget.render({ model, el });
  return { model, cleanup, root: el.querySelector(".farms-viz") };
}

const key = (target, name) => target.dispatchEvent(new dom.window.KeyboardEvent("keydown", { key: name, bubbles: true }));

test("arrow keys on the table move the selection through the analysed layers", () => {
  const { model, root, cleanup } = mount();
  const row = (layer) => root.querySelector(`.fv-table tbody tr[data-layer='${layer}']`);
  assert.equal(row("a").tabIndex, 0); // the selected row is the table's tab stop
  assert.equal(row("a").getAttribute("aria-selected"), "true");
  row("a").focus();
  key(row("a"), "ArrowDown"); // the skipped layer is stepped over
  assert.equal(model.get("selected_layer"), "=HYPERLINK(\"x\")");
  key(document.activeElement, "End");
  assert.equal(model.get("selected_layer"), "b");
  assert.equal(document.activeElement, row("b"));
  assert.equal(row("b").getAttribute("aria-selected"), "true");
  assert.equal(row("a").tabIndex, -1);
  key(document.activeElement, "ArrowUp");
  assert.equal(model.get("selected_layer"), "=HYPERLINK(\"x\")");
  cleanup();
});

test("arrow keys on an alpha chart step through the layers in model order", () => {
  const { model, root, cleanup } = mount();
  const chart = root.querySelector(".fv-chart[data-chart='alpha_by_layer']");
  assert.equal(chart.tabIndex, 0);
  assert.equal(chart.getAttribute("aria-roledescription"), "chart");
  key(chart, "ArrowRight");
  key(chart, "ArrowRight");
  assert.equal(model.get("selected_layer"), "b");
  key(chart, "ArrowRight"); // held at the end
  assert.equal(model.get("selected_layer"), "b");
  key(chart, "ArrowLeft");
  assert.equal(model.get("selected_layer"), "=HYPERLINK(\"x\")");
  cleanup();
});

test("the wheel reaches a chart only with a modifier held: the page scrolls otherwise", () => {
  const { root, cleanup } = mount();
  const chart = root.querySelector(".fv-chart[data-chart='spectrum']");
  const inner = document.createElement("div"); // stands for Vega's SVG
  chart.appendChild(inner);
  const reached = [];
  inner.addEventListener("wheel", (event) => reached.push(event.ctrlKey));
  inner.dispatchEvent(new dom.window.WheelEvent("wheel", { deltaY: 100, bubbles: true }));
  assert.deepEqual(reached, []);
  const hint = chart.previousElementSibling.querySelector(".fv-zoom-hint");
  assert.equal(hint.hidden, false); // says how to zoom
  inner.dispatchEvent(new dom.window.WheelEvent("wheel", { deltaY: 100, ctrlKey: true, bubbles: true }));
  assert.deepEqual(reached, [true]);
  assert.equal(chart.dataset.zoomed, "true");
  assert.ok(chart.previousElementSibling.querySelector(".fv-reset-zoom.fv-zoomed"));
  chart.dispatchEvent(new dom.window.MouseEvent("pointerleave"));
  chart.dispatchEvent(new dom.window.MouseEvent("pointerdown", { bubbles: true })); // a click activates it
  inner.dispatchEvent(new dom.window.WheelEvent("wheel", { deltaY: 100, bubbles: true }));
  assert.deepEqual(reached, [true, false]);
  chart.previousElementSibling.querySelector(".fv-reset-zoom").dispatchEvent(new dom.window.MouseEvent("click"));
  assert.equal(chart.dataset.zoomed, "false");
  cleanup();
});

test("the spectrum's view options set their traits; the sweep's picker sets the selected layer", () => {
  const { model, root, cleanup } = mount();
  const raw = root.querySelector("button[name='spectrum_units'][value='raw']");
  assert.equal(raw.getAttribute("aria-checked"), "false");
  raw.dispatchEvent(new dom.window.MouseEvent("click"));
  assert.equal(model.get("spectrum_units"), "raw");
  assert.equal(raw.getAttribute("aria-checked"), "true");
  const farms = root.querySelector("button[name='spectrum_methods'][value='farms']");
  farms.dispatchEvent(new dom.window.MouseEvent("click"));
  assert.equal(model.get("spectrum_methods"), "farms");
  assert.equal(root.querySelector(".fv-view-options").dataset.methods, "farms");
  const picker = root.querySelector("select[name='sweep_layer']");
  assert.deepEqual([...picker.options].map((o) => o.value), ["a", "=HYPERLINK(\"x\")", "b"]); // analysed only
  picker.value = "b";
  picker.dispatchEvent(new Event("change"));
  assert.equal(model.get("selected_layer"), "b");
  model.set("selected_layer", "a");
  assert.equal(picker.value, "a");
  cleanup();
});

test("the spectrum title carries the random baselines and the layer's sampling warning", () => {
  const { model, root, cleanup } = mount();
  const title = root.querySelector(".fv-spectrum-title");
  assert.match(title.textContent, /α ESD 2\.100 \(random 2\.120\)/);
  assert.equal(title.querySelector(".fv-sampling-warning").hidden, true);
  model.set("selected_layer", "=HYPERLINK(\"x\")");
  assert.match(title.querySelector(".fv-sampling-warning").textContent, /a single window per matrix; windows cover 3%/);
  assert.match(root.querySelector(".fv-table tr.fv-warn").textContent, /⚠ a single window/);
  cleanup();
});

test("CSV and copied text are formula-safe: text starting with = + - @ gets a leading '", () => {
  assert.equal(safeCell("=1+1"), "'=1+1");
  assert.equal(safeCell("@SUM(A1)"), "'@SUM(A1)");
  assert.equal(safeCell("-x"), "'-x");
  assert.equal(safeCell("+x"), "'+x");
  assert.equal(safeCell(-1.4), "-1.4"); // a number is never a formula
  assert.equal(safeCell("layer.0"), "layer.0");
  const csv = tableCsv(ROWS);
  const lines = csv.trim().split("\r\n");
  assert.equal(lines.length, 1 + ROWS.length);
  assert.ok(lines[0].startsWith("layer,kind,shape,aspect_ratio,alpha_esd,baseline_esd"));
  assert.ok(lines[3].startsWith("\"'=HYPERLINK(\"\"x\"\")\",linear")); // quoted, quotes doubled, defused
  assert.ok(lines[3].includes(",-1.4,"));
  const tsv = tableTsv(ROWS).split("\n");
  assert.equal(tsv[0].split("\t")[0], "layer");
  assert.equal(tsv[3].split("\t")[0], "'=HYPERLINK(\"x\")");
});

test("the table's CSV and copy buttons are there, beside its title", () => {
  const { root, cleanup } = mount();
  const tools = root.querySelector(".fv-table-title .fv-table-tools");
  assert.deepEqual([...tools.querySelectorAll("button")].map((b) => b.name), ["download_csv", "copy_table"]);
  cleanup();
});
