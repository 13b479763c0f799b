// The Run tab: JSON input, a revision to run, and what came out.

import { api, describeError, encodePath, send } from "../api.js";
import { authorName, copyButton, debounce, formatDate, h, timeElement } from "../dom.js";
import { inputsSource, inputsTable, loadInputs, missingKeys } from "../inputs.js";
import { updateQuery } from "../router.js";

const inputKey = (script, user) => `gitscripts.input.${user.id}.${script.id}`;
const OTHER = "__other__";

/** The JSON text as an object, or an error message that says where it is wrong. */
function parseInput(text) {
  if (!text.trim()) return { value: {} };
  let value;
  try {
    value = JSON.parse(text);
  } catch (error) {
    const position = /position (\d+)/.exec(error.message);
    if (position) {
      const before = text.slice(0, Number(position[1]));
      const line = before.split("\n").length;
      const column = before.length - before.lastIndexOf("\n");
      return {
        error: `Not valid JSON at line ${line}, column ${column}: ${error.message.replace(/ in JSON at position \d+.*$/, "")}.`,
      };
    }
    return { error: `Not valid JSON: ${error.message}.` };
  }
  if (value === null || typeof value !== "object" || Array.isArray(value)) {
    return {
      error:
        'The input must be a JSON object, like {"value": 42}: main(data) receives it as a dict.',
    };
  }
  return { value };
}

function formatDuration(seconds) {
  return seconds < 1 ? `${(seconds * 1000).toFixed(1)} ms` : `${seconds.toFixed(2)} s`;
}

const exampleText = (inputs) => JSON.stringify(inputs.example, null, 2);

export async function renderRunTab(panel, { script, inputs: inputsAtMain, query, app }) {
  const user = app.user; // as it is now: a save after signing out must not use another user's key
  const wanted = query.get("rev") || "main";
  // What the script expects as it was at a revision; main's when that revision cannot be read.
  const inputsAt = (rev) =>
    rev === "main" ? Promise.resolve(inputsAtMain) : loadInputs(script.id, rev).catch(() => null);
  const [history, tags, inputsThen] = await Promise.all([
    api(`scripts-manager/scripts/${script.id}/history?limit=100`),
    api("scripts-manager/tags"),
    inputsAt(wanted),
  ]);
  let inputs = inputsThen || inputsAtMain;
  // Where the script lived at each revision: a renamed or moved script is run by the path it had
  // then. Its versions say so; for a tag or any other revision, the service follows it back.
  const pathAt = new Map(history.versions.map((version) => [version.revision, version.path]));
  const pathAtRevision = async (rev) => {
    if (rev === "main") return script.logical_path;
    if (pathAt.has(rev)) return pathAt.get(rev);
    return (
      await api(`scripts-manager/scripts/${script.id}/content?rev=${encodeURIComponent(rev)}`)
    ).path;
  };

  const revision = h(
    "select",
    { id: "run-revision" },
    h(
      "optgroup",
      { label: "Branch" },
      h("option", { value: "main" }, "main (the current version)"),
    ),
    tags.length
      ? h(
          "optgroup",
          { label: "Tags" },
          tags.map((tag) => h("option", { value: tag.name }, `${tag.name} (${tag.short})`)),
        )
      : null,
    h(
      "optgroup",
      { label: "Versions of this script" },
      history.versions.map((version) =>
        h(
          "option",
          { value: version.revision },
          `${version.short} · ${formatDate(version.committed_at)} · ${authorName(version.author)} · ${version.message}`,
        ),
      ),
    ),
    h("option", { value: OTHER }, "Another commit, tag or branch…"),
  );
  const known = [...revision.options].some((option) => option.value === wanted);
  revision.value = known ? wanted : OTHER;
  const otherRevision = h("input", {
    id: "run-other-revision",
    type: "text",
    placeholder: "commit id, tag or branch",
    "aria-label": "Revision to run",
    value: known ? "" : wanted,
    hidden: known,
  });
  revision.addEventListener("change", () => {
    otherRevision.hidden = revision.value !== OTHER;
    if (!otherRevision.hidden) otherRevision.focus();
    else followRevision(revision.value);
  });
  otherRevision.addEventListener("change", () => followRevision(otherRevision.value.trim()));

  const input = h("textarea", {
    id: "run-input",
    class: "code",
    rows: 10,
    spellcheck: "false",
    "aria-describedby": "run-input-problem",
    value: localStorage.getItem(inputKey(script, user)) ?? exampleText(inputs),
  });
  const inputProblem = h("p", { class: "field-error", id: "run-input-problem", hidden: true });
  // Not a refusal: the script may well cope without a key it reads with data[...].
  const inputWarning = h("p", {
    class: "hint warn",
    "data-testid": "run-input-missing",
    hidden: true,
  });
  const check = () => {
    const parsed = parseInput(input.value);
    inputProblem.textContent = parsed.error || "";
    inputProblem.hidden = !parsed.error;
    input.toggleAttribute("aria-invalid", Boolean(parsed.error));
    const missing = parsed.error ? [] : missingKeys(inputs.schema, parsed.value);
    inputWarning.textContent = missing.length
      ? `The script reads ${missing.map((key) => `"${key}"`).join(", ")}, missing here.`
      : "";
    inputWarning.hidden = !missing.length;
    return parsed;
  };
  const useExample = h("button", { type: "button", class: "secondary small" }, "Use example");
  useExample.addEventListener("click", () => {
    input.value = exampleText(inputs);
    localStorage.removeItem(inputKey(script, user));
    check();
  });
  const expected = h("div", { "data-testid": "run-inputs" });
  const showInputs = () =>
    expected.replaceChildren(h("p", { class: "hint" }, inputsSource(inputs)), inputsTable(inputs));
  showInputs();
  // Another revision may expect other keys: its example replaces the input unless it was edited.
  const followRevision = async (rev) => {
    if (!rev) return;
    const untouched = input.value === exampleText(inputs);
    inputs = (await inputsAt(rev)) || inputsAtMain;
    showInputs();
    if (untouched) input.value = exampleText(inputs);
    check();
  };
  input.addEventListener(
    "input",
    debounce(() => {
      localStorage.setItem(inputKey(script, user), input.value);
      check();
    }, 250),
  );
  const format = h("button", { type: "button", class: "secondary small" }, "Format JSON");
  format.addEventListener("click", () => {
    const parsed = check();
    if (!parsed.error) input.value = JSON.stringify(parsed.value, null, 2);
  });

  const timeout = h("input", {
    id: "run-timeout",
    type: "number",
    min: "0.1",
    step: "any",
    placeholder: "default",
    class: "narrow",
  });
  const run = h("button", { type: "button", class: "primary" }, "Run");
  const cancel = h("button", { type: "button", class: "secondary", hidden: true }, "Cancel");
  const output = h("div", { class: "run-output", "aria-live": "polite" });
  let running = null;

  const execute = async () => {
    const parsed = check();
    if (parsed.error) {
      input.focus();
      return;
    }
    const rev = revision.value === OTHER ? otherRevision.value.trim() : revision.value;
    if (!rev) {
      output.replaceChildren(
        h("p", { class: "form-error", role: "alert" }, "Type the commit id, tag or branch to run."),
      );
      otherRevision.focus();
      return;
    }
    updateQuery({ rev: rev === "main" ? null : rev });
    const params = new URLSearchParams({ rev });
    if (timeout.value) params.set("timeout", timeout.value);
    running = new AbortController();
    run.disabled = true;
    cancel.hidden = false;
    output.replaceChildren(h("p", { class: "loading", role: "status" }, `Running at ${rev}…`));
    try {
      const path = await pathAtRevision(rev);
      const response = await send(`/api/v1/scripts/${encodePath(path)}?${params}`, {
        method: "POST",
        json: { data: parsed.value },
        signal: running.signal,
      });
      output.replaceChildren(resultView(await response.json(), rev));
    } catch (error) {
      if (error.status === 401) return;
      output.replaceChildren(
        h(
          "p",
          { class: "form-error", role: "alert" },
          error.name === "AbortError" ? "Cancelled: the run was stopped." : describeError(error),
        ),
      );
    } finally {
      running = null;
      run.disabled = false;
      cancel.hidden = true;
    }
  };
  run.addEventListener("click", execute);
  cancel.addEventListener("click", () => running && running.abort());
  input.addEventListener("keydown", (event) => {
    if ((event.ctrlKey || event.metaKey) && event.key === "Enter") {
      event.preventDefault();
      execute();
    }
  });

  panel.replaceChildren(
    h(
      "div",
      { class: "run-layout" },
      h(
        "div",
        { class: "run-form" },
        h(
          "div",
          { class: "field" },
          h(
            "div",
            { class: "label-row" },
            h("label", { for: "run-input" }, "Input (JSON object passed to main)"),
            h("span", { class: "label-actions" }, useExample, format),
          ),
          input,
          inputProblem,
          inputWarning,
        ),
        h(
          "details",
          { class: "expected-input", open: true },
          h("summary", {}, "What the script expects"),
          expected,
        ),
        h(
          "div",
          { class: "field-row" },
          h(
            "div",
            { class: "field" },
            h("label", { for: "run-revision" }, "Revision"),
            revision,
            otherRevision,
          ),
          h(
            "div",
            { class: "field" },
            h("label", { for: "run-timeout" }, "Timeout (seconds)"),
            timeout,
          ),
        ),
        h(
          "div",
          { class: "actions start" },
          run,
          cancel,
          h("span", { class: "hint" }, "Ctrl+Enter runs"),
        ),
      ),
      output,
    ),
  );
  return () => running && running.abort();
}

