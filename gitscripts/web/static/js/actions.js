// What a user does to folders and scripts, shared by the tree and the script page. Each action
// opens its dialog, calls the API, and resolves to the result (null when the user cancelled).

import { InputError, api } from "./api.js";
import { confirmDialog, formDialog } from "./dialogs.js";
import { h, notify } from "./dom.js";

const NEW_SCRIPT_TEMPLATE = `def main(data: dict) -> dict:
    """Called with the JSON object the simulator sends; returns a JSON object."""
    value = data.get("value", 0)
    return {"result": value * 2}
`;

// -- the tree as lists -------------------------------------------------------------------------
export function allFolders(tree) {
  const folders = [];
  const walk = (items) => {
    for (const item of items) {
      folders.push(item.folder);
      walk(item.subfolders);
    }
  };
  walk(tree.root_folders);
  return folders.sort((a, b) => a.path.localeCompare(b.path));
}

export function allScripts(tree) {
  const scripts = [...tree.root_scripts];
  const walk = (items) => {
    for (const item of items) {
      scripts.push(...item.scripts);
      walk(item.subfolders);
    }
  };
  walk(tree.root_folders);
  return scripts;
}

function folderOptions(folders) {
  return [
    { value: "", label: "(top level)" },
    ...folders.map((folder) => ({ value: folder.id, label: folder.path })),
  ];
}

// -- commit messages ---------------------------------------------------------------------------
/** The optional commit message every change offers; `wording` is what the service writes
 * without one. */
export function messageField(wording) {
  return {
    name: "message",
    label: "Commit message (optional)",
    maxlength: 10000,
    placeholder: wording,
    hint: "Says why, in the history. Left empty, the placeholder is used.",
  };
}

/** `body` with the user's commit message, when they wrote one. */
export function withMessage(body, message) {
  const text = (message || "").trim();
  return text ? { ...body, message: text } : body;
}

/** The `?message=` of a DELETE, which has no body. */
function messageQuery(message) {
  const text = (message || "").trim();
  return text ? `?${new URLSearchParams({ message: text })}` : "";
}

function folderIdOf(value) {
  return value === "" || value === null || value === undefined ? null : Number(value);
}

// -- who may change what -----------------------------------------------------------------------
// The API says what the user may do (`can_edit`); the owner is `created_by`. A script without one
// is an admin's.
function ownerOf(item) {
  return item.created_by ? item.created_by.login : "an admin";
}

/** Beside what the user may look at but not change: "Read-only · <owner>", and why. */
export function readOnlyBadge(item, what = "script") {
  const owner = ownerOf(item);
  return h(
    "span",
    { class: "badge read-only", title: `Only ${owner} or an admin may change this ${what}.` },
    `Read-only · ${owner}`,
  );
}

/**
 * Why `filename` may not be written into the folder, known before anything is sent: a script of
 * that name is there and it is someone else's (the service would ask to replace it, then refuse).
 */
function replaceRefusal(scripts, folderId, filename) {
  const existing = scripts.find(
    (script) => (script.folder_id ?? null) === folderId && script.filename === filename,
  );
  if (!existing || existing.can_edit) return null;
  const owner = ownerOf(existing);
  return new InputError(
    `${existing.logical_path} is ${owner}'s script and read-only for you: only ${owner} or an admin may replace it. Choose another file name or folder.`,
  );
}

// -- creating and replacing scripts ------------------------------------------------------------
/**
 * The seed API answers 409 SCRIPT_EXISTS_REPLACE_REQUIRED when a script of that name is already
 * in the folder: ask, and retry with replace=true. Declining leaves the dialog open and says so,
 * so the user can pick another name or folder.
 */
async function confirmReplace(error, retry) {
  if (error.code !== "SCRIPT_EXISTS_REPLACE_REQUIRED") return false;
  const path = error.details.logical_path || "This script";
  const replace = await confirmDialog({
    title: "Replace the existing script?",
    message: `${path} already exists. Replace it with this version? The script keeps its id and address, and the version it has now stays in its history.`,
    confirmLabel: "Replace",
    danger: true,
  });
  if (!replace)
    return new InputError(
      `Not replaced: ${path} already exists. Choose another name or folder, or upload again and confirm the replacement.`,
    );
  await retry({ replace: true });
  return true;
}

