// "Go to script": Ctrl+K, or "/" outside a text field, opens a fuzzy search over every script's
// name, path and description. Arrow keys choose, Enter opens, Escape closes; the last option
// searches the scripts' code for the same text.

import { allScripts } from "./actions.js";
import { api } from "./api.js";
import { modal } from "./dialogs.js";
import { h } from "./dom.js";
import { matchScripts } from "./fuzzy.js";
import { navigate } from "./router.js";

const SHOWN = 50;
let known = null; // the scripts of the last tree fetched: listed at once, then refreshed

export function installGoTo(signedIn) {
  document.addEventListener("keydown", (event) => {
    if (!signedIn() || document.querySelector("dialog[open]")) return;
    const typing = event.target.closest("input, textarea, select, [contenteditable]");
    const ctrlK = (event.ctrlKey || event.metaKey) && event.key.toLowerCase() === "k";
    const slash = event.key === "/" && !typing && !event.ctrlKey && !event.metaKey;
    if (!ctrlK && !slash) return;
    event.preventDefault();
    openGoTo();
  });
}

export function openGoTo() {
  const input = h("input", {
    type: "text",
    id: "goto-input",
    role: "combobox",
    "aria-expanded": "true",
    "aria-controls": "goto-results",
    "aria-autocomplete": "list",
    "aria-label": "Script name, path or description",
    placeholder: "Name, path or description: several words narrow it down",
    autocomplete: "off",
    spellcheck: "false",
  });
  const list = h("ul", { id: "goto-results", role: "listbox", "aria-label": "Scripts" });
  const status = h("p", { class: "hint", role: "status" });
  let options = [];
  let active = 0;

  const choose = (option) => {
    dialog.close();
    option.go();
  };
  const highlight = (index) => {
    active = Math.max(0, Math.min(index, options.length - 1));
    options.forEach((option, position) =>
      option.element.setAttribute("aria-selected", String(position === active)),
    );
    const current = options[active];
    if (current) {
      input.setAttribute("aria-activedescendant", current.element.id);
      current.element.scrollIntoView({ block: "nearest" });
    } else input.removeAttribute("aria-activedescendant");
  };
  const option = (index, go, ...content) => {
    const element = h("li", { role: "option", id: `goto-option-${index}` }, ...content);
    const entry = { element, go };
    element.addEventListener("click", () => choose(entry));
    return entry;
  };
  const draw = () => {
    const query = input.value.trim();
    if (!known) {
      status.textContent = "Loading the scripts…";
      return;
    }
    const found = query ? matchScripts(known, query) : [];
    options = found
      .slice(0, SHOWN)
      .map((script, index) =>
        option(
          index,
          () => navigate(`/scripts/${script.id}`),
          h("span", { class: "goto-name" }, script.display_name),
          h("code", { class: "goto-path" }, script.logical_path),
        ),
      );
    if (query) {
      options.push(
        option(
          options.length,
          () => navigate("/search", { q: query }),
          h("span", { class: "goto-name" }, `Search the code for “${query}”`),
        ),
      );
    }
    list.replaceChildren(...options.map((entry) => entry.element));
    status.textContent = !query
      ? `${known.length} scripts. Type part of a name, path or description.`
      : `${found.length} script${found.length === 1 ? "" : "s"} match` +
        (found.length > SHOWN ? `; the first ${SHOWN} are listed.` : ".");
    highlight(0);
  };

  input.addEventListener("input", draw);
  input.addEventListener("keydown", (event) => {
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      highlight(active + (event.key === "ArrowDown" ? 1 : -1));
    } else if (event.key === "Enter" && options[active]) {
      event.preventDefault();
      choose(options[active]);
    }
  });

  const dialog = modal("Go to a script", [input, status, list], { wide: true });
  dialog.classList.add("goto");
  input.focus();
  draw();
  api("scripts-manager/tree")
    .then((tree) => {
      known = allScripts(tree);
      if (dialog.open) draw();
    })
    .catch(() => {
      if (!known) status.textContent = "The scripts could not be loaded.";
    });
}
