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

/** The environment's key and state; a build under way is watched until it ends, a failed one
 * shows its log (uv's own words) on request. */
function environmentState(environment) {
  const badge = h("span", { class: "badge", "data-testid": "environment-state" });
  const log = h("div", {});
  const show = (state) => {
    badge.textContent = STATE_WORDS[state] || state;
    badge.className = `badge ${state === "ready" ? "ok" : state === "failed" ? "failed" : ""}`;
    log.replaceChildren();
    if (state === "failed") log.append(buildLog(environment.key));
  };
  show(environment.state);
  if (environment.state === "building") {
    const timer = setInterval(() => {
      if (!badge.isConnected) return clearInterval(timer);
      api(`environments/${environment.key}`).then(
        (info) => {
          if (info.state === "building") return;
          clearInterval(timer);
          show(info.state);
        },
        () => clearInterval(timer),
      );
    }, 2000);
  }
  return h(
    "dl",
    { class: "metadata environment", "data-testid": "environment" },
    h("dt", {}, "Environment"),
    h("dd", {}, h("code", {}, environment.key), " ", badge, log),
  );
}

function buildLog(key) {
  const text = h("pre", { class: "output", "data-testid": "environment-log" }, "Loading…");
  const details = h("details", {}, h("summary", {}, "Build log"), text);
  details.addEventListener(
    "toggle",
    () =>
      api(`environments/${key}`).then(
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
