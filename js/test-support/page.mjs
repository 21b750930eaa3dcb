// The page the front-end tests run the shipped bundle in: jsdom (no browser) and a fake anywidget
// model (no kernel). Shared by the files in test/.
import { JSDOM } from "jsdom";

const GLOBALS = ["window", "document", "MutationObserver", "HTMLElement", "Node", "Option", "Event", "getComputedStyle"];

/**
 * A jsdom page whose window, document and DOM classes are the globals the bundle uses.
 * @returns {JSDOM}
 */
export function openPage() {
  const dom = new JSDOM("<!doctype html><body data-jp-theme-light='true'></body>", { pretendToBeVisual: true });
  for (const name of GLOBALS) {
    globalThis[name] = name === "window" ? dom.window : dom.window[name];
  }
  return dom;
}

/** The shipped bundle's module (import it after openPage()). */
export const BUNDLE = new URL("../../farms_viz/widget/static/widget.js", import.meta.url);

/**
 * A stand-in for anywidget's model over a plain state object: get/set/on/off as the widget uses
 * them, and what the widget saved and sent, for the tests to read.
 * @param {Record<string, any>} state
 */
export function fakeModel(state) {
  const listeners = new Map();
  const model = {
    saves: 0, saved: [], savedState: [], sent: [],
    get: (name) => state[name],
    set(name, value) {
      state[name] = value;
      for (const f of listeners.get(`change:${name}`) || []) f();
    },
    on(event, f) { listeners.set(event, [...(listeners.get(event) || []), f]); },
    off(event, f) { listeners.set(event, (listeners.get(event) || []).filter((g) => g !== f)); },
    save_changes() {
      model.saves += 1;
      model.saved.push({ window: state.window, fit: state.fit });
      model.savedState.push({ ...state });
    },
    send(message) { model.sent.push(message); },
    listenerCount: () => [...listeners.values()].reduce((n, fs) => n + fs.length, 0),
  };
  return model;
}
