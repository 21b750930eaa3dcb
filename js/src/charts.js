// @ts-check
// One Vega view per chart. The spec arrives once; rows arrive as named data sets and are
// swapped with Vega changesets so zoom and selection survive a recomputation.
//
// Widths follow the container: the plot widths in a spec are replaced by what fits the
// element's width (measured, then corrected once by what the axes and legends really took),
// and the chart is re-embedded when the element's width changes. A chart whose element is
// hidden (another tab) keeps its rows and is drawn when it is shown.
//
// Charts scroll with the page: the mouse wheel zooms a chart only with Ctrl (or ⌘ or Alt) held,
// or after a click on the chart (until the pointer leaves it); otherwise the wheel event never
// reaches Vega and the page scrolls. A "reset zoom" button (and Escape, and Vega's double-click)
// restores the axes. The chart menu (⋯) exports PNG and SVG. A chart is one tab stop: with
// `onStep`, the arrow keys move the selected layer.
import embed, { vega } from "vega-embed";

const SELECTED = "selected_layer";
const INK = "fv_ink"; // farms_viz.charts.style.INK: outlines of selected marks, in the theme's ink
const INKS = { light: "#222222", dark: "#f0f0f0" }; // style.LIGHT_INK, style.DARK_INK
const MIN_PLOT_WIDTH = 160;
const RESIZE_MS = 150;
const ACTIONS_PX = 38; // vega-embed's padding for its menu button
const HINT_MS = 1600;
// first guesses of the pixels around a plot (y axis, its title, padding); measured afterwards
const GUESS = { view: 80, facetCell: 70 };
export const ZOOM_HINT = "Ctrl + wheel (or click the chart first) to zoom; the page scrolls otherwise";

/** True when this wheel event should zoom (a modifier held), not scroll the page. */
export function zoomsOnWheel(event, active) {
  return Boolean(active || event.ctrlKey || event.metaKey || event.altKey);
}

function copyRows(rows) {
  return (rows || []).map((row) => ({ ...row })); // vega tags the objects it holds
}

function datasetNames(spec) {
  return Object.keys(spec.datasets || {});
}

/** True where a layout engine runs (a browser), false in jsdom: there charts draw at spec size. */
function hasLayout(element) {
  const body = element.ownerDocument && element.ownerDocument.body;
  return Boolean(body && body.clientWidth > 0);
}

/**
 * The spec with its plot widths set so the whole chart is `width` pixels wide.
 * `overhead`: pixels outside the plots (per view; per column for a facet). `stack`: views side by
 * side (hconcat) go one above the other instead. Returns { spec, plots, views } where plots is the
 * sum of the plot widths across one row.
 */
export function sizeSpec(spec, width, overhead, stack = false) {
  const out = structuredClone(spec);
  if (Array.isArray(out.hconcat) && stack) {
    // too narrow for the views side by side (a narrow output area): one above the other
    out.vconcat = out.hconcat;
    delete out.hconcat;
  }
  if (Array.isArray(out.hconcat)) {
    const n = out.hconcat.length;
    const spacing = (out.spacing ?? 20) * (n - 1);
    const each = Math.max(MIN_PLOT_WIDTH, Math.floor((width - spacing - overhead * n) / n));
    for (const child of out.hconcat) child.width = each;
    return { spec: out, plots: each * n + spacing, views: n };
  }
  if (Array.isArray(out.vconcat)) {
    const each = Math.max(MIN_PLOT_WIDTH, Math.floor(width - overhead));
    for (const child of out.vconcat) child.width = each;
    return { spec: out, plots: each, views: 1 };
  }
  if (out.facet && out.spec) {
    const cell = out.spec.width ?? 170;
    const spacing = out.spacing ?? 20;
    const columns = Math.max(1, Math.floor((width + spacing) / (cell + overhead + spacing)));
    out.columns = columns;
    out.spec.width = Math.max(120, Math.floor((width + spacing) / columns - overhead - spacing));
    return { spec: out, plots: (out.spec.width + spacing) * columns - spacing, views: columns };
  }
  out.width = Math.max(MIN_PLOT_WIDTH, Math.floor(width - overhead));
  return { spec: out, plots: out.width, views: 1 };
}

