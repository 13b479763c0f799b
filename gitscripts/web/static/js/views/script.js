// One script: its details, the tabs (source, run, history) and the snippet that calls it.

import * as actions from "../actions.js";
import { api, encodePath, guard } from "../api.js";
import { clear, h, snippet, timeElement } from "../dom.js";
import { inputsSource, inputsTable, loadInputs, pythonLiteral } from "../inputs.js";
import { href, navigate, rerender } from "../router.js";
import { recentRuns } from "../runs.js";
import { renderBlameTab } from "./blame.js";
import { dependenciesSection } from "./dependencies.js";
import { renderHistoryTab } from "./history.js";
import { renderRunTab } from "./run.js";
import { renderSourceTab } from "./source.js";

const TABS = [
  { id: "source", label: "Source", render: renderSourceTab },
  { id: "run", label: "Run", render: renderRunTab },
  { id: "history", label: "History", render: renderHistoryTab },
  { id: "blame", label: "Blame", render: renderBlameTab },
];

export async function renderScript(view, { params, query, app }) {
  const tab = TABS.find((candidate) => candidate.id === (params.tab || "source"));
  if (!tab) {
    navigate(`/scripts/${params.id}`, {}, { replace: true });
    return;
  }
  if (!/^\d+$/.test(params.id)) throw new Error(`"${params.id}" is not a script id.`);
  const [script, inputs] = await Promise.all([
    api(`scripts-manager/scripts/${params.id}`),
    loadInputs(params.id),
  ]);
  view.dataset.title = script.display_name;
  // The whole tree is needed only to offer where to move the script: fetched when asked.
  const moveToAFolder = async () =>
    actions.moveScript(script, actions.allFolders(await api("scripts-manager/tree")));

  const afterChange = async (action, { deleted = false } = {}) => {
    if (!(await guard(action))) return;
    if (deleted) navigate("/");
    else rerender(); // show the new state
  };

  // The Run tab shows the script's recent runs beside its form; the other tabs, under them.
  const recent =
    tab.id === "run"
      ? null
      : recentRuns(script, {
          limit: 5,
          actions: (run) =>
            run.data_stored
              ? [
                  h(
                    "a",
                    {
                      class: "button secondary small",
                      href: href(`/scripts/${script.id}/run`, { from: run.id }),
                    },
                    "Load into the Run form",
                  ),
                  h(
                    "a",
                    {
                      class: "button secondary small",
                      href: href(`/scripts/${script.id}/run`, { rerun: run.id }),
                    },
                    "Run again",
                  ),
                ]
              : null,
        });
  const tabPanel = h("div", {
    class: "tab-panel",
    id: "tab-panel",
    role: "region",
    "aria-label": tab.label,
  });
  clear(
    view,
    h(
      "section",
      { class: "screen script-screen" },
      breadcrumb(script),
      h(
        "div",
        { class: "screen-head" },
        h(
          "div",
          {},
          h("h1", {}, script.display_name),
          script.description ? h("p", { class: "description" }, script.description) : null,
        ),
        h(
          "div",
          { class: "toolbar" },
          script.can_edit ? null : actions.readOnlyBadge(script),
          script.can_edit &&
            h(
              "button",
              {
                type: "button",
                class: "secondary",
                onclick: () => afterChange(() => actions.editScriptDetails(script)),
              },
              "Edit details",
            ),
          script.can_edit &&
            h(
              "button",
              {
                type: "button",
                class: "secondary",
                onclick: () => afterChange(() => actions.renameScript(script)),
              },
              "Rename",
            ),
          script.can_edit &&
            h(
              "button",
              { type: "button", class: "secondary", onclick: () => afterChange(moveToAFolder) },
              "Move",
            ),
          script.can_delete &&
            h(
              "button",
              {
                type: "button",
                class: "danger",
                onclick: () => afterChange(() => actions.deleteScript(script), { deleted: true }),
              },
              "Delete",
            ),
        ),
      ),
      metadata(script),
      dependenciesSection(script.id),
      h(
        "nav",
        { class: "tabs", "aria-label": "Script sections" },
        TABS.map((candidate) =>
          h(
            "a",
            {
              href: `#/scripts/${script.id}/${candidate.id}`,
              "aria-current": candidate === tab ? "page" : null,
            },
            candidate.label,
          ),
        ),
      ),
      tabPanel,
      recent && h("div", { class: "panel" }, recent.element),
      callSnippets(script, inputs),
    ),
  );
  const tabCleanup = await tab.render(tabPanel, { script, inputs, query, app });
  if (!recent) return tabCleanup;
  recent.refresh();
  return () => {
    recent.stop();
    if (tabCleanup) tabCleanup();
  };
}

