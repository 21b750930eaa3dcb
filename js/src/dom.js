// @ts-check
/** Small DOM builders shared by the widget's parts. */

/**
 * A new element with an optional class name and text.
 * @template {keyof HTMLElementTagNameMap} K
 * @param {K} tag
 * @param {string} [className]
 * @param {string} [text]
 * @returns {HTMLElementTagNameMap[K]}
 */
export function element(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

/**
 * A plain button (type "button", so it never submits) with a name and a tooltip.
 * @param {string} name
 * @param {string} text
 * @param {string} title
 * @returns {HTMLButtonElement}
 */
export function button(name, text, title) {
  const node = element("button", "fv-button", text);
  node.type = "button";
  node.name = name;
  node.title = title;
  return node;
}

/**
 * Subscribe handlers to model events; a key may name several events, separated by spaces
 * (as the views' handler tables do). Returns the function that unsubscribes them all.
 * @param {{on: (event: string, f: () => void) => void, off: (event: string, f: () => void) => void}} model
 * @param {Object<string, () => void>} handlers
 * @returns {() => void}
 */
export function listen(model, handlers) {
  const pairs = Object.entries(handlers).flatMap(([events, handler]) =>
    events.split(" ").map((event) => /** @type {[string, () => void]} */ ([event, handler])));
  for (const [event, handler] of pairs) model.on(event, handler);
  return () => {
    for (const [event, handler] of pairs) model.off(event, handler);
  };
}
