"""History, diffs, revisions and tags, through the HTTP API and the real git CLI."""

from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from tests.conftest import PUSH_BEHIND_THE_SERVICE, Caller, commit_behind_the_service, commits, git

API = "/api/v1/scripts-manager"
GIT_ENV = {
    **os.environ,
    "GIT_AUTHOR_NAME": "Pusher",
    "GIT_AUTHOR_EMAIL": "pusher@example.com",
    "GIT_COMMITTER_NAME": "Pusher",
    "GIT_COMMITTER_EMAIL": "pusher@example.com",
}
BAD_REVISIONS = ["--output=x", "main..HEAD", "HEAD~1", "main^", "a b", "main@{0}", "-n", "x:y"]


def source(version: int) -> str:
    # Ten fixed lines around one that names the version: each diff is exactly one line.
    head = "".join(f"# header {n}\n" for n in range(5))
    tail = "".join(f"# footer {n}\n" for n in range(5))
    return f"{head}def main(data):\n    return {{'version': {version}}}\n{tail}"


def assert_error(reply: Any, status: int, code: str) -> dict[str, Any]:
    assert reply.status_code == status, reply.text
    body = reply.json()
    assert body["error_code"] == code, body
    assert set(body) == {"error_code", "message", "details"}
    return body


def put(caller: Caller, script_id: int, expect: int = 200, **fields: Any) -> dict[str, Any]:
    reply = caller.put(f"{API}/scripts/{script_id}", json=fields)
    assert reply.status_code == expect, reply.text
    return reply.json()


def history(caller: Caller, script_id: int, **params: Any) -> dict[str, Any]:
    reply = caller.get(f"{API}/scripts/{script_id}/history", params=params)
    assert reply.status_code == 200, reply.text
    return reply.json()


def run(caller: Caller, path: str, rev: str) -> Any:
    reply = caller.post(f"/api/v1/scripts/{path}", params={"rev": rev}, json={})
    assert reply.status_code == 200, reply.text
    return reply.json()["result"]


def apply_patch(tmp_path: Path, files: dict[str, str], patch: str) -> dict[str, str]:
    """What `git apply` makes of `files` with `patch`: an independent check of a diff."""
    work = tmp_path / "apply"
    subprocess.run(["git", "init", "-q", str(work)], check=True)
    for path, text in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_text(text)
    subprocess.run(["git", "-C", str(work), "apply", "-"], input=patch, text=True, check=True)
    return {
        str(file.relative_to(work)): file.read_text()
        for file in work.rglob("*")
        if file.is_file() and ".git" not in file.parts
    }


@pytest.fixture
def lifecycle(alice: Caller, admin: Caller) -> dict[str, Any]:
    """A script created, edited three times (once by an admin), renamed, moved and restored."""
    geo = alice.folder("geo")
    lab = alice.folder("lab")
    script = alice.upload("calc.py", source(1).encode(), folder_id=geo["id"], display_name="Calc")
    sid = script["id"]
    put(alice, sid, content=source(2))
    put(admin, sid, content=source(3), description="tuned")
    put(alice, sid, content=source(4))
    put(alice, sid, filename="calc2.py")
    put(alice, sid, folder_id=lab["id"])
    return {"id": sid, "geo": geo, "lab": lab}


def test_each_version_is_dated_when_it_was_made(alice: Caller) -> None:
    """Commit times come from the moment of the change, not from when the service started."""
    first = alice.upload("dated.py")
    time.sleep(1.1)  # commit times have a resolution of one second
    put(alice, first["id"], content=source(2))
    newest, oldest = (v["committed_at"] for v in history(alice, first["id"])["versions"])
    assert newest > oldest
    assert newest >= alice.get(f"{API}/scripts/{first['id']}").json()["updated_at"][:19]


