// The History tab: versions, a diff between any two, restore, and the repository's tags.

import { messageField, withMessage } from "../actions.js";
import { api, describeError, guard } from "../api.js";
import { confirmDialog, formDialog } from "../dialogs.js";
import { diffModeSwitch, diffView } from "../diffview.js";
import { linkLines } from "../lines.js";
import { authorName, clear, formatDate, h, notify, timeElement } from "../dom.js";
import { navigate, rerender, updateQuery } from "../router.js";

// "Compare from nothing" (the diff of a first version): `-` can name no revision, so in an
// address it cannot be mistaken for one; the API is asked with an empty `from`.
const NOTHING = "-";

function changeText(version) {
  if (version.change === "renamed" && version.old_path) return `renamed from ${version.old_path}`;
  return version.change;
}

export async function renderHistoryTab(panel, { script, query }) {
  // Only the tags at which this script existed: the repository's others are no version of it.
  const [first, tags] = await Promise.all([
    api(`scripts-manager/scripts/${script.id}/history?limit=50`),
    api(`scripts-manager/scripts/${script.id}/tags`),
  ]);
  const versions = [...first.versions];
  let nextBefore = first.next_before;
  let mode = query.get("mode") === "split" ? "split" : "unified";
  // By default: the previous version against the newest, as `git show` would (a first version:
  // against nothing).
  let from = query.get("from") || (versions[1] ? versions[1].revision : NOTHING);
  let to = query.get("to") || (versions[0] || {}).revision;

  const tagsAt = (revision) => tags.filter((tag) => tag.revision === revision);
  // An action that changed something shows the tab again with fresh data.
  const guarded = async (action) => {
    if (await guard(action)) rerender();
  };

  const restore = async (version) => {
    const restored = await formDialog({
      title: `Restore version ${version.short}?`,
      intro: `The content from ${formatDate(version.committed_at)} becomes a new version of ${script.logical_path}. The versions since then stay in the history.`,
      fields: [messageField(`Restore script ${script.logical_path} to ${version.short}`)],
      submitLabel: "Restore",
      onSubmit: async ({ message }) => {
        await api(`scripts-manager/scripts/${script.id}/restore`, {
          method: "POST",
          json: withMessage({ revision: version.revision }, message),
        });
        notify(`Restored version ${version.short}.`, "success");
        return true;
      },
    });
    if (restored) navigate(`/scripts/${script.id}/source`);
  };

  // Tags belong to the repository, not to this script: a tag may point at a commit that is no
  // version of it, and moving one keeps that commit on offer (a message-only edit stays put).
  const revisionOptions = (current) => {
    const options = versions.map((version) => ({
      value: version.revision,
      label: `${version.short} · ${formatDate(version.committed_at)} · ${version.message}`,
    }));
    if (current && !versions.some((version) => version.revision === current.revision)) {
      options.unshift({
        value: current.revision,
        label: `${current.short} · where ${current.name} points now`,
      });
    }
    return options;
  };
  const tagDialog = (revision, existing = null) =>
    guarded(() =>
      formDialog({
        title: existing ? `Edit tag ${existing.name}` : "New tag",
        intro:
          "A tag is a fixed name for a revision (a real git tag): run or clone the scripts as they were, by name.",
        fields: [
          existing
            ? null
            : {
                name: "name",
                label: "Tag name",
                required: true,
                maxlength: 255,
                placeholder: "v1.0",
                hint: "Letters, digits, dots, dashes, underscores and slashes.",
              },
          {
            name: "revision",
            label: "Revision",
            type: "select",
            value: revision,
            options: revisionOptions(existing),
          },
          {
            name: "message",
            label: "Message",
            type: "textarea",
            rows: 2,
            value: existing ? existing.message : "",
          },
        ].filter(Boolean),
        submitLabel: existing ? "Save tag" : "Create tag",
        onSubmit: async (values) => {
          const body = { revision: values.revision, message: values.message.trim() || null };
          if (existing) {
            await api(`scripts-manager/tags/${encodeURIComponent(existing.name)}`, {
              method: "PUT",
              json: body,
            });
            notify(`Saved tag ${existing.name}.`, "success");
          } else {
            await api("scripts-manager/tags", {
              method: "POST",
              json: { name: values.name.trim(), ...body },
            });
            notify(`Created tag ${values.name.trim()}.`, "success");
          }
          return true;
        },
      }),
    );

  const deleteTag = (tag) =>
    guarded(async () => {
      const sure = await confirmDialog({
        title: `Delete tag ${tag.name}?`,
        message:
          "Clients running the scripts at this tag will get an error. The commits themselves stay.",
        confirmLabel: "Delete tag",
        danger: true,
      });
      if (!sure) return false;
      await api(`scripts-manager/tags/${encodeURIComponent(tag.name)}`, { method: "DELETE" });
      notify(`Deleted tag ${tag.name}.`, "success");
      return true;
    });

  const rowsBody = h("tbody", {});
  const versionRow = (version, index) =>
    h(
      "tr",
      { "data-revision": version.revision },
      h(
        "td",
        { class: "pick", "data-label": "From" },
        h("input", {
          type: "radio",
          name: "diff-from",
          value: version.revision,
          checked: version.revision === from,
          "aria-label": `Compare from ${version.short}`,
        }),
      ),
      h(
        "td",
        { class: "pick", "data-label": "To" },
        h("input", {
          type: "radio",
          name: "diff-to",
          value: version.revision,
          checked: version.revision === to,
          "aria-label": `Compare to ${version.short}`,
        }),
      ),
      h(
        "td",
        {},
        h("a", { href: `#/commits/${version.revision}` }, h("code", {}, version.short)),
        tagsAt(version.revision).map((tag) => [" ", h("span", { class: "badge tag" }, tag.name)]),
        index === 0 && version.change !== "deleted"
          ? [" ", h("span", { class: "badge current" }, "current")]
          : null,
      ),
      h(
        "td",
        { class: "message" },
        version.message,
        h(
          "span",
          { class: "hint block" },
          changeText(version),
          version.path !== script.logical_path ? ` · as ${version.path}` : "",
        ),
      ),
      h("td", {}, authorName(version.author)),
      h("td", {}, timeElement(version.committed_at)),
      h(
        "td",
        { class: "row-actions" },
        h(
          "a",
          {
            href: `#/scripts/${script.id}/source?rev=${version.revision}`,
            class: "button small secondary",
          },
          "View",
        ),
        h(
          "a",
          {
            href: `#/scripts/${script.id}/run?rev=${version.revision}`,
            class: "button small secondary",
          },
          "Run",
        ),
        h(
          "button",
          { type: "button", class: "small secondary", onclick: () => tagDialog(version.revision) },
          "Tag…",
        ),
        script.can_edit && index > 0 && version.change !== "deleted"
          ? h(
              "button",
              { type: "button", class: "small secondary", onclick: () => restore(version) },
              "Restore…",
            )
          : null,
      ),
    );
  // Below the first version: nothing, to compare a version with as a whole.
  const nothingRow = () =>
    h(
      "tr",
      { class: "nothing" },
      h(
        "td",
        { class: "pick" },
        h("input", {
          type: "radio",
          name: "diff-from",
          value: NOTHING,
          checked: from === NOTHING,
          "aria-label": "Compare from nothing",
        }),
      ),
      h("td", { class: "pick" }),
      h("td", { colspan: 5, class: "hint" }, "Nothing: before the script existed"),
    );
  // In the table's foot, below every version once the oldest is listed.
  const rowsFoot = h("tfoot", {});
  const drawRows = () => {
    rowsBody.replaceChildren(...versions.map(versionRow));
    rowsFoot.replaceChildren(...(nextBefore ? [] : [nothingRow()]));
  };

  const more = h(
    "button",
    { type: "button", class: "secondary", hidden: !nextBefore },
    "Show older versions",
  );
  more.addEventListener("click", () =>
    guard(async () => {
      const page = await api(
        `scripts-manager/scripts/${script.id}/history?limit=50&before=${encodeURIComponent(nextBefore)}`,
      );
      versions.push(...page.versions);
      nextBefore = page.next_before;
      more.hidden = !nextBefore;
      drawRows();
    }),
  );

  const diffArea = h("div", { class: "diff-area" });
  const markLines = linkLines(diffArea);
  let diffRequest = 0;
  const showDiff = async () => {
    if (!from || !to) {
      clear(diffArea);
      return;
    }
    updateQuery({ from, to, mode: mode === "split" ? "split" : null });
    const ticket = ++diffRequest; // only the latest choice may fill the area
    clear(diffArea, h("p", { class: "loading", role: "status" }, "Loading the diff…"));
    try {
      const fromParam = from === NOTHING ? "" : from;
      const diff = await api(
        `scripts-manager/scripts/${script.id}/diff?from=${encodeURIComponent(fromParam)}&to=${encodeURIComponent(to)}`,
      );
      if (ticket !== diffRequest) return;
      clear(
        diffArea,
        h(
          "p",
          { class: "hint" },
          "Changes from ",
          diff.from ? h("code", {}, diff.from.slice(0, 10)) : "nothing",
          " to ",
          h("code", {}, diff.to.slice(0, 10)),
          ".",
        ),
        diffView(diff.files, mode),
      );
      markLines();
    } catch (error) {
      if (ticket === diffRequest && error.status !== 401)
        clear(diffArea, h("p", { class: "form-error", role: "alert" }, describeError(error)));
    }
  };
  const modeSwitch = diffModeSwitch(mode, (chosen) => {
    mode = chosen;
    showDiff();
  });
  const pickDiff = (event) => {
    if (event.target.name === "diff-from") from = event.target.value;
    if (event.target.name === "diff-to") to = event.target.value;
    updateQuery({ line: null, file: null }); // a line of another diff
    showDiff();
  };
  rowsBody.addEventListener("change", pickDiff);
  rowsFoot.addEventListener("change", pickDiff);

  drawRows();
  clear(
    panel,
    h(
      "section",
      { "aria-labelledby": "versions-heading" },
      h("h2", { id: "versions-heading" }, `Versions (${versions.length}${nextBefore ? "+" : ""})`),
      h("p", { class: "hint" }, "Pick two versions in the From and To columns to compare them."),
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "versions" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", {}, "From"),
              h("th", {}, "To"),
              h("th", {}, "Version"),
              h("th", {}, "Change"),
              h("th", {}, "Author"),
              h("th", {}, "When"),
              h("th", {}, h("span", { class: "offscreen" }, "Actions")),
            ),
          ),
          rowsBody,
          rowsFoot,
        ),
      ),
      more,
    ),
    h(
      "section",
      { "aria-labelledby": "diff-heading" },
      h("div", { class: "label-row" }, h("h2", { id: "diff-heading" }, "Diff"), modeSwitch),
      diffArea,
    ),
    tagsSection(tags, {
      create: () => tagDialog(versions[0] ? versions[0].revision : "main"),
      move: (tag) => tagDialog(tag.revision, tag),
      remove: deleteTag,
    }),
  );
  showDiff();
}

