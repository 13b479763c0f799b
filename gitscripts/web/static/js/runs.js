// Runs as the UI shows them, wherever it shows them (the Runs page, a run's page, a script's Run
// panel and page): status, durations that keep counting while a run goes on, its output, waiting
// for it to end, and a script's recent runs.

import { api, describeError } from "./api.js";
import { copyButton, h, timeElement } from "./dom.js";

export const STATUS_WORDS = {
  queued: "Queued",
  running: "Running",
  succeeded: "Succeeded",
  failed: "Failed",
  timed_out: "Timed out",
  cancelled: "Cancelled",
};
const ENDED = new Set(["succeeded", "failed", "timed_out", "cancelled"]);
const MODE_WORDS = { sync: "synchronous", async: "asynchronous", batch: "batch", replay: "replay" };
// Seconds a long-poll asks the service to wait (its longest is 60).
const LONG_POLL = 25;

export const isEnded = (run) => ENDED.has(run.status);
export const modeWords = (mode) => MODE_WORDS[mode] || mode;
/** Only asynchronous runs (submitted, replays) can be cancelled: a synchronous one ends with
 * its client. Who may see a run may cancel it. */
export const cancellable = (run) =>
  !isEnded(run) && (run.mode === "async" || run.mode === "replay");

export function statusBadge(run) {
  return h(
    "span",
    { class: `badge status ${run.status}`, "data-testid": "run-status" },
    STATUS_WORDS[run.status] || run.status,
  );
}

/** 12.3 ms, 4.56 s, 3 min 7 s, 2 h 5 min. */
export function formatMs(ms) {
  if (ms < 1000) return `${ms.toFixed(1)} ms`;
  const seconds = ms / 1000;
  if (seconds < 60) return `${seconds.toFixed(2)} s`;
  const minutes = Math.floor(seconds / 60);
  if (minutes < 60) return `${minutes} min ${Math.floor(seconds % 60)} s`;
  return `${Math.floor(minutes / 60)} h ${minutes % 60} min`;
}

/** How long a run took; a run not ended yet: how long it has been running (or waiting). */
function durationText(run, now = Date.now()) {
  if (run.run_time_ms !== null && run.run_time_ms !== undefined) return formatMs(run.run_time_ms);
  if (isEnded(run)) return "";
  if (run.started_at) return `${formatMs(Math.max(0, now - Date.parse(run.started_at)))} so far`;
  return `waiting ${formatMs(Math.max(0, now - Date.parse(run.queued_at)))}`;
}

/** A run's duration; one that has not ended keeps counting (see `tickDurations`). */
export function durationElement(run) {
  const element = h(
    "span",
    { class: "duration", "data-testid": "run-duration" },
    durationText(run),
  );
  if (!isEnded(run)) {
    element.classList.add("live-duration");
    element.run = run;
  }
  return element;
}

/** Counts the durations under `root` on, once a second, until the returned function is called. */
export function tickDurations(root) {
  const timer = setInterval(() => {
    for (const element of root.querySelectorAll(".live-duration"))
      element.textContent = durationText(element.run);
  }, 1000);
  return () => clearInterval(timer);
}

/** The commit that ran, as a link to it; with the revision asked for when it was a name. */
export function commitLink(run) {
  return [
    h(
      "a",
      { href: `#/commits/${run.commit}`, "data-testid": "run-commit", title: run.commit },
      h("code", {}, run.commit.slice(0, 10)),
    ),
    run.revision !== run.commit ? h("span", { class: "hint" }, ` (${run.revision})`) : null,
  ];
}

export const who = (run) => (run.user ? run.user.login : "anonymous");

const sleep = (ms, signal) =>
  new Promise((resolve, reject) => {
    const timer = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => {
      clearTimeout(timer);
      reject(new DOMException("Stopped waiting.", "AbortError"));
    });
  });

/**
 * `run` once it has ended; `onUpdate(run)` hears every answer on the way. A running run is
 * long-polled (`GET /runs/{id}?wait=`); a queued one is asked about every second, to show when it
 * starts. The service waits only for the runs its own tasks run: for another (a synchronous run
 * still going) it answers at once, so an answer that came quickly is asked again a second later.
 */
export async function waitForEnd(run, { signal, onUpdate } = {}) {
  let latest = run;
  while (!isEnded(latest)) {
    const wait = latest.status === "running" ? LONG_POLL : 0;
    const asked = Date.now();
    latest = await api(`runs/${latest.id}?wait=${wait}`, { signal });
    if (onUpdate) onUpdate(latest);
    if (!isEnded(latest) && Date.now() - asked < 1000) await sleep(1000, signal);
  }
  return latest;
}

/** Starts a run (`POST /runs`): the run, queued. */
export function submitRun({ path, rev, data, timeout }) {
  const json = { path, rev, data };
  if (timeout) json.timeout = Number(timeout);
  return api("runs", { method: "POST", json });
}

