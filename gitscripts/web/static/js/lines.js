// Line permalinks: `?line=10` or `?line=10-14` in a screen's hash route (a source or a blame),
// `?line=R10` / `?line=L3-5` with `&file=<path>` in a diff (R: the new side, L: the old one).
// Clicking a line number puts the line in the address (Shift+click: a range from the last one
// clicked); opening such an address marks the lines and scrolls to them.

import { currentLocation, updateQuery } from "./router.js";

const RANGE = /^([LR]?)(\d+)(?:-(\d+))?$/;

/** "R10-14" -> { side: "R", start: 10, end: 14 }; null for anything else. */
export function parseLines(text) {
  const found = RANGE.exec(text || "");
  if (!found) return null;
  const first = Number(found[2]);
  const last = Number(found[3] || found[2]);
  return { side: found[1], start: Math.min(first, last), end: Math.max(first, last) };
}

function formatLines({ side, start, end }) {
  return `${side}${start}${end !== start ? `-${end}` : ""}`;
}

/** Makes the line numbers (`.ln`) of the lines (`[data-line]`, inside `[data-file]` blocks in a
 * diff) in `root` set the address, and marks the lines the address names. Returns a function
 * that marks them again (and scrolls to them) once `root`'s content was drawn anew. */
export function linkLines(root) {
  let anchor = null;
  const mark = (file, range, scroll) => {
    for (const old of root.querySelectorAll(".target-line")) {
      old.classList.remove("target-line");
      old.removeAttribute("aria-current");
    }
    if (!range) return;
    const scope = file ? root.querySelector(`[data-file="${CSS.escape(file)}"]`) : root;
    if (!scope) return;
    let first = null;
    for (const line of scope.querySelectorAll("[data-line]")) {
      const key = parseLines(line.dataset.line);
      if (!key || key.side !== range.side || key.start < range.start || key.start > range.end)
        continue;
      line.classList.add("target-line");
      line.setAttribute("aria-current", "location");
      first = first || line;
    }
    // Once the screen is on the page.
    if (first && scroll) requestAnimationFrame(() => first.scrollIntoView({ block: "center" }));
  };
  root.addEventListener("click", (event) => {
    const number = event.target.closest(".ln");
    const line = number && number.closest("[data-line]");
    if (!line || !root.contains(line)) return;
    const key = parseLines(line.dataset.line);
    const block = line.closest("[data-file]");
    const file = block ? block.dataset.file : null;
    let range = { ...key, end: key.start };
    if (event.shiftKey && anchor && anchor.side === key.side && anchor.file === file) {
      range = {
        side: key.side,
        start: Math.min(anchor.start, key.start),
        end: Math.max(anchor.start, key.start),
      };
    } else {
      anchor = { ...key, file };
    }
    updateQuery({ line: formatLines(range), file });
    mark(file, range, false);
  });
  const refresh = () => {
    const { query } = currentLocation();
    mark(query.get("file"), parseLines(query.get("line")), true);
  };
  refresh();
  return refresh;
}

export const LINE_TITLE = "Link to this line (Shift+click: a range)";
