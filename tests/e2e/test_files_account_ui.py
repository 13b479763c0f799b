"""Files and the account page in the browser: upload with progress, download, delete; API tokens
shown once and revoked; the git clone URL."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
from playwright.sync_api import Page, expect

from tests.e2e.conftest import User, drop_files


def test_files_upload_with_progress_info_download_and_delete(
    signed_in_page: Page, new_user: User, tmp_path: Path
) -> None:
    data = os.urandom(6 * 1024 * 1024)  # large enough for progress events
    source = tmp_path / "pressure.bin"
    source.write_bytes(data)
    page = signed_in_page
    page.get_by_role("link", name="Files").click()
    expect(page.get_by_text("You have not uploaded any files yet.")).to_be_visible()

    page.evaluate(
        """() => {
            window.progressSeen = [];
            new MutationObserver(() => {
                const bar = document.querySelector("progress");
                if (bar && !bar.hidden) window.progressSeen.push(bar.value);
            }).observe(document.body, {subtree: true, attributes: true});
        }"""
    )
    page.get_by_label("File", exact=True).set_input_files(str(source))
    page.get_by_label("Key prefix (optional)").fill("sim/run-7")
    page.get_by_role("button", name="Upload", exact=True).click()
    key = page.get_by_test_id("uploaded-key").inner_text()
    assert key.startswith("sim/run-7/") and key.endswith(".bin")
    assert page.evaluate("window.progressSeen.length") > 0

    row = page.locator(f'tr[data-key="{key}"]')
    expect(row).to_contain_text("6.0 MiB")
    expect(row.locator("td.file-name")).to_have_text("pressure.bin")  # the name it had
    listed = new_user.api.get("/api/v1/files").json()["files"]
    assert [f["key"] for f in listed] == [key] and listed[0]["size"] == len(data)

    row.get_by_role("button", name="Info").click()
    info = page.get_by_role("dialog", name="File info")
    expect(info).to_contain_text(f"{len(data)} bytes")
    expect(info).to_contain_text("pressure.bin")
    expect(info).to_contain_text(new_user.login)
    info.get_by_role("button", name="Close").click()

    with page.expect_download() as downloading:
        row.get_by_role("button", name="Download").click()
    saved = downloading.value.path()
    assert Path(saved).read_bytes() == data
    # Saved under the name it was uploaded as, not the random one of its key.
    assert downloading.value.suggested_filename == "pressure.bin"

    row.get_by_role("button", name="Delete").click()
    page.get_by_role("dialog").get_by_role("button", name="Delete file").click()
    expect(page.get_by_role("status").filter(has_text=f"File '{key}' deleted")).to_be_visible()
    expect(row).to_have_count(0)
    assert new_user.api.get(f"/api/v1/files/{key}/info").status_code == 404


def test_files_dropped_anywhere_on_the_files_page_are_uploaded_under_their_names(
    signed_in_page: Page, new_user: User
) -> None:
    page = signed_in_page
    page.get_by_role("link", name="Files").click()
    expect(page.get_by_text("You have not uploaded any files yet.")).to_be_visible()
    page.get_by_label("Key prefix (optional)").fill("dropped")
    # Not on the form: on the page's heading, away from any field.
    names = {"Messung Süd 7.csv": "depth,rate\n1,2\n", "notes.txt": "hello"}
    drop_files(page.get_by_role("heading", name="Files", exact=True), names)
    for name in names:
        expect(page.locator("td.file-name", has_text=name)).to_be_visible()
    listed = new_user.api.get("/api/v1/files").json()["files"]
    assert sorted(item["filename"] for item in listed) == sorted(names)
    assert all(item["key"].startswith("dropped/") for item in listed)

    row = page.locator("tr", has=page.locator("td.file-name", has_text="Messung Süd 7.csv"))
    with page.expect_download() as downloading:
        row.get_by_role("button", name="Download").click()
    assert downloading.value.suggested_filename == "Messung Süd 7.csv"
    assert Path(downloading.value.path()).read_text() == names["Messung Süd 7.csv"]
    # Dropped anywhere else, a file is refused (its default, the browser leaving the app to show
    # the file, is prevented) and nothing is uploaded.
    page.get_by_role("link", name="Scripts", exact=True).click()
    heading = page.get_by_role("heading", name="Scripts", exact=True)
    expect(heading).to_be_visible()
    prevented = heading.evaluate(
        """(element) => {
            const transfer = new DataTransfer();
            transfer.items.add(new File(["x"], "stray.csv"));
            const drop = new DragEvent("drop", {
                bubbles: true, cancelable: true, dataTransfer: transfer,
            });
            return !element.dispatchEvent(drop);
        }"""
    )
    assert prevented
    assert len(new_user.api.get("/api/v1/files").json()["files"]) == 2


def test_an_upload_over_the_limit_is_refused_in_words(
    page: Page, new_user: User, tmp_path: Path
) -> None:
    # The shared server's limit is the default 100 MB: a sparse file just over it costs no disk.
    big = tmp_path / "huge.dat"
    with big.open("wb") as handle:
        handle.truncate(104_857_600 + 1)
    page.goto("/#/login")
    page.get_by_label("Login").fill(new_user.login)
    page.get_by_label("Password").fill(new_user.password)
    page.get_by_role("button", name="Sign in").click()
    page.get_by_role("link", name="Files").click()
    page.get_by_label("File", exact=True).set_input_files(str(big))
    page.get_by_role("button", name="Upload", exact=True).click()
    expect(page.locator(".upload-outcome").get_by_role("alert")).to_contain_text(
        "larger than the limit"
    )
    assert new_user.api.get("/api/v1/files").json()["files"] == []


def test_tokens_are_shown_once_work_and_can_be_revoked(
    signed_in_page: Page, new_user: User, base_url: str
) -> None:
    page = signed_in_page
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    page.get_by_role("link", name="Account").click()
    expect(page.get_by_test_id("account-login")).to_have_text(new_user.login)
    expect(page.get_by_text("No tokens yet.")).to_be_visible()

    page.get_by_role("button", name="New token").click()
    page.get_by_role("dialog").get_by_label("Name").fill("simulator")
    page.get_by_role("dialog").get_by_label("Expires after (days)").fill("30")
    page.get_by_role("button", name="Create token").click()
    shown = page.get_by_role("dialog", name="Your new token")
    expect(shown).to_contain_text("shown only once")
    token = shown.get_by_test_id("new-token").locator("code").inner_text()
    shown.get_by_role("button", name="Copy token").click()
    assert page.evaluate("navigator.clipboard.readText()") == token
    shown.get_by_role("button", name="Close").click()

    row = page.locator("table.tokens-table tbody tr")
    expect(row).to_have_count(1)
    expect(row).to_contain_text("simulator")
    expect(page.locator("body")).not_to_contain_text(token)  # never shown again
    me = httpx.get(f"{base_url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 200 and me.json()["login"] == new_user.login

    row.get_by_role("button", name="Revoke…").click()
    page.get_by_role("dialog").get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("No tokens yet.")).to_be_visible()
    me = httpx.get(f"{base_url}/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"})
    assert me.status_code == 401


def test_account_shows_the_clone_url_that_git_accepts(
    signed_in_page: Page, new_user: User, base_url: str
) -> None:
    page = signed_in_page
    page.get_by_role("link", name="Account").click()
    clone_url = page.get_by_test_id("clone-url").locator("code").inner_text()
    assert clone_url == f"{base_url}/git/scripts.git"
    # What the how-to says works: git's discovery request, authenticated as the page suggests.
    advert = httpx.get(
        f"{clone_url}/info/refs?service=git-upload-pack",
        auth=(new_user.login, new_user.password),
    )
    assert advert.status_code == 200 and b"refs/heads/main" in advert.content