function suggestedDisplayName(filename) {
  const stem = filename.replace(/\.py$/i, "").replace(/[_-]+/g, " ").trim();
  return stem ? stem.charAt(0).toUpperCase() + stem.slice(1) : "";
}

/** `message`: the user's commit message; blank leaves the service's wording. */
function sendScriptFile(
  file,
  { displayName, description = "", folderId = null, replace, message = "" },
) {
  const form = new FormData();
  form.append("file", file);
  form.append("display_name", displayName);
  if (description.trim()) form.append("description", description);
  if (folderId !== null) form.append("folder_id", folderId);
  form.append("replace", replace ? "true" : "false");
  if (message.trim()) form.append("message", message.trim());
  return api("scripts-manager/scripts", { method: "POST", body: form });
}

/** `scripts`: every script of the tree, to say before sending when a name is someone else's. */
export function uploadScript(folders, folderId = null, scripts = []) {
  return formDialog({
    title: "Upload a script",
    intro:
      "A Python file that defines main(data). If a script with the same file name is in the folder, you will be asked before it is replaced.",
    fields: [
      {
        name: "file",
        label: "Python file",
        type: "file",
        accept: ".py,text/x-python",
        required: true,
      },
      { name: "display_name", label: "Display name", required: true, maxlength: 255 },
      { name: "description", label: "Description", type: "textarea", rows: 3 },
      {
        name: "folder_id",
        label: "Folder",
        type: "select",
        options: folderOptions(folders),
        value: folderId ?? "",
      },
      messageField("Create script … (or Replace script …)"),
    ],
    submitLabel: "Upload",
    onInput: (event, controls) => {
      // Offer a display name from the file name until the user types one.
      if (
        event.target === controls.file &&
        controls.file.files[0] &&
        !controls.display_name.value
      ) {
        controls.display_name.value = suggestedDisplayName(controls.file.files[0].name);
      }
    },
    onSubmit: async (values) => {
      const folder = folderIdOf(values.folder_id);
      const refusal = values.file && replaceRefusal(scripts, folder, values.file.name);
      if (refusal) throw refusal;
      const script = await sendScriptFile(values.file, {
        displayName: values.display_name,
        description: values.description,
        folderId: folder,
        replace: values.replace,
        message: values.message,
      });
      notify(`${values.replace ? "Replaced" : "Uploaded"} ${script.logical_path}.`, "success");
      return script;
    },
    onError: confirmReplace,
  });
}

/**
 * A .py file dropped on a folder (null: the top level) becomes a script there, named after the
 * file; a script of that name is replaced only when the user may and says so. Resolves to the
 * script, or null when the user declined.
 */
export async function uploadDroppedScript(file, folder, scripts) {
  if (!/\.py$/i.test(file.name))
    throw new InputError(
      `${file.name} is not a Python file: only .py files become scripts. Other files go to the file store, on the Files page.`,
    );
  const folderId = folder ? folder.id : null;
  const refusal = replaceRefusal(scripts, folderId, file.name);
  if (refusal) throw refusal;
  const options = { displayName: suggestedDisplayName(file.name) || file.name, folderId };
  let script = null;
  let replaced = false;
  try {
    script = await sendScriptFile(file, { ...options, replace: false });
  } catch (error) {
    const handled = await confirmReplace(error, async () => {
      script = await sendScriptFile(file, { ...options, replace: true });
      replaced = true;
    });
    if (handled === false) throw error;
    if (handled !== true) return null; // declined: nothing changed
  }
  notify(`${replaced ? "Replaced" : "Uploaded"} ${script.logical_path}.`, "success");
  return script;
}

