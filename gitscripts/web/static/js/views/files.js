// Files in the file store: upload with progress (chosen, or dropped anywhere on the screen), the
// user's files under the names they were uploaded as, info, download and delete.

import { api, describeError, encodePath, guard, uploadWithProgress } from "../api.js";
import { confirmDialog, infoDialog } from "../dialogs.js";
import { acceptFileDrops, clear, copyButton, formatBytes, h, notify, timeElement } from "../dom.js";

function fileUrl(key) {
  return `/api/v1/files/${encodePath(key)}`;
}

/** The name a file is shown and saved under: the one it was uploaded as, else its key's last part. */
function nameOf(file) {
  return file.filename || file.key.split("/").pop();
}

// The browser follows a short-lived link made for this file: it streams the file to disk with
// its own progress, however large, instead of the page holding it all in memory first. The link
// asks for the original name, so the file is saved as it was uploaded.
async function download(file) {
  const { url } = await api(`${fileUrl(file.key)}/link?name=original`, { method: "POST" });
  const link = h("a", { href: url, download: nameOf(file) });
  document.body.append(link);
  link.click();
  link.remove();
}

export async function renderFiles(view) {
  view.dataset.title = "Files";
  const listing = h("div", { class: "files-listing" });

  const refresh = async () => {
    const { files } = await api("files");
    if (!files.length) {
      clear(listing, h("p", { class: "panel empty" }, "You have not uploaded any files yet."));
      return;
    }
    clear(
      listing,
      h(
        "div",
        { class: "table-wrap" },
        h(
          "table",
          { class: "files-table" },
          h(
            "thead",
            {},
            h(
              "tr",
              {},
              h("th", {}, "Name"),
              h("th", {}, "Key"),
              h("th", { class: "number" }, "Size"),
              h("th", {}, "Type"),
              h("th", {}, "Uploaded"),
              h("th", {}, h("span", { class: "offscreen" }, "Actions")),
            ),
          ),
          h(
            "tbody",
            {},
            files.map((file) => fileRow(file, refresh)),
          ),
        ),
      ),
    );
  };

  const fileInput = h("input", { type: "file", id: "upload-file" });
  const prefix = h("input", {
    type: "text",
    id: "upload-prefix",
    placeholder: "e.g. sim/run-7",
    autocomplete: "off",
  });
  const submit = h("button", { type: "submit", class: "primary" }, "Upload");
  const cancel = h("button", { type: "button", class: "secondary", hidden: true }, "Cancel");
  const progress = h("progress", {
    max: "100",
    value: "0",
    hidden: true,
    "aria-label": "Upload progress",
  });
  const progressText = h("span", { class: "hint", role: "status" });
  const outcome = h("div", { class: "upload-outcome" });
  let upload = null;

  const form = h(
    "form",
    { class: "panel upload-form", novalidate: true },
    h("h2", {}, "Upload a file"),
    h(
      "p",
      { class: "hint" },
      "Or drop files anywhere on this page: they are uploaded with this prefix.",
    ),
    h(
      "div",
      { class: "field-row" },
      h("div", { class: "field" }, h("label", { for: "upload-file" }, "File"), fileInput),
      h(
        "div",
        { class: "field" },
        h("label", { for: "upload-prefix" }, "Key prefix (optional)"),
        prefix,
      ),
    ),
    h("div", { class: "actions start" }, submit, cancel, progress, progressText),
    outcome,
  );
  // One upload at a time, from the form or from a drop; several dropped files go one after another.
  const send = async (file) => {
    const body = new FormData();
    body.append("file", file);
    const query = prefix.value.trim() ? `?prefix=${encodeURIComponent(prefix.value.trim())}` : "";
    clear(outcome);
    submit.disabled = true;
    cancel.hidden = false;
    progress.hidden = false;
    progress.value = 0;
    upload = uploadWithProgress(`files/upload${query}`, body, (loaded, total) => {
      progress.value = Math.round((loaded / total) * 100);
      progressText.textContent = `${formatBytes(loaded)} of ${formatBytes(total)} (${progress.value}%)`;
    });
    try {
      const stored = await upload.done;
      clear(
        outcome,
        h(
          "p",
          { class: "success-text", role: "status" },
          `${file.name} stored as `,
          h("code", { "data-testid": "uploaded-key" }, stored.key),
          ` (${formatBytes(stored.size)}) `,
          copyButton(stored.key, "Copy key"),
        ),
      );
      fileInput.value = "";
      await refresh();
      return true;
    } catch (error) {
      if (error.status !== 401)
        clear(
          outcome,
          h("p", { class: "form-error", role: "alert" }, `${file.name}: ${describeError(error)}`),
        );
      return false;
    } finally {
      upload = null;
      submit.disabled = false;
      cancel.hidden = true;
      progress.hidden = true;
      progressText.textContent = "";
    }
  };
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const file = fileInput.files[0];
    if (!file) {
      clear(outcome, h("p", { class: "form-error", role: "alert" }, "Choose a file to upload."));
      fileInput.focus();
      return;
    }
    if (!upload) send(file);
  });
  cancel.addEventListener("click", () => upload && upload.cancel());

  const screen = h(
    "section",
    { class: "screen files-screen" },
    h("div", { class: "screen-head" }, h("h1", {}, "Files")),
    h(
      "p",
      { class: "hint" },
      "Files that scripts read or write by key. Pass a key in a script's input; scripts use gitscripts.runtime.files to open it.",
    ),
    form,
    h("h2", {}, "Your files"),
    listing,
  );
  clear(view, screen);
  await refresh();
  // Files dropped anywhere on the screen are uploaded with the prefix typed in the form.
  const stopDrops = acceptFileDrops(
    window,
    async (files) => {
      if (upload) {
        notify("Wait for the upload in progress to finish, then drop the files again.", "error");
        return;
      }
      for (const file of files) if (!(await send(file))) return;
    },
    screen,
  );
  return () => {
    stopDrops();
    if (upload) upload.cancel();
  };
}