function tagsSection(tags, { create, move, remove }) {
  return h(
    "section",
    { "aria-labelledby": "tags-heading" },
    h(
      "div",
      { class: "label-row" },
      h("h2", { id: "tags-heading" }, "Tags"),
      h("button", { type: "button", class: "secondary small", onclick: create }, "New tag…"),
    ),
    h(
      "p",
      { class: "hint" },
      "The tags at which this script exists, and its path there (run it at the tag by that path).",
    ),
    tags.length
      ? h(
          "div",
          { class: "table-wrap" },
          h(
            "table",
            { class: "tags-table" },
            h(
              "thead",
              {},
              h(
                "tr",
                {},
                h("th", {}, "Tag"),
                h("th", {}, "Revision"),
                h("th", {}, "Path"),
                h("th", {}, "Message"),
                h("th", {}, "By"),
                h("th", {}, "When"),
                h("th", {}, h("span", { class: "offscreen" }, "Actions")),
              ),
            ),
            h(
              "tbody",
              {},
              tags.map((tag) =>
                h(
                  "tr",
                  { "data-tag": tag.name },
                  h("td", {}, h("span", { class: "badge tag" }, tag.name)),
                  h(
                    "td",
                    {},
                    h("a", { href: `#/commits/${tag.revision}` }, h("code", {}, tag.short)),
                  ),
                  h("td", {}, h("code", {}, tag.path)),
                  h("td", {}, tag.message || ""),
                  h("td", {}, tag.created_by ? tag.created_by.login : ""),
                  h("td", {}, tag.created_at ? timeElement(tag.created_at) : ""),
                  h(
                    "td",
                    { class: "row-actions" },
                    tag.can_edit
                      ? h(
                          "button",
                          { type: "button", class: "small secondary", onclick: () => move(tag) },
                          "Edit…",
                        )
                      : null,
                    tag.can_delete
                      ? h(
                          "button",
                          { type: "button", class: "small danger", onclick: () => remove(tag) },
                          "Delete…",
                        )
                      : null,
                  ),
                ),
              ),
            ),
          ),
        )
      : h(
          "p",
          { class: "hint" },
          "No tag includes this script yet. Tag a version to run or clone it by a name that does not move.",
        ),
  );
}
