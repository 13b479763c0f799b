// The run log: every run the user may see (admins: everyone's), filtered and paged, kept current
// while some are going on; and one run in full, with Replay and Cancel.

import { api, describeError, guard } from "../api.js";
import { clear, h, notify, timeElement } from "../dom.js";
import { href, navigate, rerender } from "../router.js";
import {
  STATUS_WORDS,
  cancellable,
  commitLink,
  durationElement,
  isEnded,
  modeWords,
  runLink,
  runOutput,
  scriptLink,
  statusBadge,
  tickDurations,
  waitForEnd,
  who,
} from "../runs.js";

// What a Runs page's address may carry besides `before` (`user` means something to admins only;
// `limit`, runs per page, is 50 unless it says otherwise).
const FILTERS = ["path", "script_id", "batch", "status", "user", "limit"];

function runRow(run) {
  return h(
    "tr",
    { "data-run-id": run.id, "data-status": run.status },
    h("td", {}, statusBadge(run)),
    h("td", { class: "run-script" }, runLink(run, run.script_path)),
    h("td", {}, commitLink(run)),
    h("td", {}, who(run)),
    h("td", {}, timeElement(run.queued_at)),
    h("td", {}, durationElement(run)),
    h("td", { class: "hint" }, modeWords(run.mode)),
  );
}

export async function renderRuns(view, { query, app }) {
  view.dataset.title = "Runs";
  const filters = Object.fromEntries(
    FILTERS.map((name) => [name, query.get(name) || ""]).filter(([, value]) => value),
  );
  const before = query.get("before") || "";
  const listing = () => {
    const params = new URLSearchParams(filters);
    if (before) params.set("before", before);
    return api(`runs?${params}`);
  };
  const first = await listing();

  const body = h("tbody", {}, first.runs.map(runRow));
  const status = h("p", { class: "hint", role: "status" });
  let timer = null;
  let stopped = false;
  // While a run on this page is queued or running, the page asks again every few seconds.
  const keepCurrent = (runs) => {
    clearTimeout(timer);
    if (!stopped && runs.some((run) => !isEnded(run))) timer = setTimeout(refresh, 2000);
  };
  const refresh = async () => {
    try {
      const page = await listing();
      if (stopped) return;
      body.replaceChildren(...page.runs.map(runRow));
      status.textContent = "";
      keepCurrent(page.runs);
    } catch (error) {
      if (error.status === 401 || stopped) return;
      status.textContent = `Live updates paused: ${describeError(error)}`;
      timer = setTimeout(refresh, 5000);
    }
  };
  keepCurrent(first.runs);

  const pathInput = h("input", {
    type: "search",
    id: "runs-path",
    value: filters.path || "",
    placeholder: "folder/script.py",
  });
  const statusSelect = h(
    "select",
    { id: "runs-status" },
    h("option", { value: "" }, "any"),
    Object.entries(STATUS_WORDS).map(([value, words]) =>
      h("option", { value, selected: filters.status === value }, words),
    ),
  );
  const userInput = app.user.is_admin
    ? h("input", {
        type: "search",
        id: "runs-user",
        value: filters.user || "",
        placeholder: "login",
      })
    : null;
  const form = h(
    "form",
    { class: "filters", role: "search", "aria-label": "Filter runs" },
    h("div", { class: "field" }, h("label", { for: "runs-path" }, "Script path"), pathInput),
    h("div", { class: "field" }, h("label", { for: "runs-status" }, "Status"), statusSelect),
    userInput && h("div", { class: "field" }, h("label", { for: "runs-user" }, "User"), userInput),
    h(
      "div",
      { class: "field actions start" },
      h("button", { type: "submit", class: "secondary" }, "Filter"),
    ),
  );
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    // A new filter starts from the newest runs; the script chosen by id gives way to a path.
    const path = pathInput.value.trim();
    navigate("/runs", {
      path,
      script_id: path ? null : filters.script_id,
      status: statusSelect.value,
      user: userInput ? userInput.value.trim() : null,
      batch: filters.batch,
      limit: filters.limit,
    });
  });

  const pages = h(
    "nav",
    { class: "actions start pager", "aria-label": "Pages" },
    before
      ? h("a", { href: href("/runs", filters), class: "button secondary" }, "Newest runs")
      : null,
    first.next
      ? h(
          "a",
          { href: href("/runs", { ...filters, before: first.next }), class: "button secondary" },
          "Older runs",
        )
      : null,
    h("button", { type: "button", class: "secondary", onclick: () => rerender() }, "Refresh"),
  );
  const stopTicking = tickDurations(view);
  clear(
    view,
    h(
      "section",
      { class: "screen" },
      h("div", { class: "screen-head" }, h("h1", {}, "Runs")),
      h(
        "p",
        { class: "hint" },
        app.user.is_admin
          ? "Every run of every user, anonymous ones too, newest first: the synchronous API, submitted runs, batches and replays."
          : "Your runs, newest first: the synchronous API, submitted runs, batches and replays.",
      ),
      form,
      filters.script_id
        ? h(
            "p",
            { class: "hint", "data-testid": "runs-script-filter" },
            `Only the runs of script ${filters.script_id}, whatever its path was. `,
            h("a", { href: href("/runs", { ...filters, script_id: null }) }, "Show all scripts"),
          )
        : null,
      filters.batch
        ? h(
            "p",
            { class: "hint", "data-testid": "runs-batch-filter" },
            `Only the runs of batch ${filters.batch}. `,
            h("a", { href: href("/runs", { ...filters, batch: null }) }, "Show all runs"),
          )
        : null,
      first.runs.length
        ? h(
            "div",
            { class: "table-wrap" },
            h(
              "table",
              { class: "runs-table", "data-testid": "runs" },
              h(
                "thead",
                {},
                h(
                  "tr",
                  {},
                  ["Status", "Script", "Revision", "Who", "Started", "Duration", "Mode"].map(
                    (title) => h("th", {}, title),
                  ),
                ),
              ),
              body,
            ),
          )
        : h("p", { class: "panel empty" }, before ? "No older runs." : "No runs match."),
      status,
      pages,
    ),
  );
  return () => {
    stopped = true;
    clearTimeout(timer);
    stopTicking();
  };
}