export function createScriptFromText(folders, folderId = null, scripts = []) {
  return formDialog({
    title: "New script",
    fields: [
      {
        name: "filename",
        label: "File name",
        required: true,
        placeholder: "analysis.py",
        hint: "Ends with .py; letters, digits, dots, dashes and underscores.",
      },
      { name: "display_name", label: "Display name", required: true, maxlength: 255 },
      { name: "description", label: "Description", type: "textarea", rows: 2 },
      {
        name: "folder_id",
        label: "Folder",
        type: "select",
        options: folderOptions(folders),
        value: folderId ?? "",
      },
      {
        name: "content",
        label: "Source",
        type: "textarea",
        code: true,
        rows: 12,
        value: NEW_SCRIPT_TEMPLATE,
        required: true,
      },
      messageField("Create script …"),
    ],
    wide: true,
    submitLabel: "Create",
    onInput: (event, controls) => {
      if (event.target === controls.filename && !controls.display_name.dataset.touched) {
        controls.display_name.value = suggestedDisplayName(controls.filename.value);
      }
      if (event.target === controls.display_name) controls.display_name.dataset.touched = "1";
    },
    onSubmit: async (values) => {
      const typed = values.filename.trim();
      const filename = typed.toLowerCase().endsWith(".py") ? typed : `${typed}.py`;
      const refusal = replaceRefusal(scripts, folderIdOf(values.folder_id), filename);
      if (refusal) throw refusal;
      const script = await api("scripts-manager/scripts-from-text", {
        method: "POST",
        json: withMessage(
          {
            filename,
            display_name: values.display_name,
            description: values.description.trim() || null,
            folder_id: folderIdOf(values.folder_id),
            content: values.content,
            replace: Boolean(values.replace),
          },
          values.message,
        ),
      });
      notify(`${values.replace ? "Replaced" : "Created"} ${script.logical_path}.`, "success");
      return script;
    },
    onError: confirmReplace,
  });
}

// -- changing scripts --------------------------------------------------------------------------
function updateScript(script, changes) {
  return api(`scripts-manager/scripts/${script.id}`, { method: "PUT", json: changes });
}

export function renameScript(script) {
  return formDialog({
    title: `Rename ${script.filename}`,
    fields: [
      {
        name: "filename",
        label: "New file name",
        value: script.filename,
        required: true,
        hint: "Its id stays the same; callers must use the new path.",
      },
      messageField(`Rename script ${script.logical_path} -> …`),
    ],
    submitLabel: "Rename",
    onSubmit: async ({ filename, message }) => {
      if (filename === script.filename) throw new InputError("That is the current name.");
      const renamed = await updateScript(script, withMessage({ filename }, message));
      notify(`Renamed to ${renamed.logical_path}.`, "success");
      return renamed;
    },
  });
}

export function moveScript(script, folders) {
  return formDialog({
    title: `Move ${script.filename}`,
    fields: [
      {
        name: "folder_id",
        label: "To folder",
        type: "select",
        options: folderOptions(folders),
        value: script.folder_id ?? "",
      },
      messageField(`Move script ${script.logical_path} -> …`),
    ],
    submitLabel: "Move",
    onSubmit: async ({ folder_id, message }) => {
      if (folderIdOf(folder_id) === script.folder_id)
        throw new InputError("The script is already in that folder.");
      const moved = await updateScript(
        script,
        withMessage({ folder_id: folderIdOf(folder_id) }, message),
      );
      notify(`Moved to ${moved.logical_path}.`, "success");
      return moved;
    },
  });
}

export function editScriptDetails(script) {
  return formDialog({
    title: "Edit details",
    fields: [
      {
        name: "display_name",
        label: "Display name",
        value: script.display_name,
        required: true,
        maxlength: 255,
      },
      {
        name: "description",
        label: "Description",
        type: "textarea",
        rows: 4,
        value: script.description || "",
      },
      messageField(`Update metadata of ${script.logical_path}`),
    ],
    onSubmit: async ({ display_name, description, message }) => {
      const updated = await updateScript(
        script,
        withMessage({ display_name, description: description.trim() || null }, message),
      );
      notify("Details saved.", "success");
      return updated;
    },
  });
}

