"""The Scripts Manager folders/scripts API of the original (seed) contract, end to end through HTTP
and the real git CLI.

Every test asserts both the reply and what landed in the bare repository: a successful mutation is
exactly one commit by the caller saying what happened; a rejected request changes nothing at all.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from html import unescape
from pathlib import Path
from typing import Any

import pytest

from gitscripts.manager.highlight import CSS_CLASS, stylesheet
from tests.conftest import HELLO, Caller, commits, tree_paths

API = "/api/v1/scripts-manager"
FOLDER_FIELDS = {
    "id",
    "name",
    "path",
    "parent_id",
    "created_by",
    "created_at",
    "updated_at",
    "can_edit",
    "can_delete",
}
SCRIPT_FIELDS = {
    "id",
    "filename",
    "logical_path",
    "display_name",
    "description",
    "folder_id",
    "created_by",
    "created_at",
    "updated_at",
    "can_edit",
    "can_delete",
}
ISO_Z = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?Z$")
OTHER = b"def main(data):\n    return {'other': True}\n"
JSON_HEADERS = {"Content-Type": "application/json"}


# -- helpers ----------------------------------------------------------------------------------
def blob(data_dir: Path, path: str, rev: str = "main") -> bytes | None:
    """The raw bytes git holds at `path` (the shared `git` helper decodes text and folds CRLF)."""
    completed = subprocess.run(
        ["git", "--git-dir", str(data_dir / "scripts.git"), "cat-file", "blob", f"{rev}:{path}"],
        capture_output=True,
    )
    return completed.stdout if completed.returncode == 0 else None


def raw_paths(data_dir: Path, rev: str = "main") -> set[str]:
    """Every file path on `rev`, unquoted (the shared helper shows non-ASCII paths C-quoted)."""
    out = subprocess.run(
        [
            "git",
            "--git-dir",
            str(data_dir / "scripts.git"),
            "ls-tree",
            "-r",
            "-z",
            "--name-only",
            rev,
        ],
        capture_output=True,
        check=True,
    ).stdout
    return {path.decode() for path in out.split(b"\0") if path}


def sidecar(data_dir: Path, path: str) -> dict[str, Any]:
    raw = blob(data_dir, path + ".meta.json")
    assert raw is not None, f"no metadata beside {path}"
    return json.loads(raw)


def assert_error(reply: Any, status: int, code: str | None = None, **details: Any) -> dict:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert set(body) == {"error_code", "message", "details"}, body
    assert isinstance(body["message"], str) and body["message"]
    assert isinstance(body["details"], dict)
    assert "Traceback" not in reply.text
    if code is not None:
        assert body["error_code"] == code, body
    for key, value in details.items():
        assert key in body["details"], body
        assert str(body["details"][key]) == str(value), body
    return body


def assert_folder(folder: dict[str, Any], **expected: Any) -> None:
    assert set(folder) == FOLDER_FIELDS, folder
    assert isinstance(folder["id"], int)
    assert ISO_Z.match(folder["created_at"]) and ISO_Z.match(folder["updated_at"]), folder
    for key, value in expected.items():
        assert folder[key] == value, (key, folder)


def assert_script(script: dict[str, Any], **expected: Any) -> None:
    assert set(script) == SCRIPT_FIELDS, script
    assert isinstance(script["id"], int)
    assert ISO_Z.match(script["created_at"]) and ISO_Z.match(script["updated_at"]), script
    for key, value in expected.items():
        assert script[key] == value, (key, script)


def creator(caller: Caller) -> dict[str, Any]:
    return {"id": caller.id, "login": caller.login}


@contextmanager
def one_commit(
    data_dir: Path, author: str, subject: str | None = None, mentions: tuple[str, ...] = ()
) -> Iterator[None]:
    """The block makes exactly one new commit on main, by `author`, saying what happened."""
    before = commits(data_dir)
    yield
    after = commits(data_dir)
    assert len(after) == len(before) + 1, [c["subject"] for c in after[: len(after) - len(before)]]
    assert after[1:] == before
    assert after[0]["author"] == author
    if subject is not None:
        assert after[0]["subject"] == subject
    for word in mentions:
        assert word in after[0]["subject"], after[0]["subject"]


@contextmanager
def unchanged(data_dir: Path, caller: Caller) -> Iterator[None]:
    """The block changes nothing: no commit, the same git tree, the same API tree."""
    before = (commits(data_dir), tree_paths(data_dir), caller.tree())
    yield
    assert (commits(data_dir), tree_paths(data_dir), caller.tree()) == before


def from_text(caller: Caller, **body: Any) -> Any:
    return caller.post(f"{API}/scripts-from-text", json=body)


def upload_raw(caller: Caller, filename: str, content: bytes = HELLO, **form: str) -> Any:
    form.setdefault("display_name", filename)
    return caller.post(f"{API}/scripts", files={"file": (filename, content)}, data=form)


def all_items(tree: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Every folder and script in a /tree reply, however deep."""
    for script in tree["root_scripts"]:
        yield "script", script

    def walk(items: list[dict[str, Any]]) -> Iterator[tuple[str, dict[str, Any]]]:
        for item in items:
            assert set(item) == {"folder", "scripts", "subfolders"}, item
            yield "folder", item["folder"]
            for script in item["scripts"]:
                yield "script", script
            yield from walk(item["subfolders"])

    yield from walk(tree["root_folders"])


# -- POST /folders, GET /folders/{id} ---------------------------------------------------------
def test_create_folder_returns_the_seed_folder_object(alice: Caller, data_dir: Path) -> None:
    with one_commit(data_dir, "alice", "Create folder geology"):
        reply = alice.post(f"{API}/folders", json={"name": "geology", "parent_id": None})
    assert reply.status_code == 201, reply.text
    folder = reply.json()
    assert_folder(
        folder,
        name="geology",
        path="geology",
        parent_id=None,
        created_by=creator(alice),
        can_edit=True,
        can_delete=True,
    )
    assert tree_paths(data_dir) == {"geology/.gitkeep"}
    got = alice.get(f"{API}/folders/{folder['id']}")
    assert got.status_code == 200
    assert got.json() == folder


def test_create_folder_without_parent_id_key_goes_to_the_root(alice: Caller) -> None:
    reply = alice.post(f"{API}/folders", json={"name": "geology"})
    assert reply.status_code == 201, reply.text
    assert_folder(reply.json(), path="geology", parent_id=None)


