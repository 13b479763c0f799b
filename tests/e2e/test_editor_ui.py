"""The code editor (CodeMirror, served by the service): highlighting, line numbers, brackets,
search and replace, the service's checks as inline diagnostics, a save bar always on screen, the
system's dark theme, and nothing loaded from elsewhere."""

from __future__ import annotations

from typing import Any

from playwright.sync_api import Browser, Page, expect

from tests.e2e.conftest import TOKEN_KEY, User
from tests.e2e.test_script_ui import content_of, editor_text, open_editor


def test_the_editor_highlights_matches_brackets_finds_and_replaces(
    signed_in_page: Page, new_user: User
) -> None:
    page = signed_in_page
    problems: list[str] = []
    # The page's policy refusing the editor's styles, or a script error (the 400s of the
    # service's checks are logged by the browser too, and are expected).
    page.on(
        "console",
        lambda message: (
            message.type == "error"
            and "Failed to load resource" not in message.text
            and problems.append(message.text)
        ),
    )
    page.on("pageerror", lambda error: problems.append(str(error)))
    requested: list[str] = []
    page.on("request", lambda request: requested.append(request.url))
    script, editor = open_editor(page, new_user, "cm")
    expect(editor).to_be_focused()
    expect(page.locator(".cm-lineNumbers .cm-gutterElement", has_text="6")).to_be_visible()
    keyword = page.locator(".cm-line span", has_text="def").first
    plain = page.locator(".cm-line").first
    assert keyword.evaluate("e => getComputedStyle(e).color") != plain.evaluate(
        "e => getComputedStyle(e).color"
    )

    page.keyboard.press("Control+Home")
    page.keyboard.press("ArrowDown")
    page.keyboard.press("ArrowDown")  # def main(data: dict) -> dict:
    for _ in range(len("def main(")):
        page.keyboard.press("ArrowRight")
    expect(page.locator(".cm-matchingBracket")).to_have_count(2)

    page.keyboard.press("Control+f")
    search = page.get_by_role("textbox", name="Find")
    expect(search).to_be_focused()
    search.fill("version")
    page.get_by_role("textbox", name="Replace").fill("release")
    page.get_by_role("button", name="replace all").click()
    assert "version" not in editor_text(page)
    assert editor_text(page).count("release") == 2

    # The service's check, on the line it names, in the gutter and under the text.
    editor.focus()
    page.keyboard.press("Control+End")
    page.keyboard.type("\n1 +")
    expect(page.locator(".cm-lintRange-error")).to_have_count(1)
    expect(page.locator(".cm-gutter-lint .cm-lint-marker-error")).to_have_count(1)
    expect(page.get_by_role("alert")).to_contain_text("not valid Python")
    page.keyboard.press("Control+z")
    expect(page.get_by_text("The script is valid.")).to_be_visible()
    assert "1 +" not in editor_text(page)
    expect(page.locator(".cm-lintRange-error")).to_have_count(0)

    page.keyboard.press("Control+s")
    expect(page.get_by_label("Source code")).to_contain_text("running release 1")
    assert "release" in content_of(new_user, script["id"])
    base = page.evaluate("location.origin")
    assert all(url.startswith(base) for url in requested), requested
    assert not problems, problems


def test_the_save_bar_stays_on_screen_and_the_theme_follows_the_system(
    browser: Browser, new_user: User, base_url: str, browser_context_args: dict[str, Any]
) -> None:
    long_script = "def main(data):\n" + "    x = 1\n" * 300 + "    return {}\n"
    script = new_user.api.upload(f"{new_user.login}-long.py", long_script.encode())
    backgrounds = {}
    for scheme, width, height in (("light", 1280, 800), ("dark", 390, 844)):
        context = browser.new_context(
            **{**browser_context_args, "viewport": {"width": width, "height": height}},
            color_scheme=scheme,
        )
        context.add_init_script(
            f"localStorage.setItem({TOKEN_KEY!r}, {new_user.api.token!r})".replace("'", '"')
        )
        page = context.new_page()
        page.goto(f"{base_url}/#/scripts/{script['id']}")
        page.get_by_role("button", name="Edit source").click()
        editor = page.get_by_label(f"Source of {script['filename']}")
        expect(editor).to_be_focused()
        page.keyboard.press("Control+End")
        expect(page.get_by_role("button", name="Save new version")).to_be_in_viewport()
        page.mouse.wheel(0, -20000)
        expect(page.get_by_role("button", name="Save new version")).to_be_in_viewport()
        backgrounds[scheme] = [
            page.locator(selector).evaluate("e => getComputedStyle(e).backgroundColor")
            for selector in (".cm-editor", "html")
        ]
        page.get_by_role("button", name="Cancel").click()
        backgrounds[scheme].append(
            page.locator("pre.source").evaluate("e => getComputedStyle(e).backgroundColor")
        )
        context.close()
    assert backgrounds["dark"][0] == "rgb(40, 44, 52)"  # One Dark's background
    # The whole page and the highlighted source follow the system too.
    for light, dark in zip(backgrounds["light"], backgrounds["dark"], strict=True):
        assert light != dark
    assert backgrounds["dark"][1] == "rgb(18, 23, 29)"
