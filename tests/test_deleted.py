"""Deleted scripts: found in a folder's "deleted" view and restored under their old id, through
the HTTP API, with deletions made by the API and by `git push`."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

from gitscripts.cli import main as cli
from tests.conftest import PUSH_BEHIND_THE_SERVICE, Caller, commits, tree_paths
from tests.test_history import GIT_ENV, assert_error, put, run, source

API = "/api/v1/scripts-manager"


def deleted(caller: Caller, folder: str | None = None) -> list[dict[str, Any]]:
    reply = caller.get(f"{API}/deleted", params={"folder": folder} if folder else {})
    assert reply.status_code == 200, reply.text
    return reply.json()


def restore(caller: Caller, script_id: int, expect: int = 201, **body: Any) -> dict[str, Any]:
    reply = caller.post(f"{API}/deleted/{script_id}/restore", json=body)
    assert reply.status_code == expect, reply.text
    return reply.json()


def test_a_deleted_script_is_listed_in_its_folder_and_restored_with_its_old_id(
    alice: Caller, bob: Caller, data_dir: Path
) -> None:
    geo = alice.folder("geo")
    script = alice.upload("calc.py", source(1).encode(), folder_id=geo["id"], display_name="Calc")
    put(alice, script["id"], content=source(2))
    other = bob.upload("other.py", source(9).encode())
    assert alice.delete(f"{API}/scripts/{script['id']}").status_code == 204
    deletion, last = commits(data_dir)[:2]  # last: main just before the deletion
    assert bob.delete(f"{API}/scripts/{other['id']}").status_code == 204

    [item] = deleted(alice, "geo")
    assert item["script_id"] == script["id"]
    assert item["path"] == item["deleted_path"] == "geo/calc.py"
    assert item["display_name"] == "Calc"
    assert item["created_by"] == {"id": alice.id, "login": "alice"}
    assert item["deleted_in"]["revision"] == deletion["id"]
    assert item["deleted_in"]["author"]["login"] == "alice"
    assert item["deleted_in"]["message"] == "Delete script geo/calc.py"
    assert item["last_revision"] == last["id"]
    assert item["path_taken"] is False and item["can_restore"] is True
    # The root's view holds everything deleted anywhere, most recently deleted first.
    assert [i["path"] for i in deleted(alice)] == ["other.py", "geo/calc.py"]
    assert deleted(bob, "geo")[0]["can_restore"] is False
    assert deleted(alice, "nowhere") == []
    for bad in ("..", "geo/../x", "/"):
        assert_error(alice.get(f"{API}/deleted", params={"folder": bad}), 400, "VALIDATION_ERROR")
    assert_error(alice.get(f"{API}/deleted/{other['id'] + 100}"), 404, "SCRIPT_NOT_FOUND")
    # Its last content is there to read.
    detail = alice.get(f"{API}/deleted/{script['id']}").json()
    assert detail["content"] == source(2)
    # A deleted script is not a script any more.
    assert_error(alice.get(f"{API}/scripts/{script['id']}"), 404, "SCRIPT_NOT_FOUND")

    restored = restore(alice, script["id"], message="Bring calc back")
    assert restored["id"] == script["id"]
    assert restored["logical_path"] == "geo/calc.py" and restored["folder_id"] == geo["id"]
    assert restored["display_name"] == "Calc"
    assert restored["created_by"] == {"id": alice.id, "login": "alice"}
    assert restored["created_at"] == script["created_at"]
    assert restored["restored_from"] == last["id"]
    assert commits(data_dir)[0]["subject"] == "Bring calc back"
    assert commits(data_dir)[0]["author"] == "alice"
    assert alice.get(f"{API}/scripts/{script['id']}").json()["logical_path"] == "geo/calc.py"
    assert run(alice, "geo/calc.py", "main") == {"version": 2}
    versions = alice.get(f"{API}/scripts/{script['id']}/history").json()["versions"]
    assert (versions[0]["change"], versions[0]["message"]) == ("added", "Bring calc back")
    assert deleted(alice, "geo") == []
    assert_error(alice.post(f"{API}/deleted/{script['id']}/restore"), 404, "SCRIPT_NOT_FOUND")
    # The default message says what happened.
    [other_item] = deleted(bob)
    restore(bob, other["id"])
    short = other_item["last_revision"][:7]
    assert commits(data_dir)[0]["subject"] == f"Restore deleted script other.py from {short}"


def test_restore_follows_a_renamed_folder_and_remakes_a_deleted_one(
    alice: Caller, data_dir: Path
) -> None:
    geo = alice.folder("geo")
    sub = alice.folder("deep", parent_id=geo["id"])
    kept = alice.upload("kept.py", folder_id=sub["id"])
    calc = alice.upload("calc.py", source(1).encode(), folder_id=sub["id"])
    assert alice.delete(f"{API}/scripts/{calc['id']}").status_code == 204
    reply = alice.put(f"{API}/folders/{geo['id']}", json={"name": "geology"})
    assert reply.status_code == 200, reply.text

    assert deleted(alice, "geo") == []
    [item] = deleted(alice, "geology")
    assert item["path"] == "geology/deep/calc.py" and item["deleted_path"] == "geo/deep/calc.py"
    assert [i["script_id"] for i in deleted(alice, "geology/deep")] == [calc["id"]]
    restored = restore(alice, calc["id"])
    assert restored["id"] == calc["id"] and restored["logical_path"] == "geology/deep/calc.py"
    assert restored["folder_id"] == sub["id"]
    assert run(alice, "geology/deep/calc.py", "main") == {"version": 1}

    # A whole folder deleted: its scripts are listed from its parent, and a restore makes the
    # folders on the way again.
    assert alice.delete(f"{API}/folders/{geo['id']}").status_code == 204
    assert {i["script_id"] for i in deleted(alice)} == {calc["id"], kept["id"]}
    again = restore(alice, kept["id"])
    assert again["id"] == kept["id"] and again["logical_path"] == "geology/deep/kept.py"
    folders = alice.tree()["root_folders"]
    assert [f["folder"]["path"] for f in folders] == ["geology"]
    assert [f["folder"]["path"] for f in folders[0]["subfolders"]] == ["geology/deep"]
    assert again["folder_id"] == folders[0]["subfolders"][0]["folder"]["id"]
    assert "geology/deep/kept.py" in tree_paths(data_dir)


def test_restoring_onto_a_taken_path_is_409_and_a_stranger_gets_403(
    alice: Caller, bob: Caller, admin: Caller, data_dir: Path
) -> None:
    calc = alice.upload("calc.py", source(1).encode())
    assert alice.delete(f"{API}/scripts/{calc['id']}").status_code == 204
    head = commits(data_dir)[0]["id"]
    body = assert_error(bob.post(f"{API}/deleted/{calc['id']}/restore"), 403, "NOT_SCRIPT_OWNER")
    assert body["details"] == {"script_id": str(calc["id"])}
    taken = bob.upload("calc.py", source(5).encode())
    assert deleted(alice)[0]["path_taken"] is True
    body = assert_error(
        alice.post(f"{API}/deleted/{calc['id']}/restore"), 409, "SCRIPT_ALREADY_EXISTS"
    )
    assert body["details"] == {"logical_path": "calc.py", "script_id": str(taken["id"])}
    assert_error(alice.post(f"{API}/deleted/99/restore"), 404, "SCRIPT_NOT_FOUND")
    assert_error(
        alice.post(f"{API}/deleted/{calc['id']}/restore", json={"message": "a\x00b"}),
        400,
        "VALIDATION_ERROR",
    )
    assert commits(data_dir)[1]["id"] == head  # only bob's upload since
    # Once the path is free again, an admin may restore it for its owner.
    assert bob.delete(f"{API}/scripts/{taken['id']}").status_code == 204
    restored = restore(admin, calc["id"])
    assert restored["id"] == calc["id"] and restored["created_by"]["login"] == "alice"
    assert run(alice, "calc.py", "main") == {"version": 1}
    # Bob's deleted script now has its path taken.
    [item] = deleted(bob)
    assert item["script_id"] == taken["id"] and item["path_taken"] is True


def test_a_script_deleted_by_git_push_is_listed_and_restored_with_its_id(
    alice: Caller, data_dir: Path, tmp_path: Path, monkeypatch: Any
) -> None:
    geo = alice.folder("geo")
    calc = alice.upload("calc.py", source(3).encode(), folder_id=geo["id"])
    alice.upload("keep.py", folder_id=geo["id"])
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(data_dir / "scripts.git"), str(work)], check=True)
    for command in (
        ["rm", "-q", "geo/calc.py", "geo/calc.py.meta.json"],
        ["commit", "-qm", "Drop calc"],
        *[["commit", "-q", "--allow-empty", "-m", f"later {n}"] for n in range(2)],
        PUSH_BEHIND_THE_SERVICE,
    ):
        subprocess.run(["git", "-C", str(work), *command], check=True, env=GIT_ENV)
    pushed = commits(data_dir)

    [item] = deleted(alice, "geo")
    assert item["script_id"] == calc["id"]
    assert item["deleted_in"]["revision"] == pushed[2]["id"]  # the deleting commit, not main
    assert item["deleted_in"]["author"]["name"] == "Pusher"
    assert item["deleted_in"]["message"] == "Drop calc"
    assert item["last_revision"] == pushed[3]["id"]
    # `gitscripts reindex` keeps what git cannot hold: the deleted script's id and owner.
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    assert cli(["reindex"]) == 0
    assert [i["script_id"] for i in deleted(alice, "geo")] == [calc["id"]]

    restored = restore(alice, calc["id"])
    assert restored["id"] == calc["id"] and restored["created_by"]["login"] == "alice"
    assert run(alice, "geo/calc.py", "main") == {"version": 3}


def test_restore_by_path_and_revision(alice: Caller, bob: Caller, data_dir: Path) -> None:
    calc = alice.upload("calc.py", source(1).encode())
    first = commits(data_dir)[0]["id"]
    put(alice, calc["id"], content=source(2))
    assert alice.delete(f"{API}/scripts/{calc['id']}").status_code == 204
    url = f"{API}/deleted/restore"
    # Known to the index: its old id comes back, with the version asked for; its owner's to do.
    assert_error(
        bob.post(url, json={"path": "calc.py", "revision": first}), 403, "NOT_SCRIPT_OWNER"
    )
    reply = alice.post(url, json={"path": "calc.py", "revision": first})
    assert reply.status_code == 201, reply.text
    assert reply.json()["id"] == calc["id"] and reply.json()["restored_from"] == first
    assert run(alice, "calc.py", "main") == {"version": 1}
    # A path that held no script then, or a bad revision: nothing happens.
    head = commits(data_dir)[0]["id"]
    assert_error(
        alice.post(url, json={"path": "nope.py", "revision": first}), 404, "SCRIPT_NOT_FOUND"
    )
    assert_error(
        alice.post(url, json={"path": "calc.py", "revision": "a b"}), 400, "INVALID_REVISION"
    )
    assert_error(alice.post(url, json={"path": "calc.py"}), 400, "VALIDATION_ERROR")
    body = assert_error(
        alice.post(url, json={"path": "calc.py", "revision": first}), 409, "SCRIPT_ALREADY_EXISTS"
    )
    assert body["details"]["logical_path"] == "calc.py"
    assert commits(data_dir)[0]["id"] == head


def test_a_deletion_reverted_by_git_push_gives_the_script_its_id_back(
    alice: Caller, data_dir: Path, tmp_path: Path
) -> None:
    calc = alice.upload("calc.py", source(1).encode())
    other = alice.upload("other.py", source(2).encode())
    assert alice.delete(f"{API}/scripts/{calc['id']}").status_code == 204
    deletion = commits(data_dir)[0]["id"]
    assert alice.delete(f"{API}/scripts/{other['id']}").status_code == 204
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(data_dir / "scripts.git"), str(work)], check=True)
    (work / "other.py").write_text(source(3))  # other.py back, but not as it was
    for command in (
        ["revert", "--no-edit", deletion],  # calc.py back as it was
        ["add", "other.py"],
        ["commit", "-qm", "A new other.py"],
        PUSH_BEHIND_THE_SERVICE,
    ):
        subprocess.run(["git", "-C", str(work), *command], check=True, env=GIT_ENV)
    scripts = {s["filename"]: s for s in alice.tree()["root_scripts"]}
    assert scripts["calc.py"]["id"] == calc["id"]
    assert scripts["calc.py"]["created_by"]["login"] == "alice"
    assert run(alice, "calc.py", "main") == {"version": 1}
    # A different script at a deleted one's path is a new script; the deleted one stays deleted.
    assert scripts["other.py"]["id"] not in (calc["id"], other["id"])
    [item] = deleted(alice)
    assert item["script_id"] == other["id"] and item["path_taken"] is True


def test_an_older_copy_of_the_index_keeps_a_restored_scripts_id(
    alice: Caller, data_dir: Path, monkeypatch: Any
) -> None:
    calc = alice.upload("calc.py", source(1).encode())
    assert alice.delete(f"{API}/scripts/{calc['id']}").status_code == 204
    index_path = data_dir / "index.json"
    backup = index_path.read_text()  # a backup that knows calc.py only as deleted...
    restore(alice, calc["id"])
    index_path.write_text(backup)  # ...is all that is left
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    assert cli(["reindex"]) == 0
    [back] = alice.tree()["root_scripts"]
    assert back["id"] == calc["id"] and back["created_by"]["login"] == "alice"
    assert deleted(alice) == []


def test_reindex_finds_deleted_scripts_an_index_lost(
    alice: Caller, bob: Caller, data_dir: Path, monkeypatch: Any
) -> None:
    index_path = data_dir / "index.json"
    backup = index_path.read_text()  # users only: no script yet
    geo = alice.folder("geo")
    gone = alice.upload("gone.py", source(1).encode(), folder_id=geo["id"])
    replaced = bob.upload("replaced.py", source(2).encode())
    assert alice.delete(f"{API}/scripts/{gone['id']}").status_code == 204
    assert bob.delete(f"{API}/scripts/{replaced['id']}").status_code == 204
    bob.upload("replaced.py", source(3).encode())  # its path is taken again
    reply = alice.put(f"{API}/folders/{geo['id']}", json={"name": "geology"})
    assert reply.status_code == 200, reply.text
    index_path.write_text(backup)
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    assert cli(["reindex"]) == 0

    # What history shows deleted, at a path that is free now, is found again: a new id (the old
    # one went with the index), its creator as owner, where its folder is now.
    [item] = deleted(alice)
    assert item["path"] == "geology/gone.py" and item["deleted_path"] == "geo/gone.py"
    assert item["created_by"] == {"id": alice.id, "login": "alice"}
    assert item["deleted_in"]["message"] == "Delete script geo/gone.py"
    live_ids = {s["id"] for f in alice.tree()["root_folders"] for s in f["scripts"]}
    live_ids |= {s["id"] for s in alice.tree()["root_scripts"]}
    assert item["script_id"] not in live_ids
    restored = restore(alice, item["script_id"])
    assert restored["logical_path"] == "geology/gone.py"
    assert run(alice, "geology/gone.py", "main") == {"version": 1}
    # A second reindex finds nothing new.
    assert cli(["reindex"]) == 0
    assert deleted(alice) == []
