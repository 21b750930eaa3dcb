// @ts-check
// A model for the offline HTML page: the anywidget model interface over a plain state object,
// with no kernel behind it. The HTML export and the JS tests use this same shim.

/**
 * @param {import("./contract.js").ExplorerState} state the page's state (mutated as the page changes it)
 * @returns {import("./contract.js").WidgetModel}
 */
export function staticModel(state) {
  /** @type {Map<string, Array<() => void>>} */
  const listeners = new Map();
  /** @param {string} name */
  const fire = (name) => (listeners.get(`change:${name}`) || []).slice().forEach((f) => f());
  const model = {
    /** @param {string} name */
    get: (name) => /** @type {any} */ (state)[name],
    /** @param {string} name @param {any} value */
    set(name, value) {
      const current = /** @type {any} */ (state);
      if (current[name] !== value) {
        current[name] = value;
        fire(name);
      }
    },
    /** @param {string} event @param {() => void} callback */
    on(event, callback) { listeners.set(event, [...(listeners.get(event) || []), callback]); },
    /** @param {string} event @param {() => void} callback */
    off(event, callback) { listeners.set(event, (listeners.get(event) || []).filter((g) => g !== callback)); },
    save_changes() {},
    send() {},
  };
  // no kernel here: a click swaps in the spectrum rows the page carries for every layer
  model.on("change:selected_layer", () => {
    const rows = (state._spectra_by_layer || {})[state.selected_layer ?? ""];
    if (rows) model.set("_datasets", { ...state._datasets, ...rows });
  });
  return model;
}
