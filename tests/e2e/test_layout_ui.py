"""The UI at desktop and phone widths, by keyboard alone, and with nothing loaded from elsewhere."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import Page, Route, expect

from tests.e2e.conftest import User


@pytest.mark.parametrize("width,height", [(1280, 800), (390, 844)])
def test_screens_fit_the_window(
    signed_in_page: Page, new_user: User, width: int, height: int
) -> None:
    folder = new_user.api.folder(f"{new_user.login}-layout")
    script = new_user.api.upload("a_rather_long_script_name_for_a_phone.py", folder_id=folder["id"])
    page = signed_in_page
    page.set_viewport_size({"width": width, "height": height})
    for screen in (
        "/#/",
        f"/#/scripts/{script['id']}",
        f"/#/scripts/{script['id']}/run",
        "/#/files",
        "/#/account",
        "/#/activity",
    ):
        page.goto(screen)
        expect(page.locator(".loading")).to_have_count(0)
        expect(page.locator("h1")).to_be_visible()
        expect(page).to_have_title(re.compile(r". · gitscripts$"))
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"{screen} is {overflow}px wider than a {width}px window"
        nav = page.get_by_role("navigation", name="Main")
        expect(nav.get_by_role("link", name="Files")).to_be_in_viewport()


def test_keyboard_alone_opens_a_menu_and_a_dialog_with_visible_focus(
    signed_in_page: Page, new_user: User
) -> None:
    folder = new_user.api.folder(f"{new_user.login}-keys")
    page = signed_in_page
    page.reload()
    expect(page.get_by_role("heading", name="Scripts")).to_be_visible()

    page.keyboard.press("Tab")
    focused = page.locator(":focus")
    expect(focused).to_have_text("Skip to content")
    assert page.evaluate("getComputedStyle(document.activeElement).outlineStyle") != "none"

    menu_button = page.get_by_role(
        "button", name=f"Actions for folder {folder['path']}", exact=True
    )
    menu_button.focus()
    page.keyboard.press("Enter")
    expect(page.get_by_role("menuitem").first).to_be_focused()
    page.keyboard.press("ArrowDown")
    expect(page.get_by_role("menuitem", name="Upload script here…")).to_be_focused()
    page.keyboard.press("ArrowDown")
    page.keyboard.press("Enter")
    dialog = page.get_by_role("dialog", name="New folder")
    expect(dialog.get_by_label("Name")).to_be_focused()
    page.keyboard.type("by-keyboard")
    page.keyboard.press("Enter")
    expect(dialog).to_have_count(0)
    # Focus lands on what was made, not on the start of the page.
    expect(
        page.get_by_role("button", name=f"Actions for folder {folder['path']}/by-keyboard")
    ).to_be_focused()

    page.keyboard.press("Escape")  # nothing open: harmless
    menu_button.focus()
    page.keyboard.press("Enter")
    page.keyboard.press("Escape")
    expect(page.get_by_role("menu")).to_have_count(0)
    expect(menu_button).to_be_focused()


def test_the_page_loads_nothing_from_elsewhere_and_logs_no_errors(
    signed_in_page: Page, new_user: User, base_url: str
) -> None:
    script = new_user.api.upload(f"{new_user.login}-offline.py")
    page = signed_in_page
    requested: list[str] = []
    problems: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    page.on("pageerror", lambda error: problems.append(str(error)))
    page.on(
        "console",
        lambda message: (
            problems.append(message.text)
            if message.type == "error" and "status of 4" not in message.text
            else None
        ),
    )
    page.goto(f"/#/scripts/{script['id']}/history")
    expect(page.get_by_role("heading", name="Versions (1)")).to_be_visible()
    page.reload()
    expect(page.get_by_role("heading", name="Versions (1)")).to_be_visible()
    assert requested and all(url.startswith(base_url) for url in requested), requested
    assert problems == []
    policy = page.request.get(base_url + "/").headers["content-security-policy"]
    assert "default-src 'self'" in policy


def test_a_slow_screen_never_replaces_the_one_the_user_moved_to(
    signed_in_page: Page, new_user: User
) -> None:
    script = new_user.api.upload(f"{new_user.login}-slow.py")
    page = signed_in_page
    expect(page.get_by_role("heading", name="Scripts")).to_be_visible()
    held: list[Route] = []
    page.route(
        f"**/api/v1/scripts-manager/scripts/{script['id']}", lambda route: held.append(route)
    )
    page.goto(f"/#/scripts/{script['id']}")
    expect(page.locator(".loading")).to_be_visible()
    page.get_by_role("link", name="Files").click()
    expect(page.get_by_role("heading", name="Files", exact=True)).to_be_visible()
    assert len(held) == 1
    held[0].continue_()  # the script's page is ready only now
    page.wait_for_timeout(500)
    expect(page.get_by_role("heading", name="Files", exact=True)).to_be_visible()
    expect(page).to_have_title("Files · gitscripts")
    expect(page.get_by_role("heading", name=script["display_name"])).to_have_count(0)


def test_an_unknown_or_malformed_address_says_so(signed_in_page: Page) -> None:
    page = signed_in_page
    for address in ("/#/no/such/screen", "/#/scripts/%E0%A4%A"):
        page.goto(address)
        expect(page.get_by_role("alert")).to_contain_text("There is no such page.")
