// Renders the service's structured diff (files -> hunks -> lines) unified or side by side.

import { h } from "./dom.js";
import { LINE_TITLE } from "./lines.js";

const SIGN = { added: "+", deleted: "-", context: " " };

// The line's text, its changed words (`changed_ranges`, code point offsets) marked.
function content(line) {
  if (!line.changed_ranges) return line.content;
  const chars = Array.from(line.content);
  const parts = [];
  let at = 0;
  for (const [start, end] of line.changed_ranges) {
    parts.push(chars.slice(at, start).join(""));
    parts.push(h("mark", { class: "word" }, chars.slice(start, end).join("")));
    at = end;
  }
  parts.push(chars.slice(at).join(""));
  return parts;
}

// A line's key for permalinks (see lines.js): its new number, or its old one when deleted.
function lineKey(line) {
  return line.kind === "deleted" ? `L${line.old_line}` : `R${line.new_line}`;
}

function number(value, extra = "") {
  return h("td", { class: `num ln ${extra}`.trim(), title: LINE_TITLE }, value ?? "");
}

function unified(file) {
  const rows = [];
  for (const hunk of file.hunks) {
    rows.push(h("tr", { class: "hunk" }, h("td", { colspan: 3 }, hunk.header)));
    for (const line of hunk.lines) {
      rows.push(
        h(
          "tr",
          { class: line.kind, "data-line": lineKey(line) },
          number(line.old_line),
          number(line.new_line),
          h(
            "td",
            { class: "code" },
            h(
              "span",
              { class: "sign", "aria-label": line.kind === "context" ? null : line.kind },
              SIGN[line.kind] ?? " ",
            ),
            content(line),
          ),
        ),
      );
    }
  }
  return h("table", { class: "diff unified" }, h("tbody", {}, rows));
}

// Side by side: a run of deletions is paired line by line with the additions that follow it.
function split(file) {
  const rows = [];
  // Each side's cells carry the line's key: a context line is one line on both sides.
  const cell = (line, side) => {
    if (!line) return [h("td", { class: "num empty" }), h("td", { class: "code empty" })];
    const key = side === "old" && line.kind === "deleted" ? lineKey(line) : `R${line.new_line}`;
    const numberCell = number(side === "old" ? line.old_line : line.new_line, line.kind);
    numberCell.dataset.line = key;
    return [numberCell, h("td", { class: `code ${line.kind}`, "data-line": key }, content(line))];
  };
  for (const hunk of file.hunks) {
    rows.push(h("tr", { class: "hunk" }, h("td", { colspan: 4 }, hunk.header)));
    let deleted = [];
    let added = [];
    const flush = () => {
      for (let index = 0; index < Math.max(deleted.length, added.length); index += 1) {
        rows.push(h("tr", {}, cell(deleted[index], "old"), cell(added[index], "new")));
      }
      deleted = [];
      added = [];
    };
    for (const line of hunk.lines) {
      if (line.kind === "deleted") {
        if (added.length) flush();
        deleted.push(line);
      } else if (line.kind === "added") {
        added.push(line);
      } else {
        flush();
        rows.push(h("tr", { class: "context" }, cell(line, "old"), cell(line, "new")));
      }
    }
    flush();
  }
  return h("table", { class: "diff split" }, h("tbody", {}, rows));
}

function fileTitle(file) {
  if (file.old_path && file.new_path && file.old_path !== file.new_path)
    return `${file.old_path} → ${file.new_path}`;
  return file.new_path || file.old_path;
}

// Side by side needs room: in a narrower window (a phone) a diff is shown unified.
const NARROW = "(max-width: 720px)";

/** One block per changed file; `mode` is "unified" or "split". */
export function diffView(files, mode) {
  const tooNarrow = mode === "split" && window.matchMedia(NARROW).matches;
  if (tooNarrow) mode = "unified";
  if (!files.length)
    return h(
      "p",
      { class: "panel empty", "data-testid": "diff-empty" },
      "No differences: both revisions have the same content.",
    );
  return h(
    "div",
    { class: "diff-files", "data-testid": "diff" },
    tooNarrow
      ? h("p", { class: "hint" }, "Side by side needs a wider window: the diff is shown unified.")
      : null,
    files.map((file) =>
      h(
        "section",
        { class: "diff-file", "data-file": file.new_path || file.old_path },
        h(
          "h3",
          {},
          fileTitle(file),
          " ",
          h("span", { class: "stat added" }, `+${file.additions}`),
          " ",
          h("span", { class: "stat deleted" }, `−${file.deletions}`),
          " ",
          h("span", { class: "badge" }, file.status),
        ),
        file.binary
          ? h("p", { class: "hint" }, "Binary content changed.")
          : mode === "split"
            ? split(file)
            : unified(file),
      ),
    ),
  );
}

/** The Unified / Side by side switch; `onChange(mode)` when the user picks a layout. */
export function diffModeSwitch(mode, onChange) {
  const buttons = ["unified", "split"].map((value) =>
    h(
      "button",
      {
        type: "button",
        class: "secondary small",
        "aria-pressed": String(mode === value),
        dataset: { mode: value },
      },
      value === "split" ? "Side by side" : "Unified",
    ),
  );
  for (const button of buttons) {
    button.addEventListener("click", () => {
      for (const other of buttons) other.setAttribute("aria-pressed", String(other === button));
      onChange(button.dataset.mode);
    });
  }
  return h(
    "div",
    { class: "segmented diff-layout", role: "group", "aria-label": "Diff layout" },
    buttons,
  );
}
