// @ts-check
// The sortable layer table: analysed layers and skipped ones (with the reason), the random
// baseline of each method, and FARMS' sampling warnings. Keyboard: Tab reaches the sort buttons
// and the table body; the arrow keys (and Home / End) move the selected layer. The rows can be
// downloaded as CSV or copied (tab-separated, for a spreadsheet), formula-safe.
import { formatNumber, formatPercent } from "./format.js";

export const COLUMNS = [
  { key: "layer", label: "layer" },
  { key: "kind", label: "kind" },
  { key: "shape", label: "shape" },
  { key: "aspect_ratio", label: "aspect", format: (v) => formatNumber(v, 2) },
  { key: "alpha_esd", label: "α ESD" },
  { key: "baseline_esd", label: "random α ESD",
    title: "α of a Gaussian random matrix of the same shape under the same fit: the ESD's value for noise" },
  { key: "alpha_farms", label: "α FARMS" },
  { key: "baseline_farms", label: "random α FARMS",
    title: "α of a Gaussian random matrix through the same windows and fit: FARMS' value for noise" },
  { key: "alpha_delta", label: "Δα", format: (v) => (v > 0 ? "+" : "") + formatNumber(v) },
  { key: "window", label: "window" },
  { key: "num_windows", label: "windows", format: (v) => (v ? String(v) : "") },
  { key: "coverage", label: "coverage", format: formatPercent },
  { key: "note", label: "note" },
];
export const WARNING = "⚠ ";

