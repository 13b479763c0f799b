"""A script's expected input in the browser: the Run panel starts from it, lists its keys, warns
about a missing one, follows the revision; the simulator snippets call the script with it."""

from __future__ import annotations

import json
from typing import Any

from playwright.sync_api import Page, expect

from tests.e2e.conftest import User

API = "/api/v1/scripts-manager"

FIRST = b"""def main(data):
    return {"old": data["old"]}
"""

SECOND = b'''def main(data):
    """Scale the rate of some wells.

    rate: the rate in m3/d
    """
    rate = float(data["rate"])
    wells = data.get("wells", ["A-1"])
    dry = data.get("dry_run", True)
    return {"total": rate * len(wells), "dry": dry, "note": data.get("note")}
'''


def versions_of(user: User, script_id: int) -> list[dict[str, Any]]:
    return user.api.get(f"{API}/scripts/{script_id}/history").json()["versions"]


def test_the_run_panel_starts_from_the_scripts_own_input(
    signed_in_page: Page, new_user: User
) -> None:
    script = new_user.api.upload(f"{new_user.login}-wells.py", FIRST)
    first = versions_of(new_user, script["id"])[0]
    reply = new_user.api.put(f"{API}/scripts/{script['id']}", json={"content": SECOND.decode()})
    assert reply.status_code == 200, reply.text
    page = signed_in_page
    page.goto(f"/#/scripts/{script['id']}/run")

    payload = page.get_by_label("Input (JSON object passed to main)")
    example = {"rate": 0.0, "wells": ["A-1"], "dry_run": True, "note": None}
    expect(payload).to_have_value(json.dumps(example, indent=2).replace("0.0", "0"))
    table = page.get_by_test_id("run-inputs").get_by_test_id("inputs-table")
    expect(table.locator("tbody tr")).to_have_count(4)
    rate = table.locator("tr[data-key=rate]")
    expect(rate).to_contain_text("number")
    expect(rate).to_contain_text("required")
    expect(rate).to_contain_text("the rate in m3/d")
    expect(table.locator("tr[data-key=wells]")).to_contain_text('["A-1"]')

    # A key main reads with data[...] is missing: said, and the run is still allowed.
    payload.fill('{"wells": ["A-1", "B-2"]}')
    expect(page.get_by_test_id("run-input-missing")).to_contain_text('"rate"')
    payload.fill('{"rate": 2.5, "wells": ["A-1", "B-2"]}')
    expect(page.get_by_test_id("run-input-missing")).to_be_hidden()
    page.get_by_role("button", name="Run", exact=True).click()
    expect(page.get_by_test_id("run-result-json")).to_contain_text('"total": 5')

    # Back to the example, then to a version that read other keys: its example takes over.
    page.get_by_role("button", name="Use example").click()
    page.get_by_label("Revision", exact=True).select_option(first["revision"])
    expect(payload).to_have_value('{\n  "old": null\n}')
    expect(table.locator("tbody tr")).to_have_count(1)
    # An edited input is never replaced.
    payload.fill('{"old": 7}')
    page.get_by_label("Revision", exact=True).select_option("main")
    expect(table.locator("tbody tr")).to_have_count(4)
    expect(payload).to_have_value('{"old": 7}')


def test_the_snippets_and_api_docs_show_the_input(signed_in_page: Page, new_user: User) -> None:
    script = new_user.api.upload(f"{new_user.login}-snip.py", SECOND)
    page = signed_in_page
    page.goto(f"/#/scripts/{script['id']}")

    # The example as Python: JSON's true and null would not run in the simulator.
    client = page.get_by_test_id("client-snippet")
    expect(client).to_contain_text(
        '"rate": 0, "wells": ["A-1"], "dry_run": True, "note": None'.join(("{", "}"))
    )
    expect(page.get_by_test_id("urllib-snippet")).to_contain_text('"dry_run": True')
    docs = page.locator(".call-snippets")
    expect(docs.get_by_test_id("inputs-table").locator("tr[data-key=note]")).to_be_visible()
    docs.get_by_text("JSON Schema of the input").click()
    schema = json.loads(docs.get_by_test_id("input-schema").locator("code").inner_text())
    assert schema["required"] == ["rate"]
    assert schema["properties"]["dry_run"] == {"default": True, "type": "boolean"}
