// The Source tab: the highlighted source (at any revision) and the editor that saves a new version.

import { withMessage } from "../actions.js";
import { ApiError, InputError, api, describeError } from "../api.js";
import { confirmDialog } from "../dialogs.js";
import { clear, copyButton, debounce, h, notify, timeElement } from "../dom.js";
import { navigate } from "../router.js";

// Unsaved edits stay in this browser, per user and script, until saved or discarded: a reload or
// an ended session loses nothing. `base` is the source the edit started from.
const draftKey = (script, user) => `gitscripts.draft.${user.id}.${script.id}`;

function readDraft(script, user) {
  try {
    return JSON.parse(localStorage.getItem(draftKey(script, user)) || "null");
  } catch {
    return null;
  }
}

/** Highlighted lines from the service's Pygments markup (one source line per markup line). */
function sourceView(html) {
  const lines = html.replace(/\n$/, "").split("\n");
  const code = h("code", {});
  // The markup is the service's own escaped HTML (see gitscripts/web/highlight.py).
  code.innerHTML = lines.map((line) => `<span class="line">${line || "\n"}</span>`).join("");
  return h("pre", { class: "source hl", tabindex: "0", "aria-label": "Source code" }, code);
}

export async function renderSourceTab(panel, { script, query, app }) {
  const user = app.user;
  const rev = query.get("rev");
  // Asked "at main" even for the current version: the answer then names the revision an edit
  // starts from, which the save sends back so that it never overwrites a newer one unseen.
  const content = await api(`scripts-manager/scripts/${script.id}/content?highlight=true&rev=${encodeURIComponent(rev || "main")}`);
  let draft = rev || !script.can_edit ? null : readDraft(script, user);
  if (draft && draft.content === content.content) {
    // Already saved (from another tab, say): nothing is left unsaved.
    localStorage.removeItem(draftKey(script, user));
    draft = null;
  }
  const editButton =
    script.can_edit && !rev ? h("button", { type: "button", class: "primary", onclick: () => edit(content.content, { source: content.content, revision: content.revision }) }, "Edit source") : null;

  const show = () =>
    clear(
      panel,
      rev
        ? h(
            "div",
            { class: "notice-inline info", role: "note" },
            "You are looking at this script as it was at ",
            h("a", { href: `#/commits/${content.revision}` }, h("code", {}, content.revision.slice(0, 10))),
            ". ",
            h("a", { href: `#/scripts/${script.id}/source` }, "Show the current version"),
          )
        : null,
      draft
        ? h(
            "div",
            { class: "notice-inline warning", role: "note" },
            "You have unsaved changes to this script from ",
            timeElement(draft.saved_at),
            ". ",
            draft.base !== content.content ? h("strong", {}, "A newer version has been saved since you started editing: check the History before saving over it. ") : null,
            h("button", { type: "button", class: "link-button", onclick: () => edit(draft.content, { source: draft.base, revision: draft.base_revision }) }, "Resume editing"),
            " or ",
            h(
              "button",
              {
                type: "button",
                class: "link-button",
                onclick: () => {
                  localStorage.removeItem(draftKey(script, user));
                  navigate(`/scripts/${script.id}/source`, {}, { replace: true });
                },
              },
              "discard them",
            ),
            ".",
          )
        : null,
      h("div", { class: "source-toolbar" }, editButton, copyButton(() => content.content, "Copy source"), rev ? h("a", { class: "button secondary", href: `#/scripts/${script.id}/run?rev=${encodeURIComponent(content.revision)}` }, "Run this version") : null),
      sourceView(content.html),
    );

  // `start`: the version the edit begins from (a resumed draft: the one it began from).
  const edit = (text, start) => clear(panel, editor(script, draftKey(script, user), start, text, () => navigate(`/scripts/${script.id}/source`, {}, { replace: true })));
  show();
}

