// One Vega view per chart. The spec arrives once; rows arrive as named data sets and are
// swapped with Vega changesets so zoom and selection survive a recomputation.
import embed, { vega } from "vega-embed";

const SELECTED = "selected_layer";

function copyRows(rows) {
  return (rows || []).map((row) => ({ ...row })); // vega tags the objects it holds
}

function datasetNames(spec) {
  return Object.keys(spec.datasets || {});
}

export class ChartPanel {
  constructor(container, name, onSelect) {
    this.container = container;
    this.name = name;
    this.onSelect = onSelect;
    this.view = null;
    this.spec = null;
    this.specKey = null;
    this.queue = Promise.resolve();
    this.datasets = {};
    this.version = 0;
  }

  /** Re-embed (only when the spec or the theme changed). */
  setSpec(spec, datasets, { dark, selected, version }) {
    const key = JSON.stringify(spec) + (dark ? "|dark" : "|light");
    if (key === this.specKey) return this.queue;
    this.specKey = key;
    this.spec = spec;
    this.datasets = datasets;
    this.version = version;
    this.queue = this.queue.then(() => this.embed(spec, dark, selected)).catch((error) => this.fail(error));
    return this.queue;
  }

  async embed(spec, dark, selected) {
    // the latest rows, even if they arrived while an earlier embed was running
    const datasets = this.datasets;
    const version = this.version;
    const full = structuredClone(spec);
    full.datasets = Object.fromEntries(datasetNames(spec).map((name) => [name, copyRows(datasets[name])]));
    full.params = (full.params || []).map((param) => (param.name === SELECTED ? { ...param, value: selected ?? null } : param));
    full.config = { ...(full.config || {}), background: "transparent" };
    if (this.view) this.view.finalize();
    const result = await embed(this.container, full, {
      actions: false, renderer: "svg", theme: dark ? "dark" : undefined, tooltip: { theme: dark ? "dark" : "light" },
    });
    this.view = result.view;
    this.view.addEventListener("click", (_event, item) => {
      const layer = item && item.datum && item.datum.layer;
      if (typeof layer === "string") this.onSelect(layer);
    });
    this.container.dataset.rendered = "true";
    this.container.dataset.version = String(version);
  }

  /** Swap the rows of the data sets this chart reads; scales, zoom and selection stay. */
  setData(datasets, version) {
    this.datasets = datasets;
    this.version = version;
    this.queue = this.queue.then(async () => {
      if (!this.view || !this.spec) return; // the coming embed uses this.datasets
      let changed = false;
      for (const name of datasetNames(this.spec)) {
        if (!(name in datasets)) continue;
        const rows = copyRows(datasets[name]);
        this.view.change(name, vega.changeset().remove(() => true).insert(rows));
        changed = true;
      }
      if (changed) await this.view.runAsync();
      this.container.dataset.updates = String(Number(this.container.dataset.updates || 0) + 1);
      this.container.dataset.version = String(version);
    }).catch((error) => this.fail(error));
    return this.queue;
  }

  setSelected(layer) {
    this.queue = this.queue.then(async () => {
      if (!this.view) return;
      try {
        this.view.signal(SELECTED, layer ?? null);
        await this.view.runAsync();
      } catch (_error) {
        // a chart without the parameter ignores the selection
      }
    });
    return this.queue;
  }

  fail(error) {
    const message = document.createElement("pre");
    message.className = "fv-chart-error";
    message.textContent = `chart ${this.name} failed: ${error && error.message ? error.message : error}`;
    this.container.replaceChildren(message);
  }

  dispose() {
    if (this.view) this.view.finalize();
    this.view = null;
  }
}
