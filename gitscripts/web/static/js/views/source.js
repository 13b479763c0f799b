// The Source tab: the highlighted source (at any revision) and the editor that saves a new version.

import { withMessage } from "../actions.js";
import { ApiError, InputError, api, describeError } from "../api.js";
import { confirmDialog } from "../dialogs.js";
import { clear, copyButton, debounce, h, notify, pastRevisionNote, timeElement } from "../dom.js";
import { LINE_TITLE, linkLines } from "../lines.js";
import { navigate } from "../router.js";
import {
  Compartment,
  EditorState,
  EditorView,
  basicSetup,
  indentWithTab,
  keymap,
  lintGutter,
  oneDark,
  python,
  setDiagnostics,
} from "../../vendor/codemirror.js";

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

/** Highlighted lines from the service's Pygments markup (one source line per markup line), each
 * with its number, which links to it: `?line=` marks lines and scrolls to them (a search result
 * links to one). */
function sourceView(html) {
  const lines = html.replace(/\n$/, "").split("\n");
  const code = h("code", {});
  // The markup is the service's own escaped HTML (see gitscripts/manager/highlight.py).
  code.innerHTML = lines.map((line) => `<span class="line">${line || "\n"}</span>`).join("");
  Array.from(code.children).forEach((line, index) => {
    line.dataset.line = String(index + 1);
    line.prepend(h("span", { class: "ln", title: LINE_TITLE }, String(index + 1)));
  });
  const view = h("pre", { class: "source hl", tabindex: "0", "aria-label": "Source code" }, code);
  linkLines(view);
  return view;
}

