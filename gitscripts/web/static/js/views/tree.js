// The scripts tree: folders and scripts, expandable, with every action the user may take.

import * as actions from "../actions.js";
import { api, guard } from "../api.js";
import { installTreeKeys, makeCurrent } from "../ariatree.js";
import { acceptFileDrops, clear, h, timeElement } from "../dom.js";
import { menuButton } from "../menu.js";

/** A row's action menu: reached from its tree item (Shift+F10), so not a tab stop of its own. */
function rowMenu(label, items) {
  const button = menuButton(label, items);
  button.tabIndex = -1;
  return button;
}
import { matchScripts } from "../fuzzy.js";
import { navigate, updateQuery } from "../router.js";

const EXPANDED_KEY = "gitscripts.expanded";

function expandedFolders() {
  try {
    return new Set(JSON.parse(localStorage.getItem(EXPANDED_KEY) || "[]"));
  } catch {
    return new Set();
  }
}

function saveExpanded(expanded) {
  localStorage.setItem(EXPANDED_KEY, JSON.stringify([...expanded]));
}

export async function renderTree(view, { query, app }) {
  view.dataset.title = "Scripts";
  let tree = await api("scripts-manager/tree");
  const expanded = expandedFolders();
  const filter = h("input", {
    type: "search",
    id: "tree-filter",
    placeholder: "Filter by name, path or description",
    "aria-label": "Filter scripts by name, path or description",
    value: query.get("filter") || "",
  });
  const listing = h("div", { class: "tree-listing" });
  const folders = () => actions.allFolders(tree);
  const scripts = () => actions.allScripts(tree);

  // After any change: fetch the tree again, show what the action produced, and put the focus
  // back on it (or, when it is gone, on the filter) so a keyboard user keeps their place.
  const act = (action, reveal) =>
    guard(async () => {
      const outcome = await action();
      if (!outcome) return;
      if (reveal) for (const id of reveal(outcome)) expanded.add(id);
      saveExpanded(expanded);
      tree = await api("scripts-manager/tree");
      draw();
      const kind = "logical_path" in outcome ? "script" : "folder";
      // Its actions button: the next step is often one of them; the item becomes the tab stop.
      const row = listing.querySelector(`[data-${kind}-id="${outcome.id}"] > .row .row-menu`);
      (row || filter).focus();
    });
  const ancestorsOf = (folderId) => {
    const byId = new Map(folders().map((folder) => [folder.id, folder]));
    const chain = [];
    for (let folder = byId.get(folderId); folder; folder = byId.get(folder.parent_id))
      chain.push(folder.id);
    return chain;
  };
  const revealScript = (script) => (script.folder_id ? ancestorsOf(script.folder_id) : []);
  const revealFolder = (folder) => (folder.parent_id ? ancestorsOf(folder.parent_id) : []);

  const scriptRow = (script, showPath = false) =>
    h(
      "li",
      {
        class: "node script-node",
        "data-script-id": script.id,
        role: "treeitem",
        tabindex: "-1",
        "aria-label": `${script.display_name} (${showPath ? script.logical_path : script.filename})`,
      },
      h(
        "div",
        { class: "row" },
        h("span", { class: "node-icon script-icon", "aria-hidden": "true" }, "py"),
        h(
          "a",
          { href: `#/scripts/${script.id}`, class: "node-name", tabindex: "-1" },
          h("span", { class: "display-name" }, script.display_name),
          h("span", { class: "filename" }, showPath ? script.logical_path : script.filename),
        ),
        h(
          "span",
          { class: "node-meta" },
          script.created_by.login,
          " · ",
          timeElement(script.updated_at),
        ),
        script.can_edit ? null : actions.readOnlyBadge(script),
        rowMenu(`Actions for script ${script.logical_path}`, () => [
          { label: "Open", run: () => navigate(`/scripts/${script.id}`) },
          { label: "Run…", run: () => navigate(`/scripts/${script.id}/run`) },
          { label: "History", run: () => navigate(`/scripts/${script.id}/history`) },
          script.can_edit && {
            label: "Rename…",
            run: () => act(() => actions.renameScript(script)),
          },
          script.can_edit && {
            label: "Move…",
            run: () => act(() => actions.moveScript(script, folders()), revealScript),
          },
          script.can_delete && {
            label: "Delete…",
            danger: true,
            run: () => act(() => actions.deleteScript(script)),
          },
        ]),
      ),
    );

  const folderNode = (item) => {
    const { folder } = item;
    const open = expanded.has(folder.id);
    const count = item.scripts.length + item.subfolders.length;
    const children = h("ul", { class: "children", role: "group", hidden: !open });
    const toggle = h(
      "button",
      {
        type: "button",
        class: "disclosure",
        tabindex: "-1",
        "aria-expanded": String(open),
        "aria-label": `${open ? "Collapse" : "Expand"} folder ${folder.name}`,
      },
      "▸",
    );
    // Children are built on first expansion: a tree of thousands of scripts opens instantly.
    const fill = () => {
      if (children.childElementCount) return;
      if (!count)
        children.append(
          h(
            "li",
            { class: "empty-folder", role: "treeitem", tabindex: "-1", "aria-disabled": "true" },
            "Empty folder",
          ),
        );
      else
        children.append(
          ...item.subfolders.map(folderNode),
          ...item.scripts.map((script) => scriptRow(script)),
        );
    };
    if (open) fill();
    const setOpen = (value) => {
      if (value) {
        expanded.add(folder.id);
        fill();
      } else {
        expanded.delete(folder.id);
      }
      saveExpanded(expanded);
      children.hidden = !value;
      node.setAttribute("aria-expanded", String(value));
      toggle.setAttribute("aria-expanded", String(value));
      toggle.setAttribute("aria-label", `${value ? "Collapse" : "Expand"} folder ${folder.name}`);
    };
    toggle.addEventListener("click", () => setOpen(!expanded.has(folder.id)));
    const name = h(
      "button",
      {
        type: "button",
        class: "node-name folder-name",
        tabindex: "-1",
        onclick: () => setOpen(!expanded.has(folder.id)),
      },
      folder.name,
    );
    const node = h(
      "li",
      {
        class: "node folder-node",
        "data-folder-id": folder.id,
        "data-folder-path": folder.path,
        role: "treeitem",
        tabindex: "-1",
        "aria-expanded": String(open),
        "aria-label": folder.name,
      },
      h(
        "div",
        { class: "row" },
        toggle,
        h("span", { class: "node-icon folder-icon", "aria-hidden": "true" }),
        name,
        h(
          "span",
          { class: "node-meta" },
          `${item.scripts.length} script${item.scripts.length === 1 ? "" : "s"}`,
          item.subfolders.length
            ? `, ${item.subfolders.length} folder${item.subfolders.length === 1 ? "" : "s"}`
            : "",
          " · ",
          folder.created_by.login,
        ),
        rowMenu(`Actions for folder ${folder.path}`, () => [
          {
            label: "New script here…",
            run: () =>
              act(
                () => actions.createScriptFromText(folders(), folder.id, scripts()),
                revealScript,
              ),
          },
          {
            label: "Upload script here…",
            run: () =>
              act(() => actions.uploadScript(folders(), folder.id, scripts()), revealScript),
          },
          {
            label: "New folder inside…",
            run: () => act(() => actions.createFolder(folders(), folder.id), revealFolder),
          },
          folder.can_edit && {
            label: "Rename…",
            run: () => act(() => actions.renameFolder(folder)),
          },
          folder.can_edit && {
            label: "Move…",
            run: () => act(() => actions.moveFolder(folder, folders()), revealFolder),
          },
          {
            label: "Deleted scripts",
            run: () => navigate("/deleted", { folder: folder.path }),
          },
          folder.can_delete && {
            label: "Delete…",
            danger: true,
            run: () => act(() => actions.deleteFolder(item)),
          },
        ]),
      ),
      children,
    );
    // A .py file dropped on the folder's row becomes a script in it (several: one by one).
    acceptFileDrops(node.querySelector(".row"), (files) =>
      act(async () => {
        let last = null;
        for (const file of files)
          last = (await actions.uploadDroppedScript(file, folder, scripts())) || last;
        return last;
      }, revealScript),
    );
    return node;
  };

  const draw = () => {
    const needle = filter.value.trim();
    if (needle) {
      const found = matchScripts(actions.allScripts(tree), needle);
      clear(
        listing,
        h(
          "p",
          { class: "hint", role: "status" },
          `${found.length} script${found.length === 1 ? "" : "s"} match “${filter.value.trim()}”.`,
        ),
        h(
          "ul",
          { class: "tree flat", role: "tree", "aria-label": "Matching scripts" },
          found.map((script) => scriptRow(script, true)),
        ),
      );
      installTreeKeys(listing.querySelector('[role="tree"]'));
      return;
    }
    if (!tree.root_folders.length && !tree.root_scripts.length) {
      clear(
        listing,
        h(
          "div",
          { class: "panel empty" },
          h(
            "p",
            {},
            "No scripts yet. Create one from text or upload a .py file; or push them with git (see Account).",
          ),
        ),
      );
      return;
    }
    clear(
      listing,
      h(
        "ul",
        { class: "tree", role: "tree", "aria-label": "Folders and scripts" },
        tree.root_folders.map(folderNode),
        tree.root_scripts.map((script) => scriptRow(script)),
      ),
    );
    installTreeKeys(listing.querySelector('[role="tree"]'));
  };
  // The filter lives in the address too: a reload, Back or a shared link shows the same list.
  filter.addEventListener("input", () => {
    updateQuery({ filter: filter.value.trim() });
    draw();
  });

  const welcome = app.user.needs_onboarding ? onboarding(app) : null;
  clear(
    view,
    h(
      "section",
      { class: "screen tree-screen" },
      h(
        "div",
        { class: "screen-head" },
        h("h1", {}, "Scripts"),
        h(
          "div",
          { class: "toolbar" },
          h(
            "button",
            {
              type: "button",
              class: "secondary",
              onclick: () => act(() => actions.createFolder(folders()), revealFolder),
            },
            "New folder",
          ),
          h(
            "button",
            {
              type: "button",
              class: "secondary",
              onclick: () =>
                act(() => actions.uploadScript(folders(), null, scripts()), revealScript),
            },
            "Upload script",
          ),
          h(
            "button",
            {
              type: "button",
              class: "primary",
              onclick: () =>
                act(() => actions.createScriptFromText(folders(), null, scripts()), revealScript),
            },
            "New script",
          ),
          h("a", { class: "button secondary", href: "#/deleted" }, "Deleted scripts"),
        ),
      ),
      welcome,
      filter,
      listing,
    ),
  );
  // A breadcrumb's folder (`?folder=geo/wells`): shown open, with the folders around it, and
  // made the tree's tab stop once the screen is on the page.
  const shown = query.get("folder");
  const target = shown ? folders().find((folder) => folder.path === shown) : null;
  if (target) {
    for (const id of [target.id, ...revealFolder(target)]) expanded.add(id);
    saveExpanded(expanded);
  }
  draw();
  const item = target && listing.querySelector(`[data-folder-id="${target.id}"]`);
  if (item) {
    makeCurrent(item.closest('[role="tree"]'), item, false);
    requestAnimationFrame(() => {
      item.focus();
      item.scrollIntoView({ block: "center" });
    });
  }
}

function onboarding(app) {
  const panel = h(
    "div",
    { class: "panel welcome" },
    h("h2", {}, `Welcome, ${app.user.login}`),
    h(
      "ul",
      {},
      h(
        "li",
        {},
        "A script is a Python file with a function main(data) that takes and returns a JSON object.",
      ),
      h(
        "li",
        {},
        "Organise scripts in folders; every change is a commit, so nothing is ever lost.",
      ),
      h(
        "li",
        {},
        "Open a script to run it, see its history, or copy the snippet that calls it from a simulator.",
      ),
    ),
    h(
      "button",
      {
        type: "button",
        class: "secondary",
        onclick: () =>
          guard(async () => {
            app.user = await api("auth/onboarding-status", {
              method: "PATCH",
              json: { needs_onboarding: false },
            });
            panel.remove();
          }),
      },
      "Got it",
    ),
  );
  return panel;
}
