// @ts-check
// What the kernel is doing and what the charts show: the status line with its progress bar (windows
// done) and a Stop button; the cost of the current settings ("3,900 windows: about 1.2 s") with a
// "run anyway" button when it is above the budget; the settings the results on screen come from,
// and a banner while they are provisional (a coarse grid) or partial (the layers done so far).
import { formatSeconds } from "./format.js";
import { element, button } from "./dom.js";

const RESULT_PARAMS = ["window", "q", "windows_per_dim", "stride", "fit"];

/** "window 100, Q 1.00, k 10, median fit", as the kernel's status writes settings. */
export function paramsText(params) {
  if (!params || params.window === undefined) return "";
  const grid = params.stride !== null && params.stride !== undefined ? `stride ${params.stride}` : `k ${params.windows_per_dim}`;
  return `window ${params.window}, Q ${Number(params.q).toFixed(2)}, ${grid}, ${params.fit} fit`;
}

/** The settings (of RESULT_PARAMS) whose control differs from what the results on screen come from. */
export function staleSettings(model) {
  const shown = model.get("_results_for") || {};
  if (shown.window === undefined) return [];
  return RESULT_PARAMS.filter((name) => {
    const now = model.get(name);
    const then = shown[name];
    if (name === "windows_per_dim" && (model.get("stride") ?? null) !== null) {
      return false; // k is not used while a stride is set
    }
    return (now ?? null) !== (then ?? null);
  });
}

/**
 * The status area. `root` gets the classes fv-running, fv-provisional and fv-partial (and the
 * matching data attributes) so charts and tests can follow. Returns { header, line, banner, sync, dispose }.
 */
export function createStatus(model, root) {
  const header = element("div", "fv-status");
  const bar = element("div", "fv-progress");
  const fill = element("div", "fv-progress-fill");
  bar.appendChild(fill);
  bar.setAttribute("role", "progressbar");
  bar.setAttribute("aria-valuemin", "0");
  bar.setAttribute("aria-valuemax", "100");
  const text = element("span", "fv-status-text");
  text.setAttribute("aria-live", "polite");
  const elapsed = element("span", "fv-elapsed");
  const stop = button("stop", "stop", "stop the run within a second; the results on screen stay");
  stop.addEventListener("click", () => model.send({ type: "stop" }));
  header.append(bar, text, elapsed, stop);

  const line = element("div", "fv-run-line");
  const estimate = element("span", "fv-estimate");
  const run = button("run_anyway", "run anyway", "run the current settings now, whatever the estimate");
  run.addEventListener("click", () => model.send({ type: "run_anyway" }));
  const shown = element("span", "fv-results-for");
  line.append(estimate, run, shown);

  const banner = element("div", "fv-provisional-banner");
  banner.setAttribute("role", "status");

  let timer = null;
  let startedAt = null;

  function sync() {
    const running = Boolean(model.get("_running"));
    const progress = Math.round(100 * (model.get("progress") || 0));
    text.textContent = model.get("status") || "";
    fill.style.width = `${progress}%`;
    bar.setAttribute("aria-valuenow", String(progress));
    root.classList.toggle("fv-running", running);
    stop.hidden = !running;
    if (running && startedAt === null) {
      startedAt = performance.now();
      timer = setInterval(() => { elapsed.textContent = formatSeconds((performance.now() - startedAt) / 1000); }, 100);
    } else if (!running && startedAt !== null) {
      clearInterval(timer);
      timer = null;
      startedAt = null;
      elapsed.textContent = "";
    }

    const cost = model.get("_estimate") || {};
    const waiting = Boolean(cost.waiting);
    estimate.textContent = cost.text ? `current settings: ${cost.text}` : "";
    estimate.classList.toggle("fv-over-budget", Boolean(cost.over_budget));
    const stale = staleSettings(model);
    run.hidden = running || !(waiting || (stale.length && !model.get("error")));
    run.textContent = waiting || cost.over_budget ? "run anyway" : "run";
    root.dataset.waiting = String(waiting);

    const results = model.get("_results_for") || {};
    const provisional = Boolean(model.get("_provisional"));
    const partial = Boolean(model.get("_partial"));
    const described = paramsText(results);
    shown.textContent = described ? `results on screen: ${described}` : "";
    shown.classList.toggle("fv-stale", stale.length > 0);
    shown.title = stale.length ? `the controls now differ (${stale.join(", ")}): these results are for the settings before` : "";
    root.classList.toggle("fv-provisional", provisional);
    root.classList.toggle("fv-partial", partial);
    root.dataset.provisional = String(provisional);
    root.dataset.partial = String(partial);
    banner.hidden = !(provisional || partial);
    banner.textContent = provisional
      ? "Provisional: FARMS on a coarse grid of windows per layer. The exact result replaces it when ready."
      : partial ? `Partial: the ${results.layers ?? ""} layers analysed so far; the others follow.` : "";
    line.hidden = Boolean(model.get("_static")) || !(estimate.textContent || shown.textContent);
  }

  return {
    header, line, banner, sync,
    buttons: { stop, run },
    dispose() { if (timer !== null) clearInterval(timer); },
  };
}
