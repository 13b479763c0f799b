"""Signing up, in and out in the browser; a session that ends sends the user back where they were."""

from __future__ import annotations

import re
import uuid

from playwright.sync_api import Page, expect

from tests.conftest import PASSWORD
from tests.e2e.conftest import User


def sign_in(page: Page, login: str, password: str) -> None:
    page.get_by_label("Login").fill(login)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()


def test_register_then_the_session_survives_a_reload_and_sign_out_ends_it(page: Page) -> None:
    login = f"ui-{uuid.uuid4().hex[:10]}"
    page.goto("/")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Login").fill(login)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()

    expect(page.get_by_role("heading", name="Scripts")).to_be_visible()
    expect(page.get_by_test_id("current-user")).to_have_text(login)
    expect(page.get_by_role("heading", name=f"Welcome, {login}")).to_be_visible()

    page.reload()
    expect(page.get_by_test_id("current-user")).to_have_text(login)
    expect(page.get_by_role("heading", name="Scripts")).to_be_visible()

    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    assert page.evaluate("localStorage.getItem('gitscripts.token')") is None
    page.reload()
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_test_id("current-user")).to_be_hidden()


def test_wrong_password_and_taken_login_are_said_in_words(page: Page, new_user: User) -> None:
    page.goto("/#/login")
    sign_in(page, new_user.login, "not the password")
    expect(page.get_by_role("alert")).to_contain_text("Incorrect login or password")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()

    page.get_by_role("link", name="Create an account").click()
    page.get_by_label("Login").fill(new_user.login)
    page.get_by_label("Password", exact=True).fill(PASSWORD)
    page.get_by_label("Repeat the password").fill(PASSWORD + "x")
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert")).to_have_text("The two passwords differ.")
    page.get_by_label("Repeat the password").fill(PASSWORD)
    page.get_by_role("button", name="Create account").click()
    expect(page.get_by_role("alert")).to_contain_text("already exists")
    # Never a raw JSON dump.
    expect(page.get_by_role("alert")).not_to_contain_text("error_code")


def test_an_ended_session_returns_to_login_and_then_to_the_same_page(
    signed_in_page: Page, new_user: User
) -> None:
    page = signed_in_page
    script = new_user.api.upload(f"{new_user.login}-expiry.py")
    page.goto(f"/#/scripts/{script['id']}/history")
    expect(page.get_by_role("heading", name="Versions (1)")).to_be_visible()

    # The session ends behind the page's back (logout revokes the token, as expiry would).
    assert new_user.api.post("/api/v1/auth/logout").status_code == 200
    page.get_by_role("navigation", name="Script sections").get_by_role("link", name="Run").click()

    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    expect(page.get_by_role("alert")).to_contain_text("Your session has expired")
    assert "next=" in page.url
    sign_in(page, new_user.login, new_user.password)
    expect(page).to_have_url(re.compile(rf"#/scripts/{script['id']}/run$"))
    expect(page.get_by_role("button", name="Run", exact=True)).to_be_visible()


def test_a_link_opened_without_a_session_opens_after_signing_in(page: Page, new_user: User) -> None:
    script = new_user.api.upload(f"{new_user.login}-deep.py")
    page.goto(f"/#/scripts/{script['id']}")
    expect(page.get_by_role("heading", name="Sign in")).to_be_visible()
    sign_in(page, new_user.login, new_user.password)
    expect(page.get_by_role("heading", name=f"{new_user.login}-deep.py")).to_be_visible()
