// The Run tab: JSON input, a revision to run, what came out, and the script's recent runs.
//
// A run goes through the run log's asynchronous API (`POST /runs`, then long-polls until it
// ends): it can be cancelled, keeps going when the page is left, and shows in the Runs page while
// it runs. When the log keeps no results (RUNS_STORE_DATA off) it runs synchronously instead, as
// the simulator does, and Cancel closes the request (which stops the run).

import { api, describeError, encodePath, guard, send } from "../api.js";
import { authorName, debounce, formatDate, h } from "../dom.js";
import { inputsSource, inputsTable, loadInputs, missingKeys } from "../inputs.js";
import { updateQuery } from "../router.js";
import {
  durationElement,
  formatMs,
  recentRuns,
  runLink,
  runOutput,
  statusBadge,
  submitRun,
  tickDurations,
  waitForEnd,
} from "../runs.js";

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

const exampleText = (inputs) => JSON.stringify(inputs.example, null, 2);

export async function renderRunTab(panel, { script, inputs: inputsAtMain, query, app }) {
  const user = app.user; // as it is now: a save after signing out must not use another user's key
  const wanted = query.get("rev") || "main";
  // What the script expects as it was at a revision; main's when that revision cannot be read.
  const inputsAt = (rev) =>
    rev === "main" ? Promise.resolve(inputsAtMain) : loadInputs(script.id, rev).catch(() => null);
  const [history, tags, inputsThen, limits] = await Promise.all([
    api(`scripts-manager/scripts/${script.id}/history?limit=100`),
    api("scripts-manager/tags"),
    inputsAt(wanted),
    api("runs/limits"),
  ]);
  const asynchronous = limits.data_stored;
  const longest = asynchronous ? limits.max_async_execution_time : limits.max_script_execution_time;
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
    max: String(longest),
    placeholder: `${longest} (default)`,
    class: "narrow",
    "aria-describedby": "run-timeout-hint",
  });
  const run = h("button", { type: "button", class: "primary" }, "Run");
  const cancel = h("button", { type: "button", class: "secondary", hidden: true }, "Cancel");
  const output = h("div", { class: "run-output", "aria-live": "polite" });
  const stopTicking = tickDurations(output);
  // What is going on: the request (aborted to stop following, or a synchronous run), and the
  // asynchronous run once it was submitted.
  let running = null;
  let current = null;

  const chooseRevision = async (rev) => {
    const known = [...revision.options].some((option) => option.value === rev);
    revision.value = known ? rev : OTHER;
    otherRevision.hidden = known;
    otherRevision.value = known ? "" : rev;
    await followRevision(rev);
  };
  // A run's input and revision, put into the form (its input must have been kept).
  const load = async (summary) => {
    const full = await api(`runs/${summary.id}`);
    await chooseRevision(full.revision);
    input.value = JSON.stringify(full.input, null, 2);
    localStorage.setItem(inputKey(script, user), input.value);
    check();
    return full;
  };

  const start = async (data, rev) => {
    updateQuery({ rev: rev === "main" ? null : rev });
    running = new AbortController();
    current = null;
    run.disabled = true;
    cancel.hidden = false;
    // A submit cannot be taken back: Cancel waits for the run it makes, and cancels that.
    cancel.disabled = asynchronous;
    output.replaceChildren(h("p", { class: "loading", role: "status" }, `Running at ${rev}…`));
    try {
      const path = await pathAtRevision(rev);
      let ended;
      if (asynchronous) {
        current = await submitRun({ path, rev, data, timeout: timeout.value });
        cancel.disabled = false;
        recent.refresh();
        output.replaceChildren(progressView(current, rev));
        ended = await waitForEnd(current, {
          signal: running.signal,
          onUpdate: (latest) => output.replaceChildren(progressView(latest, rev)),
        });
      } else {
        const params = new URLSearchParams({ rev });
        if (timeout.value) params.set("timeout", timeout.value);
        const response = await send(`/api/v1/scripts/${encodePath(path)}?${params}`, {
          method: "POST",
          json: { data },
          signal: running.signal,
        });
        ended = asRun(await response.json(), rev);
      }
      output.replaceChildren(resultView(ended, rev));
    } catch (error) {
      if (error.status === 401 || (error.name === "AbortError" && current)) return;
      output.replaceChildren(
        h(
          "p",
          { class: "form-error", role: "alert" },
          error.name === "AbortError" ? "Cancelled: the run was stopped." : describeError(error),
        ),
      );
    } finally {
      running = null;
      current = null;
      run.disabled = false;
      cancel.hidden = true;
      recent.refresh();
    }
  };
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
    await start(parsed.value, rev);
  };
  const rerun = async (summary) => {
    const full = await guard(() => load(summary));
    if (full) await start(full.input, full.revision);
  };
  run.addEventListener("click", execute);
  cancel.addEventListener("click", async () => {
    if (!current) {
      if (running) running.abort();
      return;
    }
    // The run ends cancelled; the wait for it then answers with it.
    cancel.disabled = true;
    if (!(await guard(() => api(`runs/${current.id}/cancel`, { method: "POST" }))))
      cancel.disabled = false;
  });
  const recent = recentRuns(script, {
    actions: (each) =>
      each.data_stored
        ? [
            h(
              "button",
              {
                type: "button",
                class: "secondary small",
                title: "Put its input and revision into the form",
                onclick: () => guard(() => load(each)),
              },
              "Load",
            ),
            h(
              "button",
              {
                type: "button",
                class: "secondary small",
                title: "The same input at the same revision (main: as it is now)",
                disabled: Boolean(running),
                onclick: () => !running && rerun(each),
              },
              "Run again",
            ),
          ]
        : null,
  });
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
            h(
              "span",
              { class: "hint", id: "run-timeout-hint" },
              `At most ${longest} s${asynchronous ? "" : " (MAX_SCRIPT_EXECUTION_TIME)"}.`,
            ),
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
    h("div", { class: "panel" }, recent.element),
  );
  recent.refresh();
  // From a script's page: a run to load into the form, or to run again. Once only: a reload
  // must not run it again.
  const from = query.get("from") || query.get("rerun");
  if (from) {
    updateQuery({ from: null, rerun: null });
    if (query.get("rerun")) rerun({ id: from });
    else guard(() => load({ id: from }));
  }
  // Leaving the page stops following an asynchronous run, not the run: it shows in its list.
  return () => {
    if (running) running.abort();
    recent.stop();
    stopTicking();
  };
}