function breadcrumb(script) {
  const parts = script.logical_path.split("/");
  return h(
    "nav",
    { class: "breadcrumb", "aria-label": "Breadcrumb" },
    h("a", { href: "#/" }, "Scripts"),
    // Every folder is a link: the tree, opened at that folder.
    parts
      .slice(0, -1)
      .map((part, index) => [
        h("span", { class: "sep", "aria-hidden": "true" }, "/"),
        h("a", { href: href("/", { folder: parts.slice(0, index + 1).join("/") }) }, part),
      ]),
    h("span", { class: "sep", "aria-hidden": "true" }, "/"),
    h("a", { href: `#/scripts/${script.id}`, "aria-current": "page" }, parts[parts.length - 1]),
  );
}

function metadata(script) {
  const row = (term, ...value) => [h("dt", {}, term), h("dd", {}, ...value)];
  return h(
    "dl",
    { class: "metadata", "data-testid": "script-metadata" },
    row("Path", h("code", {}, script.logical_path)),
    row("Owner", script.created_by.login),
    row("Created", timeElement(script.created_at)),
    row("Updated", timeElement(script.updated_at)),
    row("Id", String(script.id)),
  );
}

function callSnippets(script, inputs) {
  const origin = location.origin;
  const example = pythonLiteral(inputs.example, 4);
  const withClient = `# client.py is one file with no dependencies: ${origin}/api/v1/client.py
import os, sys
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))  # client.py lives here (python -I)
from client import Client, GitscriptsError

gs = Client("${origin}", token="gst_...")  # a personal API token (Account page)
try:
    result = gs.run("${script.logical_path}", ${example})
except GitscriptsError as error:
    print(error.error_code, error.message, error.details)
else:
    print(result)
`;
  const plain = `import json
import urllib.request

request = urllib.request.Request(
    "${origin}/api/v1/scripts/${encodePath(script.logical_path)}",
    data=json.dumps({"data": ${example}}).encode("utf-8"),
    headers={"Content-Type": "application/json", "Authorization": "Bearer gst_..."},
    method="POST",
)
with urllib.request.urlopen(request, timeout=330) as response:
    answer = json.load(response)
print(answer["result"] if answer["success"] else answer["error"])
`;
  return h(
    "section",
    { class: "panel call-snippets", "aria-labelledby": "call-heading" },
    h("h2", { id: "call-heading" }, "Call it from a simulator"),
    h(
      "p",
      { class: "hint" },
      "Both use only Python's standard library. Add ?rev=<tag or commit> (or rev=... with the client) to run a fixed version.",
    ),
    h("h3", { id: "input-heading" }, "Input"),
    h("p", { class: "hint" }, inputsSource(inputs)),
    inputsTable(inputs),
    h(
      "details",
      {},
      h("summary", {}, "JSON Schema of the input"),
      h(
        "p",
        { class: "hint" },
        "Also served at ",
        h("code", {}, `GET /api/v1/scripts-manager/scripts/${script.id}/schema?rev=<revision>`),
        ".",
      ),
      snippet(JSON.stringify(inputs.schema, null, 2), { testid: "input-schema" }),
    ),
    h("h3", {}, "With the gitscripts client"),
    snippet(withClient, { label: "Copy", testid: "client-snippet" }),
    h(
      "details",
      {},
      h("summary", {}, "Without the client (urllib only)"),
      snippet(plain, { testid: "urllib-snippet" }),
    ),
  );
}
