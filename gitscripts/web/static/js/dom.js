// Small DOM helpers. Everything a user or the service wrote goes in as text, never as markup.

/**
 * h("button", {class: "primary", onclick: fn}, "Save") builds an element.
 * Attributes: `class`, `dataset`, `on<event>` handlers, booleans (true sets, false/null skips).
 */
export function h(tag, attributes = {}, ...children) {
  const element = document.createElement(tag);
  for (const [name, value] of Object.entries(attributes || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name.startsWith("on") && typeof value === "function") {
      element.addEventListener(name.slice(2), value);
    } else if (name === "dataset") {
      Object.assign(element.dataset, value);
    } else if (name === "value" || name === "checked" || name === "selected") {
      element[name] = value;
    } else {
      element.setAttribute(name, value === true ? "" : String(value));
    }
  }
  append(element, children);
  return element;
}

function append(element, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    element.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function clear(element, ...children) {
  element.replaceChildren();
  append(element, children);
  return element;
}

const dateFormat = new Intl.DateTimeFormat(undefined, { dateStyle: "medium", timeStyle: "short" });

export function formatDate(iso) {
  if (!iso) return "";
  const date = new Date(iso);
  return Number.isNaN(date.getTime()) ? iso : dateFormat.format(date);
}

/** A <time> showing the local date, with the exact UTC instant as its tooltip. */
export function timeElement(iso) {
  return h("time", { datetime: iso, title: iso }, formatDate(iso));
}

/** Who made a commit: their gitscripts login, else the name git recorded (a pushed commit). */
export function authorName(author) {
  return author.login || author.name || "unknown";
}

export function formatBytes(size) {
  if (size === null || size === undefined) return "";
  const units = ["bytes", "KiB", "MiB", "GiB", "TiB"];
  let value = size;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return unit === 0 ? `${size} bytes` : `${value.toFixed(value < 10 ? 1 : 0)} ${units[unit]}`;
}

// -- notices: short messages in the live region under the top bar ------------------------------
let noticeArea = null;

export function notify(message, kind = "info", { timeout = kind === "error" ? 0 : 5000 } = {}) {
  noticeArea ||= document.querySelector(".notices");
  const notice = h(
    "div",
    { class: `notice ${kind}`, role: kind === "error" ? "alert" : null },
    h("span", { class: "notice-text" }, message),
    h(
      "button",
      {
        type: "button",
        class: "icon-button",
        "aria-label": "Dismiss",
        onclick: () => notice.remove(),
      },
      "×",
    ),
  );
  noticeArea.append(notice);
  if (timeout) setTimeout(() => notice.remove(), timeout);
  return notice;
}

/** Errors belong to the screen they happened on; confirmations may outlive it. */
export function clearErrorNotices() {
  for (const notice of (noticeArea ||= document.querySelector(".notices")).querySelectorAll(
    ".notice.error",
  ))
    notice.remove();
}

/** A "Copy" button that puts `text()` on the clipboard and says so. */
export function copyButton(text, label = "Copy") {
  const button = h("button", { type: "button", class: "secondary small" }, label);
  button.addEventListener("click", async () => {
    const value = typeof text === "function" ? text() : text;
    try {
      await navigator.clipboard.writeText(value);
    } catch {
      // Without clipboard permission (plain http on another host): fall back to a selection copy.
      const area = h("textarea", { class: "offscreen", readonly: true }, value);
      document.body.append(area);
      area.select();
      document.execCommand("copy");
      area.remove();
    }
    button.textContent = "Copied";
    setTimeout(() => (button.textContent = label), 1500);
  });
  return button;
}

/** A code block with a copy button. */
export function snippet(code, { label = "Copy", testid, wrap = false } = {}) {
  return h(
    "div",
    { class: wrap ? "snippet wrap" : "snippet", "data-testid": testid },
    h("pre", {}, h("code", {}, code)),
    copyButton(code, label),
  );
}

/** Debounce: call `fn` once calls stop for `wait` ms; `.cancel()` drops a pending call. */
export function debounce(fn, wait) {
  let timer = null;
  const debounced = (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), wait);
  };
  debounced.cancel = () => clearTimeout(timer);
  return debounced;
}

export function loading(text = "Loading…") {
  return h("p", { class: "loading", role: "status" }, text);
}

export function errorPanel(message, ...actions) {
  return h("div", { class: "panel error-panel", role: "alert" }, h("p", {}, message), actions);
}

// -- files dragged in from the desktop ---------------------------------------------------------
function carriesFiles(event) {
  return Boolean(event.dataTransfer) && [...event.dataTransfer.types].includes("Files");
}

/**
 * Makes `target` (an element, or `window` for a whole screen) take files dropped on it: `marked`
 * gets the class `drop-target` while files are dragged over it, and `onFiles(files)` is called
 * with what is dropped. Drags of anything else (text, links) pass by. Returns a function that
 * removes the listeners.
 */
export function acceptFileDrops(target, onFiles, marked = target) {
  // dragenter and dragleave fire for every child crossed: the mark stays while any is entered.
  let entered = 0;
  const unmark = () => {
    entered = 0;
    marked.classList.remove("drop-target");
  };
  const listeners = {
    dragenter: (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      entered += 1;
      marked.classList.add("drop-target");
    },
    dragover: (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault(); // without it the browser refuses the drop
      event.dataTransfer.dropEffect = "copy";
    },
    dragleave: (event) => {
      if (!carriesFiles(event)) return;
      entered = Math.max(0, entered - 1);
      if (!entered) unmark();
    },
    drop: (event) => {
      if (!carriesFiles(event)) return;
      event.preventDefault();
      event.stopPropagation(); // taken here: not by a drop zone around this one
      unmark();
      const files = [...event.dataTransfer.files];
      if (files.length) onFiles(files);
    },
  };
  for (const [name, listener] of Object.entries(listeners)) target.addEventListener(name, listener);
  return () => {
    for (const [name, listener] of Object.entries(listeners))
      target.removeEventListener(name, listener);
    unmark();
  };
}

/** A file dropped where nothing takes it is ignored, instead of the browser leaving the app to
 * show it. */
export function ignoreStrayFileDrops() {
  for (const name of ["dragover", "drop"])
    window.addEventListener(name, (event) => {
      if (carriesFiles(event)) event.preventDefault();
    });
}

/** The note above a script shown as it was at a past revision: what is shown, the commit (a
 * link to it), and the way back to the current version. */
export function pastRevisionNote(words, revision, currentHref) {
  return h(
    "div",
    { class: "notice-inline info", role: "note" },
    words,
    h("a", { href: `#/commits/${revision}` }, h("code", {}, revision.slice(0, 10))),
    ". ",
    h("a", { href: currentHref }, "Show the current version"),
  );
}