export async function renderSourceTab(panel, { script, query, app }) {
  const user = app.user;
  const rev = query.get("rev");
  // Asked "at main" even for the current version: the answer then names the revision an edit
  // starts from, which the save sends back so that it never overwrites a newer one unseen.
  const content = await api(
    `scripts-manager/scripts/${script.id}/content?highlight=true&rev=${encodeURIComponent(rev || "main")}`,
  );
  let draft = rev || !script.can_edit ? null : readDraft(script, user);
  if (draft && draft.content === content.content) {
    // Already saved (from another tab, say): nothing is left unsaved.
    localStorage.removeItem(draftKey(script, user));
    draft = null;
  }
  const editButton =
    script.can_edit && !rev
      ? h(
          "button",
          {
            type: "button",
            class: "primary",
            onclick: () =>
              edit(content.content, { source: content.content, revision: content.revision }),
          },
          "Edit source",
        )
      : null;

  const show = () =>
    clear(
      panel,
      rev
        ? pastRevisionNote(
            "You are looking at this script as it was at ",
            content.revision,
            `#/scripts/${script.id}/source`,
          )
        : null,
      draft
        ? h(
            "div",
            { class: "notice-inline warning", role: "note" },
            "You have unsaved changes to this script from ",
            timeElement(draft.saved_at),
            ". ",
            draft.base !== content.content
              ? h(
                  "strong",
                  {},
                  "A newer version has been saved since you started editing: check the History before saving over it. ",
                )
              : null,
            h(
              "button",
              {
                type: "button",
                class: "link-button",
                onclick: () =>
                  edit(draft.content, { source: draft.base, revision: draft.base_revision }),
              },
              "Resume editing",
            ),
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
      h(
        "div",
        { class: "source-toolbar" },
        editButton,
        copyButton(() => content.content, "Copy source"),
        rev
          ? h(
              "a",
              {
                class: "button secondary",
                href: `#/scripts/${script.id}/run?rev=${encodeURIComponent(content.revision)}`,
              },
              "Run this version",
            )
          : null,
      ),
      sourceView(content.html),
    );

  // `start`: the version the edit begins from (a resumed draft: the one it began from).
  const edit = (text, start) =>
    clear(
      panel,
      editor(script, draftKey(script, user), start, text, () =>
        navigate(`/scripts/${script.id}/source`, {}, { replace: true }),
      ),
    );
  show();
}

/** The editor (CodeMirror, served from here): Python highlighting, line numbers, bracket
 * matching, search and replace (Ctrl+F), the service's validation as inline diagnostics, a
 * theme that follows the system's light or dark, and a save bar that stays on screen.
 * `start` is the version the edit began from: its `source` and its `revision`. */
function editor(script, draftAt, start, text, done) {
  const original = start.source;
  const status = h("p", { class: "editor-status", id: "editor-status", role: "status" });
  const problem = h("p", { class: "editor-error", role: "alert", hidden: true });
  const message = h("input", {
    type: "text",
    id: "editor-message",
    maxlength: 10000,
    autocomplete: "off",
    placeholder: `Update script ${script.logical_path}`,
  });
  const save = h("button", { type: "button", class: "primary" }, "Save new version");
  const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
  let checked = 0;

  const dark = window.matchMedia("(prefers-color-scheme: dark)");
  const theme = new Compartment();
  // In a shadow root, CodeMirror's styles are constructed style sheets: the page's policy
  // (style-src 'self', no inline <style>) allows those, so it needs no exception.
  const host = h("div", { class: "editor" });
  const root = host.attachShadow({ mode: "open" });
  const view = new EditorView({
    doc: text,
    root,
    parent: root,
    extensions: [
      basicSetup,
      python(),
      lintGutter(),
      keymap.of([
        indentWithTab,
        { key: "Mod-s", preventDefault: true, run: () => (save.click(), true) },
      ]),
      EditorState.tabSize.of(4),
      theme.of(dark.matches ? oneDark : []),
      EditorView.theme({
        "&": { height: "min(65vh, 40rem)", fontSize: "0.86rem" },
        "&.cm-focused": { outline: "none" },
        ".cm-scroller": {
          fontFamily: 'ui-monospace, "SFMono-Regular", "DejaVu Sans Mono", Menlo, monospace',
          lineHeight: "1.5",
        },
      }),
      EditorView.contentAttributes.of({
        "aria-label": `Source of ${script.filename}`,
        "aria-describedby": "editor-status editor-keys",
        spellcheck: "false",
        autocapitalize: "off",
      }),
      EditorView.updateListener.of((update) => {
        if (!update.docChanged) return;
        remember();
        validate();
      }),
    ],
  });
  const content = () => view.state.doc.toString();
  const followSystem = () =>
    view.dispatch({ effects: theme.reconfigure(dark.matches ? oneDark : []) });
  dark.addEventListener("change", followSystem);

  // The service's answer as a diagnostic on its line (a syntax error names one), and in words.
  const showProblem = (error) => {
    const line = error instanceof ApiError && error.details.line ? Number(error.details.line) : 0;
    const diagnostics = [];
    if (line >= 1 && line <= view.state.doc.lines) {
      const { from, to } = view.state.doc.line(line);
      diagnostics.push({ from, to, severity: "error", message: describeError(error) });
    }
    view.dispatch(setDiagnostics(view.state, diagnostics));
    problem.textContent = describeError(error);
    problem.hidden = false;
    status.textContent = "";
    problem.scrollIntoView({ block: "nearest" });
  };
  const clearProblem = () => {
    view.dispatch(setDiagnostics(view.state, []));
    problem.hidden = true;
  };
  // Asks the service, which applies exactly the rules a save would; answers arriving late are dropped.
  const validate = debounce(async () => {
    const ticket = ++checked;
    try {
      await api("scripts-manager/validate", {
        method: "POST",
        json: { filename: script.filename, content: content() },
      });
      if (ticket !== checked) return;
      clearProblem();
      status.textContent = "The script is valid.";
    } catch (error) {
      if (ticket !== checked || error.status === 401) return;
      showProblem(error);
    }
  }, 400);
  const remember = debounce(() => {
    if (content() === original) localStorage.removeItem(draftAt);
    else
      localStorage.setItem(
        draftAt,
        JSON.stringify({
          content: content(),
          base: original,
          base_revision: start.revision,
          saved_at: new Date().toISOString(),
        }),
      );
  }, 300);
  // Saved or discarded: no pending draft write may bring the edit back.
  const forget = () => {
    remember.cancel();
    validate.cancel();
    localStorage.removeItem(draftAt);
  };
  const finish = () => {
    dark.removeEventListener("change", followSystem);
    view.destroy();
    done();
  };

  // Someone saved a newer version since this edit began: say so, keep the text, and let the
  // user look at what changed or save over it knowingly.
  const showChangedSince = (error) => {
    showProblem(error);
    problem.textContent =
      "Someone saved a newer version of this script since you started editing. Your text is still here. ";
    problem.append(
      h(
        "a",
        { href: `#/scripts/${script.id}/history`, target: "_blank", rel: "noopener" },
        "See what changed",
      ),
      " (opens in a new tab), or ",
      h(
        "button",
        { type: "button", class: "link-button", onclick: () => store({ overwrite: true }) },
        "save over it",
      ),
      ".",
    );
  };
  const store = async ({ overwrite = false } = {}) => {
    // A validation still on its way must not clear what the save is about to say.
    validate.cancel();
    checked += 1;
    if (content() === original) {
      showProblem(new InputError("Nothing to save: the source is unchanged."));
      return;
    }
    save.disabled = true;
    save.setAttribute("aria-busy", "true");
    try {
      const change = overwrite
        ? { content: content() }
        : { content: content(), base_revision: start.revision };
      await api(`scripts-manager/scripts/${script.id}`, {
        method: "PUT",
        json: withMessage(change, message.value),
      });
      forget();
      notify("Saved a new version.", "success");
      finish();
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
    if (content() !== original) {
      const discard = await confirmDialog({
        title: "Discard your changes?",
        message: "The edited source has not been saved.",
        confirmLabel: "Discard",
        danger: true,
      });
      if (!discard) return;
    }
    forget();
    finish();
  });

  queueMicrotask(() => view.focus());
  if (text !== original) validate();
  return h(
    "div",
    { class: "editor-screen" },
    host,
    problem,
    status,
    h(
      "div",
      { class: "save-bar" },
      h(
        "div",
        { class: "field" },
        h("label", { for: "editor-message" }, "Commit message (optional)"),
        message,
      ),
      h(
        "p",
        { class: "hint", id: "editor-keys" },
        "Tab indents, Ctrl+F finds and replaces, Ctrl+S saves. Escape, then Tab, leaves the editor. Unsaved changes are kept in this browser.",
      ),
      h("div", { class: "actions" }, cancel, save),
    ),
  );
}