export async function renderRun(view, { params }) {
  let run = await api(`runs/${encodeURIComponent(params.id)}`);
  view.dataset.title = `Run ${run.id.slice(-8)}`;
  const waiting = new AbortController();
  const stopTicking = tickDurations(view);
  const content = h("div", {});

  const replay = async () => {
    const again = await guard(() => api(`runs/${run.id}/replay`, { method: "POST" }));
    if (again) {
      notify("Replaying: the same input at the same commit, as a new run.", "success");
      navigate(`/runs/${again.id}`);
    }
  };
  const cancel = async (button) => {
    button.disabled = true;
    const cancelled = await guard(() => api(`runs/${run.id}/cancel`, { method: "POST" }));
    button.disabled = false;
    if (cancelled) show(cancelled);
  };

  const show = (latest) => {
    run = latest;
    const row = (term, ...value) => [h("dt", {}, term), h("dd", {}, ...value)];
    const cancelButton = h("button", { type: "button", class: "danger" }, "Cancel");
    cancelButton.addEventListener("click", () => cancel(cancelButton));
    clear(
      content,
      h(
        "div",
        { class: "screen-head" },
        h(
          "div",
          {},
          h("h1", {}, run.script_path),
          h("p", { class: "run-summary" }, statusBadge(run)),
        ),
        h(
          "div",
          { class: "toolbar" },
          cancellable(run) ? cancelButton : null,
          // Anyone who may see a run may replay it; its input must have been kept.
          run.data_stored
            ? h("button", { type: "button", class: "secondary", onclick: replay }, "Replay")
            : null,
        ),
      ),
      h(
        "dl",
        { class: "metadata", "data-testid": "run-fields" },
        row("Run", h("code", {}, run.id)),
        row("Script", scriptLink(run)),
        row("Commit", commitLink(run)),
        row("Mode", modeWords(run.mode)),
        run.replay_of
          ? row(
              "Replay of",
              h(
                "a",
                { href: `#/runs/${run.replay_of}`, "data-testid": "replay-of" },
                h("code", {}, run.replay_of),
              ),
            )
          : null,
        run.batch_id
          ? row(
              "Batch",
              h(
                "a",
                { href: href("/runs", { batch: run.batch_id }), "data-testid": "run-batch" },
                "all runs of its batch",
              ),
            )
          : null,
        row("Who", who(run)),
        row("Queued", timeElement(run.queued_at)),
        row("Started", run.started_at ? timeElement(run.started_at) : "not yet"),
        row("Finished", run.finished_at ? timeElement(run.finished_at) : "not yet"),
        row("Queue wait", run.queue_wait_ms === null ? "" : `${run.queue_wait_ms.toFixed(1)} ms`),
        row("Run time", durationElement(run)),
        row("Timeout", `${run.timeout} s`),
      ),
      h("h2", {}, "Input"),
      run.data_stored
        ? h(
            "pre",
            { class: "output", "data-testid": "run-input" },
            JSON.stringify(run.input, null, 2),
          )
        : h(
            "p",
            { class: "hint" },
            "Not kept: the run log keeps no inputs and results (RUNS_STORE_DATA is off).",
          ),
      h(
        "div",
        { class: "run-result", "data-testid": "run-result", "data-status": run.status },
        runOutput(run),
      ),
    );
  };
  show(run);
  if (!isEnded(run)) {
    waitForEnd(run, { signal: waiting.signal, onUpdate: show }).catch((error) => {
      if (error.name !== "AbortError" && error.status !== 401)
        notify(`This run is no longer followed: ${describeError(error)}`, "error");
    });
  }
  clear(
    view,
    h(
      "section",
      { class: "screen run-screen" },
      h(
        "nav",
        { class: "breadcrumb", "aria-label": "Breadcrumb" },
        h("a", { href: "#/runs" }, "Runs"),
        h("span", { class: "sep", "aria-hidden": "true" }, "/"),
        h("span", { "aria-current": "page" }, run.id),
      ),
      content,
    ),
  );
  return () => {
    waiting.abort();
    stopTicking();
  };
}
