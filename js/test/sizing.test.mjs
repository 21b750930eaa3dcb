// Chart sizing: plot widths from the space the output area gives a chart.
import assert from "node:assert/strict";
import { test } from "node:test";
import { JSDOM } from "jsdom";

const dom = new JSDOM("<!doctype html><body></body>", { pretendToBeVisual: true });
for (const name of ["window", "document", "HTMLElement", "Node", "getComputedStyle"]) {
  globalThis[name] = name === "window" ? dom.window : dom.window[name];
}
const { sizeSpec } = await import(new URL("../src/charts.js", import.meta.url));

const twoViews = { hconcat: [{ mark: "point" }, { mark: "bar" }], spacing: 20 };

test("views side by side share the width", () => {
  const { spec, plots, views } = sizeSpec(twoViews, 900, 60);
  assert.equal(views, 2);
  assert.deepEqual(spec.hconcat.map((v) => v.width), [380, 380]);
  assert.equal(plots + 2 * 60, 900);
});

test("stacked: views one above the other, each as wide as the chart", () => {
  const { spec, views } = sizeSpec(twoViews, 540, 140, true);
  assert.equal(spec.hconcat, undefined);
  assert.equal(views, 1);
  assert.deepEqual(spec.vconcat.map((v) => v.width), [400, 400]);
  assert.deepEqual(twoViews.hconcat.map((v) => v.width), [undefined, undefined]); // the input is untouched
});