function fileRow(file, refresh) {
  const guarded = (action) => () => guard(action);
  return h(
    "tr",
    { "data-key": file.key },
    h("td", { class: "file-name" }, nameOf(file)),
    h("td", {}, h("code", {}, file.key), " ", copyButton(file.key, "Copy key")),
    h("td", { class: "number" }, formatBytes(file.size)),
    h("td", {}, file.content_type),
    h("td", {}, timeElement(file.uploaded_at)),
    h(
      "td",
      { class: "row-actions" },
      h(
        "button",
        {
          type: "button",
          class: "small secondary",
          onclick: guarded(async () => {
            const info = await api(`${fileUrl(file.key)}/info`);
            await infoDialog({
              title: "File info",
              body: h(
                "dl",
                { class: "metadata" },
                h("dt", {}, "Name"),
                h("dd", {}, info.filename || "(stored at its key, without a name of its own)"),
                h("dt", {}, "Key"),
                h("dd", {}, h("code", {}, info.key)),
                h("dt", {}, "Size"),
                h("dd", {}, `${formatBytes(info.size)} (${info.size} bytes)`),
                h("dt", {}, "Type"),
                h("dd", {}, info.content_type),
                h("dt", {}, "Uploaded by"),
                h("dd", {}, info.uploaded_by ? info.uploaded_by.login : "unknown"),
              ),
            });
          }),
        },
        "Info",
      ),
      h(
        "button",
        { type: "button", class: "small secondary", onclick: guarded(() => download(file)) },
        "Download",
      ),
      h(
        "button",
        {
          type: "button",
          class: "small danger",
          onclick: guarded(async () => {
            const sure = await confirmDialog({
              title: "Delete this file?",
              message: `${file.key} will be deleted from the file store. Scripts that use this key will no longer find it.`,
              confirmLabel: "Delete file",
              danger: true,
            });
            if (!sure) return;
            const answer = await api(fileUrl(file.key), { method: "DELETE" });
            notify(answer.message, "success");
            await refresh();
          }),
        },
        "Delete",
      ),
    ),
  );
}
