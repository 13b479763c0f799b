"""The web UI's files as the service serves them (the screens themselves: tests/e2e)."""

from __future__ import annotations

from fastapi.testclient import TestClient


def test_the_page_is_served_only_at_the_root_with_its_security_headers(client: TestClient) -> None:
    page = client.get("/")
    assert page.status_code == 200 and page.headers["content-type"].startswith("text/html")
    policy = page.headers["content-security-policy"]
    assert "default-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert '<script type="module" src="/ui/js/app.js">' in page.text
    # No second address without the headers.
    assert client.get("/ui/index.html").status_code == 404


def test_assets_are_revalidated_and_typed(client: TestClient) -> None:
    module = client.get("/ui/js/app.js")
    assert module.status_code == 200
    assert module.headers["content-type"].startswith("text/javascript")
    assert module.headers["cache-control"] == "no-cache"
    assert module.headers["x-content-type-options"] == "nosniff"
    again = client.get("/ui/js/app.js", headers={"If-None-Match": module.headers["etag"]})
    assert again.status_code == 304
    assert client.get("/ui/js/nothing.js").status_code == 404
    assert client.get("/ui/../config.py").status_code == 404


def test_the_highlighting_theme_is_served(client: TestClient) -> None:
    css = client.get("/ui/highlight.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert ".hl .k " in css.text


def test_the_highlighting_theme_has_a_dark_variant_for_a_dark_system(client: TestClient) -> None:
    css = client.get("/ui/highlight.css").text
    light, _, dark = css.partition("@media (prefers-color-scheme: dark) {")
    assert dark, css
    keyword = [line for line in dark.splitlines() if line.startswith(".hl .k ")]
    assert keyword and keyword[0] not in light
    assert all(line.startswith((".hl ", "}")) for line in dark.splitlines() if line.strip())
