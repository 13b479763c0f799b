// Renders the service's structured diff (files -> hunks -> lines) unified or side by side.

import { h } from "./dom.js";

const SIGN = { added: "+", deleted: "-", context: " " };

function unified(file) {
  const rows = [];
  for (const hunk of file.hunks) {
    rows.push(h("tr", { class: "hunk" }, h("td", { colspan: 3 }, hunk.header)));
    for (const line of hunk.lines) {
      rows.push(
        h(
          "tr",
          { class: line.kind },
          h("td", { class: "num" }, line.old_line ?? ""),
          h("td", { class: "num" }, line.new_line ?? ""),
          h(
            "td",
            { class: "code" },
            h(
              "span",
              { class: "sign", "aria-label": line.kind === "context" ? null : line.kind },
              SIGN[line.kind] ?? " ",
            ),
            line.content,
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
  const cell = (line, side) =>
    line
      ? [
          h(
            "td",
            { class: `num ${line.kind}` },
            (side === "old" ? line.old_line : line.new_line) ?? "",
          ),
          h("td", { class: `code ${line.kind}` }, line.content),
        ]
      : [h("td", { class: "num empty" }), h("td", { class: "code empty" })];
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
        { class: "diff-file" },
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
