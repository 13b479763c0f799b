// Keyboard for an ARIA tree (role="tree" of role="treeitem"s, folders with aria-expanded and a
// role="group" of children): one tab stop that stays on the last item used; Up and Down move
// through the visible items, Right opens a folder or enters it, Left closes it or goes to its
// folder, Home and End jump; Enter opens; Shift+F10 (or the context-menu key) opens the item's
// actions. An item acts through its own controls: `.disclosure`, `.node-name` and `.row-menu`.

const visibleItems = (tree) =>
  [...tree.querySelectorAll('[role="treeitem"]')].filter(
    (item) => !item.parentElement.closest('[role="group"][hidden]'),
  );

const MOVES = new Set(["ArrowDown", "ArrowUp", "ArrowLeft", "ArrowRight", "Home", "End"]);

const control = (item, selector) => item.querySelector(`:scope > .row ${selector}`);

/** Makes `item` the tree's one tab stop; with `focus`, moves the focus there. */
export function makeCurrent(tree, item, focus = true) {
  if (!item) return;
  for (const other of tree.querySelectorAll('[role="treeitem"][tabindex="0"]'))
    if (other !== item) other.setAttribute("tabindex", "-1");
  item.setAttribute("tabindex", "0");
  if (focus) item.focus();
}

export function installTreeKeys(tree) {
  const items = visibleItems(tree);
  makeCurrent(tree, tree.querySelector('[role="treeitem"][tabindex="0"]') || items[0], false);
  // Clicking a control inside an item makes that item the tab stop too.
  tree.addEventListener("focusin", (event) => {
    const item = event.target.closest('[role="treeitem"]');
    if (item && tree.contains(item)) makeCurrent(tree, item, false);
  });
  tree.addEventListener("keydown", (event) => {
    let item = event.target;
    if (item.getAttribute("role") !== "treeitem") {
      // On a control of an item (its actions button after its menu closed, say), the arrows
      // still walk the tree; any other key is the control's own.
      if (!MOVES.has(event.key) || !item.matches(".row > :is(.disclosure, .node-name, .row-menu)"))
        return; // an open menu, say, has arrow keys of its own
      item = item.closest('[role="treeitem"]');
    }
    const visible = visibleItems(tree);
    const at = visible.indexOf(item);
    const expanded = item.getAttribute("aria-expanded");
    const key = event.key;
    let handled = true;
    if (key === "ArrowDown") makeCurrent(tree, visible[at + 1]);
    else if (key === "ArrowUp") makeCurrent(tree, visible[at - 1]);
    else if (key === "Home") makeCurrent(tree, visible[0]);
    else if (key === "End") makeCurrent(tree, visible[visible.length - 1]);
    else if (key === "ArrowRight") {
      if (expanded === "false") control(item, ".disclosure").click();
      else if (expanded === "true")
        makeCurrent(tree, item.querySelector(':scope > [role="group"] > [role="treeitem"]'));
    } else if (key === "ArrowLeft") {
      if (expanded === "true") control(item, ".disclosure").click();
      else makeCurrent(tree, item.parentElement.closest('[role="treeitem"]'));
    } else if (key === "Enter") {
      const name = control(item, ".node-name");
      if (name) name.click();
    } else if ((key === "F10" && event.shiftKey) || key === "ContextMenu") {
      const menu = control(item, ".row-menu");
      if (menu) menu.click();
    } else handled = false;
    if (handled) event.preventDefault();
  });
}