function outputBlock(title, text, cut, testid) {
  return h(
    "section",
    { class: "output-block", "data-testid": testid },
    h(
      "h3",
      {},
      title,
      cut
        ? h(
            "span",
            {
              class: "badge warn",
              "data-testid": `${testid}-cut`,
              title: "The run log keeps the first RUNS_OUTPUT_LIMIT_CHARS characters.",
            },
            "cut",
          )
        : null,
    ),
    text ? h("pre", {}, text) : h("p", { class: "hint" }, "(empty)"),
  );
}

/** What a run produced: its result or error, stdout and stderr (the one view of a run's outcome
 * on its page and in the Run panel). */
export function runOutput(run) {
  const blocks = [];
  if (run.status === "succeeded") {
    if (run.data_stored) {
      const json = JSON.stringify(run.result, null, 2);
      blocks.push(
        h(
          "section",
          { class: "output-block", "data-testid": "run-result-json" },
          h("div", { class: "label-row" }, h("h3", {}, "Result"), copyButton(json, "Copy result")),
          h("pre", {}, json),
        ),
      );
    } else {
      blocks.push(
        h(
          "p",
          { class: "hint" },
          "The result was not kept: the run log keeps no inputs and results (RUNS_STORE_DATA is off).",
        ),
      );
    }
  } else if (run.error) {
    blocks.push(
      h(
        "section",
        { class: "output-block error-block" },
        h("h3", {}, "Error"),
        h("pre", { "data-testid": "run-error" }, run.error),
      ),
    );
  }
  if (!isEnded(run)) {
    blocks.push(
      h(
        "p",
        { class: "hint" },
        "Its result and output show here when it ends (the page follows it).",
      ),
    );
  } else {
    blocks.push(outputBlock("stdout", run.stdout, run.stdout_truncated, "run-stdout"));
    blocks.push(outputBlock("stderr", run.stderr, run.stderr_truncated, "run-stderr"));
  }
  return blocks;
}

/** A link to a script's page when the run knows it, else its path as text. */
export function scriptLink(run) {
  const path = h("code", {}, run.script_path);
  return run.script_id ? h("a", { href: `#/scripts/${run.script_id}` }, path) : path;
}

export function runLink(run, ...children) {
  return h("a", { href: `#/runs/${run.id}`, "data-testid": "run-link" }, ...children);
}

/**
 * A script's recent runs (the ones the user may see), newest first: status, when, who, revision,
 * duration and `actions(run)` for each. Kept current while one of them has not ended. Returns
 * `{element, refresh, stop}`.
 */
export function recentRuns(script, { actions, limit = 10 }) {
  const body = h("tbody", {});
  const problem = h("p", { class: "hint", role: "status", hidden: true });
  const empty = h("p", { class: "hint", hidden: true }, "No runs yet.");
  const table = h(
    "div",
    { class: "table-wrap", hidden: true },
    h(
      "table",
      { class: "runs-table", "data-testid": "recent-runs" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Status", "Started", "Who", "Revision", "Duration", ""].map((title) =>
            h("th", {}, title),
          ),
        ),
      ),
      body,
    ),
  );
  const element = h(
    "section",
    { class: "recent-runs", "aria-labelledby": `recent-runs-${script.id}` },
    h(
      "div",
      { class: "label-row" },
      h("h2", { id: `recent-runs-${script.id}` }, "Recent runs"),
      h("a", { href: `#/runs?script_id=${script.id}` }, "All runs of this script"),
    ),
    table,
    empty,
    problem,
  );
  let timer = null;
  let stopped = false;
  let stopTicking = null;
  const refresh = async () => {
    if (stopped) return;
    clearTimeout(timer);
    stopTicking ||= tickDurations(element);
    let runs;
    try {
      ({ runs } = await api(`runs?script_id=${script.id}&limit=${limit}`));
      problem.hidden = true;
    } catch (error) {
      if (error.status === 401 || stopped) return;
      problem.textContent = `The runs could not be listed: ${describeError(error)}`;
      problem.hidden = false;
      timer = setTimeout(refresh, 5000);
      return;
    }
    if (stopped) return;
    body.replaceChildren(
      ...runs.map((run) =>
        h(
          "tr",
          { "data-run-id": run.id, "data-status": run.status },
          h("td", {}, statusBadge(run)),
          h("td", {}, runLink(run, timeElement(run.queued_at))),
          h("td", {}, who(run)),
          h("td", {}, commitLink(run)),
          h("td", {}, durationElement(run)),
          h("td", { class: "row-actions" }, actions(run)),
        ),
      ),
    );
    table.hidden = !runs.length;
    empty.hidden = Boolean(runs.length);
    // Only while something is going on: a quiet list costs nothing.
    if (runs.some((run) => !isEnded(run))) timer = setTimeout(refresh, 2000);
  };
  const stop = () => {
    stopped = true;
    clearTimeout(timer);
    if (stopTicking) stopTicking();
  };
  return { element, refresh, stop };
}
