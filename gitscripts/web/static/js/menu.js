// A small action menu opened from a button: arrow keys move, Enter picks, Escape closes.

import { h } from "./dom.js";

let open = null;

export function closeMenu() {
  close(false);
}

function close(restoreFocus = true) {
  if (!open) return;
  const { menu, anchor, onOutside } = open;
  open = null;
  menu.remove();
  document.removeEventListener("pointerdown", onOutside, true);
  anchor.setAttribute("aria-expanded", "false");
  if (restoreFocus) anchor.focus();
}

/** items: [{label, run, danger?}], or null entries (skipped) for actions the user may not take. */
function openMenu(anchor, items) {
  const wasOpenHere = open && open.anchor === anchor;
  close(false);
  if (wasOpenHere) return;
  const entries = items.filter(Boolean);
  const buttons = entries.map((item) =>
    h(
      "button",
      {
        type: "button",
        role: "menuitem",
        class: item.danger ? "danger-text" : null,
        tabindex: "-1",
        onclick: () => {
          close();
          item.run();
        },
      },
      item.label,
    ),
  );
  const menu = h(
    "div",
    { class: "menu", role: "menu", "aria-label": anchor.getAttribute("aria-label") },
    buttons,
  );
  menu.addEventListener("keydown", (event) => {
    const index = buttons.indexOf(document.activeElement);
    if (event.key === "ArrowDown" || event.key === "ArrowUp") {
      event.preventDefault();
      const step = event.key === "ArrowDown" ? 1 : -1;
      buttons[(index + step + buttons.length) % buttons.length].focus();
    } else if (event.key === "Home" || event.key === "End") {
      event.preventDefault();
      buttons[event.key === "Home" ? 0 : buttons.length - 1].focus();
    } else if (event.key === "Escape") {
      event.preventDefault();
      close();
    } else if (event.key === "Tab") {
      close(false);
    }
  });
  const onOutside = (event) => {
    if (!menu.contains(event.target) && event.target !== anchor) close(false);
  };
  document.addEventListener("pointerdown", onOutside, true);
  anchor.setAttribute("aria-expanded", "true");
  anchor.after(menu);
  open = { menu, anchor, onOutside };
  if (buttons.length) buttons[0].focus();
}

/** The "⋯" button of a row; `items()` is called when it is opened, so permissions are current. */
export function menuButton(label, items) {
  const button = h(
    "button",
    {
      type: "button",
      class: "icon-button row-menu",
      "aria-haspopup": "menu",
      "aria-expanded": "false",
      "aria-label": label,
      title: label,
    },
    "⋯",
  );
  button.addEventListener("click", () => openMenu(button, items()));
  return button;
}
