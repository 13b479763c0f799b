"""Git where users expect it, in the browser: commit messages of one's own, a first version's
diff against nothing, and only the tags that concern the script on its page."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.conftest import User
from tests.e2e.test_script_ui import API, open_editor, open_tab, version, versions_of


def last_message(user: User) -> str:
    [commit] = user.api.get(f"{API}/history", params={"limit": 1}).json()["commits"]
    return str(commit["message"])


def test_saves_renames_restores_and_deletes_take_a_commit_message(
    signed_in_page: Page, new_user: User
) -> None:
    page = signed_in_page
    script, editor = open_editor(page, new_user, "messages")
    sid = script["id"]
    editor.fill(version(2).decode())
    page.get_by_label("Commit message (optional)").fill("Second version, for the review")
    page.get_by_role("button", name="Save new version").click()
    expect(page.get_by_label("Source code")).to_contain_text("running version 2")
    assert versions_of(new_user, sid)[0]["message"] == "Second version, for the review"

    page.get_by_role("button", name="Rename", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("New file name").fill(f"{new_user.login}-renamed.py")
    dialog.get_by_label("Commit message (optional)").fill("A name that says what it does")
    dialog.get_by_role("button", name="Rename").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert versions_of(new_user, sid)[0]["message"] == "A name that says what it does"

    open_tab(page, "History")
    first = versions_of(new_user, sid)[-1]
    page.locator(f'tr[data-revision="{first["revision"]}"]').get_by_role(
        "button", name="Restore…"
    ).click()
    dialog = page.get_by_role("dialog")
    expect(dialog.get_by_label("Commit message (optional)")).to_have_attribute(
        "placeholder", f"Restore script {new_user.login}-renamed.py to {first['short']}"
    )
    dialog.get_by_label("Commit message (optional)").fill("Version 2 broke the decline curve")
    dialog.get_by_role("button", name="Restore").click()
    expect(page.get_by_label("Source code")).to_contain_text("running version 1")
    assert versions_of(new_user, sid)[0]["message"] == "Version 2 broke the decline curve"

    page.get_by_role("button", name="Delete", exact=True).click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Commit message (optional)").fill("Replaced by the field model")
    dialog.get_by_role("button", name="Delete script").click()
    expect(page.get_by_role("dialog")).to_have_count(0)
    assert new_user.api.get(f"{API}/scripts/{sid}").status_code == 404
    assert last_message(new_user) == "Replaced by the field model"


def test_a_first_version_shows_all_its_lines_added(signed_in_page: Page, new_user: User) -> None:
    script = new_user.api.upload(f"{new_user.login}-first.py", version(1))
    page = signed_in_page
    page.goto(f"/#/scripts/{script['id']}/history")
    diff = page.get_by_test_id("diff")
    expect(page.get_by_text("Changes from nothing to")).to_be_visible()
    code = diff.locator("section.diff-file").first
    expect(code.locator("tr.added")).to_have_count(len(version(1).decode().splitlines()))
    expect(code.locator("tr.deleted")).to_have_count(0)

    # With more versions, any of them can be compared with nothing too.
    new_user.api.put(f"{API}/scripts/{script['id']}", json={"content": version(2).decode()})
    page.goto(f"/#/scripts/{script['id']}/source")
    open_tab(page, "History")
    expect(diff.locator("tr.deleted").first).to_contain_text("running version 1")
    page.get_by_label("Compare from nothing").check()
    expect(page.get_by_text("Changes from nothing to")).to_be_visible()
    expect(diff.locator("section.diff-file").first.locator("tr.deleted")).to_have_count(0)
    expect(diff.locator("tr.added").first).to_contain_text("import sys")
    assert "from=-" in page.url
    page.reload()  # the choice is part of the address
    expect(page.get_by_text("Changes from nothing to")).to_be_visible()


def test_a_scripts_page_lists_only_the_tags_that_concern_it(
    signed_in_page: Page, new_user: User
) -> None:
    def tag(name: str) -> None:
        reply = new_user.api.post(f"{API}/tags", json={"name": name, "revision": "main"})
        assert reply.status_code == 201, reply.text

    before = f"{new_user.login}-before"
    tag(before)  # the script does not exist yet
    script: dict[str, Any] = new_user.api.upload(f"{new_user.login}-tagged.py", version(1))
    after = f"{new_user.login}-after"
    tag(after)
    page = signed_in_page
    page.goto(f"/#/scripts/{script['id']}/history")
    expect(page.locator(f'tr[data-tag="{after}"]')).to_contain_text(script["logical_path"])
    expect(page.locator(f'tr[data-tag="{before}"]')).to_have_count(0)
