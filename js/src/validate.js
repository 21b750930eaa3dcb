// @ts-check
// Typed values checked with the engine's own rules before anything is sent. The rules come from
// farms_viz.engine.params.PARAMETER_RULES through the _limits trait (rules), so the front end and
// analyze() accept the same values. An invalid entry is reported as such: never rounded, clamped
// or read as something else.

/**
 * @typedef {Object} Rule
 * @property {boolean} [integer] whole numbers only (2.0 counts)
 * @property {number} [min] smallest allowed value
 * @property {number} [above] values must exceed it
 * @property {boolean} [nullable] an empty field means null
 * @property {string} [hint] what to do, appended to the message
 */

/** The engine's rules, for a page the kernel sent none to (kept equal by tests/test_contract.py). */
export const DEFAULT_RULES = Object.freeze({
  window: { integer: true, min: 2, hint: "a window needs at least 2 rows" },
  q: { integer: false, above: 0, hint: "the window's columns per row, e.g. 1.0" },
  windows_per_dim: { integer: true, min: 1, hint: "use 1 for a single window at the origin" },
  stride: { integer: true, min: 1, nullable: true, hint: "or leave it empty (None) for the k x k grid" },
});

function kind(rule) {
  if (rule.integer) return `an integer >= ${rule.min ?? 1}`;
  if (rule.above !== undefined) return `a finite number > ${rule.above}`;
  return "a finite number";
}

/**
 * Check one typed value against a rule.
 * @param {string} name the parameter, as the message names it
 * @param {string} text what the field holds
 * @param {Rule} rule
 * @param {{badInput?: boolean}} [options] badInput: the browser could not read the field as a number
 * @returns {{value?: number | null, error?: string}} the value to send, or why there is none
 */
export function checkValue(name, text, rule, { badInput = false } = {}) {
  const raw = String(text ?? "").trim();
  if (raw === "" && !badInput) {
    return rule.nullable ? { value: null } : { error: `${name} must be ${kind(rule)}; the field is empty` };
  }
  const value = badInput ? Number.NaN : Number(raw);
  const shown = raw === "" ? "something that is not a number" : raw;
  if (!Number.isFinite(value)) return { error: `${name} must be ${kind(rule)}; got ${shown}` };
  if (rule.integer && !Number.isInteger(value)) return { error: `${name} must be ${kind(rule)}; got ${raw}` };
  const hint = rule.hint ? ` (${rule.hint})` : "";
  if (rule.min !== undefined && value < rule.min) return { error: `${name} must be ${kind(rule)}${hint}; got ${raw}` };
  if (rule.above !== undefined && !(value > rule.above)) {
    return { error: `${name} must be ${kind(rule)}${hint}; got ${raw}` };
  }
  return { value };
}

/**
 * Check a list of window sizes typed as "32, 64 128" (commas, spaces or semicolons).
 * @param {string} text
 * @param {Rule} rule the window rule
 * @param {number} [largest] the largest layer's short side: larger windows are clamped to each layer
 * @returns {{values?: number[], error?: string, warning?: string}} sorted unique values, or why none
 */
export function checkWindowList(text, rule, largest) {
  const tokens = String(text ?? "").split(/[\s,;]+/).filter(Boolean);
  if (!tokens.length) return { error: "type at least one window size, e.g. 32, 64, 128" };
  const refused = tokens.filter((token) => checkValue("window", token, rule).error !== undefined);
  if (refused.length) {
    return { error: `window sizes must be integers >= ${rule.min ?? 2}${rule.hint ? ` (${rule.hint})` : ""}; ` +
      `not: ${refused.join(", ")}` };
  }
  const values = [...new Set(tokens.map(Number))].sort((a, b) => a - b);
  const clamped = largest ? values.filter((v) => v > largest) : [];
  const warning = clamped.length
    ? `${clamped.join(", ")} ${clamped.length > 1 ? "are" : "is"} larger than every layer's short side (${largest}): ` +
      "each layer then uses its whole matrix (FARMS = the standard ESD)"
    : undefined;
  return { values, warning };
}
