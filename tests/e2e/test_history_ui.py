"""Git where users expect it, in the browser: deleted scripts found and restored, blame, line
permalinks in sources and diffs, and the changed words of a diff marked."""

from __future__ import annotations

import re

from playwright.sync_api import Page, expect

from tests.e2e.conftest import User
from tests.e2e.test_script_ui import API, open_tab, version


def test_a_deleted_script_is_found_in_its_folders_deleted_view_and_restored(
    signed_in_page: Page, new_user: User
) -> None:
    folder = new_user.api.folder(f"{new_user.login}-gone")
    script = new_user.api.upload("calc.py", version(3), folder_id=folder["id"])
    reply = new_user.api.delete(f"{API}/scripts/{script['id']}")
    assert reply.status_code == 204, reply.text
    page = signed_in_page
    page.reload()
    page.get_by_role("button", name=f"Actions for folder {folder['path']}", exact=True).click()
    page.get_by_role("menuitem", name="Deleted scripts").click()
    expect(page.get_by_role("heading", name=f"Deleted in {folder['path']}")).to_be_visible()
    row = page.locator(f'tr[data-script-id="{script["id"]}"]')
    expect(row).to_contain_text(f"{folder['path']}/calc.py")
    expect(row).to_contain_text(new_user.login)
    expect(row).to_contain_text(f"Delete script {folder['path']}/calc.py")

    row.get_by_role("button", name="View").click()
    expect(page.get_by_label(f"Last content of {folder['path']}/calc.py")).to_contain_text(
        "running version 3"
    )
    row.get_by_role("button", name="Restore…").click()
    dialog = page.get_by_role("dialog")
    dialog.get_by_label("Commit message (optional)").fill("Still needed by the field model")
    dialog.get_by_role("button", name="Restore").click()
    # The script's own page, under its old id.
    expect(page).to_have_url(re.compile(rf"#/scripts/{script['id']}$"))
    expect(page.get_by_label("Source code")).to_contain_text("running version 3")
    restored = new_user.api.get(f"{API}/scripts/{script['id']}").json()
    assert restored["logical_path"] == f"{folder['path']}/calc.py"
    [commit] = new_user.api.get(f"{API}/history", params={"limit": 1}).json()["commits"]
    assert commit["message"] == "Still needed by the field model"
    page.goto(f"/#/deleted?folder={folder['path']}")
    expect(page.get_by_text("No script was deleted here.")).to_be_visible()


def test_blame_names_the_commit_of_each_line_and_links_to_its_diff(
    signed_in_page: Page, new_user: User
) -> None:
    script = new_user.api.upload(f"{new_user.login}-blamed.py", version(1))
    sid = script["id"]
    reply = new_user.api.put(f"{API}/scripts/{sid}", json={"content": version(2).decode()})
    assert reply.status_code == 200, reply.text
    first, second = (
        v["revision"]
        for v in reversed(new_user.api.get(f"{API}/scripts/{sid}/history").json()["versions"])
    )
    page = signed_in_page
    page.goto(f"/#/scripts/{sid}")
    open_tab(page, "Blame")
    table = page.get_by_role("table", name="Source with the commit that last changed each line")
    rows = table.locator("tr")
    expect(rows).to_have_count(len(version(2).decode().splitlines()))
    # Lines 1-3 are the first version's, 4-6 the second's: each run names its commit once.
    expect(table.locator("tr.first")).to_have_count(2)
    expect(rows.nth(0).locator("td.who")).to_contain_text(first[:7])
    expect(rows.nth(0).locator("td.who")).to_contain_text(new_user.login)
    expect(rows.nth(3).locator("td.who")).to_contain_text(second[:7])
    expect(rows.nth(3).locator("td.code")).to_have_text("    print('running version 2')")
    rows.nth(3).locator("td.who a").click()
    expect(page).to_have_url(re.compile(rf"#/commits/{second}$"))
    expect(page.get_by_test_id("diff").locator("tr.added").first).to_contain_text(
        "running version 2"
    )


def test_line_links_open_marked_lines_in_sources_and_diffs(
    signed_in_page: Page, new_user: User
) -> None:
    script = new_user.api.upload(f"{new_user.login}-lines.py", version(1))
    sid = script["id"]
    new_user.api.put(f"{API}/scripts/{sid}", json={"content": version(2).decode()})
    page = signed_in_page
    page.goto(f"/#/scripts/{sid}/source?line=3-4")
    source = page.get_by_label("Source code")
    expect(source.locator(".line.target-line")).to_have_count(2)
    expect(source.locator(".line.target-line").first).to_contain_text("def main(data: dict)")
    source.locator('.line[data-line="5"] .ln').click()
    expect(page).to_have_url(re.compile(r"source\?line=5$"))
    expect(source.locator(".line.target-line")).to_have_count(1)
    source.locator('.line[data-line="2"] .ln').click(modifiers=["Shift"])
    expect(page).to_have_url(re.compile(r"line=2-5$"))
    expect(source.locator(".line.target-line")).to_have_count(4)
    # Opened afresh, the link shows the same lines.
    page.reload()
    expect(page.get_by_label("Source code").locator(".line.target-line")).to_have_count(4)

    # In a diff: the new side's line 4 of the script's file.
    open_tab(page, "History")
    diff = page.get_by_test_id("diff")
    added = diff.locator('section[data-file$="-lines.py"] tr[data-line="R4"]')
    added.locator("td.ln").nth(1).click()
    expect(page).to_have_url(re.compile(r"line=R4"))
    expect(page).to_have_url(re.compile(rf"file={new_user.login}-lines.py"))
    page.reload()
    expect(page.get_by_test_id("diff").locator("tr.target-line")).to_have_count(1)
    expect(page.get_by_test_id("diff").locator("tr.target-line")).to_contain_text(
        "running version 2"
    )


def test_a_diff_marks_the_words_that_changed(signed_in_page: Page, new_user: User) -> None:
    script = new_user.api.upload(f"{new_user.login}-words.py", version(1))
    sid = script["id"]
    new_user.api.put(f"{API}/scripts/{sid}", json={"content": version(2).decode()})
    page = signed_in_page
    page.goto(f"/#/scripts/{sid}/history")
    diff = page.get_by_test_id("diff")
    expect(diff.locator("tr.deleted mark.word")).to_have_text(["1", "1", "1"])
    expect(diff.locator("tr.added mark.word")).to_have_text(["2", "2", "2"])
    # Side by side too.
    page.get_by_role("button", name="Side by side").click()
    expect(diff.locator("td.added mark.word")).to_have_text(["2", "2", "2"])
