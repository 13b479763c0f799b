"""Errors the user recovers from where they are: an unreachable service offers a Retry that works
without a reload, and registration problems are said in words."""

from __future__ import annotations

import uuid

from playwright.sync_api import Page, Route, expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import User


def test_an_unreachable_service_offers_a_retry_that_works_in_place(
    signed_in_page: Page, new_user: User
) -> None:
    folder = new_user.api.folder(f"{new_user.login}-retry")
    page = signed_in_page
    expect(page.get_by_role("heading", name="Scripts", exact=True)).to_be_visible()

    def unreachable(route: Route) -> None:
        route.abort("connectionrefused")

    page.evaluate("window.notReloaded = true")  # gone if anything reloads the page
    for screen, path in (("#/files", "/api/v1/files"), ("#/", "/api/v1/scripts-manager/tree")):
        page.route(f"**{path}", unreachable)
        page.evaluate(f"location.hash = {screen!r}")
        panel = page.locator(".error-panel")
        expect(panel).to_contain_text("The service could not be reached")
        # No link to the screen already open (it would do nothing): a Retry, in place.
        if screen == "#/":
            expect(panel.get_by_role("link")).to_have_count(0)
        page.unroute(f"**{path}")
        panel.get_by_role("button", name="Retry").click()
        expect(panel).to_have_count(0)
        assert page.evaluate("window.notReloaded") is True
    expect(page.get_by_role("button", name=f"Actions for folder {folder['path']}")).to_be_visible()


def test_registration_problems_are_said_in_words(page: Page) -> None:
    page.goto("/#/register")
    login = f"ui-{uuid.uuid4().hex[:10]}"
    alert = page.locator(".auth-form").get_by_role("alert")

    def create(login: str, password: str) -> None:
        page.get_by_label("Login").fill(login)
        page.get_by_label("Password", exact=True).fill(password)
        page.get_by_label("Repeat the password").fill(password)
        page.get_by_role("button", name="Create account").click()

    create(login, "short")
    expect(alert).to_have_text("The password must have at least 8 characters.")
    create("ab", PASSWORD)
    expect(alert).to_have_text("The login must have 3 to 50 characters.")
    # A rule only the service knows is said in words too, not in the validator's.
    create(login, "p" * 1025)
    expect(alert).to_have_text("The password must have at most 1024 characters.")
    expect(alert).not_to_contain_text("String should")
    create(login, PASSWORD)
    expect(page.get_by_test_id("current-user")).to_have_text(login)
