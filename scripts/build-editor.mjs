// Builds the web UI's code editor, gitscripts/web/static/vendor/codemirror.js: CodeMirror 6 at
// the versions package-lock.json pins, bundled by esbuild into one ES module, so the UI loads
// nothing from elsewhere. The same lock gives the same bytes: run `npm ci && npm run
// build:editor` and `git diff` shows nothing. The UI composes these pieces in views/source.js.

import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";
import { build } from "esbuild";

const root = join(dirname(fileURLToPath(import.meta.url)), "..");
const outfile = join(root, "gitscripts/web/static/vendor/codemirror.js");
const lock = JSON.parse(readFileSync(join(root, "package-lock.json"), "utf8"));
const versions = Object.entries(lock.packages)
  .filter(([path]) => /node_modules\/(@codemirror\/[^/]+|@lezer\/[^/]+|codemirror)$/.test(path))
  .map(([path, entry]) => `${path.replace(/^.*node_modules\//, "")}@${entry.version}`)
  .sort();

const entry = `
export { basicSetup } from "codemirror";
export { EditorView, keymap } from "@codemirror/view";
export { EditorState, Compartment } from "@codemirror/state";
export { indentWithTab } from "@codemirror/commands";
export { python } from "@codemirror/lang-python";
export { setDiagnostics, lintGutter } from "@codemirror/lint";
export { oneDark } from "@codemirror/theme-one-dark";
`;

await build({
  stdin: { contents: entry, resolveDir: root, sourcefile: "codemirror-entry.js" },
  bundle: true,
  format: "esm",
  minify: true,
  target: "es2020",
  legalComments: "eof",
  outfile,
  banner: {
    js:
      "// CodeMirror 6 (MIT), bundled by scripts/build-editor.mjs; do not edit by hand.\n" +
      `// ${versions.join(", ")}`,
  },
});
const digest = createHash("sha256").update(readFileSync(outfile)).digest("hex");
console.log(`${outfile.slice(root.length + 1)}  sha256 ${digest}`);