function outputBlock(title, text, testid) {
  return h(
    "section",
    { class: "output-block", "data-testid": testid },
    h("h3", {}, title),
    text ? h("pre", {}, text) : h("p", { class: "hint" }, "(empty)"),
  );
}

function resultView(answer, rev) {
  const json = answer.success ? JSON.stringify(answer.result, null, 2) : null;
  return h(
    "div",
    { class: `run-result ${answer.success ? "ok" : "failed"}`, "data-testid": "run-result" },
    h(
      "p",
      { class: "run-summary" },
      h(
        "span",
        { class: `badge ${answer.success ? "ok" : "failed"}` },
        answer.success ? "Success" : "Failed",
      ),
      ` in ${formatDuration(answer.execution_time)} · revision `,
      h(
        "a",
        { href: `#/commits/${answer.revision}`, "data-testid": "run-revision" },
        h("code", {}, answer.revision.slice(0, 10)),
      ),
      rev !== answer.revision ? ` (${rev})` : "",
      " · ",
      timeElement(new Date().toISOString()),
    ),
    answer.success
      ? h(
          "section",
          { class: "output-block", "data-testid": "run-result-json" },
          h("div", { class: "label-row" }, h("h3", {}, "Result"), copyButton(json, "Copy result")),
          h("pre", {}, json),
        )
      : h(
          "section",
          { class: "output-block error-block" },
          h("h3", {}, "Error"),
          h("pre", { "data-testid": "run-error" }, answer.error),
        ),
    outputBlock("stdout", answer.stdout, "run-stdout"),
    outputBlock("stderr", answer.stderr, "run-stderr"),
  );
}
