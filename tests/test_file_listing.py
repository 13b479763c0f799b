"""`GET /api/v1/files`: the caller's own files, newest first, from the index checked against the store.

The store here is the default local one (`DATA_DIR/files`); `tests/test_files.py` runs the same
listing against S3 too.
"""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gitscripts.app import create_app
from gitscripts.config import Settings
from tests.conftest import Caller, make_settings, register

FILES = "/api/v1/files"
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d+Z$")


def upload(caller: Caller, content: bytes, name: str = "data.csv", prefix: str = "") -> str:
    params = {"prefix": prefix} if prefix else {}
    reply = caller.post(f"{FILES}/upload", params=params, files={"file": (name, content)})
    assert reply.status_code == 200, reply.text
    return str(reply.json()["key"])


def put(caller: Caller, key: str, content: bytes) -> None:
    reply = caller.put(f"{FILES}/{key}", content=content)
    assert reply.status_code == 200, reply.text


def listed(caller: Caller, **params: str) -> list[dict[str, Any]]:
    reply = caller.get(FILES, params=params)
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"files"}, body
    for item in body["files"]:
        assert set(item) == {"key", "size", "content_type", "uploaded_at", "filename"}, item
        assert ISO_Z.match(item["uploaded_at"]), item
    return body["files"]  # type: ignore[no-any-return]


def keys_of(caller: Caller, **params: str) -> list[str]:
    return [item["key"] for item in listed(caller, **params)]


def assert_error(reply: Any, status: int, code: str) -> None:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error_code", "message", "details"} and body["error_code"] == code, body


def test_each_user_lists_only_their_own_files_newest_first(alice: Caller, bob: Caller) -> None:
    wells = upload(alice, b"well,rate\nA-1,12.5\n", "wells.csv", prefix="sim/run-1")
    bobs = upload(bob, b"bob's", "b.txt")
    result = upload(alice, b'{"ok": true}', "result.json")
    put(alice, "exact/key.bin", b"\0" * 10)

    mine = listed(alice)
    assert [item["key"] for item in mine] == ["exact/key.bin", result, wells]
    assert [item["uploaded_at"] for item in mine] == sorted(
        (item["uploaded_at"] for item in mine), reverse=True
    )
    assert {item["key"]: (item["size"], item["content_type"]) for item in mine} == {
        wells: (19, "text/csv"),
        result: (12, "application/json"),
        "exact/key.bin": (10, "application/octet-stream"),
    }
    assert keys_of(bob) == [bobs]


def test_replacing_updates_the_size_and_deleting_removes_the_file(
    alice: Caller, admin: Caller
) -> None:
    put(alice, "tables/t.csv", b"v1")
    other = upload(alice, b"x", "x.txt")
    [before] = [item for item in listed(alice) if item["key"] == "tables/t.csv"]
    assert before["size"] == 2

    put(alice, "tables/t.csv", b"version two")
    assert listed(alice)[1] == {**before, "size": 11}  # still uploaded when it was first
    # An admin replacing it does not take it over; the size follows the content.
    put(admin, "tables/t.csv", b"3")
    assert listed(alice)[1] == {**before, "size": 1}
    assert keys_of(admin) == []

    assert alice.delete(f"{FILES}/tables/t.csv").status_code == 200
    assert keys_of(alice) == [other]
    assert alice.delete(f"{FILES}/{other}").status_code == 200
    assert listed(alice) == []


def test_prefix_lists_one_folder_and_bad_prefixes_are_400(alice: Caller) -> None:
    one = upload(alice, b"1", "a.csv", prefix="sim/run-1")
    ten = upload(alice, b"2", "b.csv", prefix="sim/run-10")
    top = upload(alice, b"3", "c.csv", prefix="sim")
    upload(alice, b"4", "d.csv")
    # A prefix is a folder: `sim/run-1` does not hold `sim/run-10/...`.
    assert keys_of(alice, prefix="sim/run-1") == [one]
    assert keys_of(alice, prefix="sim/run-1/") == [one]
    assert keys_of(alice, prefix="sim") == [top, ten, one]
    assert keys_of(alice, prefix="elsewhere") == []
    for bad in ("../up", "/abs", "a//b", ".hidden", "a\\b", "a\x01b", "p" * 1100):
        assert_error(alice.get(FILES, params={"prefix": bad}), 400, "INVALID_FILE_KEY")


def test_only_admins_list_everyones_files(alice: Caller, bob: Caller, admin: Caller) -> None:
    alices = upload(alice, b"a", prefix="shared")
    bobs = upload(bob, b"b", prefix="shared")
    admins = upload(admin, b"r")
    assert keys_of(admin) == [admins]  # an admin's own list is their own too
    assert keys_of(admin, all="false") == [admins]
    assert keys_of(admin, all="true") == [admins, bobs, alices]
    assert keys_of(admin, all="true", prefix="shared") == [bobs, alices]
    for caller in (alice, bob):
        assert_error(caller.get(FILES, params={"all": "true"}), 403, "PERMISSION_DENIED")
    assert_error(admin.get(FILES, params={"all": "perhaps"}), 400, "VALIDATION_ERROR")


def test_the_collection_path_lists_and_the_slash_path_is_still_a_key(alice: Caller) -> None:
    key = upload(alice, b"x")
    reply = alice.get(FILES, follow_redirects=False)
    assert reply.status_code == 200 and [item["key"] for item in reply.json()["files"]] == [key]
    # `/files/` is the key route with an empty key, as before.
    assert_error(alice.get(f"{FILES}/", follow_redirects=False), 400, "INVALID_FILE_KEY")


def test_files_gone_from_the_store_are_left_out(alice: Caller, settings: Settings) -> None:
    store = settings.local_files_dir
    assert store is not None
    gone = upload(alice, b"gone", "g.txt", prefix="p")
    kept = upload(alice, b"kept", "k.txt", prefix="p")
    upload(alice, b"whole folder gone", "f.txt", prefix="q/r")
    # Deleted behind the service's back: the records stay, the files do not.
    (store / gone).unlink()
    shutil.rmtree(store / "q")
    assert keys_of(alice) == [kept]
    assert keys_of(alice, prefix="q") == []


def test_listing_needs_a_signed_in_caller(data_dir: Path) -> None:
    with TestClient(create_app(make_settings(data_dir))) as client:
        assert_error(client.get(FILES), 401, "NOT_AUTHENTICATED")
    settings = make_settings(data_dir, allow_anonymous_execution=True)
    with TestClient(create_app(settings)) as anonymous:
        alice = register(anonymous, "alice")
        upload(alice, b"mine")
        assert anonymous.post(f"{FILES}/upload", files={"file": ("n.txt", b"n")}).status_code == 200
        # Anonymous callers may use the store, but own nothing to list.
        assert_error(anonymous.get(FILES), 401, "NOT_AUTHENTICATED")
        reply = anonymous.get(FILES, headers={"Authorization": "Bearer x"})
        assert_error(reply, 401, "INVALID_TOKEN")
        assert len(listed(alice)) == 1


@pytest.mark.parametrize("prefix", ["", "deep/er"])
def test_an_empty_store_lists_nothing(alice: Caller, prefix: str) -> None:
    assert listed(alice, prefix=prefix) == []