// A synchronous answer in the shape of a run, for the same view.
function asRun(answer, rev) {
  return {
    id: answer.run_id,
    status: answer.success ? "succeeded" : "failed",
    result: answer.result,
    error: answer.error,
    stdout: answer.stdout,
    stderr: answer.stderr,
    commit: answer.revision,
    revision: rev,
    run_time_ms: answer.execution_time * 1000,
    data_stored: true,
  };
}

function progressView(run, rev) {
  return h(
    "div",
    { class: "run-progress", "data-testid": "run-progress" },
    h(
      "p",
      { class: "loading", role: "status" },
      statusBadge(run),
      ` Running at ${rev}… `,
      durationElement(run),
      " · ",
      runLink(run, "open the run"),
    ),
    runOutput(run),
  );
}

function resultView(run, rev) {
  return h(
    "div",
    {
      class: `run-result ${run.status === "succeeded" ? "ok" : "failed"}`,
      "data-testid": "run-result",
      "data-status": run.status,
    },
    h(
      "p",
      { class: "run-summary" },
      statusBadge(run),
      run.run_time_ms === null || run.run_time_ms === undefined
        ? ""
        : ` in ${formatMs(run.run_time_ms)}`,
      " · revision ",
      h(
        "a",
        { href: `#/commits/${run.commit}`, "data-testid": "run-revision" },
        h("code", {}, run.commit.slice(0, 10)),
      ),
      rev !== run.commit ? ` (${rev})` : "",
      run.id ? [" · ", runLink(run, "details")] : null,
    ),
    runOutput(run),
  );
}