/** The editor: line numbers, indentation keys, live validation, save as a new version. */
/** `start` is the version the edit began from: its `source` and its `revision`. */
function editor(script, draftAt, start, text, done) {
  const original = start.source;
  const textarea = h("textarea", { class: "code editor-text", spellcheck: "false", autocapitalize: "off", "aria-label": `Source of ${script.filename}`, "aria-describedby": "editor-status editor-keys", value: text });
  const gutter = h("pre", { class: "gutter", "aria-hidden": "true" });
  const status = h("p", { class: "editor-status", id: "editor-status", role: "status" });
  const problem = h("p", { class: "editor-error", role: "alert", hidden: true });
  const message = h("input", { type: "text", id: "editor-message", class: "commit-message", maxlength: 10000, autocomplete: "off", placeholder: `Update script ${script.logical_path}` });
  const save = h("button", { type: "button", class: "primary" }, "Save new version");
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
  let errorLine = null;
  let releaseTab = false;
  let checked = 0;

  const drawGutter = () => {
    const count = textarea.value.split("\n").length;
    gutter.replaceChildren(...Array.from({ length: count }, (_, index) => h("span", { class: index + 1 === errorLine ? "error-line" : null }, `${index + 1}\n`)));
    gutter.scrollTop = textarea.scrollTop;
  };
  const showProblem = (error) => {
    errorLine = error instanceof ApiError && error.details.line ? Number(error.details.line) : null;
    problem.textContent = describeError(error);
    problem.hidden = false;
    status.textContent = "";
    drawGutter();
    problem.scrollIntoView({ block: "nearest" });
  };
  const clearProblem = () => {
    errorLine = null;
    problem.hidden = true;
    drawGutter();
  };
  // Asks the service, which applies exactly the rules a save would; answers arriving late are dropped.
  const validate = debounce(async () => {
    const ticket = ++checked;
    try {
      await api("scripts-manager/validate", { method: "POST", json: { filename: script.filename, content: textarea.value } });
      if (ticket !== checked) return;
      clearProblem();
      status.textContent = "The script is valid.";
    } catch (error) {
      if (ticket !== checked || error.status === 401) return;
      showProblem(error);
    }
  }, 400);
  const remember = debounce(() => {
    if (textarea.value === original) localStorage.removeItem(draftAt);
    else localStorage.setItem(draftAt, JSON.stringify({ content: textarea.value, base: original, base_revision: start.revision, saved_at: new Date().toISOString() }));
  }, 300);
  // Saved or discarded: no pending draft write may bring the edit back.
  const forget = () => {
    remember.cancel();
    validate.cancel();
    localStorage.removeItem(draftAt);
  };

  textarea.addEventListener("input", () => {
    drawGutter();
    remember();
    validate();
  });
  textarea.addEventListener("scroll", () => (gutter.scrollTop = textarea.scrollTop));
  textarea.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "s") {
      event.preventDefault();
      save.click();
    } else if (event.key === "Escape") {
      releaseTab = true; // the next Tab leaves the editor, as keyboard users expect
    } else if (event.key === "Tab" && !releaseTab && !event.ctrlKey && !event.altKey) {
      event.preventDefault();
      indent(textarea, event.shiftKey);
    } else if (event.key === "Enter" && !event.shiftKey && !event.ctrlKey) {
      event.preventDefault();
      newlineKeepingIndent(textarea);
    } else {
      releaseTab = false;
    }
  });

  // Someone saved a newer version since this edit began: say so, keep the text, and let the
  // user look at what changed or save over it knowingly.
  const showChangedSince = (error) => {
    showProblem(error);
    problem.textContent = "Someone saved a newer version of this script since you started editing. Your text is still here. ";
    problem.append(
      h("a", { href: `#/scripts/${script.id}/history`, target: "_blank", rel: "noopener" }, "See what changed"),
      " (opens in a new tab), or ",
      h("button", { type: "button", class: "link-button", onclick: () => store({ overwrite: true }) }, "save over it"),
      ".",
    );
  };
  const store = async ({ overwrite = false } = {}) => {
    // A validation still on its way must not clear what the save is about to say.
    validate.cancel();
    checked += 1;
    if (textarea.value === original) {
      showProblem(new InputError("Nothing to save: the source is unchanged."));
      return;
    }
    save.disabled = true;
    save.setAttribute("aria-busy", "true");
    try {
      const change = overwrite ? { content: textarea.value } : { content: textarea.value, base_revision: start.revision };
      await api(`scripts-manager/scripts/${script.id}`, { method: "PUT", json: withMessage(change, message.value) });
      forget();
      notify("Saved a new version.", "success");
      done();
    } catch (error) {
      if (error.status === 401) return;
      if (error.code === "SCRIPT_CHANGED") showChangedSince(error);
      else showProblem(error);
    } finally {
      save.disabled = false;
      save.removeAttribute("aria-busy");
    }
  };
  save.addEventListener("click", () => store());
  cancel.addEventListener("click", async () => {
    if (textarea.value !== original) {
      const discard = await confirmDialog({ title: "Discard your changes?", message: "The edited source has not been saved.", confirmLabel: "Discard", danger: true });
      if (!discard) return;
    }
    forget();
    done();
  });

  drawGutter();
  queueMicrotask(() => textarea.focus());
  if (text !== original) validate();
  return h(
    "div",
    { class: "editor-screen" },
    h("div", { class: "editor" }, gutter, textarea),
    problem,
    status,
    h("p", { class: "hint", id: "editor-keys" }, "Tab indents, Shift+Tab dedents, Ctrl+S saves. Press Escape, then Tab, to leave the editor. Unsaved changes are kept in this browser."),
    h("div", { class: "field commit-message" }, h("label", { for: "editor-message" }, "Commit message (optional)"), message),
    h("div", { class: "actions" }, cancel, save),
  );
}

const INDENT = "    ";

// Typed through insertText, so the browser's undo (Ctrl+Z) sees these edits like any other.
function insert(textarea, text) {
  if (document.execCommand("insertText", false, text)) return; // it also fires "input"
  textarea.setRangeText(text, textarea.selectionStart, textarea.selectionEnd, "end");
  textarea.dispatchEvent(new Event("input"));
}

function indent(textarea, outdent) {
  const { selectionStart: start, selectionEnd: end, value } = textarea;
  const lineStart = value.lastIndexOf("\n", start - 1) + 1;
  if (!outdent && start === end) {
    insert(textarea, INDENT);
    return;
  }
  const block = value.slice(lineStart, end);
  const changed = block
    .split("\n")
    .map((line) => (outdent ? line.replace(/^( {1,4}|\t)/, "") : INDENT + line))
    .join("\n");
  textarea.setSelectionRange(lineStart, end);
  insert(textarea, changed);
  textarea.setSelectionRange(lineStart, lineStart + changed.length);
}

function newlineKeepingIndent(textarea) {
  const { selectionStart: start, value } = textarea;
  const line = value.slice(value.lastIndexOf("\n", start - 1) + 1, start);
  let leading = /^[ \t]*/.exec(line)[0];
  if (/:\s*(#.*)?$/.test(line)) leading += INDENT;
  insert(textarea, `\n${leading}`);
}
