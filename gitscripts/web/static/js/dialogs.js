// Modal dialogs on the native <dialog>: it traps focus, closes on Escape and restores focus.

import { describeError } from "./api.js";
import { h } from "./dom.js";

// The form field an API error is about, when the dialog has that field; otherwise the error is
// shown for the whole form.
const FIELD_OF_ERROR = {
  INVALID_FILENAME: "filename",
  INVALID_FOLDER_NAME: "name",
  SCRIPT_MISSING_MAIN: "content",
  INVALID_SCRIPT_CONTENT: "content",
  INVALID_TAG_NAME: "name",
};

export function modal(title, content, { wide = false } = {}) {
  const returnFocus = document.activeElement;
  const titleId = `dialog-title-${Math.random().toString(36).slice(2)}`;
  const dialog = h(
    "dialog",
    { class: wide ? "wide" : null, "aria-labelledby": titleId },
    h("h2", { id: titleId }, title),
    content,
  );
  document.body.append(dialog);
  dialog.addEventListener("close", () => {
    dialog.remove();
    if (returnFocus && returnFocus.isConnected) returnFocus.focus();
  });
  dialog.showModal();
  return dialog;
}

function fieldControl(field, id) {
  const common = {
    id,
    name: field.name,
    required: field.required || false,
    autocomplete: field.autocomplete || "off",
    "aria-describedby": field.hint ? `${id}-hint` : null,
  };
  switch (field.type) {
    case "textarea":
      return h("textarea", {
        ...common,
        rows: field.rows || 10,
        class: field.code ? "code" : null,
        spellcheck: field.code ? "false" : null,
        value: field.value ?? "",
      });
    case "select":
      return h(
        "select",
        common,
        field.options.map((option) =>
          h(
            "option",
            {
              value: String(option.value),
              selected: String(option.value) === String(field.value ?? ""),
            },
            option.label,
          ),
        ),
      );
    case "file":
      return h("input", { ...common, type: "file", accept: field.accept || null });
    case "checkbox":
      return h("input", { ...common, type: "checkbox", checked: Boolean(field.value) });
    default:
      return h("input", {
        ...common,
        type: field.type || "text",
        value: field.value ?? "",
        maxlength: field.maxlength || null,
        min: field.min ?? null,
        max: field.max ?? null,
        placeholder: field.placeholder || null,
      });
  }
}

/**
 * A form in a dialog. `onSubmit(values, form)` does the work; what it throws is shown in the
 * dialog (next to the field it is about, when the error names one) and the dialog stays open.
 * `onError(error, retry)` may handle an error itself (return true, e.g. after asking and retrying),
 * or return another error to show in its place.
 * Resolves to what `onSubmit` returned, or null when the user cancelled.
 */
