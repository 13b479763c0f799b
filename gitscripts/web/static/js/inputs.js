// What a script's main(data) expects: its JSON Schema (from the service), shown as a table of
// keys, and the example input written as JSON or as a Python literal for the snippets.

import { api } from "./api.js";
import { h } from "./dom.js";

/** The service's answer: {revision, path, source, schema, example}. */
export function loadInputs(scriptId, rev = null) {
  const query = rev && rev !== "main" ? `?rev=${encodeURIComponent(rev)}` : "";
  return api(`scripts-manager/scripts/${scriptId}/schema${query}`);
}

/** The keys of the schema's top level that an input lacks. */
export function missingKeys(schema, value) {
  return (schema.required || []).filter((key) => !(key in value));
}

function typeLabel(schema) {
  if (!schema || typeof schema !== "object") return "any";
  if (Array.isArray(schema.enum))
    return schema.enum.map((each) => JSON.stringify(each)).join(" | ");
  if (Array.isArray(schema.anyOf)) return schema.anyOf.map(typeLabel).join(" | ");
  const kind = schema.type;
  if (Array.isArray(kind)) return kind.join(" | ");
  if (kind === "array" && schema.items) return `array of ${typeLabel(schema.items)}`;
  return kind || "any";
}

/** A table of the keys main reads: name, type, whether required, default, description. */
export function inputsTable(inputs) {
  const properties = inputs.schema.properties || {};
  const required = new Set(inputs.schema.required || []);
  const names = Object.keys(properties);
  if (!names.length) {
    return h("p", { class: "hint" }, "No keys could be read from the script: any JSON object.");
  }
  return h(
    "div",
    { class: "table-wrap" },
    h(
      "table",
      { class: "inputs-table", "data-testid": "inputs-table" },
      h(
        "thead",
        {},
        h(
          "tr",
          {},
          ["Key", "Type", "", "Default", "Description"].map((title) => h("th", {}, title)),
        ),
      ),
      h(
        "tbody",
        {},
        names.map((name) => {
          const field = properties[name] || {};
          return h(
            "tr",
            { "data-key": name },
            h("td", {}, h("code", {}, name)),
            h("td", {}, typeLabel(field)),
            h(
              "td",
              {},
              required.has(name) ? h("span", { class: "badge" }, "required") : "optional",
            ),
            h("td", {}, "default" in field ? h("code", {}, JSON.stringify(field.default)) : ""),
            h("td", { class: "description" }, field.description || ""),
          );
        }),
      ),
    ),
  );
}

/** Where the description came from, in a sentence. */
export function inputsSource(inputs) {
  return inputs.source === "metadata"
    ? "Stated in the script's metadata (input_schema in its .meta.json)."
    : "Read from the script's code: the keys main reads from data, its annotations and docstring.";
}

/** A JSON value as Python source: true/false/null become True/False/None. */
export function pythonLiteral(value, indent = 0) {
  const pad = " ".repeat(indent + 4);
  const end = " ".repeat(indent);
  if (value === null || value === undefined) return "None";
  if (value === true) return "True";
  if (value === false) return "False";
  if (typeof value === "number" || typeof value === "string") return JSON.stringify(value);
  if (Array.isArray(value)) {
    if (!value.length) return "[]";
    const items = value.map((item) => pythonLiteral(item, indent + 4));
    const flat = `[${items.join(", ")}]`;
    return flat.length <= 60 && !flat.includes("\n")
      ? flat
      : `[\n${items.map((item) => pad + item).join(",\n")},\n${end}]`;
  }
  const entries = Object.entries(value);
  if (!entries.length) return "{}";
  const items = entries.map(
    ([key, item]) => `${JSON.stringify(key)}: ${pythonLiteral(item, indent + 4)}`,
  );
  const flat = `{${items.join(", ")}}`;
  return flat.length <= 60 && !flat.includes("\n")
    ? flat
    : `{\n${items.map((item) => pad + item).join(",\n")},\n${end}}`;
}
