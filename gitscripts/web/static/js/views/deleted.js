// Deleted scripts: those deleted inside a folder (or anywhere, from the root), who deleted them
// and when, their last content, and Restore (under their old id).

import { messageField, withMessage } from "../actions.js";
import { api, guard } from "../api.js";
import { formDialog } from "../dialogs.js";
import { authorName, clear, h, notify, timeElement } from "../dom.js";
import { navigate } from "../router.js";

export async function renderDeleted(view, { query }) {
  const folder = query.get("folder") || "";
  view.dataset.title = folder ? `Deleted in ${folder}` : "Deleted scripts";
  const items = await api(
    `scripts-manager/deleted${folder ? `?folder=${encodeURIComponent(folder)}` : ""}`,
  );

  const restore = (item) =>
    guard(async () => {
      const restored = await formDialog({
        title: `Restore ${item.path}?`,
        intro: `The script comes back at ${item.path} as it was before it was deleted, with its old id: links and clients that used it work again.`,
        fields: [messageField(`Restore deleted script ${item.path}`)],
        submitLabel: "Restore",
        onSubmit: async ({ message }) =>
          api(`scripts-manager/deleted/${item.script_id}/restore`, {
            method: "POST",
            json: withMessage({}, message),
          }),
      });
      if (!restored) return false;
      notify(`Restored ${restored.logical_path}.`, "success");
      navigate(`/scripts/${restored.id}`);
      return true;
    });

  const contentRow = h("tr", { class: "deleted-content", hidden: true });
  const show = (item, row) =>
    guard(async () => {
      const detail = await api(`scripts-manager/deleted/${item.script_id}`);
      clear(
        contentRow,
        h(
          "td",
          { colspan: 5 },
          h(
            "pre",
            { class: "source", tabindex: "0", "aria-label": `Last content of ${item.path}` },
            h("code", {}, detail.content),
          ),
        ),
      );
      contentRow.hidden = false;
      row.after(contentRow);
    });

  const rows = items.map((item) => {
    const row = h(
      "tr",
      { "data-script-id": String(item.script_id) },
      h(
        "td",
        {},
        h("strong", {}, item.display_name),
        h(
          "span",
          { class: "hint block" },
          h("code", {}, item.path),
          item.deleted_path !== item.path ? ` (deleted as ${item.deleted_path})` : "",
        ),
      ),
      h("td", {}, authorName(item.deleted_in.author)),
      h("td", {}, timeElement(item.deleted_in.committed_at)),
      h(
        "td",
        {},
        h(
          "a",
          { href: `#/commits/${item.deleted_in.revision}` },
          h("code", {}, item.deleted_in.short),
        ),
        h("span", { class: "hint block" }, item.deleted_in.message),
      ),
      h(
        "td",
        { class: "row-actions" },
        h(
          "button",
          { type: "button", class: "small secondary", onclick: () => show(item, row) },
          "View",
        ),
        item.can_restore
          ? h(
              "button",
              {
                type: "button",
                class: "small primary",
                disabled: item.path_taken,
                title: item.path_taken ? `${item.path} is taken now` : null,
                onclick: () => restore(item),
              },
              "Restore…",
            )
          : null,
        item.path_taken ? h("span", { class: "hint block" }, "Its path is taken now.") : null,
      ),
    );
    return row;
  });

  clear(
    view,
    h(
      "section",
      { class: "screen deleted-screen" },
      h(
        "nav",
        { class: "breadcrumb", "aria-label": "Breadcrumb" },
        h("a", { href: folder ? `#/?folder=${encodeURIComponent(folder)}` : "#/" }, "Scripts"),
        folder ? [" / ", h("code", {}, folder)] : null,
      ),
      h(
        "div",
        { class: "screen-head" },
        h("h1", {}, folder ? `Deleted in ${folder}` : "Deleted scripts"),
      ),
      h(
        "p",
        { class: "hint" },
        folder
          ? "Scripts deleted inside this folder (and its subfolders), most recently deleted first."
          : "Scripts deleted anywhere, most recently deleted first.",
      ),
      items.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "deleted-table" },
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  h("th", {}, "Script"),
                  h("th", {}, "Deleted by"),
                  h("th", {}, "When"),
                  h("th", {}, "Commit"),
                  h("th", {}, h("span", { class: "offscreen" }, "Actions")),
                ),
              ),
              h("tbody", {}, rows),
            ),
          )
        : h("p", { class: "panel empty" }, "No script was deleted here."),
    ),
  );
}
