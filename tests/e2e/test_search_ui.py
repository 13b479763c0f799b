"""Finding things in the browser: "go to script" on a key press, code search at any revision
with links to the line, and the tree's filter kept in the address."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.e2e.conftest import User

API = "/api/v1/scripts-manager"


def test_go_to_a_script_by_fuzzy_words_from_the_keyboard(
    signed_in_page: Page, new_user: User
) -> None:
    tag = new_user.login
    folder = new_user.api.folder(f"{tag}-reservoir")
    wanted = new_user.api.upload(
        f"{tag}_well_rates.py", folder_id=folder["id"], display_name="Well rates"
    )
    new_user.api.upload(f"{tag}_well_logs.py", folder_id=folder["id"], display_name="Well logs")
    page = signed_in_page
    expect(page.get_by_role("heading", name="Scripts")).to_be_visible()

    page.keyboard.press("Control+k")
    box = page.get_by_role("combobox", name="Script name, path or description")
    expect(box).to_be_focused()
    # Two words, in any order, one of them only as letters in order ("rts" in "rates").
    box.fill(f"rts {tag}")
    options = page.get_by_role("listbox", name="Scripts").get_by_role("option")
    expect(options.first).to_contain_text("Well rates")
    expect(options.first).to_have_attribute("aria-selected", "true")
    expect(options.last).to_contain_text(f"Search the code for “rts {tag}”")
    page.keyboard.press("Enter")
    expect(page).to_have_url(f"{page.url.split('#')[0]}#/scripts/{wanted['id']}")
    expect(page.get_by_role("heading", name="Well rates")).to_be_visible()

    # "/" opens it too (outside a text field); arrows move; Escape closes it.
    page.locator("body").click()
    page.keyboard.press("/")
    expect(box).to_be_focused()
    box.fill(f"{tag} well")
    expect(options).to_have_count(3)
    page.keyboard.press("ArrowDown")
    expect(options.nth(1)).to_have_attribute("aria-selected", "true")
    expect(box).to_have_attribute("aria-activedescendant", "goto-option-1")
    page.keyboard.press("Escape")
    expect(box).to_have_count(0)


def test_code_search_at_main_and_at_a_revision_links_to_the_line(
    signed_in_page: Page, new_user: User
) -> None:
    tag = new_user.login.replace("-", "_")
    body = "def main(data):\n" + "    x = 1\n" * 40 + f"    return {{'{tag}_needle': x}}\n"
    script = new_user.api.upload(f"{tag}_search.py", body.encode())
    first = new_user.api.get(f"{API}/scripts/{script['id']}/history").json()["versions"][0]
    reply = new_user.api.put(
        f"{API}/scripts/{script['id']}",
        json={"content": body.replace("_needle", "_thread")},
    )
    assert reply.status_code == 200, reply.text
    page = signed_in_page
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Search").click()
    page.get_by_label("Find in code").fill(f"{tag}_NEEDLE")
    page.get_by_role("button", name="Search", exact=True).click()
    expect(page.get_by_test_id("search-summary")).to_contain_text("0 lines in 0 scripts")

    # At the first version the line was there: found, marked, and linked to that version's line.
    page.get_by_label("Revision").fill(first["revision"][:10])
    page.get_by_role("button", name="Search", exact=True).click()
    summary = page.get_by_test_id("search-summary")
    expect(summary).to_contain_text("1 line in 1 script")
    expect(summary).to_contain_text(first["revision"][:10])
    result = page.locator(f".search-file[data-path='{script['filename']}']")
    expect(result.locator("mark")).to_have_text(f"{tag}_needle")
    assert f"q={tag}_NEEDLE" in page.url  # the search is in the address: a link repeats it
    result.get_by_role("link", name="42").click()
    target = page.locator("pre.source .target-line")
    expect(target).to_contain_text(f"{tag}_needle")
    expect(target).to_be_in_viewport()
    expect(page.get_by_role("note")).to_contain_text(first["revision"][:10])

    # At main, without a revision: the current line, the current source.
    page.go_back()
    page.get_by_label("Revision").fill("")
    page.get_by_label("Find in code").fill(f"{tag}_thread")
    page.get_by_label("Find in code").press("Enter")
    expect(page.get_by_test_id("search-summary")).to_contain_text("1 line in 1 script")
    page.locator(".search-file").get_by_role("link", name="42").click()
    expect(page.locator("pre.source .target-line")).to_contain_text(f"{tag}_thread")
    expect(page.get_by_role("button", name="Edit source")).to_be_visible()

    # A pattern git refuses is said so, in a sentence.
    page.goto("/#/search?q=a(&regex=1")
    expect(page.get_by_role("alert").or_(page.locator(".error"))).to_contain_text("search pattern")


def test_the_tree_filter_is_fuzzy_and_kept_in_the_address(
    signed_in_page: Page, new_user: User
) -> None:
    tag = new_user.login
    folder = new_user.api.folder(f"{tag}-filter")
    new_user.api.upload(
        "porosity.py", folder_id=folder["id"], display_name="Porosity", description="Core plugs"
    )
    new_user.api.upload("permeability.py", folder_id=folder["id"], display_name="Permeability")
    page = signed_in_page
    page.reload()  # the tree as it is now, with the scripts made above
    box = page.get_by_label("Filter scripts by name, path or description")
    box.fill(f"{tag} core")  # a word of the path and one of the description
    listing = page.locator(".tree-listing")
    expect(listing.get_by_text("1 script match")).to_be_visible()
    expect(listing).to_contain_text("Porosity")
    assert "filter=" in page.url
    page.reload()
    expect(box).to_have_value(f"{tag} core")
    expect(listing).to_contain_text("Porosity")
    expect(listing).not_to_contain_text("Permeability")
