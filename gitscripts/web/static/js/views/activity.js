// The repository's log (every commit, from the API or pushed with git) and one commit in full.

import { api, guard } from "../api.js";
import { diffModeSwitch, diffView } from "../diffview.js";
import { linkLines } from "../lines.js";
import { authorName, clear, h, timeElement } from "../dom.js";
import { rerender, updateQuery } from "../router.js";

function commitRow(commit) {
  const shown = commit.changes.filter(
    (change) => !change.path.endsWith(".meta.json") && !change.path.endsWith(".gitkeep"),
  );
  return h(
    "li",
    { class: "commit", "data-revision": commit.revision },
    h(
      "div",
      { class: "commit-head" },
      h("a", { href: `#/commits/${commit.revision}`, class: "commit-message" }, commit.message),
      h("code", { class: "hint" }, commit.short),
    ),
    h("p", { class: "hint" }, authorName(commit.author), " · ", timeElement(commit.committed_at)),
    shown.length
      ? h(
          "ul",
          { class: "changes" },
          shown
            .slice(0, 8)
            .map((change) =>
              h(
                "li",
                {},
                h("span", { class: `badge ${change.status}` }, change.status),
                " ",
                change.old_path && change.old_path !== change.path
                  ? `${change.old_path} → ${change.path}`
                  : change.path,
              ),
            ),
          shown.length > 8 ? h("li", { class: "hint" }, `and ${shown.length - 8} more`) : null,
        )
      : null,
  );
}

export async function renderActivity(view, { query }) {
  view.dataset.title = "Activity";
  const path = query.get("path") || "";
  const pathQuery = path ? `&path=${encodeURIComponent(path)}` : "";
  const first = await api(`scripts-manager/history?limit=50${pathQuery}`);
  const list = h("ol", { class: "commits" }, first.commits.map(commitRow));
  let nextBefore = first.next_before;
  const more = h(
    "button",
    { type: "button", class: "secondary", hidden: !nextBefore },
    "Show older commits",
  );
  more.addEventListener("click", () =>
    guard(async () => {
      const page = await api(
        `scripts-manager/history?limit=50&before=${encodeURIComponent(nextBefore)}${pathQuery}`,
      );
      list.append(...page.commits.map(commitRow));
      nextBefore = page.next_before;
      more.hidden = !nextBefore;
    }),
  );
  const filter = h("input", {
    type: "search",
    id: "activity-path",
    value: path,
    placeholder: "geology/ or geology/analysis.py",
  });
  const form = h(
    "form",
    { class: "inline-form", role: "search" },
    h("label", { for: "activity-path" }, "Only changes to"),
    filter,
    h("button", { type: "submit", class: "secondary" }, "Filter"),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    updateQuery({ path: filter.value.trim() });
    rerender();
  });
  clear(
    view,
    h(
      "section",
      { class: "screen" },
      h("div", { class: "screen-head" }, h("h1", {}, "Activity"), form),
      h(
        "p",
        { class: "hint" },
        "Every change to the scripts, made here, through the API or pushed with git. Each one is a commit.",
      ),
      first.commits.length ? list : h("p", { class: "panel empty" }, "No commits match."),
      more,
    ),
  );
}

export async function renderCommit(view, { params, query }) {
  const commit = await api(`scripts-manager/commits/${encodeURIComponent(params.rev)}`);
  view.dataset.title = commit.short;
  const mode = query.get("mode") === "split" ? "split" : "unified";
  const files = commit.files.filter(
    (file) => !(file.new_path || file.old_path).endsWith(".gitkeep"),
  );
  const diffArea = h("div", {}, diffView(files, mode));
  const markLines = linkLines(diffArea);
  const toggle = diffModeSwitch(mode, (chosen) => {
    updateQuery({ mode: chosen === "split" ? "split" : null });
    clear(diffArea, diffView(files, chosen));
    markLines();
  });
  clear(
    view,
    h(
      "section",
      { class: "screen" },
      h(
        "nav",
        { class: "breadcrumb", "aria-label": "Breadcrumb" },
        h("a", { href: "#/activity" }, "Activity"),
        h("span", { class: "sep", "aria-hidden": "true" }, "/"),
        h("span", { "aria-current": "page" }, commit.short),
      ),
      h("h1", {}, commit.message.split("\n")[0]),
      commit.message.includes("\n")
        ? h("pre", { class: "commit-body" }, commit.message.split("\n").slice(1).join("\n").trim())
        : null,
      h(
        "dl",
        { class: "metadata" },
        h("dt", {}, "Commit"),
        h("dd", {}, h("code", {}, commit.revision)),
        h("dt", {}, "Author"),
        h("dd", {}, authorName(commit.author)),
        h("dt", {}, "When"),
        h("dd", {}, timeElement(commit.committed_at)),
        h("dt", {}, "Parents"),
        h(
          "dd",
          {},
          commit.parents.length
            ? commit.parents.map((parent) => [
                h("a", { href: `#/commits/${parent}` }, h("code", {}, parent.slice(0, 10))),
                " ",
              ])
            : "none (the first commit)",
        ),
        h("dt", {}, "Changes"),
        h(
          "dd",
          {},
          `${commit.stats.files} file${commit.stats.files === 1 ? "" : "s"}, +${commit.stats.additions} −${commit.stats.deletions}`,
        ),
      ),
      h("div", { class: "label-row" }, h("h2", {}, "Diff"), toggle),
      diffArea,
    ),
  );
}
