// @ts-check
// The sortable layer table: analysed layers and skipped ones (with the reason).
import { formatNumber, formatPercent } from "./format.js";

export const COLUMNS = [
  { key: "layer", label: "layer" },
  { key: "kind", label: "kind" },
  { key: "shape", label: "shape" },
  { key: "aspect_ratio", label: "aspect", format: (v) => formatNumber(v, 2) },
  { key: "alpha_esd", label: "α ESD" },
  { key: "alpha_farms", label: "α FARMS" },
  { key: "alpha_delta", label: "Δα", format: (v) => (v > 0 ? "+" : "") + formatNumber(v) },
  { key: "window", label: "window" },
  { key: "num_windows", label: "windows", format: (v) => (v ? String(v) : "") },
  { key: "coverage", label: "coverage", format: formatPercent },
  { key: "note", label: "note" },
];

function noteOf(row) {
  if (row.skipped_reason) return `skipped: ${row.skipped_reason}`;
  if (row.covers_whole_matrix) return "window = whole matrix (FARMS = ESD)";
  return "";
}

function compare(a, b) {
  const missingA = a === null || a === undefined || a === "";
  const missingB = b === null || b === undefined || b === "";
  if (missingA || missingB) return Number(missingA) - Number(missingB); // blanks last
  if (typeof a === "number" && typeof b === "number") return a - b;
  return String(a).localeCompare(String(b), undefined, { numeric: true });
}

/** Rows in display order: model order unless a column is chosen. */
export function sortRows(rows, sort) {
  const indexed = rows.map((row, index) => ({ ...row, note: noteOf(row), _index: index }));
  if (!sort || !sort.key) return indexed;
  const sign = sort.descending ? -1 : 1;
  return indexed.sort((a, b) => {
    const byKey = compare(a[sort.key], b[sort.key]);
    // blanks stay last whatever the direction
    const blank = a[sort.key] === null || a[sort.key] === undefined || a[sort.key] === "" ||
      b[sort.key] === null || b[sort.key] === undefined || b[sort.key] === "";
    return (blank ? byKey : sign * byKey) || a._index - b._index;
  });
}

/** Build the table element; `onSelect(layer)` is called when an analysed row is clicked. */
export function createTable(onSelect) {
  const wrapper = document.createElement("div");
  wrapper.className = "fv-table-wrap";
  const table = document.createElement("table");
  table.className = "fv-table";
  wrapper.appendChild(table);
  let rows = [];
  let selected = null;
  let sort = null;

  function draw() {
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const column of COLUMNS) {
      const th = document.createElement("th");
      th.textContent = column.label;
      th.dataset.key = column.key;
      th.title = "sort";
      if (sort && sort.key === column.key) th.dataset.sorted = sort.descending ? "descending" : "ascending";
      th.addEventListener("click", () => {
        sort = sort && sort.key === column.key ? { key: column.key, descending: !sort.descending }
          : { key: column.key, descending: false };
        draw();
      });
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const row of sortRows(rows, sort)) {
      const tr = body.insertRow();
      tr.dataset.layer = row.layer;
      if (row.skipped_reason) tr.classList.add("fv-skipped");
      if (row.covers_whole_matrix) tr.classList.add("fv-whole");
      if (row.layer === selected) tr.classList.add("fv-selected");
      for (const column of COLUMNS) {
        const td = tr.insertCell();
        const value = row[column.key];
        td.textContent = column.format ? column.format(value) : formatNumber(value);
        if (column.key === "layer" || column.key === "note") td.title = String(value ?? "");
      }
      if (!row.skipped_reason) tr.addEventListener("click", () => onSelect(row.layer));
    }
  }

  return {
    element: wrapper,
    update(newRows) { rows = newRows || []; draw(); },
    select(layer) {
      selected = layer;
      for (const tr of table.querySelectorAll("tbody tr")) {
        if (!(tr instanceof HTMLElement)) continue;
        tr.classList.toggle("fv-selected", tr.dataset.layer === layer);
      }
    },
    sortBy(key, descending = false) { sort = { key, descending }; draw(); },
  };
}