export function formDialog({
  title,
  intro,
  fields,
  submitLabel = "Save",
  danger = false,
  wide = false,
  onSubmit,
  onError,
  onInput,
}) {
  return new Promise((resolve) => {
    let settled = false;
    const idBase = `field-${Math.random().toString(36).slice(2)}`;
    const controls = {};
    const fieldErrors = {};
    const rows = fields.map((field, index) => {
      const id = `${idBase}-${index}`;
      const control = fieldControl(field, id);
      if (field.hint) control.dataset.hintId = `${id}-hint`;
      controls[field.name] = control;
      fieldErrors[field.name] = h("p", {
        class: "field-error",
        id: `${id}-error`,
        role: "alert",
        hidden: true,
      });
      const label = h("label", { for: id }, field.label);
      const hint = field.hint ? h("p", { class: "hint", id: `${id}-hint` }, field.hint) : null;
      return field.type === "checkbox"
        ? h("div", { class: "field checkbox" }, control, label, hint, fieldErrors[field.name])
        : h("div", { class: "field" }, label, control, hint, fieldErrors[field.name]);
    });
    const formError = h("p", { class: "form-error", role: "alert", hidden: true });
    const submit = h(
      "button",
      { type: "submit", class: danger ? "danger" : "primary" },
      submitLabel,
    );
    const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
    const form = h(
      "form",
      { novalidate: true },
      intro ? h("p", { class: "intro" }, intro) : null,
      rows,
      formError,
      h("div", { class: "actions" }, cancel, submit),
    );
    const dialog = modal(title, form, { wide });

    const values = () =>
      Object.fromEntries(
        fields.map((field) => {
          const control = controls[field.name];
          if (field.type === "file") return [field.name, control.files[0] || null];
          if (field.type === "checkbox") return [field.name, control.checked];
          return [field.name, control.value];
        }),
      );

    const resetErrors = () => {
      formError.hidden = true;
      for (const [name, element] of Object.entries(fieldErrors)) {
        element.hidden = true;
        controls[name].removeAttribute("aria-invalid");
        setDescribedBy(controls[name], controls[name].dataset.hintId);
      }
    };

    const showError = (error) => {
      const message = describeError(error);
      const listed =
        error.details && Array.isArray(error.details.errors)
          ? error.details.errors.filter((item) => controls[item.field])
          : [];
      // A VALIDATION_ERROR about one value names it in its details (a rename to `a.txt`).
      const named =
        error.code === "VALIDATION_ERROR" && error.details
          ? Object.keys(error.details).find((key) => controls[key])
          : undefined;
      const field = FIELD_OF_ERROR[error.code] || named;
      if (listed.length) {
        for (const item of listed) markField(item.field, item.message);
      } else if (field && controls[field]) {
        markField(field, message);
      } else {
        formError.textContent = message;
        formError.hidden = false;
      }
    };

    const markField = (name, message) => {
      const control = controls[name];
      fieldErrors[name].textContent = message;
      fieldErrors[name].hidden = false;
      control.setAttribute("aria-invalid", "true");
      setDescribedBy(control, control.dataset.hintId, `${control.id}-error`);
      control.focus();
    };

    const finish = (result) => {
      settled = true;
      resolve(result);
      dialog.close();
    };

    const attempt = async (extra = {}) => {
      resetErrors();
      submit.disabled = true;
      submit.setAttribute("aria-busy", "true");
      try {
        finish(await onSubmit({ ...values(), ...extra }, form));
      } catch (error) {
        const handled = onError
          ? await onError(error, (more) => attempt({ ...extra, ...more }))
          : false;
        if (handled === true) return;
        showError(handled instanceof Error ? handled : error);
      } finally {
        submit.disabled = false;
        submit.removeAttribute("aria-busy");
      }
    };

    form.addEventListener("submit", (event) => {
      event.preventDefault();
      for (const field of fields) {
        if (
          field.required &&
          field.type !== "checkbox" &&
          !(field.type === "file"
            ? controls[field.name].files.length
            : controls[field.name].value.trim())
        ) {
          resetErrors();
          markField(field.name, `${field.label} is required.`);
          return;
        }
      }
      attempt();
    });
    if (onInput) form.addEventListener("input", (event) => onInput(event, controls));
    cancel.addEventListener("click", () => {
      if (!submit.disabled) dialog.close();
    });
    // While the request is out, Escape would close the dialog on a change that still lands.
    dialog.addEventListener("cancel", (event) => {
      if (submit.disabled) event.preventDefault();
    });
    dialog.addEventListener("close", () => {
      if (!settled) resolve(null);
    });
    const first = form.querySelector("input, textarea, select");
    if (first) first.focus();
  });
}

function setDescribedBy(control, ...ids) {
  const value = ids.filter(Boolean).join(" ");
  if (value) control.setAttribute("aria-describedby", value);
  else control.removeAttribute("aria-describedby");
}

/** Asks a yes/no question; resolves to true when confirmed. */
export function confirmDialog({ title, message, confirmLabel = "Confirm", danger = false }) {
  return new Promise((resolve) => {
    let answer = false;
    const confirm = h(
      "button",
      { type: "button", class: danger ? "danger" : "primary" },
      confirmLabel,
    );
    const cancel = h("button", { type: "button", class: "secondary" }, "Cancel");
    const dialog = modal(title, [
      h("p", { class: "intro" }, message),
      h("div", { class: "actions" }, cancel, confirm),
    ]);
    confirm.addEventListener("click", () => {
      answer = true;
      dialog.close();
    });
    cancel.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => resolve(answer));
    cancel.focus();
  });
}

/** Shows content with a Close button. */
export function infoDialog({ title, body, wide = false }) {
  return new Promise((resolve) => {
    const close = h("button", { type: "button", class: "primary" }, "Close");
    const dialog = modal(
      title,
      [h("div", { class: "dialog-body" }, body), h("div", { class: "actions" }, close)],
      { wide },
    );
    close.addEventListener("click", () => dialog.close());
    dialog.addEventListener("close", () => resolve());
    close.focus();
  });
}