def test_full_history_in_order_with_authors_and_change_kinds(
    lifecycle: dict[str, Any], alice: Caller, admin: Caller, data_dir: Path
) -> None:
    sid = lifecycle["id"]
    before_restore = history(alice, sid)["versions"]
    v2 = before_restore[-2]["revision"]
    reply = alice.post(f"{API}/scripts/{sid}/restore", json={"revision": v2})
    assert reply.status_code == 200, reply.text
    restored = reply.json()
    assert restored["id"] == sid and restored["logical_path"] == "lab/calc2.py"
    assert restored["restored_from"] == v2
    # Content and metadata are v2's again (the admin's description came with v3).
    content = alice.get(f"{API}/scripts/{sid}/content").json()
    assert content == {"content": source(2)}
    assert alice.get(f"{API}/scripts/{sid}").json()["description"] is None

    page = history(alice, sid)
    versions = page["versions"]
    assert page["next_before"] is None
    expected = [
        ("modified", "lab/calc2.py", None, "alice", "Restore script lab/calc2.py to"),
        ("renamed", "lab/calc2.py", "geo/calc2.py", "alice", "Move script geo/calc2.py -> lab/"),
        ("renamed", "geo/calc2.py", "geo/calc.py", "alice", "Rename script geo/calc.py -> geo/"),
        ("modified", "geo/calc.py", None, "alice", "Update script geo/calc.py"),
        ("modified", "geo/calc.py", None, "root-admin", "Update script geo/calc.py; Update meta"),
        ("modified", "geo/calc.py", None, "alice", "Update script geo/calc.py"),
        ("added", "geo/calc.py", None, "alice", "Create script geo/calc.py"),
    ]
    got = [
        (v["change"], v["path"], v["old_path"], v["author"]["login"], v["message"])
        for v in versions
    ]
    assert len(got) == len(expected)
    for (change, path, old, login, message), want in zip(got, expected, strict=True):
        assert (change, path, old, login) == want[:4]
        assert message.startswith(want[4]), message
    ids = {"alice": alice.id, "root-admin": admin.id}
    assert all(v["author"]["id"] == ids[v["author"]["login"]] for v in versions)
    # Every version is a real commit of main, newest first, as git itself lists them.
    git_ids = [c["id"] for c in commits(data_dir)]
    positions = [git_ids.index(v["revision"]) for v in versions]
    assert positions == sorted(positions)
    assert all(v["short"] == v["revision"][:7] for v in versions)
    assert all(v["committed_at"].endswith("Z") for v in versions)

    # Cursor pagination gives the same list, page by page.
    paged: list[str] = []
    cursor = None
    while True:
        params = {"limit": 3, **({"before": cursor} if cursor else {})}
        page = history(alice, sid, **params)
        paged += [v["revision"] for v in page["versions"]]
        cursor = page["next_before"]
        if cursor is None:
            break
    assert paged == [v["revision"] for v in versions]

    # The content at each version's revision is that version's source, at the path it had then
    # (the script was renamed and moved since).
    sources = [source(2), source(4), source(4), source(4), source(3), source(2), source(1)]
    for version, text in zip(versions, sources, strict=True):
        reply = alice.get(f"{API}/scripts/{sid}/content", params={"rev": version["revision"]})
        assert reply.json() == {
            "content": text,
            "revision": version["revision"],
            "path": version["path"],
        }
    assert len({version["path"] for version in versions}) > 1
    # Before it was created, the script did not exist.
    first_commit = git_ids[-1]
    reply = alice.get(f"{API}/scripts/{sid}/content", params={"rev": first_commit})
    assert_error(reply, 404, "SCRIPT_NOT_FOUND")


def test_a_save_from_an_outdated_revision_is_refused_and_changes_nothing(
    alice: Caller, data_dir: Path
) -> None:
    script = alice.upload("edited.py", source(1).encode())
    sid = script["id"]
    started_from = commits(data_dir)[0]["id"]
    # Details and a rename since then leave the source alone: saving from that revision is fine.
    put(alice, sid, display_name="Edited", filename="edited_twice.py")
    put(alice, sid, content=source(2), base_revision=started_from)

    # Someone saves; a save still based on the older revision would overwrite it.
    put(alice, sid, content=source(3))
    before = commits(data_dir)
    reply = alice.put(
        f"{API}/scripts/{sid}", json={"content": source(4), "base_revision": started_from}
    )
    details = assert_error(reply, 409, "SCRIPT_CHANGED")["details"]
    assert details == {"script_id": str(sid), "base_revision": started_from}
    assert commits(data_dir) == before
    assert alice.get(f"{API}/scripts/{sid}/content").json()["content"] == source(3)

    # From the newest revision it saves; without one, the last save wins as it always did.
    put(alice, sid, content=source(4), base_revision=before[0]["id"])
    put(alice, sid, content=source(5))
    assert alice.get(f"{API}/scripts/{sid}/content").json()["content"] == source(5)

    # It guards a new source only: details change from any revision.
    put(alice, sid, description="still fine", base_revision=started_from)
    # A revision from before the script existed, or none at all.
    first = commits(data_dir)[-1]["id"]
    assert_error(
        alice.put(f"{API}/scripts/{sid}", json={"content": source(6), "base_revision": first}),
        404,
        "SCRIPT_NOT_FOUND",
    )
    assert_error(
        alice.put(f"{API}/scripts/{sid}", json={"content": source(6), "base_revision": "nope"}),
        404,
        "REVISION_NOT_FOUND",
    )
    assert alice.get(f"{API}/scripts/{sid}/content").json()["content"] == source(5)