def test_create_nested_folders(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    with one_commit(data_dir, "alice", "Create folder geology/analysis"):
        analysis = alice.folder("analysis", parent_id=geology["id"])
    assert_folder(analysis, name="analysis", path="geology/analysis", parent_id=geology["id"])
    with one_commit(data_dir, "alice", "Create folder geology/analysis/deep"):
        deep = alice.folder("deep", parent_id=analysis["id"])
    assert_folder(deep, path="geology/analysis/deep", parent_id=analysis["id"])
    assert tree_paths(data_dir) == {
        "geology/.gitkeep",
        "geology/analysis/.gitkeep",
        "geology/analysis/deep/.gitkeep",
    }
    # The same name is fine under another parent.
    other = alice.folder("analysis")
    assert other["path"] == "analysis" and other["id"] != analysis["id"]


def test_create_folder_in_a_missing_parent_is_404(alice: Caller, data_dir: Path) -> None:
    with unchanged(data_dir, alice):
        reply = alice.post(f"{API}/folders", json={"name": "x", "parent_id": 999})
    assert_error(reply, 404, "PARENT_FOLDER_NOT_FOUND", parent_id=999)


def test_create_existing_folder_is_409(alice: Caller, bob: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    alice.folder("analysis", parent_id=geology["id"])
    with unchanged(data_dir, alice):
        assert_error(
            alice.post(f"{API}/folders", json={"name": "geology"}),
            409,
            "FOLDER_ALREADY_EXISTS",
            path="geology",
        )
        assert_error(
            bob.post(f"{API}/folders", json={"name": "analysis", "parent_id": geology["id"]}),
            409,
            "FOLDER_ALREADY_EXISTS",
            path="geology/analysis",
        )


def test_folder_named_like_an_existing_script_is_409(alice: Caller, data_dir: Path) -> None:
    alice.upload("a.py")
    with unchanged(data_dir, alice):
        reply = alice.post(f"{API}/folders", json={"name": "a.py"})
    assert_error(reply, 409, "FOLDER_ALREADY_EXISTS", path="a.py")


@pytest.mark.parametrize(
    "body",
    [
        {"name": ""},
        {},
        {"name": None},
        {"name": 5},
        {"name": "x" * 256},
        {"name": "x", "parent_id": "abc"},
    ],
    ids=["empty", "missing", "null", "number", "256-chars", "bad-parent-id"],
)
def test_create_folder_bad_body_is_400(alice: Caller, data_dir: Path, body: dict) -> None:
    with unchanged(data_dir, alice):
        reply = alice.post(f"{API}/folders", json=body)
    body = assert_error(reply, 400)
    assert body["error_code"] in ("VALIDATION_ERROR", "INVALID_FOLDER_NAME")


def test_create_folder_with_malformed_json_is_400(alice: Caller, data_dir: Path) -> None:
    with unchanged(data_dir, alice):
        reply = alice.post(f"{API}/folders", content=b"{not json", headers=JSON_HEADERS)
    assert_error(reply, 400, "VALIDATION_ERROR")


def test_get_missing_folder_is_404(alice: Caller) -> None:
    assert_error(alice.get(f"{API}/folders/999"), 404, "FOLDER_NOT_FOUND", folder_id=999)


def test_get_folder_with_non_integer_id_is_400(alice: Caller) -> None:
    assert_error(alice.get(f"{API}/folders/abc"), 400, "VALIDATION_ERROR")


def test_folder_object_is_computed_for_the_caller(
    alice: Caller, bob: Caller, admin: Caller
) -> None:
    folder = alice.folder("geology")
    for caller, allowed in ((alice, True), (bob, False), (admin, True)):
        seen = caller.get(f"{API}/folders/{folder['id']}").json()
        assert_folder(seen, created_by=creator(alice), can_edit=allowed, can_delete=allowed)


# -- names --------------------------------------------------------------------------------------
BAD_NAMES = {
    "slash": "a/b",
    "backslash": "a\\b",
    "nul": "a\x00b",
    "control": "a\x01b",
    "newline": "a\nb",
    "tab": "a\tb",
    "escape": "a\x1bb",
    "delete": "a\x7fb",
    "dot": ".",
    "dotdot": "..",
    "leading-dot": ".hidden",
    "400-bytes": "é" * 200,
}
BAD_FILENAMES = {
    "slash": "a/b.py",
    "backslash": "a\\b.py",
    "nul": "a\x00b.py",
    "control": "a\x01b.py",
    "newline": "a\nb.py",
    "tab": "a\tb.py",
    "escape": "a\x1bb.py",
    "delete": "a\x7fb.py",
    "dot": ".",
    "dotdot": "..",
    "leading-dot": ".hidden.py",
    "only-suffix": ".py",
    "400-bytes": "é" * 200 + ".py",
    "256-bytes": "é" * 126 + "a.py",
    "not-python": "a.txt",
    "no-suffix": "script",
    "upper-suffix": "a.PY",
    "traversal": "../a.py",
}
# What a browser's multipart encoder can carry unmangled (httpx percent-encodes control characters).
MULTIPART_BAD_FILENAMES = [
    "a/b.py",
    "a\\b.py",
    ".hidden.py",
    "..",
    "é" * 200 + ".py",
    "a.txt",
    "../a.py",
]


def each_rejected(
    names: dict[str, str] | list[str],
    send: Callable[[str], Any],
    code: str,
    echoed_as: str | None = None,
) -> None:
    """Send every bad name; report every one not rejected with `code` (not just the first).

    With `echoed_as`, the error's details must also name the offending value under that key.
    """
    wrong = []
    for name in names.values() if isinstance(names, dict) else names:
        reply = send(name)
        body = reply.json()
        if (
            reply.status_code != 400
            or body.get("error_code") != code
            or (echoed_as is not None and body.get("details", {}).get(echoed_as) != name)
        ):
            wrong.append((name, reply.status_code, body))
    assert wrong == []


def test_bad_folder_names_on_create_change_nothing(alice: Caller, data_dir: Path) -> None:
    parent = alice.folder("geology")
    with unchanged(data_dir, alice):
        for parent_id in (None, parent["id"]):
            each_rejected(
                BAD_NAMES,
                lambda name, parent_id=parent_id: alice.post(
                    f"{API}/folders", json={"name": name, "parent_id": parent_id}
                ),
                "INVALID_FOLDER_NAME",
            )


def test_bad_folder_names_on_rename_change_nothing(alice: Caller, data_dir: Path) -> None:
    folder = alice.folder("geology")
    alice.upload("a.py", folder_id=folder["id"])
    with unchanged(data_dir, alice):
        each_rejected(
            BAD_NAMES,
            lambda name: alice.put(f"{API}/folders/{folder['id']}", json={"name": name}),
            "INVALID_FOLDER_NAME",
        )


def test_bad_filenames_from_text_change_nothing(alice: Caller, data_dir: Path) -> None:
    folder = alice.folder("geology")
    with unchanged(data_dir, alice):
        for folder_id in (None, folder["id"]):
            each_rejected(
                BAD_FILENAMES,
                lambda name, folder_id=folder_id: from_text(
                    alice,
                    filename=name,
                    display_name="x",
                    content=HELLO.decode(),
                    folder_id=folder_id,
                ),
                "INVALID_FILENAME",
                echoed_as="filename",
            )


def test_bad_filenames_on_upload_change_nothing(alice: Caller, data_dir: Path) -> None:
    folder = alice.folder("geology")
    with unchanged(data_dir, alice):
        for form in ({}, {"folder_id": str(folder["id"])}, {"replace": "true"}):
            each_rejected(
                MULTIPART_BAD_FILENAMES,
                lambda name, form=form: upload_raw(alice, name, **form),
                "INVALID_FILENAME",
                echoed_as="filename",
            )


def test_bad_filenames_on_rename_change_nothing(alice: Caller, data_dir: Path) -> None:
    """As the original: a new name without `.py` is a request error (VALIDATION_ERROR naming the
    filename); any other bad name is INVALID_FILENAME, as for uploads."""
    script = alice.upload("a.py")
    not_python = [name for name in BAD_FILENAMES.values() if not name.endswith(".py")]
    with unchanged(data_dir, alice):
        each_rejected(
            [name for name in BAD_FILENAMES.values() if name not in not_python],
            lambda name: alice.put(f"{API}/scripts/{script['id']}", json={"filename": name}),
            "INVALID_FILENAME",
        )
        each_rejected(
            not_python,
            lambda name: alice.put(f"{API}/scripts/{script['id']}", json={"filename": name}),
            "VALIDATION_ERROR",
            echoed_as="filename",
        )


def test_names_of_exactly_255_bytes_are_fine(alice: Caller, data_dir: Path) -> None:
    folder_name = "é" * 127 + "a"
    assert len(folder_name.encode()) == 255
    folder = alice.folder(folder_name)
    assert_folder(folder, name=folder_name, path=folder_name)
    assert f"{folder_name}/.gitkeep" in raw_paths(data_dir)


def test_every_accepted_script_name_can_be_checked_out_with_git(
    alice: Caller, data_dir: Path, tmp_path: Path
) -> None:
    """A name the API accepts must not make the repository impossible to clone.

    Names are limited to 255 bytes because that is what file systems hold; every path the service
    writes for a script (the script and its sidecar) has to fit, or `git clone` and the executor's
    checkout fail with "File name too long".
    """
    filename = "é" * 125 + "ab.py"
    assert len(filename.encode()) == 255
    reply = upload_raw(alice, filename)
    if reply.status_code == 400:
        assert_error(reply, 400, "INVALID_FILENAME")
        return
    assert reply.status_code == 201, reply.text
    clone = subprocess.run(
        ["git", "clone", "-q", str(data_dir / "scripts.git"), str(tmp_path / "clone")],
        capture_output=True,
        text=True,
    )
    assert clone.returncode == 0, clone.stderr
    assert all(
        len(part.encode()) <= 255 for path in raw_paths(data_dir) for part in path.split("/")
    ), "the service wrote a path component longer than 255 bytes"


def test_unicode_and_spaces_inside_names_are_fine(alice: Caller, data_dir: Path) -> None:
    folder = alice.folder("Геология 2024")
    script = alice.upload("анализ данных.py", folder_id=folder["id"])
    assert script["logical_path"] == "Геология 2024/анализ данных.py"
    assert blob(data_dir, "Геология 2024/анализ данных.py") == HELLO


# -- PUT /folders/{id}: rename ----------------------------------------------------------------
def test_rename_folder_moves_everything_inside_in_one_commit(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    analysis = alice.folder("analysis", parent_id=geology["id"])
    a = alice.upload("a.py", folder_id=geology["id"], description="first")
    b = alice.upload("b.py", content=OTHER, folder_id=analysis["id"])
    with one_commit(data_dir, "alice", "Rename folder geology -> geo"):
        reply = alice.put(f"{API}/folders/{geology['id']}", json={"name": "geo"})
    assert reply.status_code == 200, reply.text
    assert_folder(reply.json(), id=geology["id"], name="geo", path="geo", parent_id=None)
    assert tree_paths(data_dir) == {
        "geo/.gitkeep",
        "geo/a.py",
        "geo/a.py.meta.json",
        "geo/analysis/.gitkeep",
        "geo/analysis/b.py",
        "geo/analysis/b.py.meta.json",
    }
    assert blob(data_dir, "geo/a.py") == HELLO
    assert blob(data_dir, "geo/analysis/b.py") == OTHER
    assert sidecar(data_dir, "geo/a.py")["description"] == "first"
    sub = alice.get(f"{API}/folders/{analysis['id']}").json()
    assert_folder(sub, id=analysis["id"], path="geo/analysis", parent_id=geology["id"])
    assert_script(
        alice.get(f"{API}/scripts/{a['id']}").json(),
        logical_path="geo/a.py",
        folder_id=geology["id"],
        description="first",
    )
    assert_script(
        alice.get(f"{API}/scripts/{b['id']}").json(),
        logical_path="geo/analysis/b.py",
        folder_id=analysis["id"],
    )
    assert alice.get(f"{API}/scripts/{b['id']}/content").json() == {"content": OTHER.decode()}
    [item] = alice.tree()["root_folders"]
    assert item["folder"]["path"] == "geo"
    assert [s["logical_path"] for s in item["scripts"]] == ["geo/a.py"]
    assert [s["logical_path"] for s in item["subfolders"][0]["scripts"]] == ["geo/analysis/b.py"]


def test_rename_nested_folder(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    analysis = alice.folder("analysis", parent_id=geology["id"])
    script = alice.upload("a.py", folder_id=analysis["id"])
    with one_commit(data_dir, "alice", "Rename folder geology/analysis -> geology/stats"):
        reply = alice.put(f"{API}/folders/{analysis['id']}", json={"name": "stats"})
    assert_folder(reply.json(), path="geology/stats", parent_id=geology["id"])
    assert alice.get(f"{API}/scripts/{script['id']}").json()["logical_path"] == (
        "geology/stats/a.py"
    )
    assert "geology/analysis/.gitkeep" not in tree_paths(data_dir)


def test_rename_folder_to_a_taken_name_is_409(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    alice.folder("geo")
    alice.upload("a.py", folder_id=geology["id"])
    alice.upload("x.py")
    with unchanged(data_dir, alice):
        assert_error(
            alice.put(f"{API}/folders/{geology['id']}", json={"name": "geo"}),
            409,
            "FOLDER_ALREADY_EXISTS",
            path="geo",
        )
        assert_error(
            alice.put(f"{API}/folders/{geology['id']}", json={"name": "x.py"}),
            409,
            "FOLDER_ALREADY_EXISTS",
            path="x.py",
        )


def test_rename_missing_folder_is_404(alice: Caller, data_dir: Path) -> None:
    with unchanged(data_dir, alice):
        reply = alice.put(f"{API}/folders/999", json={"name": "x"})
    assert_error(reply, 404, "FOLDER_NOT_FOUND", folder_id=999)


def test_update_folder_with_nothing_to_do_is_400(alice: Caller, data_dir: Path) -> None:
    folder = alice.folder("geology")
    with unchanged(data_dir, alice):
        assert_error(alice.put(f"{API}/folders/{folder['id']}", json={}), 400, "VALIDATION_ERROR")
        assert_error(
            alice.put(f"{API}/folders/{folder['id']}", json={"name": ""}), 400, "VALIDATION_ERROR"
        )


# -- PUT /folders/{id}: move (additive) ---------------------------------------------------------
def test_move_folder_under_another_and_back_to_the_root(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    archive = alice.folder("archive")
    script = alice.upload("a.py", folder_id=geology["id"])
    with one_commit(data_dir, "alice", mentions=("geology", "archive/geology")):
        reply = alice.put(f"{API}/folders/{geology['id']}", json={"parent_id": archive["id"]})
    assert reply.status_code == 200, reply.text
    assert_folder(
        reply.json(),
        id=geology["id"],
        name="geology",
        path="archive/geology",
        parent_id=archive["id"],
    )
    assert tree_paths(data_dir) == {
        "archive/.gitkeep",
        "archive/geology/.gitkeep",
        "archive/geology/a.py",
        "archive/geology/a.py.meta.json",
    }
    assert_script(
        alice.get(f"{API}/scripts/{script['id']}").json(),
        logical_path="archive/geology/a.py",
        folder_id=geology["id"],
    )
    [item] = alice.tree()["root_folders"]
    assert item["folder"]["id"] == archive["id"]
    assert item["subfolders"][0]["folder"]["id"] == geology["id"]

    with one_commit(data_dir, "alice", mentions=("archive/geology", "geology")):
        reply = alice.put(f"{API}/folders/{geology['id']}", json={"parent_id": None})
    assert_folder(reply.json(), path="geology", parent_id=None)
    assert "geology/a.py" in tree_paths(data_dir)
    # The folder it left stays, empty.
    assert "archive/.gitkeep" in tree_paths(data_dir)


def test_move_and_rename_folder_at_once(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    archive = alice.folder("archive")
    with one_commit(data_dir, "alice", mentions=("geology", "archive/old")):
        reply = alice.put(
            f"{API}/folders/{geology['id']}", json={"name": "old", "parent_id": archive["id"]}
        )
    assert_folder(reply.json(), id=geology["id"], name="old", path="archive/old")


@pytest.mark.parametrize("target", ["itself", "child", "grandchild"])
def test_move_folder_into_itself_is_400(alice: Caller, data_dir: Path, target: str) -> None:
    geology = alice.folder("geology")
    child = alice.folder("child", parent_id=geology["id"])
    grandchild = alice.folder("grandchild", parent_id=child["id"])
    parent_id = {"itself": geology, "child": child, "grandchild": grandchild}[target]["id"]
    with unchanged(data_dir, alice):
        reply = alice.put(f"{API}/folders/{geology['id']}", json={"parent_id": parent_id})
        assert_error(reply, 400)


def test_move_folder_to_missing_parent_is_404(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    with unchanged(data_dir, alice):
        reply = alice.put(f"{API}/folders/{geology['id']}", json={"parent_id": 999})
    assert_error(reply, 404, "PARENT_FOLDER_NOT_FOUND", parent_id=999)


def test_move_folder_onto_a_taken_path_is_409(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    archive = alice.folder("archive")
    alice.folder("geology", parent_id=archive["id"])
    with unchanged(data_dir, alice):
        reply = alice.put(f"{API}/folders/{geology['id']}", json={"parent_id": archive["id"]})
    assert_error(reply, 409, "FOLDER_ALREADY_EXISTS", path="archive/geology")


# -- DELETE /folders/{id} ---------------------------------------------------------------------
def test_delete_folder_removes_everything_inside(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    analysis = alice.folder("analysis", parent_id=geology["id"])
    a = alice.upload("a.py", folder_id=geology["id"])
    b = alice.upload("b.py", folder_id=analysis["id"])
    keep = alice.upload("keep.py")
    with one_commit(data_dir, "alice", "Delete folder geology"):
        reply = alice.delete(f"{API}/folders/{geology['id']}")
    assert reply.status_code == 204, reply.text
    assert reply.content == b""
    assert tree_paths(data_dir) == {"keep.py", "keep.py.meta.json"}
    assert_error(alice.get(f"{API}/folders/{geology['id']}"), 404, "FOLDER_NOT_FOUND")
    assert_error(alice.get(f"{API}/folders/{analysis['id']}"), 404, "FOLDER_NOT_FOUND")
    for gone in (a, b):
        assert_error(alice.get(f"{API}/scripts/{gone['id']}"), 404, "SCRIPT_NOT_FOUND")
        assert_error(alice.get(f"{API}/scripts/{gone['id']}/content"), 404, "SCRIPT_NOT_FOUND")
    tree = alice.tree()
    assert tree["root_folders"] == []
    assert [s["id"] for s in tree["root_scripts"]] == [keep["id"]]
    # The name is free again, and the new folder does not inherit the old one's id.
    again = alice.folder("geology")
    assert again["id"] != geology["id"]


def test_delete_last_subfolder_keeps_the_parent(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    analysis = alice.folder("analysis", parent_id=geology["id"])
    with one_commit(data_dir, "alice", "Delete folder geology/analysis"):
        assert alice.delete(f"{API}/folders/{analysis['id']}").status_code == 204
    assert tree_paths(data_dir) == {"geology/.gitkeep"}
    assert alice.get(f"{API}/folders/{geology['id']}").status_code == 200
    [item] = alice.tree()["root_folders"]
    assert item["folder"]["id"] == geology["id"] and item["subfolders"] == []


def test_delete_missing_folder_is_404(alice: Caller, data_dir: Path) -> None:
    with unchanged(data_dir, alice):
        reply = alice.delete(f"{API}/folders/999")
    assert_error(reply, 404, "FOLDER_NOT_FOUND", folder_id=999)


@pytest.mark.parametrize("foreign", ["script", "subfolder", "deep-script"])
def test_delete_folder_with_someone_elses_content_is_403_and_deletes_nothing(
    alice: Caller, bob: Caller, admin: Caller, data_dir: Path, foreign: str
) -> None:
    geology = alice.folder("geology")
    analysis = alice.folder("analysis", parent_id=geology["id"])
    alice.upload("mine.py", folder_id=geology["id"])
    if foreign == "script":
        bob.upload("theirs.py", folder_id=geology["id"])
    elif foreign == "subfolder":
        bob.folder("bobs", parent_id=geology["id"])
    else:
        bob.upload("theirs.py", folder_id=analysis["id"])
    with unchanged(data_dir, alice):
        reply = alice.delete(f"{API}/folders/{geology['id']}")
        assert_error(reply, 403, "NOT_ALL_OWNER")
    # The admin may delete it all.
    with one_commit(data_dir, admin.login, "Delete folder geology"):
        assert admin.delete(f"{API}/folders/{geology['id']}").status_code == 204
    assert tree_paths(data_dir) == set()
    assert alice.tree() == {"root_scripts": [], "root_folders": []}


def test_delete_own_subfolder_inside_someone_elses_folder(
    alice: Caller, bob: Caller, data_dir: Path
) -> None:
    geology = alice.folder("geology")
    bobs = bob.folder("bobs", parent_id=geology["id"])
    bob.upload("b.py", folder_id=bobs["id"])
    with one_commit(data_dir, "bob", "Delete folder geology/bobs"):
        assert bob.delete(f"{API}/folders/{bobs['id']}").status_code == 204
    assert tree_paths(data_dir) == {"geology/.gitkeep"}


# -- POST /scripts (multipart) ------------------------------------------------------------------
def test_upload_script_to_the_root(alice: Caller, data_dir: Path) -> None:
    with one_commit(data_dir, "alice", "Create script a.py"):
        reply = upload_raw(
            alice, "a.py", display_name="Analysis", description="Does things", replace="false"
        )
    assert reply.status_code == 201, reply.text
    script = reply.json()
    assert_script(
        script,
        filename="a.py",
        logical_path="a.py",
        display_name="Analysis",
        description="Does things",
        folder_id=None,
        created_by=creator(alice),
        can_edit=True,
        can_delete=True,
    )
    assert tree_paths(data_dir) == {"a.py", "a.py.meta.json"}
    assert blob(data_dir, "a.py") == HELLO
    assert sidecar(data_dir, "a.py") == {"display_name": "Analysis", "description": "Does things"}
    assert alice.get(f"{API}/scripts/{script['id']}").json() == script


@pytest.mark.parametrize("folder_id", [None, "null", ""], ids=["absent", "null", "empty"])
def test_upload_without_a_folder_goes_to_the_root(
    alice: Caller, data_dir: Path, folder_id: str | None
) -> None:
    form = {} if folder_id is None else {"folder_id": folder_id}
    reply = upload_raw(alice, "a.py", **form)
    assert reply.status_code == 201, reply.text
    assert_script(reply.json(), logical_path="a.py", folder_id=None, description=None)
    assert "a.py" in tree_paths(data_dir)


def test_upload_into_a_folder(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    analysis = alice.folder("analysis", parent_id=geology["id"])
    with one_commit(data_dir, "alice", "Create script geology/analysis/a.py"):
        reply = upload_raw(alice, "a.py", folder_id=str(analysis["id"]))
    assert reply.status_code == 201, reply.text
    assert_script(reply.json(), logical_path="geology/analysis/a.py", folder_id=analysis["id"])
    assert blob(data_dir, "geology/analysis/a.py") == HELLO
    [item] = alice.tree()["root_folders"]
    assert [s["id"] for s in item["subfolders"][0]["scripts"]] == [reply.json()["id"]]


def test_someone_else_may_upload_into_a_folder(alice: Caller, bob: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    with one_commit(data_dir, "bob", "Create script geology/b.py"):
        script = bob.upload("b.py", folder_id=geology["id"])
    assert script["created_by"] == creator(bob)


def test_upload_into_a_missing_folder_is_404(alice: Caller, data_dir: Path) -> None:
    with unchanged(data_dir, alice):
        reply = upload_raw(alice, "a.py", folder_id="999")
    assert_error(reply, 404, "FOLDER_NOT_FOUND", folder_id=999)


def test_upload_with_non_integer_folder_id_is_400(alice: Caller, data_dir: Path) -> None:
    with unchanged(data_dir, alice):
        assert_error(upload_raw(alice, "a.py", folder_id="abc"), 400, "VALIDATION_ERROR")


def test_upload_without_a_file_is_400(alice: Caller, data_dir: Path) -> None:
    with unchanged(data_dir, alice):
        reply = alice.post(f"{API}/scripts", data={"display_name": "x"})
        assert_error(reply, 400, "VALIDATION_ERROR")
        reply = alice.post(
            f"{API}/scripts", files={"file": ("", HELLO)}, data={"display_name": "x"}
        )
        assert_error(reply, 400, "VALIDATION_ERROR")


@pytest.mark.parametrize("display_name", [None, ""], ids=["absent", "empty"])
def test_upload_without_a_display_name_is_400(
    alice: Caller, data_dir: Path, display_name: str | None
) -> None:
    form = {} if display_name is None else {"display_name": display_name}
    with unchanged(data_dir, alice):
        reply = alice.post(f"{API}/scripts", files={"file": ("a.py", HELLO)}, data=form)
    assert_error(reply, 400, "VALIDATION_ERROR")


MISSING_MAIN = {
    "no-main": b"def run(data):\n    return {}\n",
    "empty-file": b"",
    "two-required-args": b"def main(data, other):\n    return {}\n",
    "no-args": b"def main():\n    return {}\n",
    "async": b"async def main(data):\n    return {}\n",
    "nested-in-class": b"class A:\n    def main(self, data):\n        return {}\n",
    "lambda": b"main = lambda data: {}\n",
    "str-annotation": b"def main(data: str) -> dict:\n    return {}\n",
}
VALID_MAINS = {
    "unannotated": b"def main(data):\n    return {}\n",
    "dict": b"def main(data: dict) -> dict:\n    return {}\n",
    "dict-str-any": b"from typing import Any\n\ndef main(data: dict[str, Any]) -> dict:\n    return {}\n",
    "typing-dict": b"import typing\n\ndef main(data: typing.Dict) -> dict:\n    return {}\n",
    "keyword-only-extra": b"def main(data, *, verbose=False):\n    return {}\n",
    "after-helpers": b"import math\n\nX = 1\n\ndef helper():\n    pass\n\ndef main(data):\n"
    b"    return {'x': math.pi}\n",
}


INVALID_PYTHON = {
    "unclosed": b"def main(data):\n    return {\n",
    "missing-colon": b"def main(data)\n    pass\n",
    "nul-bytes": b"\x00\x01",
    "not-utf8": b"\xff\xfe",
}


def each_content_rejected(
    contents: dict[str, bytes], send: Callable[[bytes], Any], code: str
) -> None:
    wrong = []
    for case, content in contents.items():
        reply = send(content)
        if reply.status_code != 400 or reply.json().get("error_code") != code:
            wrong.append((case, reply.status_code, reply.json()))
    assert wrong == []


def test_upload_without_a_usable_main_is_400(alice: Caller, data_dir: Path) -> None:
    with unchanged(data_dir, alice):
        each_content_rejected(
            MISSING_MAIN, lambda content: upload_raw(alice, "a.py", content), "SCRIPT_MISSING_MAIN"
        )
        each_content_rejected(
            MISSING_MAIN,
            lambda content: from_text(
                alice, filename="a.py", display_name="a", content=content.decode()
            ),
            "SCRIPT_MISSING_MAIN",
        )


def test_upload_with_an_acceptable_main(alice: Caller, data_dir: Path) -> None:
    for number, (case, content) in enumerate(VALID_MAINS.items()):
        filename = f"ok{number}.py"
        with one_commit(data_dir, "alice", f"Create script {filename}"):
            reply = upload_raw(alice, filename, content)
            assert reply.status_code == 201, (case, reply.text)
        assert blob(data_dir, filename) == content


def test_upload_of_invalid_python_is_400(alice: Caller, data_dir: Path) -> None:
    with unchanged(data_dir, alice):
        for filename in ("a.py", "_helper.py"):
            each_content_rejected(
                INVALID_PYTHON,
                lambda content, filename=filename: upload_raw(alice, filename, content),
                "INVALID_SCRIPT_CONTENT",
            )


def test_helper_modules_need_only_parse(alice: Caller, data_dir: Path) -> None:
    helper = b"PI = 3.14159\n\ndef area(r):\n    return PI * r * r\n"
    with one_commit(data_dir, "alice", "Create script _geometry.py"):
        script = alice.upload("_geometry.py", helper)
    assert script["logical_path"] == "_geometry.py"
    assert blob(data_dir, "_geometry.py") == helper
    reply = from_text(alice, filename="_util.py", display_name="u", content="X = 1\n")
    assert reply.status_code == 201, reply.text


def test_upload_over_an_existing_script_needs_replace(
    alice: Caller, bob: Caller, data_dir: Path
) -> None:
    geology = alice.folder("geology")
    script = alice.upload("a.py", folder_id=geology["id"])
    with unchanged(data_dir, alice):
        for caller, replace in ((alice, {}), (alice, {"replace": "false"}), (bob, {})):
            reply = upload_raw(caller, "a.py", OTHER, folder_id=str(geology["id"]), **replace)
            assert_error(
                reply,
                409,
                "SCRIPT_EXISTS_REPLACE_REQUIRED",
                logical_path="geology/a.py",
                script_id=script["id"],
            )
    assert blob(data_dir, "geology/a.py") == HELLO


def test_upload_where_a_folder_is_in_the_way_is_409(alice: Caller, data_dir: Path) -> None:
    alice.folder("a.py")
    with unchanged(data_dir, alice):
        assert_error(upload_raw(alice, "a.py", replace="true"), 409)


def test_replace_keeps_the_id_and_changes_the_content(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    script = alice.upload("a.py", folder_id=geology["id"], description="old")
    with one_commit(data_dir, "alice", mentions=("Replace", "geology/a.py")):
        reply = upload_raw(
            alice,
            "a.py",
            OTHER,
            folder_id=str(geology["id"]),
            display_name="New name",
            description="new",
            replace="true",
        )
    assert reply.status_code == 201, reply.text
    assert_script(
        reply.json(),
        id=script["id"],
        logical_path="geology/a.py",
        display_name="New name",
        description="new",
        created_by=creator(alice),
    )
    assert blob(data_dir, "geology/a.py") == OTHER
    assert sidecar(data_dir, "geology/a.py") == {"display_name": "New name", "description": "new"}
    assert alice.get(f"{API}/scripts/{script['id']}/content").json() == {"content": OTHER.decode()}
    assert [s["id"] for s in alice.tree()["root_folders"][0]["scripts"]] == [script["id"]]


def test_replace_with_invalid_content_changes_nothing(alice: Caller, data_dir: Path) -> None:
    alice.upload("a.py")
    with unchanged(data_dir, alice):
        reply = upload_raw(alice, "a.py", b"def main(:\n", replace="true")
        assert_error(reply, 400, "INVALID_SCRIPT_CONTENT")
        reply = upload_raw(alice, "a.py", b"x = 1\n", replace="true")
        assert_error(reply, 400, "SCRIPT_MISSING_MAIN")
    assert blob(data_dir, "a.py") == HELLO


def test_replace_when_nothing_exists_creates(alice: Caller, data_dir: Path) -> None:
    with one_commit(data_dir, "alice", mentions=("a.py",)):
        reply = upload_raw(alice, "a.py", replace="true")
    assert reply.status_code == 201, reply.text
    assert blob(data_dir, "a.py") == HELLO


def test_replace_by_someone_else_is_403_and_by_admin_works(
    alice: Caller, bob: Caller, admin: Caller, data_dir: Path
) -> None:
    script = alice.upload("a.py")
    with unchanged(data_dir, alice):
        reply = upload_raw(bob, "a.py", OTHER, replace="true")
        assert_error(reply, 403, "NOT_SCRIPT_OWNER")
        reply = from_text(
            bob, filename="a.py", display_name="x", content=OTHER.decode(), replace=True
        )
        assert_error(reply, 403, "NOT_SCRIPT_OWNER")
    with one_commit(data_dir, admin.login, mentions=("a.py",)):
        reply = upload_raw(admin, "a.py", OTHER, replace="true")
    assert reply.status_code == 201, reply.text
    # Replacing neither changes the id nor hands the script to whoever replaced it.
    assert_script(reply.json(), id=script["id"], created_by=creator(alice), can_edit=True)
    assert blob(data_dir, "a.py") == OTHER
    assert bob.get(f"{API}/scripts/{script['id']}").json()["can_edit"] is False


def test_upload_with_bad_replace_value_is_400(alice: Caller, data_dir: Path) -> None:
    alice.upload("a.py")
    with unchanged(data_dir, alice):
        assert_error(upload_raw(alice, "a.py", replace="maybe"), 400, "VALIDATION_ERROR")


# -- POST /scripts-from-text --------------------------------------------------------------------
def test_script_from_text(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    with one_commit(data_dir, "alice", "Create script geology/t.py"):
        reply = from_text(
            alice,
            filename="t.py",
            display_name="Text",
            content=HELLO.decode(),
            description="typed in",
            folder_id=geology["id"],
        )
    assert reply.status_code == 201, reply.text
    script = reply.json()
    assert_script(
        script,
        filename="t.py",
        logical_path="geology/t.py",
        display_name="Text",
        description="typed in",
        folder_id=geology["id"],
        created_by=creator(alice),
    )
    assert blob(data_dir, "geology/t.py") == HELLO
    assert alice.get(f"{API}/scripts/{script['id']}").json() == script


def test_script_from_text_minimal_body_goes_to_the_root(alice: Caller, data_dir: Path) -> None:
    reply = from_text(alice, filename="t.py", display_name="T", content=HELLO.decode())
    assert reply.status_code == 201, reply.text
    assert_script(reply.json(), logical_path="t.py", folder_id=None, description=None)
    reply = from_text(
        alice, filename="u.py", display_name="U", content=HELLO.decode(), folder_id=None
    )
    assert_script(reply.json(), logical_path="u.py", folder_id=None)
    assert tree_paths(data_dir) == {"t.py", "t.py.meta.json", "u.py", "u.py.meta.json"}


def test_script_from_text_errors(alice: Caller, data_dir: Path) -> None:
    existing = alice.upload("a.py")
    good = HELLO.decode()
    with unchanged(data_dir, alice):
        assert_error(
            from_text(alice, filename="a.py", display_name="a", content=good),
            409,
            "SCRIPT_EXISTS_REPLACE_REQUIRED",
            logical_path="a.py",
            script_id=existing["id"],
        )
        assert_error(
            from_text(alice, filename="b.py", display_name="b", content=good, folder_id=999),
            404,
            "FOLDER_NOT_FOUND",
            folder_id=999,
        )
        assert_error(
            from_text(alice, filename="b.txt", display_name="b", content=good),
            400,
            "INVALID_FILENAME",
            filename="b.txt",
        )
        assert_error(
            from_text(alice, filename="b.py", display_name="b", content="def main(:"),
            400,
            "INVALID_SCRIPT_CONTENT",
        )
        assert_error(
            from_text(alice, filename="b.py", display_name="b", content="x = 1"),
            400,
            "SCRIPT_MISSING_MAIN",
        )
        for body in (
            {"display_name": "b", "content": good},
            {"filename": "b.py", "content": good},
            {"filename": "b.py", "display_name": "", "content": good},
            {"filename": "b.py", "display_name": "b"},
            {"filename": "b.py", "display_name": "b", "content": good, "folder_id": "x"},
        ):
            assert_error(alice.post(f"{API}/scripts-from-text", json=body), 400, "VALIDATION_ERROR")


def test_script_from_text_replace_keeps_the_id(alice: Caller, data_dir: Path) -> None:
    script = alice.upload("a.py")
    with one_commit(data_dir, "alice", mentions=("Replace", "a.py")):
        reply = from_text(
            alice, filename="a.py", display_name="B", content=OTHER.decode(), replace=True
        )
    assert reply.status_code == 201, reply.text
    assert_script(reply.json(), id=script["id"], display_name="B")
    assert blob(data_dir, "a.py") == OTHER


# -- GET /scripts/{id}, GET /scripts/{id}/content ----------------------------------------------
def test_get_missing_script_is_404(alice: Caller) -> None:
    assert_error(alice.get(f"{API}/scripts/999"), 404, "SCRIPT_NOT_FOUND", script_id=999)
    assert_error(alice.get(f"{API}/scripts/999/content"), 404, "SCRIPT_NOT_FOUND", script_id=999)


def test_get_script_is_computed_for_the_caller(alice: Caller, bob: Caller, admin: Caller) -> None:
    script = alice.upload("a.py")
    for caller, allowed in ((alice, True), (bob, False), (admin, True)):
        seen = caller.get(f"{API}/scripts/{script['id']}").json()
        assert_script(seen, id=script["id"], created_by=creator(alice), can_edit=allowed)
        assert seen["can_delete"] is allowed
        assert caller.get(f"{API}/scripts/{script['id']}/content").json() == {
            "content": HELLO.decode()
        }


EXACT_CONTENT = {
    "crlf": b"def main(data):\r\n    return {'a': 1}\r\n",
    "non-ascii": "# Ünïcödé — 油藏 ✓\ndef main(data: dict) -> dict:\n"
    "    return {'msg': 'привет'}\n".encode(),
    "no-trailing-newline": b"def main(data):\n    return {}",
    "tabs": b"def main(data):\n\tx = '\\t'\n\treturn {'t': x}\t\n",
    "mixed-endings": b"def main(data):\r\n    a = 1\n    return {}\r\n\n\n",
    "bom": b"\xef\xbb\xbfdef main(data):\n    return {}\n",
    "trailing-spaces": b"def main(data):   \n    return {}   \n   ",
}


@pytest.mark.parametrize("content", EXACT_CONTENT.values(), ids=EXACT_CONTENT.keys())
def test_content_is_byte_for_byte_via_upload(alice: Caller, data_dir: Path, content: bytes) -> None:
    script = alice.upload("a.py", content)
    assert blob(data_dir, "a.py") == content
    reply = alice.get(f"{API}/scripts/{script['id']}/content")
    assert reply.status_code == 200
    assert reply.json() == {"content": content.decode("utf-8")}


@pytest.mark.parametrize("content", EXACT_CONTENT.values(), ids=EXACT_CONTENT.keys())
def test_content_is_byte_for_byte_via_text_and_update(
    alice: Caller, data_dir: Path, content: bytes
) -> None:
    text = content.decode("utf-8")
    reply = from_text(alice, filename="t.py", display_name="t", content=text)
    assert reply.status_code == 201, reply.text
    assert blob(data_dir, "t.py") == content
    script = alice.upload("u.py")
    reply = alice.put(f"{API}/scripts/{script['id']}", json={"content": text})
    assert reply.status_code == 200, reply.text
    assert blob(data_dir, "u.py") == content
    assert alice.get(f"{API}/scripts/{script['id']}/content").json() == {"content": text}


# -- PUT /scripts/{id} ------------------------------------------------------------------------
def test_update_display_name_and_description(alice: Caller, data_dir: Path) -> None:
    script = alice.upload("a.py", display_name="Old", description="old")
    with one_commit(data_dir, "alice", mentions=("a.py",)):
        reply = alice.put(
            f"{API}/scripts/{script['id']}",
            json={"display_name": "Новое имя", "description": "new"},
        )
    assert reply.status_code == 200, reply.text
    assert_script(
        reply.json(),
        id=script["id"],
        logical_path="a.py",
        display_name="Новое имя",
        description="new",
    )
    assert sidecar(data_dir, "a.py") == {"display_name": "Новое имя", "description": "new"}
    # The sidecar stays readable in a text editor.
    assert "Новое имя" in blob(data_dir, "a.py.meta.json").decode("utf-8")
    assert blob(data_dir, "a.py") == HELLO
    assert alice.get(f"{API}/scripts/{script['id']}").json() == reply.json()


def test_update_description_to_null_clears_it(alice: Caller, data_dir: Path) -> None:
    script = alice.upload("a.py", display_name="Name", description="something")
    with one_commit(data_dir, "alice", mentions=("a.py",)):
        reply = alice.put(f"{API}/scripts/{script['id']}", json={"description": None})
    assert reply.status_code == 200, reply.text
    assert_script(reply.json(), description=None, display_name="Name")
    assert sidecar(data_dir, "a.py").get("description") is None
    assert alice.get(f"{API}/scripts/{script['id']}").json()["description"] is None


@pytest.mark.parametrize(
    "display_name",
    ["   ", " padded ", "tab\tinside", "Ünïcödé 名前 ✓", "x" * 255],
    ids=["blank", "padded", "tab", "unicode", "255-chars"],
)
def test_display_name_reads_back_as_accepted(
    alice: Caller, data_dir: Path, display_name: str
) -> None:
    """Whatever display name the API accepts is what it shows afterwards (or it is refused)."""
    reply = upload_raw(alice, "a.py", display_name=display_name)
    if reply.status_code == 400:
        assert_error(reply, 400, "VALIDATION_ERROR")
        assert tree_paths(data_dir) == set()
    else:
        assert reply.status_code == 201, reply.text
        accepted = reply.json()
        assert alice.get(f"{API}/scripts/{accepted['id']}").json() == accepted
        assert alice.tree()["root_scripts"] == [accepted]
        assert sidecar(data_dir, "a.py")["display_name"] == accepted["display_name"]

    script = alice.upload("b.py", display_name="Before")
    reply = alice.put(f"{API}/scripts/{script['id']}", json={"display_name": display_name})
    if reply.status_code == 400:
        assert_error(reply, 400, "VALIDATION_ERROR")
        assert sidecar(data_dir, "b.py")["display_name"] == "Before"
    else:
        assert reply.status_code == 200, reply.text
        assert alice.get(f"{API}/scripts/{script['id']}").json() == reply.json()


def test_update_only_display_name_keeps_description(alice: Caller, data_dir: Path) -> None:
    script = alice.upload("a.py", description="keep me")
    reply = alice.put(f"{API}/scripts/{script['id']}", json={"display_name": "Other"})
    assert_script(reply.json(), display_name="Other", description="keep me")
    assert sidecar(data_dir, "a.py") == {"display_name": "Other", "description": "keep me"}


def test_rename_script(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    script = alice.upload("a.py", folder_id=geology["id"], display_name="A", description="d")
    with one_commit(data_dir, "alice", mentions=("geology/a.py", "geology/b.py")):
        reply = alice.put(f"{API}/scripts/{script['id']}", json={"filename": "b.py"})
    assert reply.status_code == 200, reply.text
    assert_script(
        reply.json(),
        id=script["id"],
        filename="b.py",
        logical_path="geology/b.py",
        folder_id=geology["id"],
        display_name="A",
        description="d",
    )
    paths = tree_paths(data_dir)
    assert "geology/a.py" not in paths and "geology/a.py.meta.json" not in paths
    assert {"geology/b.py", "geology/b.py.meta.json"} <= paths
    assert blob(data_dir, "geology/b.py") == HELLO
    assert sidecar(data_dir, "geology/b.py") == {"display_name": "A", "description": "d"}
    assert [s["logical_path"] for s in alice.tree()["root_folders"][0]["scripts"]] == [
        "geology/b.py"
    ]
    # The old name is free again.
    assert alice.upload("a.py", folder_id=geology["id"])["id"] != script["id"]


def test_rename_and_change_content_is_one_commit(alice: Caller, data_dir: Path) -> None:
    script = alice.upload("a.py")
    with one_commit(data_dir, "alice", mentions=("a.py", "b.py")):
        reply = alice.put(
            f"{API}/scripts/{script['id']}",
            json={"filename": "b.py", "content": OTHER.decode(), "display_name": "B"},
        )
    assert reply.status_code == 200, reply.text
    assert_script(reply.json(), id=script["id"], logical_path="b.py", display_name="B")
    assert tree_paths(data_dir) == {"b.py", "b.py.meta.json"}
    assert blob(data_dir, "b.py") == OTHER


def test_update_content(alice: Caller, data_dir: Path) -> None:
    script = alice.upload("a.py", display_name="A")
    with one_commit(data_dir, "alice", mentions=("a.py",)):
        reply = alice.put(f"{API}/scripts/{script['id']}", json={"content": OTHER.decode()})
    assert reply.status_code == 200, reply.text
    assert_script(reply.json(), id=script["id"], logical_path="a.py", display_name="A")
    assert blob(data_dir, "a.py") == OTHER
    assert alice.get(f"{API}/scripts/{script['id']}/content").json() == {"content": OTHER.decode()}


@pytest.mark.parametrize(
    ("content", "code"),
    [
        ("def main(:\n", "INVALID_SCRIPT_CONTENT"),
        ("def run(data):\n    return {}\n", "SCRIPT_MISSING_MAIN"),
        ("async def main(data):\n    return {}\n", "SCRIPT_MISSING_MAIN"),
        ("def main(a, b):\n    return {}\n", "SCRIPT_MISSING_MAIN"),
    ],
    ids=["syntax", "no-main", "async-main", "two-args"],
)
def test_update_with_invalid_content_changes_nothing(
    alice: Caller, data_dir: Path, content: str, code: str
) -> None:
    script = alice.upload("a.py")
    with unchanged(data_dir, alice):
        reply = alice.put(f"{API}/scripts/{script['id']}", json={"content": content})
        assert_error(reply, 400, code)
        # Not even the parts of the request that were fine.
        reply = alice.put(
            f"{API}/scripts/{script['id']}",
            json={"content": content, "display_name": "X", "filename": "b.py"},
        )
        assert_error(reply, 400, code)
    assert blob(data_dir, "a.py") == HELLO


def test_renaming_a_helper_into_a_script_needs_main(alice: Caller, data_dir: Path) -> None:
    helper = alice.upload("_h.py", b"X = 1\n")
    with unchanged(data_dir, alice):
        reply = alice.put(f"{API}/scripts/{helper['id']}", json={"filename": "h.py"})
        assert_error(reply, 400, "SCRIPT_MISSING_MAIN")


def test_move_script_between_folders(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    script = alice.upload("a.py", display_name="A")
    with one_commit(data_dir, "alice", mentions=("a.py", "geology/a.py")):
        reply = alice.put(f"{API}/scripts/{script['id']}", json={"folder_id": geology["id"]})
    assert reply.status_code == 200, reply.text
    assert_script(
        reply.json(),
        id=script["id"],
        logical_path="geology/a.py",
        folder_id=geology["id"],
        display_name="A",
    )
    assert tree_paths(data_dir) == {"geology/.gitkeep", "geology/a.py", "geology/a.py.meta.json"}
    with one_commit(data_dir, "alice", mentions=("geology/a.py",)):
        reply = alice.put(f"{API}/scripts/{script['id']}", json={"folder_id": None})
    assert_script(reply.json(), logical_path="a.py", folder_id=None)
    # The folder it left survives empty.
    assert tree_paths(data_dir) == {"geology/.gitkeep", "a.py", "a.py.meta.json"}
    assert alice.get(f"{API}/folders/{geology['id']}").status_code == 200


@pytest.mark.parametrize(
    "body",
    [{}, {"display_name": "Same"}, {"filename": "a.py"}, {"description": None}],
    ids=["empty", "same-display-name", "same-filename", "same-null-description"],
)
def test_update_script_that_changes_nothing_makes_no_commit(
    alice: Caller, data_dir: Path, body: dict
) -> None:
    """A commit says what happened; when nothing did, there is nothing to record.

    (Renaming a folder to its own name already answers 200 without a commit.)
    """
    script = alice.upload("a.py", display_name="Same")
    with unchanged(data_dir, alice):
        reply = alice.put(f"{API}/scripts/{script['id']}", json=body)
        assert reply.status_code in (200, 400), reply.text
    if reply.status_code == 200:
        assert reply.json()["logical_path"] == "a.py"
        assert reply.json()["display_name"] == "Same"


def test_update_script_conflicts_are_409(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    a = alice.upload("a.py")
    alice.upload("b.py")
    alice.upload("a.py", folder_id=geology["id"])
    with unchanged(data_dir, alice):
        assert_error(
            alice.put(f"{API}/scripts/{a['id']}", json={"filename": "b.py"}),
            409,
            "SCRIPT_ALREADY_EXISTS",
            logical_path="b.py",
        )
        assert_error(
            alice.put(f"{API}/scripts/{a['id']}", json={"folder_id": geology["id"]}),
            409,
            "SCRIPT_ALREADY_EXISTS",
            logical_path="geology/a.py",
        )


def test_rename_script_onto_a_folder_name_is_409(alice: Caller, data_dir: Path) -> None:
    alice.folder("b.py")
    a = alice.upload("a.py")
    with unchanged(data_dir, alice):
        reply = alice.put(f"{API}/scripts/{a['id']}", json={"filename": "b.py"})
        assert_error(reply, 409, "SCRIPT_ALREADY_EXISTS", logical_path="b.py")


def test_update_script_errors(alice: Caller, data_dir: Path) -> None:
    a = alice.upload("a.py")
    with unchanged(data_dir, alice):
        assert_error(
            alice.put(f"{API}/scripts/999", json={"display_name": "x"}),
            404,
            "SCRIPT_NOT_FOUND",
            script_id=999,
        )
        assert_error(
            alice.put(f"{API}/scripts/{a['id']}", json={"folder_id": 999}),
            404,
            "FOLDER_NOT_FOUND",
            folder_id=999,
        )
        assert_error(
            alice.put(f"{API}/scripts/{a['id']}", json={"display_name": ""}),
            400,
            "VALIDATION_ERROR",
        )
        assert_error(
            alice.put(f"{API}/scripts/{a['id']}", json={"filename": "a.txt"}),
            400,
            "VALIDATION_ERROR",
            filename="a.txt",
        )
        assert_error(
            alice.put(f"{API}/scripts/{a['id']}", content=b"[", headers=JSON_HEADERS),
            400,
            "VALIDATION_ERROR",
        )


# -- DELETE /scripts/{id} ---------------------------------------------------------------------
def test_delete_script(alice: Caller, data_dir: Path) -> None:
    keep = alice.upload("keep.py")
    script = alice.upload("a.py")
    with one_commit(data_dir, "alice", "Delete script a.py"):
        reply = alice.delete(f"{API}/scripts/{script['id']}")
    assert reply.status_code == 204, reply.text
    assert reply.content == b""
    assert tree_paths(data_dir) == {"keep.py", "keep.py.meta.json"}
    assert_error(alice.get(f"{API}/scripts/{script['id']}"), 404, "SCRIPT_NOT_FOUND")
    assert [s["id"] for s in alice.tree()["root_scripts"]] == [keep["id"]]
    # History keeps it.
    assert blob(data_dir, "a.py", "main~1") == HELLO
    with unchanged(data_dir, alice):
        assert_error(alice.delete(f"{API}/scripts/{script['id']}"), 404, "SCRIPT_NOT_FOUND")


def test_delete_last_script_keeps_its_folder(alice: Caller, data_dir: Path) -> None:
    geology = alice.folder("geology")
    script = alice.upload("a.py", folder_id=geology["id"])
    with one_commit(data_dir, "alice", "Delete script geology/a.py"):
        assert alice.delete(f"{API}/scripts/{script['id']}").status_code == 204
    assert tree_paths(data_dir) == {"geology/.gitkeep"}
    [item] = alice.tree()["root_folders"]
    assert item == {
        "folder": alice.get(f"{API}/folders/{geology['id']}").json(),
        "scripts": [],
        "subfolders": [],
    }


def test_delete_missing_script_is_404(alice: Caller, data_dir: Path) -> None:
    with unchanged(data_dir, alice):
        reply = alice.delete(f"{API}/scripts/999")
    assert_error(reply, 404, "SCRIPT_NOT_FOUND", script_id=999)


# -- GET /tree --------------------------------------------------------------------------------
def test_tree_of_an_empty_repository(alice: Caller) -> None:
    assert alice.tree() == {"root_scripts": [], "root_folders": []}


def test_tree_is_nested_and_computed_per_caller(alice: Caller, bob: Caller, admin: Caller) -> None:
    geology = alice.folder("geology")
    analysis = alice.folder("analysis", parent_id=geology["id"])
    bobs = bob.folder("bobs", parent_id=geology["id"])
    root_script = alice.upload("root.py")
    a = alice.upload("a.py", folder_id=geology["id"])
    b = bob.upload("b.py", folder_id=analysis["id"])
    c = bob.upload("c.py", folder_id=bobs["id"])
    empty = bob.folder("empty")

    tree = alice.tree()
    assert set(tree) == {"root_scripts", "root_folders"}
    assert [s["id"] for s in tree["root_scripts"]] == [root_script["id"]]
    by_id = {item["folder"]["id"]: item for item in tree["root_folders"]}
    assert set(by_id) == {geology["id"], empty["id"]}
    assert by_id[empty["id"]]["scripts"] == [] and by_id[empty["id"]]["subfolders"] == []
    geo = by_id[geology["id"]]
    assert [s["id"] for s in geo["scripts"]] == [a["id"]]
    subs = {item["folder"]["id"]: item for item in geo["subfolders"]}
    assert set(subs) == {analysis["id"], bobs["id"]}
    assert [s["id"] for s in subs[analysis["id"]]["scripts"]] == [b["id"]]
    assert [s["id"] for s in subs[bobs["id"]]["scripts"]] == [c["id"]]
    assert subs[analysis["id"]]["folder"]["path"] == "geology/analysis"
    assert subs[analysis["id"]]["folder"]["parent_id"] == geology["id"]
    assert subs[analysis["id"]]["scripts"][0]["logical_path"] == "geology/analysis/b.py"

    owners = {
        geology["id"]: "alice",
        analysis["id"]: "alice",
        bobs["id"]: "bob",
        empty["id"]: "bob",
        root_script["id"]: "alice",
        a["id"]: "alice",
        b["id"]: "bob",
        c["id"]: "bob",
    }
    for caller in (alice, bob, admin):
        seen = list(all_items(caller.tree()))
        assert sorted((kind, obj["id"]) for kind, obj in seen) == sorted(
            [("folder", i) for i in (geology["id"], analysis["id"], bobs["id"], empty["id"])]
            + [("script", i) for i in (root_script["id"], a["id"], b["id"], c["id"])]
        )
        for kind, obj in seen:
            assert set(obj) == (FOLDER_FIELDS if kind == "folder" else SCRIPT_FIELDS)
            owner = owners[obj["id"]]
            assert obj["created_by"]["login"] == owner
            allowed = caller is admin or caller.login == owner
            assert obj["can_edit"] is allowed, (caller.login, obj)
            assert obj["can_delete"] is allowed, (caller.login, obj)
            # The tree and the single reads agree.
            single = caller.get(f"{API}/{kind}s/{obj['id']}").json()
            assert single == obj


# -- ownership matrix -------------------------------------------------------------------------
Setup = dict[str, int]


def _replace(caller: Caller, w: Setup) -> Any:
    return upload_raw(caller, "a.py", OTHER, folder_id=str(w["folder"]), replace="true")


def _replace_text(caller: Caller, w: Setup) -> Any:
    return from_text(
        caller,
        filename="a.py",
        display_name="a",
        content=OTHER.decode(),
        folder_id=w["folder"],
        replace=True,
    )


# name: (request, success status, 403 code, commit subject words, paths main must hold after)
OPERATIONS: dict[str, tuple[Callable[[Caller, Setup], Any], int, str, tuple[str, ...], set]] = {
    "folder-rename": (
        lambda c, w: c.put(f"{API}/folders/{w['folder']}", json={"name": "geo"}),
        200,
        "NOT_FOLDER_OWNER",
        ("Rename folder geology -> geo",),
        {"geo/a.py", "archive/.gitkeep"},
    ),
    "folder-move": (
        lambda c, w: c.put(f"{API}/folders/{w['folder']}", json={"parent_id": w["archive"]}),
        200,
        "NOT_FOLDER_OWNER",
        ("geology", "archive/geology"),
        {"archive/geology/a.py"},
    ),
    "folder-move-to-root": (
        lambda c, w: c.put(f"{API}/folders/{w['inner']}", json={"parent_id": None}),
        200,
        "NOT_FOLDER_OWNER",
        ("geology/inner", "inner"),
        {"inner/.gitkeep", "geology/a.py"},
    ),
    "folder-delete": (
        lambda c, w: c.delete(f"{API}/folders/{w['folder']}"),
        204,
        "NOT_ALL_OWNER",
        ("Delete folder geology",),
        {"archive/.gitkeep"},
    ),
    "script-replace": (
        _replace,
        201,
        "NOT_SCRIPT_OWNER",
        ("Replace", "geology/a.py"),
        {"geology/a.py"},
    ),
    "script-replace-text": (
        _replace_text,
        201,
        "NOT_SCRIPT_OWNER",
        ("Replace", "geology/a.py"),
        {"geology/a.py"},
    ),
    "script-update-metadata": (
        lambda c, w: c.put(f"{API}/scripts/{w['script']}", json={"display_name": "New"}),
        200,
        "NOT_SCRIPT_OWNER",
        ("geology/a.py",),
        {"geology/a.py"},
    ),
    "script-update-content": (
        lambda c, w: c.put(f"{API}/scripts/{w['script']}", json={"content": OTHER.decode()}),
        200,
        "NOT_SCRIPT_OWNER",
        ("geology/a.py",),
        {"geology/a.py"},
    ),
    "script-rename": (
        lambda c, w: c.put(f"{API}/scripts/{w['script']}", json={"filename": "b.py"}),
        200,
        "NOT_SCRIPT_OWNER",
        ("geology/a.py", "geology/b.py"),
        {"geology/b.py"},
    ),
    "script-move": (
        lambda c, w: c.put(f"{API}/scripts/{w['script']}", json={"folder_id": w["archive"]}),
        200,
        "NOT_SCRIPT_OWNER",
        ("geology/a.py", "archive/a.py"),
        {"archive/a.py"},
    ),
    "script-delete": (
        lambda c, w: c.delete(f"{API}/scripts/{w['script']}"),
        204,
        "NOT_SCRIPT_OWNER",
        ("Delete script geology/a.py",),
        {"geology/.gitkeep"},
    ),
}


@pytest.mark.parametrize("who", ["owner", "other", "admin"])
@pytest.mark.parametrize("operation", OPERATIONS.keys())
def test_ownership_matrix(
    request: pytest.FixtureRequest, alice: Caller, data_dir: Path, operation: str, who: str
) -> None:
    folder = alice.folder("geology")
    world = {
        "folder": folder["id"],
        "inner": alice.folder("inner", parent_id=folder["id"])["id"],
        "archive": alice.folder("archive")["id"],
        "script": alice.upload("a.py", folder_id=folder["id"])["id"],
    }
    caller: Caller = {"owner": alice, "other": None, "admin": None}[who] or (
        request.getfixturevalue({"other": "bob", "admin": "admin"}[who])
    )
    send, status, code, words, after = OPERATIONS[operation]

    if who == "other":
        with unchanged(data_dir, alice):
            reply = send(caller, world)
            # A permission problem is 403, never 401: the UI would log the user out on a 401.
            assert_error(reply, 403, code)
        return

    subject = words[0] if len(words) == 1 and " " in words[0] else None
    with one_commit(data_dir, caller.login, subject, mentions=words):
        reply = send(caller, world)
    assert reply.status_code == status, reply.text
    if status == 204:
        assert reply.content == b""
    else:
        body = reply.json()
        assert body["can_edit"] is True and body["can_delete"] is True
        assert body["created_by"] == creator(alice)
    assert after <= tree_paths(data_dir)


# -- what the original web UI relies on ---------------------------------------------------------
def test_json_content_type_on_get_and_delete_breaks_nothing(alice: Caller) -> None:
    folder = alice.folder("geology")
    script = alice.upload("a.py", folder_id=folder["id"])
    for url in (
        f"{API}/tree",
        f"{API}/folders/{folder['id']}",
        f"{API}/scripts/{script['id']}",
        f"{API}/scripts/{script['id']}/content",
    ):
        reply = alice.get(url, headers=JSON_HEADERS)
        assert reply.status_code == 200, (url, reply.text)
        assert isinstance(reply.json(), dict)
    reply = alice.delete(f"{API}/scripts/{script['id']}", headers=JSON_HEADERS)
    assert reply.status_code == 204, reply.text
    reply = alice.delete(f"{API}/folders/{folder['id']}", headers=JSON_HEADERS)
    assert reply.status_code == 204, reply.text
    assert alice.tree() == {"root_scripts": [], "root_folders": []}


def test_every_2xx_but_204_has_a_json_body(alice: Caller) -> None:
    replies = []
    replies.append(alice.post(f"{API}/folders", json={"name": "geology"}))
    folder_id = replies[-1].json()["id"]
    replies.append(alice.get(f"{API}/folders/{folder_id}"))
    replies.append(alice.put(f"{API}/folders/{folder_id}", json={"name": "geo"}))
    replies.append(upload_raw(alice, "a.py", folder_id=str(folder_id)))
    script_id = replies[-1].json()["id"]
    replies.append(upload_raw(alice, "a.py", OTHER, folder_id=str(folder_id), replace="true"))
    replies.append(from_text(alice, filename="t.py", display_name="t", content=HELLO.decode()))
    replies.append(alice.get(f"{API}/scripts/{script_id}"))
    replies.append(alice.get(f"{API}/scripts/{script_id}/content"))
    replies.append(alice.put(f"{API}/scripts/{script_id}", json={"display_name": "x"}))
    replies.append(alice.get(f"{API}/tree"))
    for reply in replies:
        assert 200 <= reply.status_code < 300 and reply.status_code != 204, reply.text
        assert reply.headers["content-type"].startswith("application/json"), reply.headers
        assert isinstance(reply.json(), dict)
    for reply in (
        alice.delete(f"{API}/scripts/{script_id}"),
        alice.delete(f"{API}/folders/{folder_id}"),
    ):
        assert reply.status_code == 204
        assert reply.content == b""


ENDPOINTS = [
    ("POST", "/folders", {"json": {"name": "x"}}),
    ("GET", "/folders/{folder}", {}),
    ("PUT", "/folders/{folder}", {"json": {"name": "y"}}),
    ("DELETE", "/folders/{folder}", {}),
    ("POST", "/scripts", {"files": {"file": ("b.py", HELLO)}, "data": {"display_name": "b"}}),
    (
        "POST",
        "/scripts-from-text",
        {"json": {"filename": "b.py", "display_name": "b", "content": HELLO.decode()}},
    ),
    ("GET", "/scripts/{script}", {}),
    ("GET", "/scripts/{script}/content", {}),
    ("PUT", "/scripts/{script}", {"json": {"display_name": "z"}}),
    ("DELETE", "/scripts/{script}", {}),
    ("GET", "/tree", {}),
    ("POST", "/validate", {"json": {"content": HELLO.decode()}}),
]


@pytest.mark.parametrize("token", [None, "garbage", "expired-looking.jwt.value"])
def test_every_endpoint_needs_a_token(alice: Caller, data_dir: Path, token: str | None) -> None:
    folder = alice.folder("geology")
    script = alice.upload("a.py", folder_id=folder["id"])
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    with unchanged(data_dir, alice):
        for method, path, kwargs in ENDPOINTS:
            url = API + path.format(folder=folder["id"], script=script["id"])
            reply = alice.client.request(method, url, headers=headers, **kwargs)
            assert_error(reply, 401)


def test_error_replies_never_leak_host_paths(alice: Caller, data_dir: Path) -> None:
    alice.upload("a.py")
    for reply in (
        upload_raw(alice, "a.py"),
        upload_raw(alice, "b.py", b"def main(:"),
        alice.get(f"{API}/scripts/999"),
        alice.put(f"{API}/folders/999", json={"name": "x"}),
    ):
        assert 400 <= reply.status_code < 500
        assert str(data_dir) not in reply.text
        assert "scripts.git" not in reply.text


# -- GET /scripts/{id}/content?highlight=true (additive) ----------------------------------------
HOSTILE = (
    "\n\n"  # leading blank lines: a lexer's defaults would drop them and shift every line
    '"""A docstring\nover two lines."""\n'
    "def main(data: dict) -> dict:\n"
    "    x = '</pre><script>alert(1)</script>'  # & <b>not bold</b>\n"
    "    return {'x': x}\n"
    "\n"
)


def shown_text(html: str) -> str:
    """What a browser shows of the highlighted HTML: the tags gone, the entities decoded."""
    return unescape(re.sub(r"<[^>]*>", "", html))


def test_highlighted_content_is_escaped_classed_and_line_for_line(alice: Caller) -> None:
    script = alice.upload("a.py", HOSTILE.encode())
    reply = alice.get(f"{API}/scripts/{script['id']}/content", params={"highlight": "true"})
    assert reply.status_code == 200, reply.text
    body = reply.json()
    assert set(body) == {"content", "html"} and body["content"] == HOSTILE
    html = body["html"]
    # Nothing of the script becomes markup: its `</pre><script>` and `<b>` arrive as text.
    assert "<script" not in html and "</pre" not in html and "<b>" not in html
    assert "&lt;/pre&gt;&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert set(re.findall(r"</?([A-Za-z]+)", html)) == {"span"}
    # Classes for the UI's stylesheet, not inline styles.
    assert "style=" not in html
    assert '<span class="k">def</span>' in html and '<span class="nf">main</span>' in html
    # One line per source line, each one complete (the docstring's spans close at line ends).
    assert html.count("\n") == HOSTILE.count("\n")
    for line in html.split("\n"):
        assert line.count("<span") == line.count("</span>"), line
    assert shown_text(html).split("\n") == HOSTILE.split("\n")


@pytest.mark.parametrize("content", EXACT_CONTENT.values(), ids=EXACT_CONTENT.keys())
def test_highlighting_keeps_the_line_count(alice: Caller, content: bytes) -> None:
    script = alice.upload("a.py", content)
    reply = alice.get(f"{API}/scripts/{script['id']}/content", params={"highlight": "true"})
    assert reply.status_code == 200, reply.text
    source = content.decode("utf-8")
    assert reply.json()["content"] == source
    html = reply.json()["html"]
    assert len(html.splitlines()) == len(source.splitlines())
    # The text is the source's, with line ends as `<pre>` shows them (and without a BOM).
    lines = source.removeprefix("\ufeff").replace("\r\n", "\n").replace("\r", "\n")
    assert shown_text(html) == lines


def test_a_very_large_script_is_shown_escaped_but_not_coloured(alice: Caller) -> None:
    # Over the highlighter's size limit (Pygments would take seconds): still safe and line-exact.
    filler = "".join(f"x{n} = '</pre><script>{n}'\n" for n in range(8_000))
    content = f"{HOSTILE}{filler}"
    script = alice.upload("big.py", content.encode())
    reply = alice.get(f"{API}/scripts/{script['id']}/content", params={"highlight": "true"})
    html = reply.json()["html"]
    assert "<span" not in html and "<script" not in html
    assert shown_text(html).split("\n") == content.split("\n")


def test_highlight_with_rev_and_without_highlight(alice: Caller, data_dir: Path) -> None:
    script = alice.upload("a.py")
    first = commits(data_dir)[0]["id"]
    reply = alice.put(f"{API}/scripts/{script['id']}", json={"content": OTHER.decode()})
    assert reply.status_code == 200, reply.text
    url = f"{API}/scripts/{script['id']}/content"

    old = alice.get(url, params={"rev": first, "highlight": "true"}).json()
    assert set(old) == {"content", "revision", "path", "html"}
    assert old["content"] == HELLO.decode() and old["revision"] == first
    assert shown_text(old["html"]) == HELLO.decode()
    now = alice.get(url, params={"highlight": "true"}).json()
    assert set(now) == {"content", "html"} and shown_text(now["html"]) == OTHER.decode()
    # Without highlight=true the replies are exactly what they always were.
    assert alice.get(url).json() == {"content": OTHER.decode()}
    assert alice.get(url, params={"highlight": "false"}).json() == {"content": OTHER.decode()}
    assert alice.get(url, params={"rev": first}).json() == {
        "content": HELLO.decode(),
        "revision": first,
        "path": "a.py",
    }
    assert_error(alice.get(url, params={"highlight": "perhaps"}), 400, "VALIDATION_ERROR")
    assert_error(alice.get(f"{API}/scripts/999/content?highlight=true"), 404, "SCRIPT_NOT_FOUND")


def test_the_highlight_stylesheet_is_scoped_and_covers_the_classes() -> None:
    css = stylesheet()
    rules = [line for line in css.splitlines() if line.strip()]
    # Every rule under the scope class: nothing restyles the rest of the UI (`pre`, tables).
    assert rules and all(rule.startswith(f".{CSS_CLASS} ") for rule in rules), css
    assert "style" not in CSS_CLASS and ".hl .k {" in css and ".hl .nf {" in css
    assert "pre {" not in css and "linenos" not in css


# -- POST /validate (additive) ------------------------------------------------------------------
VALIDATE_CASES = {
    "valid": ("a.py", HELLO.decode()),
    "helper-without-main": ("_util.py", "X = 1\n"),
    "syntax-error": ("a.py", "def main(data):\n    return 1 +\n"),
    "missing-main": ("a.py", "def run(data):\n    return {}\n"),
    "not-py": ("a.txt", HELLO.decode()),
    "only-suffix": (".py", HELLO.decode()),
    "slash": ("a/b.py", HELLO.decode()),
    "too-large": ("a.py", HELLO.decode() + "#" * (1 << 20)),
    "nul-byte": ("a.py", HELLO.decode() + "\0"),
    "lone-surrogate": ("a.py", HELLO.decode() + "# \ud800\n"),
}


def post_json(caller: Caller, url: str, body: dict[str, Any]) -> Any:
    # json.dumps escapes a lone surrogate (`\\ud800`), which the client's own encoder refuses.
    return caller.post(url, content=json.dumps(body), headers=JSON_HEADERS)


@pytest.mark.parametrize(
    ("filename", "content"), VALIDATE_CASES.values(), ids=VALIDATE_CASES.keys()
)
def test_validate_answers_what_a_save_would_and_saves_nothing(
    alice: Caller, data_dir: Path, filename: str, content: str
) -> None:
    with unchanged(data_dir, alice):
        checked = post_json(alice, f"{API}/validate", {"filename": filename, "content": content})
    saved = post_json(
        alice,
        f"{API}/scripts-from-text",
        {"filename": filename, "display_name": "x", "content": content},
    )
    assert saved.status_code in (201, 400, 413), saved.text
    if saved.status_code == 201:
        assert checked.status_code == 200 and checked.json() == {"valid": True}
    else:
        assert (checked.status_code, checked.json()) == (saved.status_code, saved.json())


def test_validate_reports_the_rule_that_failed(alice: Caller, data_dir: Path) -> None:
    before = commits(data_dir)
    url = f"{API}/validate"
    reply = alice.post(url, json={"content": HELLO.decode()})
    assert reply.status_code == 200 and reply.json() == {"valid": True}
    assert_error(
        alice.post(url, json={"content": "def main(data):\n    return 1 +\n"}),
        400,
        "INVALID_SCRIPT_CONTENT",
        filename="script.py",  # the default name
        line=2,
        offset=15,
    )
    assert_error(alice.post(url, json={"content": "x = 1\n"}), 400, "SCRIPT_MISSING_MAIN")
    assert_error(
        alice.post(url, json={"content": HELLO.decode(), "filename": "a.sh"}),
        400,
        "INVALID_FILENAME",
        filename="a.sh",
    )
    too_large = HELLO.decode() + "#" * (1 << 20)
    body = assert_error(alice.post(url, json={"content": too_large}), 413, "PAYLOAD_TOO_LARGE")
    assert body["details"]["max_size"] == 1 << 20
    for bad in ({}, {"filename": "a.py"}, {"content": HELLO.decode(), "filename": ""}):
        assert_error(alice.post(url, json=bad), 400, "VALIDATION_ERROR")
    # A name already taken is the save's business, not the script's: validation says valid.
    alice.upload("a.py")
    reply = alice.post(url, json={"content": HELLO.decode(), "filename": "a.py"})
    assert reply.status_code == 200
    assert len(commits(data_dir)) == len(before) + 1  # only the upload moved main


def test_a_lone_surrogate_in_json_content_is_400_not_500(alice: Caller, data_dir: Path) -> None:
    script = alice.upload("a.py")
    content = HELLO.decode() + "# \ud800\n"
    with unchanged(data_dir, alice):
        for method, url, body in (
            ("POST", "/scripts-from-text", {"filename": "b.py", "display_name": "b"}),
            ("PUT", f"/scripts/{script['id']}", {}),
        ):
            reply = alice.request(
                method,
                API + url,
                content=json.dumps({**body, "content": content}),
                headers=JSON_HEADERS,
            )
            assert_error(reply, 400, "INVALID_SCRIPT_CONTENT")
