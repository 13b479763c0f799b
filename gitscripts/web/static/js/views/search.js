// Code search: the lines of the scripts' code, at main or any revision, that hold some text.
// The service runs git's own search over the revision's tree; each line links to its place.

import { api } from "../api.js";
import { clear, h } from "../dom.js";
import { navigate } from "../router.js";

/** `text` with each occurrence of `needle` marked, built from text nodes only. */
function marked(text, needle, caseSensitive) {
  if (!needle) return [text];
  const haystack = caseSensitive ? text : text.toLowerCase();
  const wanted = caseSensitive ? needle : needle.toLowerCase();
  const parts = [];
  let from = 0;
  for (let at = haystack.indexOf(wanted); at >= 0; at = haystack.indexOf(wanted, from)) {
    parts.push(text.slice(from, at), h("mark", {}, text.slice(at, at + wanted.length)));
    from = at + wanted.length;
  }
  parts.push(text.slice(from));
  return parts;
}

export async function renderSearch(view, { query }) {
  view.dataset.title = "Search";
  const q = query.get("q") || "";
  const rev = query.get("rev") || "";
  const regex = query.get("regex") === "1";
  const caseSensitive = query.get("case") === "1";

  const input = h("input", {
    type: "search",
    id: "search-query",
    name: "q",
    value: q,
    required: true,
    autofocus: true,
    placeholder: "Text to find in the scripts' code",
  });
  const revision = h("input", {
    type: "text",
    id: "search-rev",
    value: rev,
    placeholder: "main",
    class: "narrow",
  });
  const regexBox = h("input", { type: "checkbox", id: "search-regex", checked: regex });
  const caseBox = h("input", { type: "checkbox", id: "search-case", checked: caseSensitive });
  const form = h(
    "form",
    { class: "search-form", role: "search" },
    h("div", { class: "field grow" }, h("label", { for: "search-query" }, "Find in code"), input),
    h("div", { class: "field" }, h("label", { for: "search-rev" }, "Revision"), revision),
    h(
      "div",
      { class: "field checks" },
      h("label", { class: "check" }, regexBox, " Regular expression"),
      h("label", { class: "check" }, caseBox, " Match case"),
    ),
    h("div", { class: "field" }, h("button", { type: "submit", class: "primary" }, "Search")),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    navigate("/search", {
      q: input.value.trim(),
      rev: revision.value.trim(),
      regex: regexBox.checked ? "1" : "",
      case: caseBox.checked ? "1" : "",
    });
  });

  const results = h("div", { class: "search-results", "aria-live": "polite" });
  view.append(
    h(
      "section",
      { class: "screen search-screen" },
      h("h1", {}, "Search"),
      h(
        "p",
        { class: "hint" },
        "Searches every script's code with git at the revision. To go to a script by name, press Ctrl+K or /.",
      ),
      form,
      results,
    ),
  );
  if (!q) return;

  const params = new URLSearchParams({ q, limit: "500" });
  if (rev) params.set("rev", rev);
  if (regex) params.set("regex", "true");
  if (caseSensitive) params.set("case_sensitive", "true");
  const answer = await api(`scripts-manager/search?${params}`);

  const byPath = new Map();
  for (const match of answer.matches) {
    if (!byPath.has(match.path)) byPath.set(match.path, []);
    byPath.get(match.path).push(match);
  }
  const lineLink = (match) => {
    const target = new URLSearchParams({ line: String(match.line) });
    if (rev) target.set("rev", answer.revision);
    return `#/scripts/${match.script_id}/source?${target}`;
  };
  clear(
    results,
    h(
      "p",
      { class: "hint", role: "status", "data-testid": "search-summary" },
      `${answer.matches.length} line${answer.matches.length === 1 ? "" : "s"} in ${byPath.size} script${byPath.size === 1 ? "" : "s"} at `,
      h("a", { href: `#/commits/${answer.revision}` }, h("code", {}, answer.revision.slice(0, 10))),
      ` (${rev || "main"}), in ${Math.round(answer.elapsed_ms)} ms.`,
    ),
    answer.truncated
      ? h(
          "p",
          { class: "notice-inline warning", role: "note" },
          "There are more: only the first lines are listed. Narrow the search.",
        )
      : null,
    answer.timed_out
      ? h(
          "p",
          { class: "notice-inline warning", role: "note" },
          "The search took too long and was stopped: these are the lines found until then.",
        )
      : null,
    [...byPath].map(([path, matches]) =>
      h(
        "section",
        { class: "search-file", "data-path": path },
        h(
          "h2",
          {},
          matches[0].script_id ? h("a", { href: lineLink(matches[0]) }, path) : path,
          h("span", { class: "hint" }, ` · ${matches.length}`),
        ),
        h(
          "ol",
          { class: "search-lines" },
          matches.map((match) =>
            h(
              "li",
              {},
              match.script_id
                ? h("a", { class: "line-number", href: lineLink(match) }, String(match.line))
                : h("span", { class: "line-number" }, String(match.line)),
              h("code", {}, regex ? match.text : marked(match.text, q, caseSensitive)),
            ),
          ),
        ),
      ),
    ),
  );
}
