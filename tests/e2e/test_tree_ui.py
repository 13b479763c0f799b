"""The tree in the browser: folders and scripts created, renamed, moved, replaced and deleted, with
each outcome checked through the API."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.conftest import HELLO
from tests.e2e.conftest import User, drop_files

REPLACEMENT = b"def main(data):\n    return {'replaced': True}\n"


def folder_row(page: Page, path: str) -> Locator:
    return page.locator(
        ".folder-node > .row",
        has=page.get_by_role("button", name=f"Actions for folder {path}", exact=True),
    )


def script_row(page: Page, script_id: int) -> Locator:
    return page.locator(f'[data-script-id="{script_id}"] > .row')


def choose(page: Page, menu_label: str, item: str) -> None:
    page.get_by_role("button", name=menu_label, exact=True).click()
    page.get_by_role("menuitem", name=item).click()


def find_script(tree: dict[str, Any], logical_path: str) -> dict[str, Any] | None:
    scripts = list(tree["root_scripts"])
    stack = list(tree["root_folders"])
    while stack:
        item = stack.pop()
        scripts += item["scripts"]
        stack += item["subfolders"]
    return next((s for s in scripts if s["logical_path"] == logical_path), None)


def test_folders_and_scripts_created_renamed_moved_and_deleted(
    signed_in_page: Page, new_user: User
) -> None:
    page = signed_in_page
    top = f"{new_user.login}-geo"

    page.get_by_role("button", name="New folder").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name").fill(top)
    dialog.get_by_role("button", name="Create folder").click()
    expect(folder_row(page, top)).to_be_visible()

    choose(page, f"Actions for folder {top}", "New folder inside…")
    page.get_by_role("dialog").get_by_label("Name").fill("wells")
    page.get_by_role("dialog").get_by_role("button", name="Create folder").click()
    expect(folder_row(page, f"{top}/wells")).to_be_visible()  # its parent was expanded for it

    choose(page, f"Actions for folder {top}/wells", "New script here…")
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("File name").fill("decline_rate.py")
    expect(dialog.get_by_label("Display name")).to_have_value("Decline rate")
    dialog.get_by_role("button", name="Create", exact=True).click()
    expect(page.get_by_role("dialog")).to_be_hidden()
    created = find_script(new_user.api.tree(), f"{top}/wells/decline_rate.py")
    assert created is not None and created["display_name"] == "Decline rate"
    expect(script_row(page, created["id"])).to_contain_text("decline_rate.py")

    choose(page, f"Actions for script {top}/wells/decline_rate.py", "Rename…")
    page.get_by_role("dialog").get_by_label("New file name").fill("decline.py")
    page.get_by_role("dialog").get_by_role("button", name="Rename").click()
    expect(script_row(page, created["id"])).to_contain_text("decline.py")
    renamed = new_user.api.get(f"/api/v1/scripts-manager/scripts/{created['id']}").json()
    assert renamed["logical_path"] == f"{top}/wells/decline.py"

    choose(page, f"Actions for script {top}/wells/decline.py", "Move…")
    page.get_by_role("dialog").get_by_label("To folder").select_option(label=top)
    page.get_by_role("dialog").get_by_role("button", name="Move").click()
    expect(page.get_by_role("dialog")).to_be_hidden()
    moved = new_user.api.get(f"/api/v1/scripts-manager/scripts/{created['id']}").json()
    assert moved["logical_path"] == f"{top}/decline.py" and moved["id"] == created["id"]

    other = new_user.api.folder(f"{top}-b")  # shown from the next refresh of the tree on
    choose(page, f"Actions for folder {top}", "Rename…")
    page.get_by_role("dialog").get_by_label("New name").fill(f"{top}-x")
    page.get_by_role("dialog").get_by_role("button", name="Rename").click()
    expect(folder_row(page, f"{top}-x")).to_be_visible()
    path = new_user.api.get(f"/api/v1/scripts-manager/scripts/{created['id']}").json()
    assert path["logical_path"] == f"{top}-x/decline.py"

    choose(page, f"Actions for folder {top}-x/wells", "Move…")
    dialog = page.get_by_role("dialog")
    places = dialog.get_by_label("Into").locator("option").all_inner_texts()
    assert f"{top}-x/wells" not in places and other["path"] in places  # not into itself
    dialog.get_by_label("Into").select_option(label=other["path"])
    dialog.get_by_role("button", name="Move").click()
    expect(folder_row(page, f"{other['path']}/wells")).to_be_visible()

    choose(page, f"Actions for script {top}-x/decline.py", "Delete…")
    page.get_by_role("dialog").get_by_role("button", name="Delete script").click()
    expect(script_row(page, created["id"])).to_have_count(0)
    gone = new_user.api.get(f"/api/v1/scripts-manager/scripts/{created['id']}")
    assert gone.status_code == 404

    choose(page, f"Actions for folder {other['path']}", "Delete…")
    confirm = page.get_by_role("dialog")
    expect(confirm).to_contain_text("1 folder")
    confirm.get_by_role("button", name="Delete folder").click()
    expect(folder_row(page, other["path"])).to_have_count(0)
    remaining = {item["folder"]["name"] for item in new_user.api.tree()["root_folders"]}
    assert other["name"] not in remaining and f"{top}-x" in remaining


def test_upload_asks_before_replacing_and_keeps_the_id(
    signed_in_page: Page, new_user: User, tmp_path: Any
) -> None:
    page = signed_in_page
    folder = new_user.api.folder(f"{new_user.login}-up")
    original = new_user.api.upload("model.py", HELLO, folder_id=folder["id"])
    replacement = tmp_path / "model.py"
    replacement.write_bytes(REPLACEMENT)
    page.reload()

    page.get_by_role("button", name="Upload script").click()
    dialog = page.get_by_role("dialog", name="Upload a script")
    dialog.get_by_label("Python file").set_input_files(str(replacement))
    expect(dialog.get_by_label("Display name")).to_have_value("Model")
    dialog.get_by_label("Folder").select_option(label=folder["path"])
    dialog.get_by_role("button", name="Upload").click()

    # First the user declines: nothing changes and the dialog says why.
    confirm = page.get_by_role("dialog", name="Replace the existing script?")
    expect(confirm).to_contain_text(f"{folder['path']}/model.py already exists")
    confirm.get_by_role("button", name="Cancel").click()
    expect(dialog.get_by_role("alert")).to_contain_text("already exists")
    content = f"/api/v1/scripts-manager/scripts/{original['id']}/content"
    assert new_user.api.get(content).json()["content"] == HELLO.decode()

    dialog.get_by_role("button", name="Upload").click()
    page.get_by_role("dialog", name="Replace the existing script?").get_by_role(
        "button", name="Replace"
    ).click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    expect(page.get_by_role("status").filter(has_text="Replaced")).to_be_visible()
    assert new_user.api.get(content).json()["content"] == REPLACEMENT.decode()
    replaced = find_script(new_user.api.tree(), f"{folder['path']}/model.py")
    assert replaced is not None and replaced["id"] == original["id"]


def test_errors_from_the_api_are_shown_in_the_dialog(signed_in_page: Page, new_user: User) -> None:
    page = signed_in_page
    name = f"{new_user.login}-dup"
    new_user.api.folder(name)
    page.reload()
    page.get_by_role("button", name="New folder").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Name").fill(name)
    dialog.get_by_role("button", name="Create folder").click()
    expect(dialog.get_by_role("alert")).to_contain_text("already exists")
    expect(dialog.get_by_role("alert")).not_to_contain_text("FOLDER_ALREADY_EXISTS")

    dialog.get_by_label("Name").fill("a/b")
    dialog.get_by_role("button", name="Create folder").click()
    expect(dialog.get_by_text("Invalid folder name")).to_be_visible()
    dialog.get_by_role("button", name="Cancel").click()

    page.get_by_role("button", name="New script").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("File name").fill(f"{new_user.login}-broken.py")
    dialog.get_by_label("Source").fill("def helper(x):\n    return x\n")
    dialog.get_by_role("button", name="Create", exact=True).click()
    expect(dialog.get_by_role("alert")).to_contain_text("must define a top-level function main")
    assert find_script(new_user.api.tree(), f"{new_user.login}-broken.py") is None


def test_actions_are_hidden_where_the_user_may_not_take_them(
    signed_in_page: Page, new_user: User, e2e_client: Any
) -> None:
    from tests.conftest import register

    other = register(e2e_client, f"{new_user.login}-o", "another password")  # type: ignore[arg-type]
    folder = other.folder(f"{new_user.login}-theirs")
    theirs = other.upload("theirs.py", folder_id=folder["id"])
    page = signed_in_page
    page.reload()

    page.get_by_role("button", name=f"Expand folder {folder['name']}").click()
    page.get_by_role("button", name=f"Actions for script {theirs['logical_path']}").click()
    expect(page.get_by_role("menuitem", name="Open")).to_be_visible()
    expect(page.get_by_role("menuitem", name="Run…")).to_be_visible()
    expect(page.get_by_role("menuitem", name="Rename…")).to_have_count(0)
    expect(page.get_by_role("menuitem", name="Delete…")).to_have_count(0)
    page.keyboard.press("Escape")

    page.get_by_role("button", name=f"Actions for folder {folder['path']}").click()
    expect(page.get_by_role("menuitem", name="New script here…")).to_be_visible()
    expect(page.get_by_role("menuitem", name="Rename…")).to_have_count(0)
    expect(page.get_by_role("menuitem", name="Delete…")).to_have_count(0)
    page.keyboard.press("Escape")

    page.goto(f"/#/scripts/{theirs['id']}")
    expect(page.get_by_role("heading", name="theirs.py")).to_be_visible()
    expect(page.get_by_role("button", name="Edit source")).to_have_count(0)
    expect(page.get_by_role("button", name="Delete")).to_have_count(0)
    expect(page.get_by_role("button", name="Rename")).to_have_count(0)


def test_a_py_file_dropped_on_a_folder_becomes_a_script_in_it(
    signed_in_page: Page, new_user: User
) -> None:
    page = signed_in_page
    folder = new_user.api.folder(f"{new_user.login}-drop")
    page.reload()
    source = "def main(data):\n    return {'dropped': True}\n"
    drop_files(folder_row(page, folder["path"]), {"well_rates.py": source})
    expect(page.get_by_role("status").filter(has_text="Uploaded")).to_be_visible()
    made = find_script(new_user.api.tree(), f"{folder['path']}/well_rates.py")
    assert made is not None and made["display_name"] == "Well rates"
    # Shown where it went: the folder is open and the new script is in it.
    expect(script_row(page, made["id"])).to_be_visible()
    content = new_user.api.get(f"/api/v1/scripts-manager/scripts/{made['id']}/content").json()
    assert content["content"] == source

    # Anything but a .py file is refused in words, and nothing is sent.
    drop_files(folder_row(page, folder["path"]), {"table.csv": "a,b\n"})
    expect(page.get_by_role("alert").filter(has_text="not a Python file")).to_be_visible()
    assert find_script(new_user.api.tree(), f"{folder['path']}/table.csv") is None


def test_someone_elses_script_is_read_only_before_anything_is_sent(
    signed_in_page: Page, new_user: User, e2e_client: Any, tmp_path: Any
) -> None:
    from tests.conftest import register

    owner = f"{new_user.login}-o"
    other = register(e2e_client, owner, "another password")  # type: ignore[arg-type]
    folder = other.folder(f"{new_user.login}-shared")
    theirs = other.upload("model.py", folder_id=folder["id"])
    page = signed_in_page
    page.reload()
    page.get_by_role("button", name=f"Expand folder {folder['name']}").click()
    expect(script_row(page, theirs["id"]).locator(".read-only")).to_have_text(
        f"Read-only · {owner}"
    )
    sent: list[str] = []
    page.on(
        "request",
        lambda request: sent.append(request.url) if request.method == "POST" else None,
    )

    # Dropped on the folder: said at once, with the owner's name; no "Replace?" question.
    drop_files(folder_row(page, folder["path"]), {"model.py": "def main(data):\n    return {}\n"})
    alert = page.get_by_role("alert").filter(has_text="read-only for you")
    expect(alert).to_contain_text(f"{folder['path']}/model.py is {owner}'s script")
    expect(page.get_by_role("dialog", name="Replace the existing script?")).to_have_count(0)
    page.locator(".notice.error").get_by_role("button", name="Dismiss").click()

    # Chosen in the upload dialog: the same, in the dialog.
    replacement = tmp_path / "model.py"
    replacement.write_bytes(REPLACEMENT)
    page.get_by_role("button", name="Upload script").click()
    dialog = page.get_by_role("dialog", name="Upload a script")
    dialog.get_by_label("Python file").set_input_files(str(replacement))
    dialog.get_by_label("Folder").select_option(label=folder["path"])
    dialog.get_by_role("button", name="Upload").click()
    expect(dialog.get_by_role("alert")).to_contain_text(f"only {owner} or an admin may replace it")
    expect(page.get_by_role("dialog", name="Replace the existing script?")).to_have_count(0)
    assert sent == []  # nothing was attempted
    content = other.get(f"/api/v1/scripts-manager/scripts/{theirs['id']}/content").json()
    assert content["content"] == HELLO.decode()

    page.goto(f"/#/scripts/{theirs['id']}")
    expect(page.locator(".screen-head .read-only")).to_have_text(f"Read-only · {owner}")
