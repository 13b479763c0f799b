"""The sign-up screen follows REGISTRATION: closed says so plainly, invite asks for the code.

Each test starts its own server: the shared one keeps registration open for everyone else.
"""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from gitscripts.cli import main as cli
from tests.conftest import PASSWORD, live_server


def test_closed_registration_is_said_plainly_and_offers_no_form(page: Page, tmp_path: Path) -> None:
    with live_server(tmp_path / "data", REGISTRATION="closed") as server:
        page.goto(f"{server.base}/#/login")
        page.get_by_role("link", name="Create an account").click()
        expect(page.get_by_role("heading", name="Registration is closed")).to_be_visible()
        expect(
            page.get_by_text(
                "New accounts on this service are created by an administrator. "
                "Ask one to create an account for you, then sign in."
            )
        ).to_be_visible()
        expect(page.get_by_role("button", name="Create account")).to_have_count(0)
        expect(page.get_by_label("Login")).to_have_count(0)
        assert page.title() == "Registration is closed · gitscripts"
        page.get_by_role("link", name="Sign in").click()
        expect(page.get_by_role("heading", name="Sign in")).to_be_visible()


def test_invite_registration_asks_for_the_code_and_uses_it(
    page: Page, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    with live_server(data_dir, REGISTRATION="invite") as server:
        monkeypatch.setenv("DATA_DIR", str(data_dir))
        monkeypatch.setenv("GITSCRIPTS_ADMIN_PASSWORD", PASSWORD)
        assert cli(["create-admin", "root"]) == 0
        with httpx.Client(base_url=server.base) as api:
            credentials = {"login": "root", "password": PASSWORD}
            token = api.post("/api/v1/auth/login", json=credentials).json()["access_token"]
            invite = api.post(
                "/api/v1/admin/invites", json={}, headers={"Authorization": f"Bearer {token}"}
            ).json()

        page.goto(f"{server.base}/#/register")
        expect(page.get_by_text("Accounts here need an invite code")).to_be_visible()
        page.get_by_label("Invite code").fill(invite["code"] + "x")
        page.get_by_label("Login").fill("invited")
        page.get_by_label("Password", exact=True).fill(PASSWORD)
        page.get_by_label("Repeat the password").fill(PASSWORD)
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_role("alert")).to_contain_text("This invite code is not valid")

        page.get_by_label("Invite code").fill(invite["code"])
        page.get_by_role("button", name="Create account").click()
        expect(page.get_by_test_id("current-user")).to_have_text("invited")