export class ChartPanel {
  /**
   * @param {HTMLElement} container the element the chart is drawn in
   * @param {string} name the panel's name (contract PANELS)
   * @param {(layer: string) => void} onSelect a mark with a layer was clicked
   * @param {{onStep?: (step: number) => void, zoomable?: boolean}} [options] onStep: arrow keys move the
   *   selection by one layer; zoomable: the chart has a zoom to reset
   */
  constructor(container, name, onSelect, { onStep = null, zoomable = true } = {}) {
    this.container = container;
    this.name = name;
    this.onSelect = onSelect;
    this.onStep = onStep;
    this.signals = {}; // Vega parameters the page sets (view options), applied at every embed
    this.zoomed = false;
    this.active = false; // clicked: the wheel zooms until the pointer leaves
    this.hintTimer = null;
    this.view = null;
    this.spec = null;
    this.specKey = null;
    this.queue = Promise.resolve();
    this.datasets = {};
    this.shown = {}; // JSON of the rows each data set last drew: unchanged rows are not re-sent to Vega
    this.version = 0;
    this.dark = false;
    this.selected = null;
    this.width = 0; // the width the current view was sized for
    // pixels outside the plots, measured per layout: views side by side, or stacked when too narrow
    this.overheads = { side: null, stacked: null };
    this.stale = false; // the spec or rows changed while hidden: draw when shown
    this.resizeTimer = null;
    if (typeof ResizeObserver !== "undefined") {
      this.resizeObserver = new ResizeObserver(() => {
        clearTimeout(this.resizeTimer);
        this.resizeTimer = setTimeout(() => this.onResize(), RESIZE_MS);
      });
      this.resizeObserver.observe(container);
    }
    this.tools = this.createTools(zoomable);
    if (container.parentElement) container.parentElement.insertBefore(this.tools, container);
    this.listen();
  }

  /** The row above the chart: the zoom hint (shown when the wheel scrolled instead) and "reset zoom". */
  createTools(zoomable) {
    const tools = document.createElement("div");
    tools.className = "fv-chart-tools";
    this.hint = document.createElement("span");
    this.hint.className = "fv-zoom-hint";
    this.hint.textContent = ZOOM_HINT;
    this.hint.hidden = true;
    this.hint.setAttribute("role", "status");
    this.resetButton = document.createElement("button");
    this.resetButton.type = "button";
    this.resetButton.className = "fv-button fv-reset-zoom";
    this.resetButton.textContent = "reset zoom";
    this.resetButton.title = "restore the axes (Escape or a double-click on the chart does the same)";
    this.resetButton.hidden = !zoomable;
    this.resetButton.addEventListener("click", () => this.resetZoom());
    tools.append(this.hint, this.resetButton);
    return tools;
  }

  listen() {
    const c = this.container;
    c.tabIndex = 0;
    c.setAttribute("role", "group");
    c.setAttribute("aria-roledescription", "chart");
    this.handlers = {
      // capture phase: a wheel event stopped here never reaches Vega, and the page scrolls
      wheel: (event) => {
        if (zoomsOnWheel(event, this.active)) {
          this.markZoomed(true);
          return;
        }
        event.stopPropagation();
        this.showHint();
      },
      pointerdown: () => {
        this.active = true;
        c.classList.add("fv-zoom-active");
      },
      pointerleave: () => {
        this.active = false;
        c.classList.remove("fv-zoom-active");
      },
      pointermove: (event) => { if (this.active && event.buttons) this.markZoomed(true); }, // a drag pans
      dblclick: () => this.markZoomed(false), // Vega resets a scale-bound zoom on a double-click
      keydown: (event) => this.onKey(event),
    };
    for (const [type, handler] of Object.entries(this.handlers)) {
      c.addEventListener(type, handler, { capture: type === "wheel", passive: type === "wheel" });
    }
  }

  onKey(event) {
    const steps = { ArrowLeft: -1, ArrowUp: -1, ArrowRight: 1, ArrowDown: 1 };
    if (event.key in steps && this.onStep) {
      event.preventDefault();
      event.stopPropagation();
      this.onStep(steps[event.key]);
    } else if (event.key === "Escape" && this.zoomed) {
      event.stopPropagation();
      this.resetZoom();
    }
  }

