"""The API documentation pages work without internet: their scripts come from the service."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect


@pytest.mark.parametrize(
    "path,shows",
    [("/docs", "/api/v1/scripts-manager/tree"), ("/redoc", "scripts-manager")],
)
def test_api_documentation_renders_offline(
    page: Page, base_url: str, path: str, shows: str
) -> None:
    # What the page needs to work; ReDoc's "powered by" logo may fail to load without harm.
    needed: list[str] = []
    page.on(
        "request",
        lambda request: (
            needed.append(request.url)
            if request.resource_type in ("document", "script", "stylesheet", "fetch", "xhr")
            else None
        ),
    )
    page.goto(path)
    expect(page.get_by_text(shows).first).to_be_visible()
    local = (base_url, f"blob:{base_url}")  # ReDoc runs a worker from a blob it makes
    assert needed and all(url.startswith(local) for url in needed), needed
