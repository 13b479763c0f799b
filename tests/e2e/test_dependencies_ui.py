"""A script's page shows its dependencies: the declared requirements and the locked versions."""

from __future__ import annotations

from playwright.sync_api import Page, expect

from tests.conftest import HELLO
from tests.e2e.conftest import User

PLUS = b'# /// script\n# requires-python = ">=3.8"\n# dependencies = ["gsfixture-plus"]\n# ///\n'


def test_the_dependencies_section_lists_declared_and_locked_packages(
    signed_in_page: Page, new_user: User
) -> None:
    page = signed_in_page
    script = new_user.api.upload(f"{new_user.login}-deps.py", PLUS + HELLO)
    page.goto(f"/#/scripts/{script['id']}")
    section = page.get_by_role("region", name="Dependencies")
    expect(section.get_by_test_id("declared-dependencies")).to_have_text("gsfixture-plus")
    expect(section).to_contain_text(">=3.8")
    rows = section.get_by_test_id("locked-packages").locator("tbody tr")
    expect(rows).to_have_count(2)
    expect(rows.nth(0)).to_contain_text("gsfixture")
    expect(rows.nth(0)).to_contain_text("2.0")
    expect(rows.nth(1)).to_contain_text("gsfixture-plus")
    expect(section.get_by_test_id("locked-packages")).to_contain_text(
        f"{new_user.login}-deps.py.lock"
    )
    key = new_user.api.get(f"/api/v1/scripts-manager/scripts/{script['id']}/dependencies").json()[
        "environment"
    ]["key"]
    expect(section.get_by_test_id("environment")).to_contain_text(key)
    # The upload started its environment's build; the page follows it until it is ready.
    expect(section.get_by_test_id("environment-state")).to_have_text("ready", timeout=60_000)


def test_a_script_without_a_block_says_so(signed_in_page: Page, new_user: User) -> None:
    page = signed_in_page
    script = new_user.api.upload(f"{new_user.login}-plain.py", HELLO)
    page.goto(f"/#/scripts/{script['id']}")
    section = page.get_by_role("region", name="Dependencies")
    expect(section.get_by_test_id("no-dependencies")).to_contain_text("None declared")
    expect(section.get_by_test_id("locked-packages")).to_have_count(0)