  showHint() {
    this.hint.hidden = false;
    clearTimeout(this.hintTimer);
    this.hintTimer = setTimeout(() => { this.hint.hidden = true; }, HINT_MS);
  }

  markZoomed(zoomed) {
    this.zoomed = zoomed;
    this.resetButton.classList.toggle("fv-zoomed", zoomed);
    this.container.dataset.zoomed = String(zoomed);
  }

  /** Back to the axes the data sets (a fresh embed of the same spec and rows). */
  resetZoom({ onlyIfZoomed = false } = {}) {
    if (onlyIfZoomed && !this.zoomed) return this.queue;
    this.markZoomed(false);
    if (!this.spec || this.available() === 0) return this.queue;
    this.queue = this.queue.then(() => this.embed()).catch((error) => this.fail(error));
    return this.queue;
  }

  /**
   * Set Vega parameters (e.g. the spectrum's view options); kept for every later embed. With
   * `reembed`, the chart is drawn afresh (its axes' labels, hence its size, change with them).
   */
  setSignals(values, { reembed = false } = {}) {
    const changed = Object.entries(values).some(([name, value]) => this.signals[name] !== value);
    Object.assign(this.signals, values);
    if (reembed) return changed ? this.resetZoom() : this.queue;
    this.queue = this.queue.then(async () => {
      if (!this.view) return;
      let changed = false;
      for (const [name, value] of Object.entries(values)) {
        try {
          this.view.signal(name, value);
          changed = true;
        } catch {
          // a chart without the parameter ignores it
        }
      }
      if (changed) await this.view.runAsync();
    });
    return this.queue;
  }

  /** Pixels available, 0 when hidden; null where there is no layout (jsdom). */
  available() {
    if (!hasLayout(this.container)) return null;
    const width = this.container.clientWidth;
    return width > 0 ? Math.max(0, width - ACTIONS_PX) : 0;
  }

  markVersion(version) {
    this.container.dataset.version = String(version);
  }

  /** Re-embed (only when the spec or the theme changed). */
  setSpec(spec, datasets, { dark, selected, version }) {
    const key = JSON.stringify(spec) + (dark ? "|dark" : "|light");
    if (key === this.specKey) return this.queue;
    this.specKey = key;
    this.spec = spec;
    this.datasets = datasets;
    this.version = version;
    this.dark = dark;
    this.selected = selected;
    return this.redraw();
  }

  redraw() {
    if (this.available() === 0) { // hidden: draw when shown
      this.stale = true;
      this.markVersion(this.version);
      return this.queue;
    }
    this.stale = false;
    this.queue = this.queue.then(() => this.embed()).catch((error) => this.fail(error));
    return this.queue;
  }

  onResize() {
    const width = this.available();
    if (!width || !this.spec) return;
    if (this.stale || Math.abs(width - this.width) > 8) this.redraw();
  }

