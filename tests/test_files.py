"""The file store, on the local disk and on a real S3 API (moto's server), through a real service.

Every store-facing test runs twice: against a service whose FILES_URL is a local directory and
against one whose FILES_URL is `s3://...` on a moto server started here on a loopback port. The
client tests run the served `client.py` under `python -I -S` (no site-packages).
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import s3fs
from fastapi.testclient import TestClient
from moto.server import ThreadedMotoServer

from gitscripts.app import create_app
from tests.conftest import PASSWORD, free_port, live_server, make_settings, register

LIMIT = 16 << 20  # MAX_FILE_SIZE of the services here: larger than one S3 part (8 MiB)
BUCKET = "gitscripts-files"
AWS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "server-only-aws-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
}
KEY_SHAPE = r"[0-9a-f]{32}"


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    port = free_port()
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    endpoint = f"http://127.0.0.1:{port}"
    try:
        _s3(endpoint).mkdir(BUCKET)
        yield endpoint
    finally:
        server.stop()


def _s3(endpoint: str) -> s3fs.S3FileSystem:
    return s3fs.S3FileSystem(
        endpoint_url=endpoint,
        key=AWS["AWS_ACCESS_KEY_ID"],
        secret=AWS["AWS_SECRET_ACCESS_KEY"],
        skip_instance_cache=True,
        use_listings_cache=False,
    )


@dataclass
class Live:
    """A running `gitscripts serve` and a view of its file store from outside."""

    kind: str
    base: str
    data_dir: Path
    files_root: str
    fs: Any

    def objects(self) -> dict[str, int]:
        """Every object in the store (including uploads in progress), path -> size."""
        if not self.fs.exists(self.files_root):
            return {}
        found = self.fs.find(self.files_root, detail=True)
        return {name: int(info["size"]) for name, info in found.items()}

    def pending_multipart_uploads(self) -> list[Any]:
        if self.kind != "s3":
            return []
        return self.fs.call_s3("list_multipart_uploads", Bucket=BUCKET).get("Uploads", [])

    def user(self, name: str) -> httpx.Client:
        login = f"{name}-{uuid.uuid4().hex[:8]}"
        client = httpx.Client(base_url=self.base, timeout=60)
        credentials = {"login": login, "password": PASSWORD}
        assert client.post("/api/v1/auth/register", json=credentials).status_code == 201
        token = client.post("/api/v1/auth/login", json=credentials).json()["access_token"]
        client.headers["Authorization"] = f"Bearer {token}"
        client.login = login  # type: ignore[attr-defined]
        return client


@pytest.fixture(scope="module", params=["local", "s3"])
def live(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Live]:
    root = tmp_path_factory.mktemp(f"files-{request.param}")
    data_dir = root / "data"
    settings = {**AWS, "MAX_FILE_SIZE": str(LIMIT)}
    if request.param == "s3":
        endpoint = request.getfixturevalue("moto_endpoint")
        files_root = f"{BUCKET}/run-{uuid.uuid4().hex[:8]}"
        settings |= {"FILES_URL": f"s3://{files_root}", "S3_ENDPOINT_URL": endpoint}
        fs = _s3(endpoint)
    else:
        # Outside DATA_DIR on purpose: scripts must not see this directory either.
        files_root = str(root / "store")
        settings["FILES_URL"] = files_root
        import fsspec

        fs = fsspec.filesystem("file")
    with live_server(data_dir, **settings) as server:
        yield Live(request.param, server.base, data_dir, files_root, fs)


def _upload(client: httpx.Client, content: bytes, name: str = "data.csv", prefix: str = "") -> Any:
    params = {"prefix": prefix} if prefix else {}
    return client.post("/api/v1/files/upload", params=params, files={"file": (name, content)})


def _make_admin(live: Live, login: str, monkeypatch: pytest.MonkeyPatch) -> None:
    from gitscripts.cli import main as cli

    monkeypatch.setenv("DATA_DIR", str(live.data_dir))
    monkeypatch.setenv("GITSCRIPTS_ADMIN_PASSWORD", PASSWORD)
    assert cli(["create-admin", login]) == 0


def _error(reply: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text[:300]
    body = reply.json()
    assert set(body) == {"error_code", "message", "details"} and body["error_code"] == code
    return body  # type: ignore[no-any-return]


# -- the seed's endpoints ------------------------------------------------------------------------
def test_upload_download_info_delete(live: Live) -> None:
    alice = live.user("alice")
    content = b"well,rate\nA-1,12.5\nA-2,7.5\n"
    reply = _upload(alice, content, "wells.csv", prefix="sim/run-7")
    assert reply.status_code == 200, reply.text
    stored = reply.json()
    assert set(stored) == {"key", "size"} and stored["size"] == len(content)
    key = stored["key"]
    assert re.fullmatch(rf"sim/run-7/{KEY_SHAPE}\.csv", key)

    download = alice.get(f"/api/v1/files/{key}")
    assert download.status_code == 200 and download.content == content
    assert download.headers["content-type"].startswith("text/csv")
    assert download.headers["content-length"] == str(len(content))
    name = key.rsplit("/", 1)[1]
    assert download.headers["content-disposition"].startswith(f'attachment; filename="{name}"')
    assert download.headers["accept-ranges"] == "bytes"

    info = alice.get(f"/api/v1/files/{key}/info").json()
    assert info == {
        "key": key,
        "size": len(content),
        "content_type": "text/csv",
        "uploaded_by": {"id": info["uploaded_by"]["id"], "login": alice.login},  # type: ignore[attr-defined]
        "filename": "wells.csv",
    }

    reply = alice.delete(f"/api/v1/files/{key}")
    assert reply.status_code == 200
    assert reply.json() == {"message": f"File '{key}' deleted successfully"}
    for method, url in (("GET", key), ("GET", f"{key}/info"), ("DELETE", key)):
        _error(alice.request(method, f"/api/v1/files/{url}"), 404, "FILE_NOT_FOUND")
    assert not any(path.endswith(name) for path in live.objects())
    # An empty file is a file too.
    empty = _upload(alice, b"", "empty.txt").json()
    assert empty["size"] == 0 and re.fullmatch(rf"{KEY_SHAPE}\.txt", empty["key"])
    download = alice.get(f"/api/v1/files/{empty['key']}")
    assert download.status_code == 200 and download.content == b""
    assert download.headers["content-length"] == "0"
    ranged = alice.get(f"/api/v1/files/{empty['key']}", headers={"Range": "bytes=0-"})
    _error(ranged, 416, "RANGE_NOT_SATISFIABLE")


def test_keys_keep_only_a_plain_extension(live: Live) -> None:
    alice = live.user("alice")
    for filename, pattern in (
        ("report.tar.gz", rf"{KEY_SHAPE}\.gz"),
        ("noext", KEY_SHAPE),
        (".bashrc", KEY_SHAPE),
        ("bad.c sv", KEY_SHAPE),
        ("dir\\evil.PNG", rf"{KEY_SHAPE}\.PNG"),
    ):
        key = _upload(alice, b"x", filename).json()["key"]
        assert re.fullmatch(pattern, key), (filename, key)
    # A trailing slash on the prefix is tolerated; it is not doubled.
    assert re.fullmatch(
        rf"a/b/{KEY_SHAPE}\.txt", _upload(alice, b"x", "t.txt", "a/b/").json()["key"]
    )


def test_large_binary_round_trip_and_ranges(live: Live) -> None:
    alice = live.user("alice")
    content = os.urandom(LIMIT)  # exactly the limit: accepted, and several S3 parts
    reply = _upload(alice, content, "blob.bin")
    assert reply.status_code == 200 and reply.json()["size"] == LIMIT
    url = f"/api/v1/files/{reply.json()['key']}"
    whole = alice.get(url)
    assert whole.content == content
    assert whole.headers["content-type"] == "application/octet-stream"
    for header, start, end in (
        ("bytes=0-9", 0, 9),
        ("bytes=9000000-", 9000000, LIMIT - 1),
        ("bytes=-10", LIMIT - 10, LIMIT - 1),
        (f"bytes=100-{LIMIT + 50}", 100, LIMIT - 1),
    ):
        part = alice.get(url, headers={"Range": header})
        assert part.status_code == 206, header
        assert part.content == content[start : end + 1], header
        assert part.headers["content-range"] == f"bytes {start}-{end}/{LIMIT}"
        assert part.headers["content-length"] == str(end - start + 1)
    # Several ranges, or one that is malformed, are ignored: the whole file.
    for header in ("bytes=0-1,5-6", "bytes=9-3", "lines=1-2"):
        assert alice.get(url, headers={"Range": header}).status_code == 200, header
    beyond = alice.get(url, headers={"Range": f"bytes={LIMIT}-"})
    body = _error(beyond, 416, "RANGE_NOT_SATISFIABLE")
    assert (
        beyond.headers["content-range"] == f"bytes */{LIMIT}" and body["details"]["size"] == LIMIT
    )


BAD_KEYS = [
    "a/%2E%2E/b.csv",  # ..
    "%2E%2E",
    "a/%2E/b",
    "/etc/passwd",  # absolute (the URL path has a double slash)
    "a%5Cb.csv",  # backslash
    "a%00b",  # NUL
    "a%0Ab",  # newline
    "a%1Fb",
    "a//b",  # empty segment
    "a/b/",
    "x" * 1025,
    "a/" + "y" * 256,
    ".incoming/abc",
]


def test_bad_keys_and_prefixes_are_400_and_touch_nothing(live: Live) -> None:
    alice = live.user("alice")
    key = _upload(alice, b"keep me", "keep.txt").json()["key"]
    before = live.objects()
    for bad in BAD_KEYS:
        for method in ("GET", "DELETE", "PUT"):
            reply = alice.request(method, f"/api/v1/files/{bad}", content=b"x")
            _error(reply, 400, "INVALID_FILE_KEY")
        _error(alice.get(f"/api/v1/files/{bad}/info"), 400, "INVALID_FILE_KEY")
    for prefix in ("../up", "/abs", "a//b", "a\\b", "a\x00b", ".hidden", "p" * 1100):
        _error(_upload(alice, b"x", "x.txt", prefix), 400, "INVALID_FILE_KEY")
    _error(alice.get("/api/v1/files/no/such/file.csv"), 404, "FILE_NOT_FOUND")
    _error(alice.get("/api/v1/files/no/such/file.csv/info"), 404, "FILE_NOT_FOUND")
    # A "directory" of the store is not a file.
    _error(alice.get("/api/v1/files/a"), 404, "FILE_NOT_FOUND")
    assert live.objects() == before
    assert alice.get(f"/api/v1/files/{key}").content == b"keep me"


def test_malformed_uploads_are_400_and_store_nothing(live: Live) -> None:
    alice = live.user("alice")
    before = live.objects()
    url = "/api/v1/files/upload"
    _error(
        alice.post(url, content=b"raw", headers={"Content-Type": "text/plain"}),
        400,
        "VALIDATION_ERROR",
    )
    _error(
        alice.post(url, data={"other": "field"}, files={"x": ("a.txt", b"1")}),
        400,
        "VALIDATION_ERROR",
    )
    two = [("file", ("a.txt", b"1")), ("file", ("b.txt", b"2"))]
    _error(alice.post(url, files=two), 400, "VALIDATION_ERROR")
    truncated = b'--B\r\nContent-Disposition: form-data; name="file"; filename="a.txt"\r\n\r\nabc'
    reply = alice.post(
        url, content=truncated, headers={"Content-Type": "multipart/form-data; boundary=B"}
    )
    _error(reply, 400, "VALIDATION_ERROR")
    assert live.objects() == before and live.pending_multipart_uploads() == []


def test_content_resembling_the_boundary_survives_any_chunking(live: Live) -> None:
    alice = live.user("alice")
    boundary = "B0UNDARY"
    # Near-boundaries everywhere, so network chunks end inside partial matches.
    content = b"".join(
        b"\r\n--B0UND" + bytes([i % 256]) + b"\r\n--" + b"B0UNDAR" * (i % 3) + b"\r\n"
        for i in range(40_000)
    )
    head = f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="t.bin"\r\n\r\n'
    body = head.encode() + content + f"\r\n--{boundary}--\r\n".encode()

    def chunks() -> Iterator[bytes]:
        position, sizes = 0, (1, 7, 13, 4093, 65536)
        for step in range(len(body)):
            if position >= len(body):
                return
            size = sizes[step % len(sizes)]
            yield body[position : position + size]
            position += size

    reply = alice.post(
        "/api/v1/files/upload",
        content=chunks(),
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"},
    )
    assert reply.status_code == 200, reply.text
    assert alice.get(f"/api/v1/files/{reply.json()['key']}").content == content


def test_files_over_the_limit_are_413_and_leave_nothing(live: Live) -> None:
    alice = live.user("alice")
    before = live.objects()
    reply = _upload(alice, b"z" * (LIMIT + 1), "big.bin")
    assert _error(reply, 413, "FILE_TOO_LARGE")["details"]["limit"] == LIMIT
    # Declared too large: refused before the body is read.
    _error(
        alice.put("/api/v1/files/big/put.bin", content=b"z" * (LIMIT + 1)), 413, "FILE_TOO_LARGE"
    )

    # Streamed without a length: counted while it arrives.
    def chunks() -> Iterator[bytes]:
        for _ in range(LIMIT // (1 << 20) + 1):
            yield b"z" * (1 << 20)

    _error(alice.put("/api/v1/files/big/streamed.bin", content=chunks()), 413, "FILE_TOO_LARGE")
    assert live.objects() == before and live.pending_multipart_uploads() == []
    # The connection and the service are fine afterwards.
    assert _upload(alice, b"small", "s.txt").status_code == 200


def test_a_client_that_disconnects_mid_upload_leaves_nothing(live: Live) -> None:
    alice = live.user("alice")
    before = live.objects()
    boundary = "XyZ"
    head = (
        f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="cut.bin"\r\n\r\n'
    ).encode()
    declared = len(head) + 12 * (1 << 20) + 64
    request = (
        f"POST /api/v1/files/upload?prefix=cut HTTP/1.1\r\nHost: x\r\n"
        f"Authorization: {alice.headers['Authorization']}\r\n"
        f"Content-Type: multipart/form-data; boundary={boundary}\r\n"
        f"Content-Length: {declared}\r\n\r\n"
    ).encode()
    with socket.create_connection(("127.0.0.1", int(live.base.rsplit(":", 1)[1]))) as sock:
        sock.sendall(request + head)
        # More than one S3 part (8 MiB): a multipart upload is under way when the client leaves.
        for _ in range(10):
            sock.sendall(b"c" * (1 << 20))
        time.sleep(0.5)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        if live.objects() == before and live.pending_multipart_uploads() == []:
            break
        time.sleep(0.1)
    assert live.objects() == before
    assert live.pending_multipart_uploads() == []
    assert _upload(alice, b"after", "after.txt").status_code == 200


def test_put_writes_an_exact_key_and_only_owners_replace(
    live: Live, monkeypatch: pytest.MonkeyPatch
) -> None:
    alice, bob, root = live.user("alice"), live.user("bob"), live.user("root")
    _make_admin(live, root.login, monkeypatch)  # type: ignore[attr-defined]
    key = f"shared/{uuid.uuid4().hex}/table.csv"
    reply = alice.put(f"/api/v1/files/{key}", content=b"v1")
    assert reply.status_code == 200 and reply.json() == {"key": key, "size": 2}
    assert bob.get(f"/api/v1/files/{key}").content == b"v1"  # anyone signed in may read
    _error(bob.put(f"/api/v1/files/{key}", content=b"bob"), 403, "NOT_FILE_OWNER")
    _error(bob.delete(f"/api/v1/files/{key}"), 403, "NOT_FILE_OWNER")
    assert alice.put(f"/api/v1/files/{key}", content=b"v2").status_code == 200
    assert bob.get(f"/api/v1/files/{key}").content == b"v2"
    # An admin may replace it; it stays alice's.
    assert root.put(f"/api/v1/files/{key}", content=b"v3").status_code == 200
    info = bob.get(f"/api/v1/files/{key}/info").json()
    assert info["size"] == 2 and info["uploaded_by"]["login"] == alice.login  # type: ignore[attr-defined]
    uploaded = _upload(alice, b"mine", "m.txt").json()["key"]
    _error(bob.delete(f"/api/v1/files/{uploaded}"), 403, "NOT_FILE_OWNER")
    assert alice.get(f"/api/v1/files/{uploaded}").content == b"mine"
    assert root.delete(f"/api/v1/files/{uploaded}").status_code == 200  # admin
    assert alice.delete(f"/api/v1/files/{key}").status_code == 200
    assert alice.get(f"/api/v1/files/{key}").status_code == 404


def test_reserved_last_segments_are_refused_on_every_path(live: Live) -> None:
    """`/info` and `/link` are the store's own endpoints: a key ending in either could be written
    but never read back (`PUT /files/x/link` used to store a file named `link`)."""
    alice = live.user("alice")
    before = live.objects()
    for word in ("info", "link"):
        key = f"reserved/{word}"
        for reply in (
            alice.put(f"/api/v1/files/{key}", content=b"x"),
            alice.delete(f"/api/v1/files/{key}"),
            alice.get(f"/api/v1/files/{key}/info"),
            alice.post(f"/api/v1/files/{key}/link"),
            alice.put(f"/api/v1/files/{word}", content=b"x"),
        ):
            body = _error(reply, 400, "INVALID_FILE_KEY")
            assert body["details"]["key"] in (key, word), body
    # `GET /files/x/info` is the info of `x`; `GET /files/x/link` would read the key `x/link`.
    _error(alice.get("/api/v1/files/reserved/link"), 400, "INVALID_FILE_KEY")
    assert live.objects() == before
    # Only the last segment is reserved.
    assert alice.put("/api/v1/files/link/info.txt", content=b"ok").status_code == 200


def test_downloads_are_not_sniffed(live: Live) -> None:
    """The content type comes from the key's name: a browser must take it as sent, never guess
    (a `.txt` holding HTML stays text; an `.html` file is only shown by the link's own origin)."""
    alice = live.user("alice")
    key = f"pages/{uuid.uuid4().hex}/page.html"
    assert (
        alice.put(f"/api/v1/files/{key}", content=b"<script>alert(1)</script>").status_code == 200
    )
    link = alice.post(f"/api/v1/files/{key}/link").json()["url"]
    for reply in (
        alice.get(f"/api/v1/files/{key}"),
        alice.get(f"/api/v1/files/{key}", headers={"Range": "bytes=0-3"}),
        httpx.Client(base_url=live.base).get(link),  # no Authorization at all
    ):
        assert reply.status_code in (200, 206), reply.text
        assert reply.headers["content-type"].startswith("text/html")
        assert reply.headers["x-content-type-options"] == "nosniff"


def test_a_download_link_is_at_the_public_url_when_one_is_set(tmp_path: Path) -> None:
    """Behind a reverse proxy the service cannot know the address users reach it at: PUBLIC_URL
    says it, and download links point there."""
    settings = make_settings(tmp_path / "data", public_url="https://scripts.example.com/")
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        assert alice.put("/api/v1/files/shared/table.csv", content=b"a,b\n").status_code == 200
        made = alice.post("/api/v1/files/shared/table.csv/link").json()
    assert made["url"].startswith("https://scripts.example.com/api/v1/files/shared/table.csv?link=")
    link = made["url"].removeprefix("https://scripts.example.com")
    with TestClient(create_app(settings)) as browser:  # no credentials
        assert browser.get(link).content == b"a,b\n"


def test_two_writers_of_one_new_key_cannot_both_own_it(live: Live) -> None:
    """Both start before either has stored anything (so both pass the early owner check); the
    first to finish owns the key and the other is refused, leaving the owner's content."""
    import threading

    alice, bob = live.user("alice"), live.user("bob")
    key = f"race/{uuid.uuid4().hex}.bin"
    both_started = threading.Barrier(3, timeout=30)  # the two bodies and this test
    finish_order: list[str] = []
    replies: dict[str, httpx.Response] = {}

    def body(name: str, release: threading.Event) -> Iterator[bytes]:
        yield name.encode() * 1000
        both_started.wait()
        release.wait(30)
        finish_order.append(name)
        yield name.encode() * 1000

    releases = {"alice": threading.Event(), "bob": threading.Event()}

    def write(name: str, client: httpx.Client) -> None:
        replies[name] = client.put(f"/api/v1/files/{key}", content=body(name, releases[name]))

    threads = [
        threading.Thread(target=write, args=(name, client))
        for name, client in (("alice", alice), ("bob", bob))
    ]
    for thread in threads:
        thread.start()
    both_started.wait()
    releases["bob"].set()  # bob finishes first and so claims the key
    time.sleep(0.5)
    releases["alice"].set()
    for thread in threads:
        thread.join(60)

    assert finish_order == ["bob", "alice"]
    assert replies["bob"].status_code == 200, replies["bob"].text
    _error(replies["alice"], 403, "NOT_FILE_OWNER")
    assert alice.get(f"/api/v1/files/{key}").content == b"bob" * 2000
    assert alice.get(f"/api/v1/files/{key}/info").json()["uploaded_by"]["login"] == bob.login  # type: ignore[attr-defined]


def test_a_download_link_reads_one_file_without_a_token(live: Live) -> None:
    from urllib.parse import parse_qs, urlparse

    alice = live.user("alice")
    content = os.urandom(300_000)
    key = _upload(alice, content, "pressure.bin", prefix="links").json()["key"]
    other = _upload(alice, b"other", "other.csv", prefix="links").json()["key"]
    reply = alice.post(f"/api/v1/files/{key}/link")
    assert reply.status_code == 200, reply.text
    made = reply.json()
    # Absolute: whoever receives the link (a browser, another program) can follow it as it is.
    assert set(made) == {"url", "expires_at"}
    assert made["url"].startswith(f"{live.base}/api/v1/files/{key}?")
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", made["expires_at"])

    browser = httpx.Client(base_url=live.base, timeout=60)  # no Authorization at all
    got = browser.get(made["url"])
    assert got.status_code == 200 and got.content == content
    assert "pressure.bin" not in got.headers["content-disposition"]  # the key's own name
    assert key.rsplit("/", 1)[1] in got.headers["content-disposition"]
    part = browser.get(made["url"], headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == content[10:20]

    link = parse_qs(urlparse(made["url"]).query)["link"][0]
    # Only that file, only untampered, and never instead of a token elsewhere.
    _error(browser.get(f"/api/v1/files/{other}", params={"link": link}), 401, "INVALID_TOKEN")
    forged = link[:-2] + ("AA" if not link.endswith("AA") else "BB")
    _error(browser.get(f"/api/v1/files/{key}", params={"link": forged}), 401, "INVALID_TOKEN")
    longer = str(int(link.split(".")[0]) + 3600) + "." + link.split(".", 1)[1]
    _error(browser.get(f"/api/v1/files/{key}", params={"link": longer}), 401, "INVALID_TOKEN")
    _error(browser.get(f"/api/v1/files/{key}"), 401, "NOT_AUTHENTICATED")
    _error(
        browser.get(f"/api/v1/files/{key}/info", params={"link": link}), 401, "NOT_AUTHENTICATED"
    )
    _error(browser.post(f"/api/v1/files/{key}/link"), 401, "NOT_AUTHENTICATED")
    _error(alice.post("/api/v1/files/links/missing.csv/link"), 404, "FILE_NOT_FOUND")
    # Malformed links are refused as links, whatever they hold.
    expires, signature = link.split(".")
    for bad in (
        "",
        "nonsense",
        f"\u00b2.{signature}",  # a digit to str.isdigit, not to int()
        expires + "." + "\u00e9" * 43,
        "9" * 5000 + f".{signature}",
        f"0{expires}.{signature}",
        f"{expires}.{signature}=",
    ):
        _error(browser.get(f"/api/v1/files/{key}", params={"link": bad}), 401, "INVALID_TOKEN")
    # A link never stands in for a token anywhere else; a token holder is judged by the token.
    _error(
        browser.put(f"/api/v1/files/{key}", params={"link": link}, content=b"x"),
        401,
        "NOT_AUTHENTICATED",
    )
    _error(browser.delete(f"/api/v1/files/{key}", params={"link": link}), 401, "NOT_AUTHENTICATED")
    assert alice.get(f"/api/v1/files/{key}", params={"link": forged}).status_code == 200


def test_an_upload_keeps_its_original_name_for_info_the_listing_and_the_download(
    live: Live,
) -> None:
    """The key stays random; the name the file was uploaded as is recorded beside it, and a
    download asked for with `name=original` is saved under it (RFC 6266 and 5987 when it is not
    ASCII). Without the parameter the download is named by its key, as it always was."""
    from urllib.parse import quote

    alice, bob = live.user("alice"), live.user("bob")
    original = "Bohrloch Ölfeld; Süd 7.csv"
    key = _upload(alice, b"a,b\n", "C:\\Messungen\\" + original, prefix="named").json()["key"]
    assert re.fullmatch(rf"named/{KEY_SHAPE}\.csv", key)  # the key format is unchanged
    info = bob.get(f"/api/v1/files/{key}/info").json()
    assert info["filename"] == original and info["key"] == key
    [listed] = [item for item in alice.get("/api/v1/files").json()["files"] if item["key"] == key]
    assert listed["filename"] == original

    as_key = alice.get(f"/api/v1/files/{key}").headers["content-disposition"]
    assert as_key.startswith(f'attachment; filename="{key.rsplit("/", 1)[1]}"')
    wanted = (
        'attachment; filename="Bohrloch ?lfeld; S?d 7.csv"; '
        f"filename*=UTF-8''{quote(original, safe='')}"
    )
    named = alice.get(f"/api/v1/files/{key}", params={"name": "original"})
    assert named.status_code == 200 and named.content == b"a,b\n"
    assert named.headers["content-disposition"] == wanted
    # The browser downloads through a link: it carries the choice.
    url = alice.post(f"/api/v1/files/{key}/link", params={"name": "original"}).json()["url"]
    assert httpx.get(url).headers["content-disposition"] == wanted
    plain = alice.post(f"/api/v1/files/{key}/link").json()["url"]
    assert original not in httpx.get(plain).headers["content-disposition"]
    _error(alice.get(f"/api/v1/files/{key}", params={"name": "other"}), 400, "VALIDATION_ERROR")

    # A file put at its key, or uploaded without a name, has none; it downloads as its key.
    alice.put("/api/v1/files/named/exact.bin", content=b"x")
    assert alice.get("/api/v1/files/named/exact.bin/info").json()["filename"] is None
    got = alice.get("/api/v1/files/named/exact.bin", params={"name": "original"})
    assert got.headers["content-disposition"].startswith('attachment; filename="exact.bin"')
    # Control characters never reach the record or a header (sent raw: httpx would escape them).
    raw = (
        b'--B\r\nContent-Disposition: form-data; name="file"; filename="a\tb\x7fc.txt"\r\n'
        b"\r\nx\r\n--B--\r\n"
    )
    odd = alice.post(
        "/api/v1/files/upload",
        content=raw,
        headers={"Content-Type": "multipart/form-data; boundary=B"},
    ).json()["key"]
    assert alice.get(f"/api/v1/files/{odd}/info").json()["filename"] == "abc.txt"


def test_a_download_link_expires(tmp_path: Path) -> None:
    settings = make_settings(tmp_path / "data", download_link_seconds=2)
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        key = alice.post("/api/v1/files/upload", files={"file": ("a.txt", b"abc")}).json()["key"]
        url = alice.post(f"/api/v1/files/{key}/link").json()["url"]
        assert client.get(url).content == b"abc"  # a link lasts at least its lifetime
        time.sleep(3.1)
        _error(client.get(url), 401, "INVALID_TOKEN")  # type: ignore[arg-type]


def test_listing_shows_the_callers_files_that_are_in_the_store(live: Live) -> None:
    alice, bob = live.user("alice"), live.user("bob")
    prefix = f"listed-{uuid.uuid4().hex[:8]}"
    kept = _upload(alice, b"kept", "k.csv", prefix).json()["key"]
    gone = _upload(alice, b"gone!", "g.csv", prefix).json()["key"]
    lost_folder = _upload(alice, b"x", "x.csv", f"{prefix}/sub").json()["key"]
    top = f"{uuid.uuid4().hex}.txt"  # at the store's top level
    assert alice.put(f"/api/v1/files/{top}", content=b"top!!").status_code == 200
    _upload(bob, b"bob's", "b.csv", prefix)
    # Deleted behind the service's back: left out, and the listing still answers.
    live.fs.rm_file(f"{live.files_root}/{gone}")
    live.fs.rm_file(f"{live.files_root}/{lost_folder}")
    reply = alice.get("/api/v1/files")
    assert reply.status_code == 200, reply.text
    assert [(item["key"], item["size"]) for item in reply.json()["files"]] == [(top, 5), (kept, 4)]
    reply = alice.get("/api/v1/files", params={"prefix": prefix})
    assert [item["key"] for item in reply.json()["files"]] == [kept]


def test_files_need_a_token_unless_anonymous_access_is_allowed(data_dir: Path) -> None:
    with TestClient(create_app(make_settings(data_dir))) as client:
        alice = register(client, "alice")
        key = alice.post("/api/v1/files/upload", files={"file": ("a.txt", b"a")}).json()["key"]
        for method, url in (
            ("POST", "/api/v1/files/upload"),
            ("GET", f"/api/v1/files/{key}"),
            ("GET", f"/api/v1/files/{key}/info"),
            ("PUT", "/api/v1/files/x.txt"),
            ("DELETE", f"/api/v1/files/{key}"),
        ):
            _error(client.request(method, url), 401, "NOT_AUTHENTICATED")
        _error(
            client.get(f"/api/v1/files/{key}", headers={"Authorization": "Bearer x"}),
            401,
            "INVALID_TOKEN",
        )
    settings = make_settings(data_dir, allow_anonymous_execution=True)
    with TestClient(create_app(settings)) as client:
        assert client.get(f"/api/v1/files/{key}").content == b"a"
        anonymous = client.post("/api/v1/files/upload", files={"file": ("n.txt", b"n")}).json()
        assert client.get(f"/api/v1/files/{anonymous['key']}/info").json()["uploaded_by"] is None
        # Nobody owns it, so anyone may delete it; alice's file stays hers.
        _error(client.delete(f"/api/v1/files/{key}"), 403, "NOT_FILE_OWNER")
        assert client.delete(f"/api/v1/files/{anonymous['key']}").status_code == 200
        # A token that is sent is still checked.
        _error(
            client.get(f"/api/v1/files/{key}", headers={"Authorization": "Bearer x"}),
            401,
            "INVALID_TOKEN",
        )


def test_a_failing_store_is_a_500_that_names_nothing(
    data_dir: Path, moto_endpoint: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in AWS.items():
        monkeypatch.setenv(name, value)
    settings = make_settings(
        data_dir, files_url="s3://no-such-bucket/files", s3_endpoint_url=moto_endpoint
    )
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        reply = alice.post("/api/v1/files/upload", files={"file": ("a.txt", b"a")})
        body = _error(reply, 500, "FILE_SYSTEM_ERROR")
        assert "no-such-bucket" not in reply.text and "127.0.0.1" not in reply.text
        assert body["details"] == {}
        _error(alice.get("/api/v1/files/a.txt"), 404, "FILE_NOT_FOUND")  # nothing is there


# -- scripts using the store ---------------------------------------------------------------------
SUM_COLUMN = """
import csv, os
from gitscripts.runtime import files

def main(data):
    column = data.get("column", "rate")
    with files.open(data["file_key"], "r") as table:
        total = sum(float(row[column]) for row in csv.DictReader(table))
    key = files.write_bytes(f"column,total\\n{column},{total}\\n".encode(),
                            prefix="results", suffix=".csv")
    return {"result_key": key, "total": total}
"""

PROBE = """
import os, urllib.request
from gitscripts.client import Client, GitscriptsError
from gitscripts.runtime import files

def status(url, path, token):
    try:
        Client(url, token=token)._request("GET", path).close()
        return 200
    except GitscriptsError as error:
        return error.status

def main(data):
    token, url = os.environ["FILES_API_TOKEN"], os.environ["FILES_API_URL"]
    out = {"env": sorted(os.environ), "token": token, "url": url}
    with files.open(data["key"], "w") as handle:
        handle.write("written by a script\\n")
    with files.open(data["key"], "rb") as handle:
        out["read_back"] = handle.read().decode()
    out["exists"] = [files.exists(data["key"]), files.exists("nope/none.txt")]
    problems = {}
    for name, call in (
        ("missing", lambda: files.read_bytes("nope/none.txt")),
        ("bad_key", lambda: files.read_bytes("../etc/passwd")),
        ("too_big", lambda: files.write_bytes(b"x" * (data["limit"] + 1))),
        ("not_mine", lambda: files.open(data["foreign"], "wb").close()),
    ):
        try:
            call()
        except files.FileStoreError as error:
            problems[name] = [error.status, error.error_code,
                              isinstance(error, FileNotFoundError), isinstance(error, PermissionError)]
    out["problems"] = problems
    # The token opens the file endpoints and nothing else; the way to them serves nothing else;
    # and the service's port is out of reach: the run has no network.
    out["me"] = status(url, "/api/v1/auth/me", token)
    try:
        urllib.request.urlopen(data["base"] + "/health", timeout=2)
        out["tcp"] = "reached"
    except OSError:
        out["tcp"] = "unreachable"
    out["store_visible"] = os.path.exists(data["store"]) and bool(os.listdir(data["store"]))
    return out
"""


def _script(client: httpx.Client, filename: str, source: str) -> str:
    reply = client.post(
        "/api/v1/scripts-manager/scripts-from-text",
        json={"filename": filename, "display_name": filename, "content": source},
    )
    if reply.status_code == 409:  # the module's service is shared: the script is there already
        return filename
    assert reply.status_code == 201, reply.text
    return filename


def test_a_script_uses_the_store_as_its_user_and_nothing_more(live: Live) -> None:
    alice, bob = live.user("alice"), live.user("bob")
    _script(alice, "probe.py", PROBE)
    foreign = _upload(bob, b"bob's", "b.txt").json()["key"]
    key = f"script-out/{uuid.uuid4().hex}.txt"
    reply = alice.post(
        "/api/v1/scripts/probe.py",
        json={
            "data": {
                "key": key,
                "limit": LIMIT,
                "foreign": foreign,
                "store": live.files_root,
                "base": live.base,
            }
        },
    )
    outcome = reply.json()
    assert outcome["success"], outcome["error"]
    result = outcome["result"]
    assert result["read_back"] == "written by a script\n"
    assert result["exists"] == [True, False]
    assert result["problems"] == {
        "missing": [404, "FILE_NOT_FOUND", True, False],
        "bad_key": [400, "INVALID_FILE_KEY", False, False],
        "too_big": [413, "FILE_TOO_LARGE", False, False],
        "not_mine": [403, "NOT_FILE_OWNER", False, True],
    }
    assert result["me"] == 404 and result["tcp"] == "unreachable"
    # The server's AWS credentials (and every other server variable) stay with the server.
    assert not any(name.startswith("AWS") for name in result["env"])
    assert "FILES_API_TOKEN" in result["env"] and "FILES_API_URL" in result["env"]
    assert result["store_visible"] is False  # not in the run's file system at all
    # What the script wrote belongs to alice; its token died with the run.
    info = alice.get(f"/api/v1/files/{key}/info").json()
    assert info["uploaded_by"]["login"] == alice.login  # type: ignore[attr-defined]
    stale = {"Authorization": f"Bearer {result['token']}"}
    _error(httpx.get(f"{live.base}/api/v1/files/{key}", headers=stale), 401, "INVALID_TOKEN")
    assert live.pending_multipart_uploads() == []


CLIENT_DRIVER = r"""
import importlib.util, io, json, os, sys
spec = importlib.util.spec_from_file_location("client", sys.argv[1])
client = importlib.util.module_from_spec(spec)
spec.loader.exec_module(client)
base, login, password, workdir = sys.argv[2:6]
gs = client.Client(base, login=login, password=password)
out = {}
csv_path = os.path.join(workdir, "wells.csv")
with open(csv_path, "w") as handle:
    handle.write("well,rate\nA-1,12.5\nA-2,7.5\nB-1,30\n")
key = gs.upload(csv_path, prefix="sim/run-1")
out["key"] = key
out["info"] = gs.info(key)
result = gs.run("sum_column.py", {"file_key": key, "column": "rate"})
out["result"] = result
target = gs.download(result["result_key"], os.path.join(workdir, "summary.csv"))
with open(target) as handle:
    out["summary"] = handle.read()
out["bytes_key"] = gs.upload(b"\x00\x01binary", prefix="raw", filename="blob.dat")
out["bytes_back"] = list(gs.download(out["bytes_key"]))
sink = io.BytesIO()
gs.download(out["bytes_key"], sink)
out["sink"] = list(sink.getvalue())
out["put"] = gs.put("sim/run-1/notes.txt", b"notes")
with gs.open("sim/run-1/notes.txt") as stream:
    out["opened"] = stream.read().decode()
out["exists"] = [gs.exists(key), gs.exists("sim/none.csv")]
gs.delete(key)
out["exists_after_delete"] = gs.exists(key)
errors = {}
for name, call in (
    ("missing", lambda: gs.info("sim/none.csv")),
    ("bad_key", lambda: gs.download("a/../b")),
    ("failing_script", lambda: gs.run("sum_column.py", {"file_key": "sim/none.csv", "column": "x"})),
    ("unknown_script", lambda: gs.run("nope.py", {})),
    ("no_service", lambda: client.Client("http://127.0.0.1:9", token="t").info("k")),
):
    try:
        call()
    except client.GitscriptsError as error:
        errors[name] = [error.status, error.error_code, error.message, error.details]
out["errors"] = errors
out["modules"] = sorted(m.split(".")[0] for m in sys.modules)
print(json.dumps(out))
"""


def test_the_original_workflow_with_the_stdlib_client(live: Live, tmp_path: Path) -> None:
    alice = live.user("alice")
    _script(alice, "sum_column.py", SUM_COLUMN)
    served = httpx.get(f"{live.base}/api/v1/client.py")  # no token needed
    assert served.status_code == 200 and served.headers["content-type"].startswith("text/")
    client_file = tmp_path / "client.py"
    client_file.write_bytes(served.content)
    driver = tmp_path / "driver.py"
    driver.write_text(CLIENT_DRIVER)
    completed = subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            str(driver),
            str(client_file),
            live.base,
            alice.login,
            PASSWORD,
            str(tmp_path),
        ],  # type: ignore[attr-defined]
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert completed.returncode == 0, completed.stderr
    out = json.loads(completed.stdout)
    assert re.fullmatch(rf"sim/run-1/{KEY_SHAPE}\.csv", out["key"])
    assert out["info"]["size"] == 34 and out["info"]["content_type"] == "text/csv"
    assert out["result"]["total"] == 50.0
    assert re.fullmatch(rf"results/{KEY_SHAPE}\.csv", out["result"]["result_key"])
    assert out["summary"] == "column,total\nrate,50.0\n"
    assert re.fullmatch(rf"raw/{KEY_SHAPE}\.dat", out["bytes_key"])
    assert bytes(out["bytes_back"]) == bytes(out["sink"]) == b"\x00\x01binary"
    assert out["put"] == "sim/run-1/notes.txt" and out["opened"] == "notes"
    assert out["exists"] == [True, False] and out["exists_after_delete"] is False
    errors = out["errors"]
    assert errors["missing"][:2] == [404, "FILE_NOT_FOUND"]
    assert errors["missing"][3] == {"key": "sim/none.csv"}
    assert errors["bad_key"][:2] == [400, "INVALID_FILE_KEY"]
    assert errors["failing_script"][:2] == [200, "SCRIPT_FAILED"]
    assert "FileStoreNotFoundError: File 'sim/none.csv' not found" in errors["failing_script"][2]
    assert errors["unknown_script"][:2] == [404, "SCRIPT_NOT_FOUND"]
    assert errors["no_service"][:2] == [0, "CONNECTION_ERROR"]
    assert "site" not in out["modules"]  # really ran without site-packages
    # The result file belongs to the user who ran the script.
    info = alice.get(f"/api/v1/files/{out['result']['result_key']}/info").json()
    assert info["uploaded_by"]["login"] == alice.login  # type: ignore[attr-defined]


@pytest.mark.parametrize("live", ["local"], indirect=True)  # the same on every store
def test_the_served_example_runs_the_same_calls(live: Live, tmp_path: Path) -> None:
    alice = live.user("alice")
    _script(alice, "sum_column.py", SUM_COLUMN)
    example = tmp_path / "example.py"
    example.write_bytes(httpx.get(f"{live.base}/api/v1/examples/execute_script_example.py").content)
    table = tmp_path / "in.csv"
    table.write_text("rate\n1\n2\n")
    token = alice.post("/api/v1/auth/tokens", json={"name": "sim"}).json()["token"]
    completed = subprocess.run(
        [sys.executable, "-I", "-S", str(example), live.base, "sum_column.py", str(table)],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"GITSCRIPTS_TOKEN": token, "PATH": os.environ.get("PATH", "")},
    )
    assert completed.returncode == 0, completed.stderr
    assert '"total": 3.0' in completed.stdout and "downloaded:" in completed.stdout
    summaries = list(tmp_path.glob("*.csv"))
    assert any(path.read_text() == "column,total\nrate,3.0\n" for path in summaries)
    # Run as it comes, with no arguments, it finds no script and says how to use it.
    completed = subprocess.run(
        [sys.executable, "-I", "-S", str(example), live.base],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=tmp_path,
        env={"GITSCRIPTS_TOKEN": token, "PATH": os.environ.get("PATH", "")},
    )
    assert completed.returncode == 1
    assert "Usage:  python execute_script_example.py [BASE_URL] [SCRIPT_PATH]" in completed.stderr
    assert completed.stderr.rstrip().endswith(
        "404 SCRIPT_NOT_FOUND: Script 'examples/hello.py' not found at revision main"
    )
