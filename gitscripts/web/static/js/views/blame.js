// The Blame tab: the source with, beside each run of lines, the commit that last changed them
// (linking to its diff), its author and date.

import { api } from "../api.js";
import { authorName, clear, h, pastRevisionNote, timeElement } from "../dom.js";
import { LINE_TITLE, linkLines } from "../lines.js";

export async function renderBlameTab(panel, { script, query }) {
  const rev = query.get("rev");
  const blame = await api(
    `scripts-manager/scripts/${script.id}/blame?rev=${encodeURIComponent(rev || "main")}`,
  );
  const rows = blame.lines.map((line, index) => {
    const commit = blame.commits[line.revision];
    // The commit is named once for each run of lines it last changed.
    const first = index === 0 || blame.lines[index - 1].revision !== line.revision;
    return h(
      "tr",
      { class: first ? "first" : null, "data-line": String(line.line) },
      h(
        "td",
        { class: "who" },
        first
          ? [
              h(
                "a",
                { href: `#/commits/${commit.revision}`, title: commit.message },
                h("code", {}, commit.short),
              ),
              authorName(commit.author),
              " · ",
              timeElement(commit.committed_at),
            ]
          : null,
      ),
      h("td", { class: "ln", title: LINE_TITLE }, String(line.line)),
      h("td", { class: "code" }, line.content),
    );
  });
  const table = h(
    "table",
    { class: "blame", "aria-label": "Source with the commit that last changed each line" },
    h("tbody", {}, rows),
  );
  clear(
    panel,
    rev ? pastRevisionNote("Blame as of ", blame.revision, `#/scripts/${script.id}/blame`) : null,
    h(
      "p",
      { class: "hint" },
      "Each line with the commit that last changed it. Follow a commit to see its diff.",
    ),
    h("div", { class: "table-wrap source-blame" }, table),
  );
  linkLines(table);
}