  async embed(retries = 2) {
    // the latest rows, even if they arrived while an earlier embed was running
    const datasets = this.datasets;
    const version = this.version;
    const width = this.available();
    let full = this.spec;
    let sized = null;
    let layout = "side";
    if (width) {
      if (Array.isArray(full.hconcat) && full.hconcat.length > 1) {
        // side by side only while every view keeps its minimum plot width (measured overhead)
        const n = full.hconcat.length;
        const per = this.overheads.side ?? GUESS.view;
        if (width < n * (MIN_PLOT_WIDTH + per) + (full.spacing ?? 20) * (n - 1)) layout = "stacked";
      }
      const overhead = this.overheads[layout] ?? (full.facet ? GUESS.facetCell : GUESS.view);
      sized = sizeSpec(full, width, overhead, layout === "stacked");
      full = sized.spec;
    } else {
      full = structuredClone(full);
    }
    full.datasets = Object.fromEntries(datasetNames(full).map((name) => [name, copyRows(datasets[name])]));
    const values = { ...this.signals, [SELECTED]: this.selected ?? null, [INK]: this.dark ? INKS.dark : INKS.light };
    full.params = (full.params || []).map((param) => (param.name in values && !param.select ? { ...param, value: values[param.name] } : param));
    full.config = { ...(full.config || {}), background: "transparent" };
    if (full.description) this.container.setAttribute("aria-label", full.description);
    if (this.view) this.view.finalize();
    // vega-embed makes its element an inline-block as wide as the chart: give it a child, so the
    // panel's own element keeps the container's width and can be measured
    if (!this.target || this.target.parentElement !== this.container) {
      this.target = document.createElement("div");
      this.container.replaceChildren(this.target);
    }
    const result = await embed(this.target, full, {
      // the chart menu: PNG and SVG export only (the editor and the source views would go online)
      actions: { export: true, source: false, compiled: false, editor: false },
      downloadFileName: `farms_viz_${this.name}`,
      renderer: "svg", theme: this.dark ? "dark" : undefined, tooltip: { theme: this.dark ? "dark" : "light" },
    });
    this.view = result.view;
    this.width = width || 0;
    this.shown = Object.fromEntries(datasetNames(full).map((name) => [name, JSON.stringify(datasets[name] || [])]));
    this.view.addEventListener("click", (_event, item) => {
      const layer = item && item.datum && item.datum.layer;
      if (typeof layer === "string") this.onSelect(layer);
    });
    if (sized && retries > 0) {
      // what the axes and legends really took (labels differ with the data): size once more if
      // the guess was off, or the chart spills over
      const svg = this.container.querySelector("svg.marks");
      const drawn = svg ? Number(svg.getAttribute("width")) : 0;
      // (axis labels that overhang the plot change with the width: measure again when off by more than 12 px)
      if (drawn > 0 && (drawn > width || drawn < width - 12)) {
        this.overheads[layout] = Math.max(0, (drawn - sized.plots) / sized.views) + (drawn > width ? 2 : 0);
        return this.embed(retries - 1);
      }
      if (drawn > 0 && this.overheads[layout] === null) {
        this.overheads[layout] = Math.max(0, (drawn - sized.plots) / sized.views);
      }
    }
    this.container.dataset.rendered = "true";
    this.markVersion(version);
    return undefined;
  }

  /** Swap the rows of the data sets this chart reads; scales, zoom and selection stay. */
  setData(datasets, version) {
    this.datasets = datasets;
    this.version = version;
    if (!this.spec) { // no chart yet: nothing to draw
      this.markVersion(version);
      return this.queue;
    }
    if (this.available() === 0) { // hidden: the embed when it is shown uses these rows
      this.stale = true;
      this.markVersion(version);
      return this.queue;
    }
    this.queue = this.queue.then(async () => {
      if (!this.view) { // the embed failed; its message stays
        this.markVersion(version);
        return;
      }
      let changed = false;
      for (const name of datasetNames(this.spec)) {
        if (!(name in datasets)) continue;
        const text = JSON.stringify(datasets[name]);
        if (this.shown[name] === text) continue;
        this.shown[name] = text;
        this.view.change(name, vega.changeset().remove(() => true).insert(copyRows(datasets[name])));
        changed = true;
      }
      if (changed) {
        await this.view.runAsync();
        this.container.dataset.updates = String(Number(this.container.dataset.updates || 0) + 1);
      }
      this.markVersion(version);
    }).catch((error) => this.fail(error));
    return this.queue;
  }

  setSelected(layer) {
    this.selected = layer ?? null;
    this.queue = this.queue.then(async () => {
      if (!this.view) return;
      try {
        this.view.signal(SELECTED, layer ?? null);
        await this.view.runAsync();
      } catch {
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
    this.markVersion(this.version);
  }

  dispose() {
    clearTimeout(this.resizeTimer);
    clearTimeout(this.hintTimer);
    for (const [type, handler] of Object.entries(this.handlers || {})) {
      this.container.removeEventListener(type, handler, { capture: type === "wheel" });
    }
    if (this.resizeObserver) this.resizeObserver.disconnect();
    if (this.view) this.view.finalize();
    this.view = null;
  }
}
