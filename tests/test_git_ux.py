"""Git where users expect it, through the HTTP API and the real git CLI: a message of one's own
on every write, a first version's diff against nothing, the tags that concern a script."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from tests.conftest import HELLO, Caller, commits, git
from tests.test_history import apply_patch, assert_error, history, put, source

API = "/api/v1/scripts-manager"


def full_message(data_dir: Path, rev: str = "main") -> str:
    return git(data_dir, "log", "-1", "--format=%B", rev).rstrip("\n")


def test_every_write_takes_an_optional_commit_message(alice: Caller, data_dir: Path) -> None:
    def wrote(expected: str) -> None:
        assert full_message(data_dir) == expected
        assert commits(data_dir)[0]["author"] == "alice"

    reply = alice.post(f"{API}/folders", json={"name": "geo", "message": "Folder for geology"})
    assert reply.status_code == 201, reply.text
    geo = reply.json()
    wrote("Folder for geology")
    lab = alice.folder("lab")
    wrote("Create folder lab")  # without a message: today's

    script = alice.upload("calc.py", source(1).encode(), folder_id=geo["id"], message="First cut")
    wrote("First cut")
    sid = script["id"]
    reply = alice.post(
        f"{API}/scripts-from-text",
        json={
            "filename": "calc.py",
            "display_name": "Calc",
            "content": source(2),
            "folder_id": geo["id"],
            "replace": True,
            "message": "Replaced from text\n\nWith a body that explains why.",
        },
    )
    assert reply.status_code == 201, reply.text
    assert reply.json()["id"] == sid
    wrote("Replaced from text\n\nWith a body that explains why.")

    put(alice, sid, content=source(3), message="  Fix the porosity cutoff  ")
    wrote("Fix the porosity cutoff")  # trimmed
    put(alice, sid, filename="calc2.py", message="Clearer name")
    wrote("Clearer name")
    put(alice, sid, folder_id=lab["id"], message="Belongs to the lab")
    wrote("Belongs to the lab")
    put(alice, sid, description="tuned", message="")
    wrote("Update metadata of lab/calc2.py")  # a blank message is no message
    first = history(alice, sid)["versions"][-1]["revision"]
    reply = alice.post(
        f"{API}/scripts/{sid}/restore", json={"revision": first, "message": "Back to v1"}
    )
    assert reply.status_code == 200, reply.text
    wrote("Back to v1")
    # The script's history lists the messages people wrote.
    messages = [version["message"] for version in history(alice, sid)["versions"]]
    assert messages[:3] == ["Back to v1", "Update metadata of lab/calc2.py", "Belongs to the lab"]

    reply = alice.put(f"{API}/folders/{geo['id']}", json={"name": "geology", "message": "Rename"})
    assert reply.status_code == 200, reply.text
    wrote("Rename")
    reply = alice.put(
        f"{API}/folders/{geo['id']}", json={"parent_id": lab["id"], "message": "Into the lab"}
    )
    assert reply.status_code == 200, reply.text
    wrote("Into the lab")

    reply = alice.delete(f"{API}/scripts/{sid}", params={"message": "Superseded by calc3"})
    assert reply.status_code == 204, reply.text
    wrote("Superseded by calc3")
    reply = alice.delete(f"{API}/folders/{lab['id']}", params={"message": "Lab closed"})
    assert reply.status_code == 204, reply.text
    wrote("Lab closed")


def test_a_bad_commit_message_is_400_and_changes_nothing(alice: Caller, data_dir: Path) -> None:
    script = alice.upload("calc.py", source(1).encode())
    sid = script["id"]
    head = commits(data_dir)[0]["id"]
    bad_messages = ["a" * 10_001, "bell\x07", "nul\x00byte"]
    for bad in bad_messages:
        for reply in (
            alice.put(f"{API}/scripts/{sid}", json={"content": source(2), "message": bad}),
            # A change that changes nothing still checks what it was given.
            alice.put(f"{API}/scripts/{sid}", json={"content": source(1), "message": bad}),
            alice.post(f"{API}/folders", json={"name": "x", "message": bad}),
            alice.delete(f"{API}/scripts/{sid}", params={"message": bad}),
            alice.post(f"{API}/scripts/{sid}/restore", json={"revision": "main", "message": bad}),
        ):
            body = assert_error(reply, 400, "VALIDATION_ERROR")
            assert "message" in body["message"]
        alice.upload("other.py", HELLO, expect=400, message=bad)
    assert commits(data_dir)[0]["id"] == head
    assert {f["path"] for f in alice.tree()["root_folders"]} == set()


def test_a_first_version_diffs_against_nothing(
    alice: Caller, data_dir: Path, tmp_path: Path
) -> None:
    script = alice.upload("calc.py", source(1).encode(), display_name="Calc")
    sid = script["id"]
    put(alice, sid, content=source(2))
    first, second = (v["revision"] for v in reversed(history(alice, sid)["versions"]))
    url = f"{API}/scripts/{sid}/diff"

    def added_everything(diff: dict[str, Any], version: int) -> None:
        assert diff["from"] is None
        [code, sidecar] = diff["files"]
        assert (code["status"], code["old_path"], code["new_path"]) == ("added", None, "calc.py")
        assert (code["additions"], code["deletions"]) == (12, 0)
        lines = [line for hunk in code["hunks"] for line in hunk["lines"]]
        assert {line["kind"] for line in lines} == {"added"}
        assert "".join(line["content"] + "\n" for line in lines) == source(version)
        assert sidecar["status"] == "added"
        # git applies it to an empty work tree and gets that version.
        applied = apply_patch(tmp_path / str(len(list(tmp_path.iterdir()))), {}, diff["patch"])
        assert applied["calc.py"] == source(version)
        assert applied["calc.py.meta.json"] == git(data_dir, "show", f"{first}:calc.py.meta.json")

    # By default the first version shows against nothing (it has no previous version)...
    reply = alice.get(url, params={"to": first})
    assert reply.status_code == 200, reply.text
    added_everything(reply.json(), 1)
    # ... and `from=` (empty) asks for that explicitly, for any version.
    for rev, version in ((first, 1), (second, 2)):
        reply = alice.get(url, params={"from": "", "to": rev})
        assert reply.status_code == 200, reply.text
        added_everything(reply.json(), version)
    # What was there before stays as it was: the previous version by default.
    assert alice.get(url, params={"to": second}).json()["from"] == first


def test_a_scripts_tags_are_those_at_which_it_existed(
    alice: Caller, bob: Caller, data_dir: Path
) -> None:
    folder = alice.folder("geo")

    def tag(name: str, revision: str = "main") -> None:
        reply = bob.post(f"{API}/tags", json={"name": name, "revision": revision})
        assert reply.status_code == 201, reply.text

    tag("before")  # the script did not exist yet
    calc = alice.upload("calc.py", source(1).encode(), folder_id=folder["id"])
    tag("v1")
    other = alice.upload("other.py", source(7).encode())
    tag("other-only", commits(data_dir)[0]["id"])  # calc exists here too: it concerns both
    put(alice, calc["id"], filename="calc2.py")
    put(alice, calc["id"], content=source(2))
    tag("v2")
    git(data_dir, "tag", "pushed-lightweight", commits(data_dir)[3]["id"])

    def tags_of(script_id: int) -> list[tuple[str, str]]:
        reply = alice.get(f"{API}/scripts/{script_id}/tags")
        assert reply.status_code == 200, reply.text
        return [(item["name"], item["path"]) for item in reply.json()]

    assert tags_of(calc["id"]) == [
        ("other-only", "geo/calc.py"),
        ("pushed-lightweight", "geo/calc.py"),
        ("v1", "geo/calc.py"),
        ("v2", "geo/calc2.py"),
    ]
    assert tags_of(other["id"]) == [("other-only", "other.py"), ("v2", "other.py")]
    # Each is the repository's tag as `GET /tags` shows it, with the script's path added.
    [v2] = [
        item
        for item in alice.get(f"{API}/scripts/{calc['id']}/tags").json()
        if item["name"] == "v2"
    ]
    listed = {item["name"]: item for item in alice.get(f"{API}/tags").json()}
    assert v2 == {**listed["v2"], "path": "geo/calc2.py"}
    assert v2["created_by"]["login"] == "bob" and v2["can_edit"] is False
    assert_error(alice.get(f"{API}/scripts/999/tags"), 404, "SCRIPT_NOT_FOUND")
