// @ts-check
// Small formatting helpers shared by the table and the status line.

export function formatNumber(value, digits = 3) {
  if (value === null || value === undefined || Number.isNaN(value)) return "";
  if (typeof value !== "number") return String(value);
  if (Number.isInteger(value)) return String(value);
  return value.toFixed(digits);
}

export function formatPercent(value) {
  if (value === null || value === undefined || Number.isNaN(value)) return "";
  return `${Math.round(value * 100)}%`;
}

export function formatSeconds(seconds) {
  return `${seconds.toFixed(1)} s`;
}