/** The note a row shows: why a layer was skipped, or FARMS' sampling warnings. */
export function noteOf(row) {
  if (row.skipped_reason) return `skipped: ${row.skipped_reason}`;
  if (row.sampling_note) return WARNING + row.sampling_note;
  if (row.covers_whole_matrix) return WARNING + "window = whole matrix (FARMS = ESD)";
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

/**
 * One cell as text a spreadsheet will not run: numbers in full precision; text that starts with
 * = + - @ (or a tab or carriage return) gets a leading ' so it is never read as a formula.
 */
export function safeCell(value) {
  if (value === null || value === undefined) return "";
  if (typeof value === "number") return Number.isFinite(value) ? String(value) : "";
  const text = String(value);
  return /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
}

function csvField(text) {
  return /[",\n\r]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

/** The rows as CSV (header: the column keys), in the order shown, every cell formula-safe. */
export function tableCsv(rows) {
  const keys = COLUMNS.map((c) => c.key);
  const lines = [keys.join(",")];
  for (const row of rows) lines.push(keys.map((k) => csvField(safeCell(row[k]))).join(","));
  return lines.join("\r\n") + "\r\n";
}

/** The rows as tab-separated text (header: the column labels), for pasting into a spreadsheet. */
export function tableTsv(rows) {
  const clean = (text) => text.replace(/[\t\r\n]+/g, " ");
  const lines = [COLUMNS.map((c) => c.label).join("\t")];
  for (const row of rows) lines.push(COLUMNS.map((c) => clean(safeCell(row[c.key]))).join("\t"));
  return lines.join("\n") + "\n";
}

function copyText(text) {
  if (navigator.clipboard && window.isSecureContext) return navigator.clipboard.writeText(text);
  // no clipboard API (an offline page opened from a file, say): the textarea route
  const area = document.createElement("textarea");
  area.value = text;
  area.setAttribute("readonly", "");
  area.style.position = "fixed";
  area.style.opacity = "0";
  document.body.appendChild(area);
  area.select();
  const copied = document.execCommand("copy");
  area.remove();
  return copied ? Promise.resolve() : Promise.reject(new Error("copy refused"));
}

function download(text, name) {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const link = document.createElement("a");
  link.href = url;
  link.download = name;
  document.body.appendChild(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Build the table element; `onSelect(layer)` is called when an analysed row is chosen. */
export function createTable(onSelect) {
  const wrapper = document.createElement("div");
  wrapper.className = "fv-table-wrap";
  const table = document.createElement("table");
  table.className = "fv-table";
  table.setAttribute("aria-label", "layers: arrow keys choose the layer whose spectrum is shown");
  wrapper.appendChild(table);
  let rows = [];
  let shown = [];
  let selected = null;
  let sort = null;

  const tools = document.createElement("div");
  tools.className = "fv-table-tools";
  const csv = document.createElement("button");
  csv.type = "button";
  csv.className = "fv-button";
  csv.name = "download_csv";
  csv.textContent = "download CSV";
  csv.title = "the table as a CSV file (text cells that start with = + - @ get a leading ')";
  csv.addEventListener("click", () => download(tableCsv(shown), "farms_viz_layers.csv"));
  const copy = document.createElement("button");
  copy.type = "button";
  copy.className = "fv-button";
  copy.name = "copy_table";
  copy.textContent = "copy";
  copy.title = "copy the table (tab-separated: paste it into a spreadsheet)";
  const copied = document.createElement("span");
  copied.className = "fv-copied";
  copied.setAttribute("role", "status");
  copy.addEventListener("click", () => {
    copyText(tableTsv(shown)).then(() => { copied.textContent = "copied"; },
      () => { copied.textContent = "copy refused by the browser: use download CSV"; });
    setTimeout(() => { copied.textContent = ""; }, 2000);
  });
  tools.append(csv, copy, copied);

  /** @returns {HTMLElement[]} the rows that can be selected, in the order shown */
  function selectable() {
    return /** @type {HTMLElement[]} */ ([...table.querySelectorAll("tbody tr")]
      .filter((tr) => tr instanceof HTMLElement && !tr.classList.contains("fv-skipped")));
  }

  function focusRow(tr) {
    for (const other of table.querySelectorAll("tbody tr")) if (other instanceof HTMLElement) other.tabIndex = -1;
    tr.tabIndex = 0;
    tr.focus({ preventScroll: true });
    if (typeof tr.scrollIntoView === "function") tr.scrollIntoView({ block: "nearest" }); // not in jsdom
  }

  function onKey(event) {
    const rowsNow = selectable();
    if (!rowsNow.length) return;
    const current = rowsNow.findIndex((tr) => tr === document.activeElement);
    const at = current >= 0 ? current : Math.max(0, rowsNow.findIndex((tr) => tr.dataset.layer === selected));
    const moves = { ArrowDown: at + 1, ArrowUp: at - 1, Home: 0, End: rowsNow.length - 1, PageDown: at + 10, PageUp: at - 10 };
    let target = null;
    if (event.key in moves) target = rowsNow[Math.min(rowsNow.length - 1, Math.max(0, moves[event.key]))];
    else if ((event.key === "Enter" || event.key === " ") && current >= 0) target = rowsNow[current];
    if (!target) return;
    event.preventDefault();
    event.stopPropagation();
    focusRow(target);
    if (target.dataset.layer !== selected) onSelect(target.dataset.layer);
  }

  function draw() {
    table.replaceChildren();
    const head = table.createTHead().insertRow();
    for (const column of COLUMNS) {
      const th = document.createElement("th");
      th.dataset.key = column.key;
      th.scope = "col";
      const button = document.createElement("button");
      button.type = "button";
      button.className = "fv-sort";
      button.textContent = column.label;
      button.title = (column.title ? column.title + ". " : "") + "Sort by this column";
      if (sort && sort.key === column.key) {
        th.dataset.sorted = sort.descending ? "descending" : "ascending";
        th.setAttribute("aria-sort", th.dataset.sorted);
      }
      button.addEventListener("click", () => {
        sort = sort && sort.key === column.key ? { key: column.key, descending: !sort.descending }
          : { key: column.key, descending: false };
        draw();
      });
      th.appendChild(button);
      head.appendChild(th);
    }
    const body = table.createTBody();
    body.addEventListener("keydown", onKey);
    shown = sortRows(rows, sort);
    let focusable = false;
    for (const row of shown) {
      const tr = body.insertRow();
      tr.dataset.layer = row.layer;
      tr.tabIndex = -1;
      if (row.skipped_reason) tr.classList.add("fv-skipped");
      else tr.setAttribute("aria-selected", String(row.layer === selected));
      if (row.covers_whole_matrix) tr.classList.add("fv-whole");
      if (!row.skipped_reason && row.note) tr.classList.add("fv-warn");
      if (row.layer === selected) tr.classList.add("fv-selected");
      for (const column of COLUMNS) {
        const td = tr.insertCell();
        const value = row[column.key];
        td.textContent = column.format ? column.format(value) : formatNumber(value);
        if (column.key === "layer" || column.key === "note") td.title = String(value ?? "");
        if (column.key === "layer" && !row.skipped_reason && row.note) { // the warning, visible without scrolling right
          const mark = document.createElement("span");
          mark.className = "fv-warn-mark";
          mark.textContent = WARNING;
          mark.title = row.note;
          mark.setAttribute("aria-label", `warning: ${row.note}`);
          td.prepend(mark);
        }
      }
      if (!row.skipped_reason) {
        tr.addEventListener("click", () => { onSelect(row.layer); focusRow(tr); });
        if (row.layer === selected) { tr.tabIndex = 0; focusable = true; }
      }
    }
    if (!focusable) { // the body stays one tab stop: its first analysed row
      const first = selectable()[0];
      if (first) first.tabIndex = 0;
    }
  }

  return {
    element: wrapper,
    tools,
    update(newRows) { rows = newRows || []; draw(); },
    select(layer) {
      selected = layer;
      const hadFocus = table.contains(document.activeElement);
      for (const tr of table.querySelectorAll("tbody tr")) {
        if (!(tr instanceof HTMLElement)) continue;
        const on = tr.dataset.layer === layer;
        tr.classList.toggle("fv-selected", on);
        if (!tr.classList.contains("fv-skipped")) tr.setAttribute("aria-selected", String(on));
        if (on && !tr.classList.contains("fv-skipped")) {
          for (const other of table.querySelectorAll("tbody tr")) if (other instanceof HTMLElement) other.tabIndex = -1;
          tr.tabIndex = 0;
          if (hadFocus && document.activeElement !== tr) tr.focus({ preventScroll: true });
        }
      }
    },
    sortBy(key, descending = false) { sort = { key, descending }; draw(); },
    /** The rows in the order shown (what CSV and copy export). */
    shownRows() { return shown; },
  };
}