export function deleteScript(script) {
  return formDialog({
    title: `Delete ${script.filename}?`,
    intro: `${script.logical_path} will disappear from the tree and can no longer be run. Its history stays in the repository, from which it can be restored.`,
    fields: [messageField(`Delete script ${script.logical_path}`)],
    submitLabel: "Delete script",
    danger: true,
    onSubmit: async ({ message }) => {
      await api(`scripts-manager/scripts/${script.id}${messageQuery(message)}`, {
        method: "DELETE",
      });
      notify(`Deleted ${script.logical_path}.`, "success");
      return script;
    },
  });
}

// -- folders -----------------------------------------------------------------------------------
export function createFolder(folders, parentId = null) {
  return formDialog({
    title: "New folder",
    fields: [
      { name: "name", label: "Name", required: true, maxlength: 255 },
      {
        name: "parent_id",
        label: "Inside",
        type: "select",
        options: folderOptions(folders),
        value: parentId ?? "",
      },
      messageField("Create folder …"),
    ],
    submitLabel: "Create folder",
    onSubmit: async ({ name, parent_id, message }) => {
      const folder = await api("scripts-manager/folders", {
        method: "POST",
        json: withMessage({ name, parent_id: folderIdOf(parent_id) }, message),
      });
      notify(`Created folder ${folder.path}.`, "success");
      return folder;
    },
  });
}

export function renameFolder(folder) {
  return formDialog({
    title: `Rename folder ${folder.name}`,
    fields: [
      {
        name: "name",
        label: "New name",
        value: folder.name,
        required: true,
        maxlength: 255,
        hint: "The paths of every script inside change with it.",
      },
      messageField(`Rename folder ${folder.path} -> …`),
    ],
    submitLabel: "Rename",
    onSubmit: async ({ name, message }) => {
      if (name === folder.name) throw new InputError("That is the current name.");
      const renamed = await api(`scripts-manager/folders/${folder.id}`, {
        method: "PUT",
        json: withMessage({ name }, message),
      });
      notify(`Renamed to ${renamed.path}.`, "success");
      return renamed;
    },
  });
}

export function moveFolder(folder, folders) {
  // Not into itself or anything inside it.
  const inside = (candidate) =>
    candidate.id === folder.id || candidate.path.startsWith(`${folder.path}/`);
  return formDialog({
    title: `Move folder ${folder.name}`,
    fields: [
      {
        name: "parent_id",
        label: "Into",
        type: "select",
        options: folderOptions(folders.filter((candidate) => !inside(candidate))),
        value: folder.parent_id ?? "",
        hint: "The paths of every script inside change with it.",
      },
      messageField(`Move folder ${folder.path} -> …`),
    ],
    submitLabel: "Move",
    onSubmit: async ({ parent_id, message }) => {
      if (folderIdOf(parent_id) === folder.parent_id)
        throw new InputError("The folder is already there.");
      const moved = await api(`scripts-manager/folders/${folder.id}`, {
        method: "PUT",
        json: withMessage({ parent_id: folderIdOf(parent_id) }, message),
      });
      notify(`Moved to ${moved.path}.`, "success");
      return moved;
    },
  });
}

export function deleteFolder(item) {
  const scripts = allScripts({ root_scripts: [], root_folders: [item] }).length;
  const folders = allFolders({ root_folders: [item] }).length - 1;
  const contents = [
    scripts && `${scripts} script${scripts === 1 ? "" : "s"}`,
    folders && `${folders} folder${folders === 1 ? "" : "s"}`,
  ]
    .filter(Boolean)
    .join(" and ");
  return formDialog({
    title: `Delete folder ${item.folder.name}?`,
    intro: `${item.folder.path}${contents ? ` and everything in it (${contents})` : ""} will be deleted. The history keeps every version.`,
    fields: [messageField(`Delete folder ${item.folder.path}`)],
    submitLabel: "Delete folder",
    danger: true,
    onSubmit: async ({ message }) => {
      await api(`scripts-manager/folders/${item.folder.id}${messageQuery(message)}`, {
        method: "DELETE",
      });
      notify(`Deleted folder ${item.folder.path}.`, "success");
      return item.folder;
    },
  });
}
