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
