"""Keyboard and small screens: the tree is an ARIA tree with one tab stop, breadcrumbs link every
level, and on a phone a side-by-side diff is shown unified and tables fit the width."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import User

API = "/api/v1/scripts-manager"


def test_the_tree_is_one_tab_stop_walked_with_arrow_keys(
    signed_in_page: Page, new_user: User
) -> None:
    # Named to sort first among the shared tree's folders, and after them its own script.
    top = new_user.api.folder(f"0000-{new_user.login}")
    inner = new_user.api.folder("inner", parent_id=top["id"])
    script = new_user.api.upload("deep.py", folder_id=inner["id"], display_name="Deep")
    page = signed_in_page
    page.reload()
    tree = page.get_by_role("tree", name="Folders and scripts")
    items = tree.get_by_role("treeitem")
    expect(tree.locator('[role="treeitem"][tabindex="0"]')).to_have_count(1)

    # Tab from the filter lands on the tree's first item; one more Tab leaves the tree.
    page.get_by_label("Filter scripts by name, path or description").focus()
    page.keyboard.press("Tab")
    first = tree.get_by_role("treeitem", name=top["name"], exact=True)
    expect(first).to_be_focused()
    expect(first).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("ArrowRight")  # opens
    expect(first).to_have_attribute("aria-expanded", "true")
    expect(first).to_be_focused()
    page.keyboard.press("ArrowRight")  # enters
    folder = tree.get_by_role("treeitem", name="inner", exact=True)
    expect(folder).to_be_focused()
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    leaf = tree.get_by_role("treeitem", name="Deep (deep.py)")
    expect(leaf).to_be_focused()
    expect(tree.locator('[role="treeitem"][tabindex="0"]')).to_have_count(1)
    page.keyboard.press("ArrowLeft")  # a script: to its folder
    expect(folder).to_be_focused()
    page.keyboard.press("ArrowLeft")  # an open folder: closes
    expect(folder).to_have_attribute("aria-expanded", "false")
    page.keyboard.press("ArrowUp")
    expect(first).to_be_focused()
    page.keyboard.press("End")
    expect(items.last).to_be_focused()
    page.keyboard.press("Home")
    expect(items.first).to_be_focused()

    # Shift+F10 opens the item's actions; Escape brings the focus back into the tree.
    page.keyboard.press("Shift+F10")
    expect(page.get_by_role("menuitem", name="New script here…")).to_be_focused()
    page.keyboard.press("Escape")
    page.keyboard.press("ArrowDown")  # a key of the tree again, from its item
    expect(folder).to_be_focused()
    # No other item, nor a control in one, is a tab stop: Tab leaves the tree.
    page.keyboard.press("Tab")
    expect(tree.locator(":focus")).to_have_count(0)
    page.get_by_label("Filter scripts by name, path or description").focus()
    page.keyboard.press("Tab")
    expect(folder).to_be_focused()  # the tab stop stayed where the user was
    page.keyboard.press("ArrowUp")

    # Enter opens a script.
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowRight")
    page.keyboard.press("ArrowDown")
    expect(leaf).to_be_focused()
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", name="Deep")).to_be_visible()
    assert page.url.endswith(f"#/scripts/{script['id']}")


def test_every_breadcrumb_level_is_a_link_to_its_folder(
    signed_in_page: Page, new_user: User
) -> None:
    top = new_user.api.folder(f"{new_user.login}-crumbs")
    inner = new_user.api.folder("inner", parent_id=top["id"])
    script = new_user.api.upload("leaf.py", folder_id=inner["id"], display_name="Leaf")
    page = signed_in_page
    page.goto(f"/#/scripts/{script['id']}")
    crumbs = page.get_by_role("navigation", name="Breadcrumb").get_by_role("link")
    expect(crumbs).to_have_text(["Scripts", top["name"], "inner", "leaf.py"])
    expect(crumbs.last).to_have_attribute("aria-current", "page")

    crumbs.nth(2).click()
    tree = page.get_by_role("tree", name="Folders and scripts")
    opened = tree.get_by_role("treeitem", name="inner", exact=True)
    expect(opened).to_be_focused()
    expect(opened).to_have_attribute("aria-expanded", "true")
    expect(tree.get_by_role("treeitem", name=top["name"], exact=True)).to_have_attribute(
        "aria-expanded", "true"
    )
    expect(opened.get_by_role("treeitem", name="Leaf (leaf.py)")).to_be_visible()


def test_on_a_phone_diffs_are_unified_and_tables_fit(signed_in_page: Page, new_user: User) -> None:
    long_line = "    return {'a_rather_long_key_for_a_phone': data.get('value', 0) * 1234567}\n"
    script = new_user.api.upload(
        f"{new_user.login}-with-a-long-name-for-a-phone.py",
        b"def main(data):\n" + long_line.encode(),
    )
    reply = new_user.api.put(
        f"{API}/scripts/{script['id']}",
        json={"content": "def main(data):\n" + long_line.replace("1234567", "7654321")},
    )
    assert reply.status_code == 200, reply.text
    page = signed_in_page
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"/#/scripts/{script['id']}/history?mode=split")
    diff = page.get_by_test_id("diff")
    expect(diff.locator("table.diff.unified")).to_have_count(1)
    expect(diff.locator("table.diff.split")).to_have_count(0)
    expect(diff).to_contain_text("Side by side needs a wider window")
    expect(page.get_by_role("group", name="Diff layout")).to_be_hidden()
    for table in page.locator(".table-wrap, .diff-file").all():
        overflow = table.evaluate("element => element.scrollWidth - element.clientWidth")
        assert overflow <= 0, f"a table is {overflow}px wider than its box"
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0

    # A wide window shows the layout it was asked for.
    page.set_viewport_size({"width": 1280, "height": 800})
    page.reload()
    expect(page.get_by_test_id("diff").locator("table.diff.split")).to_have_count(1)