def test_a_change_landing_while_a_save_is_planned_is_not_overwritten(
    alice: Caller, data_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The check runs on the very tree the save commits on: a change landing between planning
    and the compare-and-swap (too narrow a window to hit on demand) makes the save plan again,
    see it, and refuse."""
    from gitscripts.repo.repository import Repository

    script = alice.upload("raced.py", source(1).encode())
    started_from = commits(data_dir)[0]["id"]
    apply = Repository._apply
    landed: list[bool] = []

    def apply_then_let_a_push_land(self: Repository, tree: Any, edits: Any) -> Any:
        planned = apply(self, tree, edits)
        if not landed:
            landed.append(True)
            commit_behind_the_service(data_dir, tmp_path / "work", {"raced.py": source(2).encode()})
        return planned

    monkeypatch.setattr(Repository, "_apply", apply_then_let_a_push_land)
    reply = alice.put(
        f"{API}/scripts/{script['id']}", json={"content": source(3), "base_revision": started_from}
    )
    assert landed
    assert_error(reply, 409, "SCRIPT_CHANGED")
    assert alice.get(f"{API}/scripts/{script['id']}/content").json()["content"] == source(2)


def test_diffs_between_any_two_versions(
    lifecycle: dict[str, Any], alice: Caller, tmp_path: Path, data_dir: Path
) -> None:
    sid = lifecycle["id"]
    versions = history(alice, sid)["versions"]
    # oldest first: v1..v4, renamed, moved
    revisions = [v["revision"] for v in reversed(versions)]
    paths = [v["path"] for v in reversed(versions)]
    numbers = [1, 2, 3, 4, 4, 4]
    for i in range(len(revisions)):
        for j in range(len(revisions)):
            reply = alice.get(
                f"{API}/scripts/{sid}/diff", params={"from": revisions[i], "to": revisions[j]}
            )
            assert reply.status_code == 200, reply.text
            diff = reply.json()
            assert (diff["from"], diff["to"]) == (revisions[i], revisions[j])
            script = [f for f in diff["files"] if not f["new_path"].endswith(".meta.json")]
            if numbers[i] == numbers[j] and paths[i] == paths[j]:
                assert script == [], (i, j)
                continue
            [file] = script
            assert (file["old_path"], file["new_path"]) == (paths[i], paths[j])
            assert file["status"] == ("renamed" if paths[i] != paths[j] else "modified")
            changed = numbers[i] != numbers[j]
            assert (file["additions"], file["deletions"]) == ((1, 1) if changed else (0, 0))
            if changed:
                [hunk] = file["hunks"]
                assert (hunk["old_start"], hunk["old_lines"]) == (4, 7)
                kinds = [(line["kind"], line["content"]) for line in hunk["lines"]]
                assert ("deleted", f"    return {{'version': {numbers[i]}}}") in kinds
                assert ("added", f"    return {{'version': {numbers[j]}}}") in kinds
                deleted = next(line for line in hunk["lines"] if line["kind"] == "deleted")
                assert (deleted["old_line"], deleted["new_line"]) == (7, None)

            # The patch is a real one: git applies it to the old version (script and sidecar)
            # and gets the new one.
            def files_at(k: int) -> dict[str, str]:
                sidecar = paths[k] + ".meta.json"
                return {
                    paths[k]: source(numbers[k]),
                    sidecar: git(data_dir, "show", f"{revisions[k]}:{sidecar}"),
                }

            applied = apply_patch(tmp_path / f"{i}-{j}", files_at(i), diff["patch"])
            assert applied == files_at(j), (i, j)

    # Default: the previous version against the current one (the move: a pure rename).
    default = alice.get(f"{API}/scripts/{sid}/diff").json()
    assert default["from"] == versions[1]["revision"]
    assert default["to"] == versions[0]["revision"]
    assert [(f["old_path"], f["new_path"]) for f in default["files"]] == [
        ("geo/calc2.py", "lab/calc2.py"),
        ("geo/calc2.py.meta.json", "lab/calc2.py.meta.json"),
    ]
    # Metadata changes show up as the sidecar's diff.
    meta_diff = alice.get(
        f"{API}/scripts/{sid}/diff", params={"from": revisions[1], "to": revisions[2]}
    ).json()
    sidecar = next(f for f in meta_diff["files"] if f["new_path"] == "geo/calc.py.meta.json")
    added = [
        line["content"] for h in sidecar["hunks"] for line in h["lines"] if line["kind"] == "added"
    ]
    assert any('"description": "tuned"' in line for line in added)


# -- tags: named versions that simulators run --------------------------------------------------
def test_running_at_each_tag_gives_that_versions_result(
    lifecycle: dict[str, Any],
    alice: Caller,
    bob: Caller,
    admin: Caller,
    data_dir: Path,
    tmp_path: Path,
) -> None:
    versions = list(reversed(history(alice, lifecycle["id"])["versions"]))
    for number, version in enumerate(versions[:4], start=1):
        reply = alice.post(f"{API}/tags", json={"name": f"v{number}", "revision": version["short"]})
        assert reply.status_code == 201, reply.text
        tag = reply.json()
        assert tag["revision"] == version["revision"]
        assert tag["created_by"] == {"id": alice.id, "login": "alice"}
        assert tag["can_edit"] and tag["can_delete"]
    for number in range(1, 5):
        # At those revisions the script was still geo/calc.py.
        assert run(alice, "geo/calc.py", f"v{number}") == {"version": number}
    # "stable" follows whatever it is moved to.
    stable = alice.post(f"{API}/tags", json={"name": "release/stable", "revision": "v1"})
    assert stable.status_code == 201, stable.text
    assert run(bob, "geo/calc.py", "release/stable") == {"version": 1}
    moved = alice.put(f"{API}/tags/release/stable", json={"revision": "v3"})
    assert moved.status_code == 200, moved.text
    assert run(bob, "geo/calc.py", "release/stable") == {"version": 3}
    assert run(bob, "lab/calc2.py", "main") == {"version": 4}

    listed = {tag["name"]: tag for tag in bob.get(f"{API}/tags").json()}
    assert sorted(listed) == ["release/stable", "v1", "v2", "v3", "v4"]
    assert listed["release/stable"]["revision"] == versions[2]["revision"]
    assert not listed["v1"]["can_edit"]  # bob did not make it

    # Real annotated git tags: a clone's `git fetch --tags` sees them, tagged by their creator.
    work = tmp_path / "clone"
    subprocess.run(["git", "clone", "-q", str(data_dir / "scripts.git"), str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "fetch", "-q", "--tags"], check=True)
    tags = subprocess.run(
        [
            "git",
            "-C",
            str(work),
            "tag",
            "-l",
            "--format=%(refname:short) %(objecttype) %(*objectname) %(taggername)",
        ],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert f"release/stable tag {versions[2]['revision']} alice" in tags
    assert f"v4 tag {versions[3]['revision']} alice" in tags

    # Only the creator or an admin may move or delete a tag; nothing changes otherwise.
    assert_error(bob.put(f"{API}/tags/v1", json={"revision": "v2"}), 403, "NOT_TAG_OWNER")
    assert_error(bob.delete(f"{API}/tags/v1"), 403, "NOT_TAG_OWNER")
    assert run(bob, "geo/calc.py", "v1") == {"version": 1}
    reply = admin.put(f"{API}/tags/v1", json={"revision": "v2"})
    assert reply.status_code == 200, reply.text
    assert reply.json()["created_by"]["login"] == "alice"  # still alice's tag
    assert admin.delete(f"{API}/tags/v1").status_code == 204
    assert alice.delete(f"{API}/tags/v2").status_code == 204
    assert "v1" not in git(data_dir, "tag", "-l").split()
    assert_error(alice.delete(f"{API}/tags/v2"), 404, "TAG_NOT_FOUND")
    assert_error(alice.put(f"{API}/tags/nope", json={"revision": "main"}), 404, "TAG_NOT_FOUND")
    reply = alice.post("/api/v1/scripts/geo/calc.py", params={"rev": "v1"}, json={})
    assert_error(reply, 404, "REVISION_NOT_FOUND")


@pytest.mark.parametrize(
    "name",
    [
        "-x",
        "a..b",
        "a b",
        "x.lock",
        "main",
        "HEAD",
        "deadbeef",
        "a/",
        "/a",
        "a//b",
        "x~1",
        "x^",
        "x:y",
        "x@{1}",
        "*",
        ".hidden",
        "a\\b",
    ],
)
def test_invalid_tag_names_are_400_and_create_nothing(
    alice: Caller, data_dir: Path, name: str
) -> None:
    alice.upload("hello.py")
    reply = alice.post(f"{API}/tags", json={"name": name, "revision": "main"})
    assert_error(reply, 400, "INVALID_TAG_NAME")
    assert git(data_dir, "tag", "-l") == ""


def test_tag_conflicts_and_bad_revisions(alice: Caller, bob: Caller, data_dir: Path) -> None:
    alice.upload("hello.py")
    assert alice.post(f"{API}/tags", json={"name": "stable", "revision": "main"}).status_code == 201
    target = git(data_dir, "rev-parse", "stable^{commit}").strip()
    assert_error(
        bob.post(f"{API}/tags", json={"name": "stable", "revision": "main"}),
        409,
        "TAG_ALREADY_EXISTS",
    )
    for rev in BAD_REVISIONS:
        assert_error(
            alice.post(f"{API}/tags", json={"name": "other", "revision": rev}),
            400,
            "INVALID_REVISION",
        )
        assert_error(
            alice.put(f"{API}/tags/stable", json={"revision": rev}), 400, "INVALID_REVISION"
        )
    assert_error(
        alice.post(f"{API}/tags", json={"name": "other", "revision": "0" * 40}),
        404,
        "REVISION_NOT_FOUND",
    )
    assert git(data_dir, "tag", "-l").split() == ["stable"]
    assert git(data_dir, "rev-parse", "stable^{commit}").strip() == target
    assert_error(alice.post(f"{API}/tags", json={"name": "x"}), 400, "VALIDATION_ERROR")
    assert_error(bob.get(f"{API}/tags", headers={"Authorization": ""}), 401, "NOT_AUTHENTICATED")


# -- the tree at a revision --------------------------------------------------------------------
def test_tree_at_a_revision_shows_the_old_layout_read_only(
    lifecycle: dict[str, Any], alice: Caller
) -> None:
    sid = lifecycle["id"]
    versions = history(alice, sid)["versions"]
    gone = alice.upload("gone.py", folder_id=lifecycle["lab"]["id"])
    with_gone = alice.get(f"{API}/history").json()["commits"][0]["revision"]
    assert alice.delete(f"{API}/scripts/{gone['id']}").status_code == 204

    old = alice.get(f"{API}/tree", params={"rev": versions[-1]["revision"]}).json()
    assert old["root_scripts"] == []
    folders = {item["folder"]["path"]: item for item in old["root_folders"]}
    assert set(folders) == {"geo", "lab"}
    [script] = folders["geo"]["scripts"]
    assert (script["id"], script["logical_path"], script["display_name"]) == (
        sid,
        "geo/calc.py",
        "Calc",
    )
    assert script["folder_id"] == lifecycle["geo"]["id"]
    assert folders["lab"]["scripts"] == []
    for item in (script, folders["geo"]["folder"], folders["lab"]["folder"]):
        assert item["can_edit"] is False and item["can_delete"] is False

    # A script deleted since is there, without an id (no current script has it).
    then = alice.get(f"{API}/tree", params={"rev": with_gone}).json()
    lab = next(item for item in then["root_folders"] if item["folder"]["path"] == "lab")
    by_path = {s["logical_path"]: s for s in lab["scripts"]}
    assert by_path["lab/calc2.py"]["id"] == sid
    assert by_path["lab/gone.py"]["id"] is None

    # The current tree is unchanged and editable.
    now = alice.tree()
    lab_now = next(item for item in now["root_folders"] if item["folder"]["path"] == "lab")
    assert [s["logical_path"] for s in lab_now["scripts"]] == ["lab/calc2.py"]
    assert lab_now["scripts"][0]["can_edit"] is True
    for rev in BAD_REVISIONS:
        assert_error(alice.get(f"{API}/tree", params={"rev": rev}), 400, "INVALID_REVISION")
    assert_error(alice.get(f"{API}/tree", params={"rev": "f" * 40}), 404, "REVISION_NOT_FOUND")


# -- restore -----------------------------------------------------------------------------------
def test_restore_needs_ownership_and_changes_nothing_when_refused(
    alice: Caller, bob: Caller, admin: Caller, data_dir: Path
) -> None:
    script = alice.upload("calc.py", source(1).encode())
    first = commits(data_dir)[0]["id"]
    put(alice, script["id"], content=source(2))
    head = commits(data_dir)[0]["id"]
    url = f"{API}/scripts/{script['id']}/restore"
    assert_error(bob.post(url, json={"revision": first}), 403, "NOT_SCRIPT_OWNER")
    for rev in BAD_REVISIONS:
        assert_error(alice.post(url, json={"revision": rev}), 400, "INVALID_REVISION")
    assert_error(alice.post(url, json={"revision": "a" * 40}), 404, "REVISION_NOT_FOUND")
    initial = commits(data_dir)[-1]["id"]
    assert_error(alice.post(url, json={"revision": initial}), 404, "SCRIPT_NOT_FOUND")
    assert_error(
        alice.post(f"{API}/scripts/999/restore", json={"revision": first}), 404, "SCRIPT_NOT_FOUND"
    )
    assert commits(data_dir)[0]["id"] == head
    # An admin may; restoring what is already there makes no second commit.
    reply = admin.post(url, json={"revision": first})
    assert reply.status_code == 200, reply.text
    assert commits(data_dir)[0]["subject"] == f"Restore script calc.py to {first[:7]}"
    assert commits(data_dir)[0]["author"] == "root-admin"
    again = admin.post(url, json={"revision": first}).json()
    assert again["revision"] == commits(data_dir)[0]["id"]
    assert len(commits(data_dir)) == len(set(c["id"] for c in commits(data_dir)))
    assert run(alice, "calc.py", "main") == {"version": 1}
    assert history(alice, script["id"])["versions"][0]["author"]["login"] == "root-admin"


# -- the repository log and single commits -----------------------------------------------------
def test_repository_log_and_commit_detail(alice: Caller, bob: Caller, data_dir: Path) -> None:
    geo = alice.folder("geo")
    a = alice.upload("a.py", source(1).encode(), folder_id=geo["id"])
    bob.upload("b.py", source(1).encode())
    put(alice, a["id"], content=source(2))
    log = alice.get(f"{API}/history").json()
    subjects = [c["message"] for c in log["commits"]]
    assert subjects == [
        "Update script geo/a.py",
        "Create script b.py",
        "Create script geo/a.py",
        "Create folder geo",
        "Initialize script repository",
    ]
    assert log["next_before"] is None
    newest = log["commits"][0]
    assert newest["author"]["login"] == "alice" and newest["author"]["id"] == alice.id
    assert newest["changes"] == [{"status": "modified", "path": "geo/a.py", "old_path": "geo/a.py"}]
    assert log["commits"][1]["author"]["login"] == "bob"
    assert log["commits"][-1]["author"]["id"] is None  # the service's own first commit
    assert log["commits"][-1]["parents"] == []
    assert [c["revision"] for c in log["commits"]] == [c["id"] for c in commits(data_dir)]

    # Limited to a folder or a file; paged with `before`.
    in_geo = alice.get(f"{API}/history", params={"path": "geo"}).json()["commits"]
    assert [c["message"] for c in in_geo] == subjects[0:1] + subjects[2:4]
    only_b = alice.get(f"{API}/history", params={"path": "/b.py"}).json()
    assert [c["message"] for c in only_b["commits"]] == ["Create script b.py"]
    assert only_b["path"] == "b.py"
    page = alice.get(f"{API}/history", params={"limit": 2}).json()
    assert [c["message"] for c in page["commits"]] == subjects[:2]
    rest = alice.get(f"{API}/history", params={"limit": 200, "before": page["next_before"]}).json()
    assert [c["message"] for c in rest["commits"]] == subjects[2:]
    for bad in ("..", "a/../b", "a//b", "."):
        assert_error(alice.get(f"{API}/history", params={"path": bad}), 400, "VALIDATION_ERROR")
    for limit in (0, 201, "x"):
        assert_error(alice.get(f"{API}/history", params={"limit": limit}), 400, "VALIDATION_ERROR")

    detail = alice.get(f"{API}/commits/{newest['short']}").json()
    assert detail["revision"] == newest["revision"]
    assert detail["parents"] == [log["commits"][1]["revision"]]
    assert detail["committer"]["name"] == "gitscripts"
    assert detail["stats"] == {"files": 1, "additions": 1, "deletions": 1}
    [file] = detail["files"]
    assert file["patch"].startswith("diff --git a/geo/a.py b/geo/a.py\n--- a/geo/a.py\n")
    assert "-    return {'version': 1}\n+    return {'version': 2}\n" in file["patch"]
    created = alice.get(f"{API}/commits/{log['commits'][2]['revision']}").json()
    assert [(f["status"], f["new_path"], f["additions"]) for f in created["files"]] == [
        ("added", "geo/a.py", 12),
        ("added", "geo/a.py.meta.json", 3),
    ]
    assert created["files"][0]["hunks"][0]["header"] == "@@ -0,0 +1,12 @@"


@pytest.mark.parametrize("rev", BAD_REVISIONS)
def test_malformed_revisions_are_400_everywhere(alice: Caller, rev: str) -> None:
    script = alice.upload("hello.py")
    base = f"{API}/scripts/{script['id']}"
    for url, params in [
        (f"{base}/content", {"rev": rev}),
        (f"{base}/history", {"before": rev}),
        (f"{base}/diff", {"from": rev}),
        (f"{base}/diff", {"to": rev}),
        (f"{API}/history", {"before": rev}),
    ]:
        assert_error(alice.get(url, params=params), 400, "INVALID_REVISION")
    assert_error(alice.get(f"{API}/commits/{rev}"), 400, "INVALID_REVISION")


def test_unknown_revisions_are_404(alice: Caller) -> None:
    script = alice.upload("hello.py")
    base = f"{API}/scripts/{script['id']}"
    for rev in ("0" * 40, "deadbeefdead", "no-such-tag"):
        for url, params in [
            (f"{base}/content", {"rev": rev}),
            (f"{base}/history", {"before": rev}),
            (f"{base}/diff", {"from": rev}),
            (f"{API}/history", {"before": rev}),
            (f"{API}/commits/{rev}", {}),
        ]:
            assert_error(alice.get(url, params=params), 404, "REVISION_NOT_FOUND")
    for url in (f"{API}/scripts/999/history", f"{API}/scripts/999/diff"):
        assert_error(alice.get(url), 404, "SCRIPT_NOT_FOUND")


# -- merges and binary files pushed with git ---------------------------------------------------
def commit_all(work: Path, message: str) -> str:
    subprocess.run(["git", "-C", str(work), "add", "-A"], check=True, env=GIT_ENV)
    subprocess.run(["git", "-C", str(work), "commit", "-qm", message], check=True, env=GIT_ENV)
    return subprocess.run(
        ["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()


def test_history_and_diffs_through_a_pushed_merge_with_binary_files(
    alice: Caller, data_dir: Path, tmp_path: Path
) -> None:
    script = alice.upload("calc.py", source(1).encode())
    work = tmp_path / "work"
    subprocess.run(["git", "clone", "-q", str(data_dir / "scripts.git"), str(work)], check=True)
    subprocess.run(["git", "-C", str(work), "checkout", "-qb", "side"], check=True)
    calc = work / "calc.py"
    calc.write_text(source(1).replace("# footer 4", "# side edit"))
    (work / "data.bin").write_bytes(bytes(range(256)))
    (work / "legacy.py").write_bytes(b"# caf\xe9\ndef main(data):\n    return {}\n")
    side = commit_all(work, "side: footer, binary and latin-1 files")
    subprocess.run(["git", "-C", str(work), "checkout", "-q", "main"], check=True)
    calc.write_text(source(1).replace("# header 0", "# main edit"))
    main_edit = commit_all(work, "main: header")
    subprocess.run(
        ["git", "-C", str(work), "merge", "-q", "--no-ff", "-m", "Merge side", "side"],
        check=True,
        env=GIT_ENV,
    )
    merge = subprocess.run(
        ["git", "-C", str(work), "rev-parse", "HEAD"], capture_output=True, text=True, check=True
    ).stdout.strip()
    (work / "legacy.py").write_bytes(b"# na\xefve\ndef main(data):\n    return {}\n")
    latin_edit = commit_all(work, "latin-1 edit")
    subprocess.run(["git", "-C", str(work), *PUSH_BEHIND_THE_SERVICE], check=True, env=GIT_ENV)

    versions = history(alice, script["id"])["versions"]
    revisions = [v["revision"] for v in versions]
    assert revisions[0] == merge and versions[0]["change"] == "modified"
    assert set(revisions[1:3]) == {side, main_edit}
    assert versions[-1]["change"] == "added" and len(versions) == 4
    assert versions[1]["author"] == {
        "id": None,
        "login": None,
        "name": "Pusher",
        "email": "pusher@example.com",
    }
    both = source(1).replace("# footer 4", "# side edit").replace("# header 0", "# main edit")
    for rev, text in ((merge, both), (side, source(1).replace("# footer 4", "# side edit"))):
        content = alice.get(f"{API}/scripts/{script['id']}/content", params={"rev": rev}).json()
        assert content["content"] == text
    diff = alice.get(
        f"{API}/scripts/{script['id']}/diff", params={"from": side, "to": merge}
    ).json()
    [file] = diff["files"]
    assert [
        line["content"] for h in file["hunks"] for line in h["lines"] if line["kind"] != "context"
    ] == ["# header 0", "# main edit"]

    # The repository log shows the merge with both parents; path-limited too.
    log = alice.get(f"{API}/history", params={"path": "calc.py"}).json()["commits"]
    assert log[0]["revision"] == merge and len(log[0]["parents"]) == 2
    assert {c["revision"] for c in log[1:3]} == {side, main_edit}
    assert log[0]["changes"] == sorted(log[0]["changes"], key=lambda c: c["path"])
    assert {c["path"] for c in log[0]["changes"]} == {"calc.py", "data.bin", "legacy.py"}

    # Binary and non-UTF-8 files are reported as binary, without hunks; nothing crashes.
    detail = alice.get(f"{API}/commits/{merge}").json()
    files = {f["new_path"]: f for f in detail["files"]}
    assert files["data.bin"]["binary"] is True and files["data.bin"]["hunks"] == []
    assert "Binary files /dev/null and b/data.bin differ" in files["data.bin"]["patch"]
    assert files["legacy.py"]["binary"] is True
    assert files["calc.py"]["binary"] is False and files["calc.py"]["additions"] == 1
    legacy = next(s for s in alice.tree()["root_scripts"] if s["filename"] == "legacy.py")
    legacy_diff = alice.get(f"{API}/scripts/{legacy['id']}/diff").json()
    assert legacy_diff["to"] == latin_edit and legacy_diff["from"] == side
    assert [(f["binary"], f["hunks"]) for f in legacy_diff["files"]] == [(True, [])]
    assert "Binary files a/legacy.py and b/legacy.py differ" in legacy_diff["patch"]
    assert [v["change"] for v in history(alice, legacy["id"])["versions"]] == ["modified", "added"]
    assert run(alice, "calc.py", merge) == {"version": 1}


def test_diff_of_lines_without_a_final_newline_applies_with_git(
    alice: Caller, tmp_path: Path
) -> None:
    old = "def main(data):\n    return {'a': 1}"
    new = "def main(data):\n    x = 1\n    return {'a': x}\n"
    reply = alice.post(
        f"{API}/scripts-from-text",
        json={"filename": "nl.py", "display_name": "nl", "content": old},
    )
    script = reply.json()
    put(alice, script["id"], content=new)
    diff = alice.get(f"{API}/scripts/{script['id']}/diff").json()
    [file] = diff["files"]
    last_old = next(line for line in file["hunks"][0]["lines"] if line["kind"] == "deleted")
    assert last_old == {
        "kind": "deleted",
        "old_line": 2,
        "new_line": None,
        "content": "    return {'a': 1}",
        "no_newline": True,
    }
    assert "\\ No newline at end of file\n" in diff["patch"]
    assert apply_patch(tmp_path, {"nl.py": old}, diff["patch"]) == {"nl.py": new}


def test_diff_of_a_long_file_of_repeated_lines_is_quick(alice: Caller) -> None:
    # Many equal lines (blank ones) make a naive line matcher quadratic: minutes, not milliseconds.
    def text(name: str) -> str:
        body = "".join("\n" if n % 3 == 0 else f"    {name}{n} = {n}\n" for n in range(6000))
        return f"def main(data):\n{body}    return {{}}\n"

    reply = alice.post(
        f"{API}/scripts-from-text",
        json={"filename": "long.py", "display_name": "long", "content": text("a")},
    )
    script = reply.json()
    put(alice, script["id"], content=text("b"))
    started = time.monotonic()
    diff = alice.get(f"{API}/scripts/{script['id']}/diff").json()
    assert time.monotonic() - started < 5
    [file] = diff["files"]
    assert (file["additions"], file["deletions"]) == (4000, 4000)
