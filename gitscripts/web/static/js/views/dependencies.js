// A script's dependencies on its page: what its PEP 723 block declares, what its lock pins, and
// the environment that lock names (GET .../scripts/{id}/dependencies).

import { api, describeError } from "../api.js";
import { h } from "../dom.js";

/** The section, filled once the answer comes; a failure shows in it, not over the page. */
export function dependenciesSection(scriptId) {
  const body = h("div", { class: "hint" }, "Loading…");
  const section = h(
    "section",
    {
      class: "panel dependencies",
      "aria-labelledby": "dependencies-heading",
      "data-testid": "dependencies",
    },
    h("h2", { id: "dependencies-heading" }, "Dependencies"),
    body,
  );
  api(`scripts-manager/scripts/${scriptId}/dependencies`).then(
    (answer) => body.replaceWith(dependencies(answer)),
    (error) => body.replaceWith(h("p", { class: "error-panel panel" }, describeError(error))),
  );
  return section;
}

function dependencies(answer) {
  if (!answer.declared) {
    return h(
      "p",
      { class: "hint", "data-testid": "no-dependencies" },
      "None declared: it runs in the service's default environment. Declare packages in a ",
      h("code", {}, "# /// script"),
      " block (PEP 723) at the top of the script.",
    );
  }
  const { declared, lock, environment } = answer;
  return h(
    "div",
    {},
    h(
      "dl",
      { class: "metadata" },
      h("dt", {}, "Requires Python"),
      h("dd", {}, declared.requires_python || "any"),
      h("dt", {}, "Declared"),
      h(
        "dd",
        {},
        declared.dependencies.length
          ? h(
              "ul",
              { class: "plain-list", "data-testid": "declared-dependencies" },
              declared.dependencies.map((requirement) => h("li", {}, h("code", {}, requirement))),
            )
          : "nothing",
      ),
    ),
    lock ? lockedTable(lock) : h("p", { class: "hint" }, "Not locked yet."),
    environment && environmentState(environment),
  );
}

const STATE_WORDS = {
  ready: "ready",
  building: "building…",
  failed: "build failed",
  not_built: "built at its first run",
};

/** The environment's key and state, and with EXECUTOR=dask its state on each worker; while a
 * build is under way (overall or on one worker) it is watched until it ends, and a failed one
 * shows its log (uv's own words) on request: overall, and each failed worker's own. */
function environmentState(environment) {
  const badge = h("span", { class: "badge", "data-testid": "environment-state" });
  const log = h("div", {});
  const workers = h("div", { "aria-live": "polite" });
  let shown = "";
  const show = (info) => {
    // Redrawn only when something changed, so that a build log opened meanwhile stays open.
    const seen = JSON.stringify([info.state, info.workers]);
    if (seen === shown) return;
    shown = seen;
    showState(badge, info.state);
    log.replaceChildren();
    if (info.state === "failed") log.append(buildLog(environment.key));
    workers.replaceChildren();
    if (info.workers) workers.append(workersTable(environment.key, info.workers));
  };
  show(environment);
  if (underWay(environment)) {
    const timer = setInterval(() => {
      if (!badge.isConnected) return clearInterval(timer);
      api(`environments/${environment.key}`).then(
        (info) => {
          if (!underWay(info)) clearInterval(timer);
          show(info);
        },
        () => clearInterval(timer),
      );
    }, 2000);
  }
  return h(
    "dl",
    { class: "metadata environment", "data-testid": "environment" },
    h("dt", {}, "Environment"),
    h("dd", {}, h("code", {}, environment.key), " ", badge, log, workers),
  );
}

/** Whether a build still runs: overall, or on a worker (the overall state says `failed` as soon
 * as one worker failed, while another may still be building). */
function underWay(info) {
  return info.state === "building" || Object.values(info.workers || {}).includes("building");
}

function showState(badge, state) {
  badge.textContent = STATE_WORDS[state] || state;
  badge.className = `badge ${state === "ready" ? "ok" : state === "failed" ? "failed" : ""}`;
}

/** Each worker's state (`workers`: name -> state), a failed one with its own build log. */
function workersTable(key, workers) {
  return h(
    "table",
    { class: "environment-workers", "data-testid": "environment-workers" },
    h("caption", { class: "hint" }, "On each worker"),
    h(
      "thead",
      {},
      h("tr", {}, h("th", { scope: "col" }, "Worker"), h("th", { scope: "col" }, "State")),
    ),
    h(
      "tbody",
      {},
      Object.entries(workers).map(([name, state]) => {
        const badge = h("span", { class: "badge", "data-testid": "environment-worker-state" });
        showState(badge, state);
        return h(
          "tr",
          { "data-testid": "environment-worker", "data-worker": name },
          h("th", { scope: "row" }, h("code", {}, name)),
          h("td", {}, badge, state === "failed" ? buildLog(key, name) : null),
        );
      }),
    ),
  );
}

/** The build log, read when opened: the environment's, or one worker's own. */
function buildLog(key, worker = null) {
  const text = h(
    "pre",
    { class: "output", "data-testid": worker ? "environment-worker-log" : "environment-log" },
    "Loading…",
  );
  const summary = worker ? `Build log on ${worker}` : "Build log";
  const details = h("details", {}, h("summary", {}, summary), text);
  const path = worker
    ? `environments/${key}?worker=${encodeURIComponent(worker)}`
    : `environments/${key}`;
  details.addEventListener(
    "toggle",
    () =>
      api(path).then(
        (info) => (text.textContent = info.log || "(no output)"),
        (error) => (text.textContent = describeError(error)),
      ),
    { once: true },
  );
  return details;
}

function lockedTable(lock) {
  return h(
    "table",
    { "data-testid": "locked-packages", "aria-label": `Locked in ${lock.path}` },
    h("caption", { class: "hint" }, "Locked in ", h("code", {}, lock.path)),
    h(
      "thead",
      {},
      h("tr", {}, h("th", {}, "Package"), h("th", {}, "Version"), h("th", {}, "From")),
    ),
    h(
      "tbody",
      {},
      lock.packages.map((item) =>
        h(
          "tr",
          {},
          h("td", {}, h("code", {}, item.name)),
          h("td", {}, item.version || ""),
          h("td", {}, item.source ? item.source.kind : ""),
        ),
      ),
    ),
  );
}
