"""A script's page in the browser: source, editor, run panel, history, diffs, restore and tags."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from playwright.sync_api import Locator, Page, expect

from tests.e2e.conftest import User

API = "/api/v1/scripts-manager"


def version(n: int) -> bytes:
    return (
        "import sys\n\n"
        "def main(data: dict) -> dict:\n"
        f"    print('running version {n}')\n"
        f"    print('warning {n}', file=sys.stderr)\n"
        f"    return {{'version': {n}, 'doubled': data.get('value', 0) * 2}}\n"
    ).encode()


def open_tab(page: Page, name: str) -> None:
    page.get_by_role("navigation", name="Script sections").get_by_role("link", name=name).click()


def open_editor(page: Page, user: User, name: str) -> tuple[dict[str, Any], Locator]:
    """A new script of the user's, opened in the editor: the script and the editor's text box."""
    script = user.api.upload(f"{user.login}-{name}.py", version(1))
    page.goto(f"/#/scripts/{script['id']}")
    page.get_by_role("button", name="Edit source").click()
    return script, page.get_by_label(f"Source of {script['filename']}")


def editor_text(page: Page) -> str:
    """The editor's whole text, from CodeMirror's own document (not the lines on screen)."""
    return page.evaluate(
        """async () => {
            const { EditorView } = await import("/ui/vendor/codemirror.js");
            const editor = document.querySelector(".editor").shadowRoot.querySelector(".cm-editor");
            return EditorView.findFromDOM(editor).state.doc.toString();
        }"""
    )


def wait_for_the_draft(page: Page) -> None:
    """The editor keeps unsaved text in the browser a moment after the last keystroke."""
    has_draft = "Object.keys(localStorage).some(k => k.startsWith('gitscripts.draft.'))"
    for _ in range(50):
        if page.evaluate(has_draft):
            return
        page.wait_for_timeout(100)
    raise AssertionError("no draft was kept")


def versions_of(user: User, script_id: int) -> list[dict[str, Any]]:
    return user.api.get(f"{API}/scripts/{script_id}/history").json()["versions"]


def content_of(user: User, script_id: int) -> str:
    return user.api.get(f"{API}/scripts/{script_id}/content").json()["content"]


def test_source_is_highlighted_with_metadata_and_a_working_snippet(
    signed_in_page: Page, new_user: User
) -> None:
    folder = new_user.api.folder(f"{new_user.login}-src")
    script = new_user.api.upload(
        "calc.py", version(1), folder_id=folder["id"], display_name="Calc", description="Doubles"
    )
    page = signed_in_page
    page.goto(f"/#/scripts/{script['id']}")

    expect(page.get_by_role("heading", name="Calc")).to_be_visible()
    expect(page.get_by_text("Doubles")).to_be_visible()
    metadata = page.get_by_test_id("script-metadata")
    expect(metadata).to_contain_text(f"{folder['path']}/calc.py")
    expect(metadata).to_contain_text(new_user.login)
    source = page.get_by_label("Source code")
    expect(source).to_contain_text("def main(data: dict) -> dict:")
    expect(source.locator(".line")).to_have_count(6)
    expect(source.locator("span.k", has_text="def")).to_have_count(1)  # highlighted keyword

    snippet = page.get_by_test_id("client-snippet")
    expect(snippet).to_contain_text(f'gs.run("{folder["path"]}/calc.py"')
    base = page.evaluate("location.origin")
    expect(snippet).to_contain_text(f"{base}/api/v1/client.py")


def test_editor_shows_validation_errors_inline_and_saves_a_new_version(
    signed_in_page: Page, new_user: User
) -> None:
    page = signed_in_page
    script, editor = open_editor(page, new_user, "ed")

    editor.fill("def helper(data):\n    return data\n")
    expect(page.get_by_role("alert")).to_contain_text("must define a top-level function main")
    page.get_by_role("button", name="Save new version").click()
    expect(page.get_by_role("alert")).to_contain_text("must define a top-level function main")

    editor.fill("def main(data):\n    return {\n\n")
    expect(page.get_by_role("alert")).to_contain_text("not valid Python")
    expect(page.locator(".cm-gutter-lint .cm-lint-marker-error")).to_have_count(1)
    assert len(versions_of(new_user, script["id"])) == 1  # nothing was saved

    fixed = "def main(data):\n    return {'edited': True}\n"
    editor.fill(fixed)
    expect(page.get_by_text("The script is valid.")).to_be_visible()
    page.get_by_role("button", name="Save new version").click()
    expect(page.get_by_label("Source code")).to_contain_text("'edited': True")
    assert content_of(new_user, script["id"]) == fixed
    assert len(versions_of(new_user, script["id"])) == 2


def test_unsaved_edits_survive_a_reload(signed_in_page: Page, new_user: User) -> None:
    page = signed_in_page
    _, editor = open_editor(page, new_user, "draft")
    editor.fill("def main(data):\n    return {}\n# wip\n")
    wait_for_the_draft(page)
    page.reload()
    page.get_by_role("button", name="Resume editing").click()
    expect(editor).to_be_visible()
    assert editor_text(page) == "def main(data):\n    return {}\n# wip\n"


def test_a_draft_already_saved_elsewhere_is_dropped_and_editing_starts_fresh(
    signed_in_page: Page, new_user: User
) -> None:
    page = signed_in_page
    script, editor = open_editor(page, new_user, "elsewhere")
    text = "def main(data):\n    return {'from': 'elsewhere'}\n"
    editor.fill(text)
    wait_for_the_draft(page)
    # The same text gets saved from another tab (here through the API).
    new_user.api.put(f"{API}/scripts/{script['id']}", json={"content": text})
    page.reload()
    expect(page.get_by_label("Source code")).to_contain_text("elsewhere")
    expect(page.get_by_text("You have unsaved changes")).to_have_count(0)
    page.get_by_role("button", name="Edit source").click()
    editor.fill("def main(data):\n    return {'then': 'here'}\n")
    page.get_by_role("button", name="Save new version").click()
    expect(page.get_by_label("Source code")).to_contain_text("'then': 'here'")
    assert "here" in content_of(new_user, script["id"])


def test_run_panel_validates_input_and_runs_any_revision(
    signed_in_page: Page, new_user: User
) -> None:
    script = new_user.api.upload(f"{new_user.login}-run.py", version(1))
    first = versions_of(new_user, script["id"])[0]
    new_user.api.put(f"{API}/scripts/{script['id']}", json={"content": version(2).decode()})
    current = versions_of(new_user, script["id"])[0]
    page = signed_in_page
    page.goto(f"/#/scripts/{script['id']}/run")

    payload = page.get_by_label("Input (JSON object passed to main)")
    payload.fill('{"value": 21,}')
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator("#run-input-problem")).to_contain_text("Not valid JSON at line 1")
    expect(page.get_by_test_id("run-result")).to_have_count(0)
    payload.fill("[1, 2]")
    expect(page.locator("#run-input-problem")).to_contain_text("must be a JSON object")

    payload.fill('{"value": 21}')
    page.get_by_role("button", name="Run", exact=True).click()
    result = page.get_by_test_id("run-result")
    expect(result).to_contain_text("Succeeded")
    expect(page.get_by_test_id("run-result-json")).to_contain_text('"version": 2')
    expect(page.get_by_test_id("run-result-json")).to_contain_text('"doubled": 42')
    expect(page.get_by_test_id("run-stdout")).to_contain_text("running version 2")
    expect(page.get_by_test_id("run-stderr")).to_contain_text("warning 2")
    expect(page.get_by_test_id("run-revision")).to_have_text(current["revision"][:10])
    expect(result).to_contain_text(re.compile(r"in [\d.]+ (ms|s)"))

    page.get_by_label("Revision", exact=True).select_option(first["revision"])
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_test_id("run-result-json")).to_contain_text('"version": 1')
    expect(page.get_by_test_id("run-revision")).to_have_text(first["revision"][:10])

    page.get_by_label("Revision", exact=True).select_option("__other__")
    page.get_by_label("Revision to run").fill("no-such-tag")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.locator(".run-output").get_by_role("alert")).to_contain_text("no-such-tag")


def test_a_failing_script_shows_its_error(signed_in_page: Page, new_user: User) -> None:
    script = new_user.api.upload(
        f"{new_user.login}-fail.py", b"def main(data):\n    raise ValueError('bad porosity')\n"
    )
    page = signed_in_page
    page.goto(f"/#/scripts/{script['id']}/run")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_test_id("run-result")).to_contain_text("Failed")
    expect(page.get_by_test_id("run-error")).to_contain_text("ValueError: bad porosity")


def test_a_long_run_can_be_cancelled_and_the_service_stops_it(
    signed_in_page: Page, new_user: User, e2e_data_dir: Path
) -> None:
    name = f"{new_user.login}-long.py"
    script = new_user.api.upload(
        name, b"import time\n\ndef main(data):\n    time.sleep(60)\n    return {}\n"
    )
    page = signed_in_page
    page.goto(f"/#/scripts/{script['id']}/run")
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_text("Running at main")).to_be_visible()
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_disabled()
    page.wait_for_timeout(500)  # the run has started on the service
    page.get_by_role("button", name="Cancel").click()
    expect(page.get_by_test_id("run-result").get_by_test_id("run-status")).to_have_text("Cancelled")
    expect(page.get_by_test_id("run-error")).to_have_text(f"cancelled by {new_user.login}")
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_enabled()

    log = e2e_data_dir.parent / "server.log"
    for _ in range(50):  # the service notices the closed connection and stops the script
        runs = [line for line in log.read_text().splitlines() if f"script={name}" in line]
        if runs:
            break
        page.wait_for_timeout(100)
    assert runs and "outcome=cancelled" in runs[-1], runs


def test_history_diffs_restore_and_tags(signed_in_page: Page, new_user: User) -> None:
    script = new_user.api.upload(f"{new_user.login}-hist.py", version(1))
    for n in (2, 3):
        new_user.api.put(f"{API}/scripts/{script['id']}", json={"content": version(n).decode()})
    _, v2, v1 = versions_of(new_user, script["id"])
    page = signed_in_page
    page.goto(f"/#/scripts/{script['id']}/history")

    expect(page.get_by_role("heading", name="Versions (3)")).to_be_visible()
    rows = page.locator("table.versions tbody tr")
    expect(rows).to_have_count(3)
    expect(rows.first).to_contain_text(new_user.login)
    diff = page.get_by_test_id("diff")  # previous vs current by default
    expect(diff.locator("tr.deleted")).to_contain_text(
        ["running version 2", "warning 2", "'version': 2"]
    )
    expect(diff.locator("tr.added")).to_contain_text(
        ["running version 3", "warning 3", "'version': 3"]
    )

    page.get_by_label(f"Compare from {v1['short']}").check()
    expect(diff.locator("tr.deleted").first).to_contain_text("running version 1")
    page.get_by_role("button", name="Side by side").click()
    expect(page.locator("table.diff.split td.code.deleted").first).to_contain_text("version 1")
    expect(page.locator("table.diff.split td.code.added").first).to_contain_text("version 3")
    assert "mode=split" in page.url and f"from={v1['revision']}" in page.url

    page.reload()  # the chosen comparison is part of the address
    expect(page.locator("table.diff.split td.code.deleted").first).to_contain_text("version 1")

    page.locator(f'tr[data-revision="{v2["revision"]}"]').get_by_role("button", name="Tag…").click()
    dialog = page.get_by_role("dialog", name="New tag")
    tag = f"{new_user.login}-stable"
    dialog.get_by_label("Tag name").fill(tag)
    dialog.get_by_role("button", name="Create tag").click()
    expect(page.locator(f'tr[data-revision="{v2["revision"]}"] .badge.tag')).to_have_text(tag)
    tags = {t["name"]: t["revision"] for t in new_user.api.get(f"{API}/tags").json()}
    assert tags[tag] == v2["revision"]

    # Renamed since: the tag still runs the script by the path it had then.
    new_user.api.put(f"{API}/scripts/{script['id']}", json={"filename": "renamed_since.py"})
    open_tab(page, "Run")
    page.get_by_label("Revision", exact=True).select_option(tag)
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_test_id("run-result-json")).to_contain_text('"version": 2')

    # Editing the tag's message leaves it where it points.
    open_tab(page, "History")
    page.locator(f'tr[data-tag="{tag}"]').get_by_role("button", name="Edit…").click()
    dialog = page.get_by_role("dialog", name=f"Edit tag {tag}")
    dialog.get_by_label("Message").fill("the stable one")
    dialog.get_by_role("button", name="Save tag").click()
    expect(page.locator(f'tr[data-tag="{tag}"]')).to_contain_text("the stable one")
    tags = {t["name"]: t for t in new_user.api.get(f"{API}/tags").json()}
    assert tags[tag]["revision"] == v2["revision"] and tags[tag]["message"] == "the stable one"

    open_tab(page, "History")
    page.locator(f'tr[data-revision="{v1["revision"]}"]').get_by_role(
        "button", name="Restore…"
    ).click()
    page.get_by_role("dialog").get_by_role("button", name="Restore").click()
    expect(page.get_by_label("Source code")).to_contain_text("running version 1")
    assert content_of(new_user, script["id"]) == version(1).decode()
    assert len(versions_of(new_user, script["id"])) == 5  # + the rename and the restore

    open_tab(page, "History")
    page.locator(f'tr[data-tag="{tag}"]').get_by_role("button", name="Delete…").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete tag").click()
    expect(page.locator(f'tr[data-tag="{tag}"]')).to_have_count(0)
    assert tag not in {t["name"] for t in new_user.api.get(f"{API}/tags").json()}


def test_a_draft_stays_with_the_user_who_wrote_it(
    signed_in_page: Page, new_user: User, e2e_client: Any
) -> None:
    from tests.conftest import PASSWORD, register

    page = signed_in_page
    script, editor = open_editor(page, new_user, "mine")
    editor.fill("def main(data):\n    return {}\n")
    wait_for_the_draft(page)
    page.get_by_role("button", name="Sign out").click()

    other = register(e2e_client, f"{new_user.login}-b", PASSWORD)  # type: ignore[arg-type]
    page.get_by_label("Login").fill(other.login)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Sign in").click()
    expect(page.get_by_test_id("current-user")).to_have_text(other.login)
    page.goto(f"/#/scripts/{script['id']}")
    expect(page.get_by_label("Source code")).to_contain_text("running version 1")
    expect(page.get_by_text("You have unsaved changes")).to_have_count(0)
    expect(page.get_by_role("button", name="Edit source")).to_have_count(0)


def test_activity_lists_commits_and_opens_one_with_its_diff(
    signed_in_page: Page, new_user: User
) -> None:
    folder = new_user.api.folder(f"{new_user.login}-act")
    script = new_user.api.upload("flow.py", version(1), folder_id=folder["id"])
    new_user.api.put(f"{API}/scripts/{script['id']}", json={"content": version(2).decode()})
    page = signed_in_page
    page.get_by_role("link", name="Activity").click()
    page.get_by_label("Only changes to").fill(folder["path"])
    page.get_by_role("button", name="Filter").click()
    commits = page.locator("li.commit")
    expect(commits).to_have_count(3)  # the folder, the script, the change
    expect(commits.first).to_contain_text(f"Update script {folder['path']}/flow.py")
    expect(commits.first).to_contain_text(new_user.login)

    commits.first.get_by_role("link").first.click()
    expect(
        page.get_by_role("heading", name=f"Update script {folder['path']}/flow.py")
    ).to_be_visible()
    expect(page.locator("tr.added").first).to_contain_text("running version 2")
    page.get_by_role("button", name="Side by side").click()
    expect(page.locator("table.diff.split td.code.deleted").first).to_contain_text("version 1")
    page.get_by_role("link", name="Activity").first.click()
    expect(page.get_by_role("heading", name="Activity")).to_be_visible()


def test_a_save_never_overwrites_a_newer_version_unseen(
    signed_in_page: Page, new_user: User
) -> None:
    page = signed_in_page
    script, editor = open_editor(page, new_user, "both")
    mine = "def main(data):\n    return {'mine': True}\n"
    editor.fill(mine)
    # Meanwhile a colleague saves (here through the API).
    new_user.api.put(f"{API}/scripts/{script['id']}", json={"content": version(2).decode()})

    page.get_by_role("button", name="Save new version").click()
    problem = page.locator(".editor-error")
    expect(problem).to_contain_text("Someone saved a newer version")
    page.wait_for_timeout(800)  # a check of the text still pending must not wipe the message
    expect(problem).to_contain_text("Someone saved a newer version")
    assert content_of(new_user, script["id"]) == version(2).decode()  # theirs is intact
    assert editor_text(page) == mine

    problem.get_by_role("button", name="save over it").click()
    expect(page.get_by_label("Source code")).to_contain_text("'mine': True")
    assert content_of(new_user, script["id"]) == mine
    assert len(versions_of(new_user, script["id"])) == 3  # both saves are in the history
