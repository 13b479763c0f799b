"""Scripts with dependencies pushed with the real git client: checked, locked, refused clearly.

A pushed lock must match its script's block; a lock never stands alone; a block that does not
resolve refuses the push with nothing changed; a script pushed without its lock is locked by the
service in a commit on top, which the pusher is told to pull.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from gitscripts.deps import uv
from tests.test_dependency_locks import ONE, PLUS, script
from tests.test_git_http import (
    API,
    HELLO,
    Clone,
    Server,
    _git_home,  # noqa: F401 - the git client's empty HOME, for every test here
    _refused_without_trace,
    _started,
)
from tests.wheelhouse import FixturePackage, build_wheel, build_wheelhouse


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    root = tmp_path_factory.mktemp("git-deps")
    wheels = build_wheelhouse(root / "wheels")
    with _started(
        root, ["alice", "bob"], PACKAGES_FIND_LINKS=str(wheels), PACKAGES_NO_INDEX="true"
    ) as started:
        yield started


def locked(lock: bytes) -> dict[str, str]:
    return {p["name"]: p["version"] for p in tomllib.loads(lock.decode())["package"]}


def show(server: Server, path: str, rev: str = "main") -> bytes:
    return server.bare_git("show", f"{rev}:{path}").encode()


def uv_lock(server: Server, clone: Clone, path: str, wheels: Path | None = None) -> None:
    """`uv lock --script path` in the clone, as the README tells a developer, against the same
    wheel folder as the service (or `wheels`)."""
    wheels = wheels or server.data_dir.parent / "wheels"
    env = {
        **os.environ,
        "UV_FIND_LINKS": str(wheels),
        "UV_NO_INDEX": "1",
        "UV_CACHE_DIR": str(server.work / "uv-cache"),
        "UV_PYTHON": sys.executable,
    }
    subprocess.run(
        [uv.binary(), "lock", "--quiet", "--script", path], cwd=clone.path, env=env, check=True
    )
    clone.git("add", path + ".lock")


def test_a_push_without_the_lock_is_locked_by_the_service_on_top(server: Server) -> None:
    clone = server.clone("alice")
    clone.write("nolock/tool.py", PLUS)
    pushed_commit = clone.commit("a tool with dependencies")
    pushed = clone.push()
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: gitscripts: locked nolock/tool.py: pull to get nolock/tool.py.lock" in (
        pushed.stderr
    )
    # The push landed as it was, and one commit on top adds the lock, authored by the pusher.
    main = server.main()
    assert server.bare_git("rev-parse", "main~1").strip() == pushed_commit
    log = server.bare_git("log", "-1", "--format=%an%x1f%s", "main").strip().split("\x1f")
    assert log[0] == "alice"
    assert log[1] == "Update the locks of nolock/tool.py, pushed by alice without them"
    assert server.bare_git("show", "--name-only", "--format=", "main").split() == [
        "nolock/tool.py.lock"
    ]
    assert locked(show(server, "nolock/tool.py.lock")) == {
        "gsfixture": "2.0",
        "gsfixture-plus": "1.0",
    }
    assert f"main is at {main[:12]}" in pushed.stderr
    # The pusher pulls it; the script shows once, its lock nowhere in the tree answers.
    clone.git("pull", "--quiet", "--ff-only")
    assert (clone.path / "nolock/tool.py.lock").read_bytes() == show(server, "nolock/tool.py.lock")
    found = server.script("alice", "nolock/tool.py")
    assert found is not None
    assert server.script("alice", "nolock/tool.py.lock") is None
    deps = server.api("alice", "GET", f"{API}/scripts/{found['id']}/dependencies").json()
    assert deps["lock"]["path"] == "nolock/tool.py.lock"
    # A new push that keeps the block needs no new lock: nothing is committed on top.
    clone.write("nolock/tool.py", PLUS + b"# edited\n")
    edited = clone.commit()
    pushed = clone.push()
    assert pushed.returncode == 0, pushed.stderr
    assert "locked" not in pushed.stderr
    assert server.main() == edited
    # A block removed: the service removes its stale lock.
    clone.write("nolock/tool.py", HELLO)
    clone.commit()
    pushed = clone.push()
    assert pushed.returncode == 0, pushed.stderr
    assert "nolock/tool.py declares no dependencies now: removed nolock/tool.py.lock" in (
        pushed.stderr
    )
    assert "nolock/tool.py.lock" not in server.bare_git("ls-tree", "-r", "--name-only", "main")


def test_a_push_whose_block_does_not_resolve_is_refused(server: Server) -> None:
    clone = server.clone("alice")
    clone.write("broken/tool.py", script("gsfixture-broken"))
    clone.commit()
    stderr = _refused_without_trace(
        server, clone, ["broken/tool.py: The dependencies of tool.py cannot be resolved"]
    )
    assert "gsfixture-nowhere-to-be-found" in stderr


def test_a_push_with_an_invalid_block_is_refused(server: Server) -> None:
    clone = server.clone("alice")
    clone.write("invalid/tool.py", b'# /// script\n# colour = "blue"\n# ///\n' + HELLO)
    clone.commit()
    _refused_without_trace(
        server, clone, ["invalid/tool.py: Unknown key(s) in the script's '# /// script' block"]
    )


def test_a_pushed_lock_must_match_its_block(server: Server) -> None:
    clone = server.clone("alice")
    clone.write("matched/tool.py", ONE)
    uv_lock(server, clone, "matched/tool.py")
    one_lock = (clone.path / "matched/tool.py.lock").read_bytes()
    mine = clone.commit("with its own lock")
    pushed = clone.push()
    assert pushed.returncode == 0, pushed.stderr
    assert "locked" not in pushed.stderr
    assert server.main() == mine  # nothing on top: the lock came with the push
    assert show(server, "matched/tool.py.lock") == one_lock
    # The block changes, the lock stays the old one: refused, with how to make it.
    clone.write("matched/tool.py", PLUS)
    clone.write("matched/tool.py.lock", one_lock + b"\n")  # touched, still the old pins
    clone.commit()
    _refused_without_trace(
        server,
        clone,
        [
            "matched/tool.py: The lock tool.py.lock does not match the dependencies tool.py "
            "declares; update it with `uv lock --script tool.py`"
        ],
    )


def test_nobody_changes_or_deletes_someone_elses_lock(server: Server) -> None:
    alice = server.clone("alice")
    alice.write("owned/tool.py", ONE)
    uv_lock(server, alice, "owned/tool.py")
    alice.commit()
    assert alice.push().returncode == 0
    lock = show(server, "owned/tool.py.lock")
    # A lock that still matches the block (uv accepts it), so only ownership can refuse it.
    bob = server.clone("bob")
    bob.write("owned/tool.py.lock", lock + b"\n")
    bob.commit()
    _refused_without_trace(
        server, bob, ["owned/tool.py: belongs to alice; only its owner or an admin may change it"]
    )
    bob.git("reset", "--quiet", "--hard", "origin/main")
    bob.git("rm", "--quiet", "owned/tool.py.lock")
    bob.commit()
    _refused_without_trace(server, bob, ["owned/tool.py: belongs to alice"])
    assert show(server, "owned/tool.py.lock") == lock


def test_a_lone_lock_is_refused(server: Server) -> None:
    clone = server.clone("alice")
    clone.write("lone/tool.py.lock", b"version = 1\n")
    clone.commit()
    _refused_without_trace(
        server, clone, ["lone/tool.py.lock: a lock needs its script tool.py beside it"]
    )
    # Beside a helper module: refused too.
    clone.write("lone/_helper.py", b"X = 1\n")
    clone.git("mv", "lone/tool.py.lock", "lone/_helper.py.lock")
    clone.commit()
    _refused_without_trace(server, clone, ["lone/_helper.py.lock: _helper.py is a helper module"])
    # A script deleted and its lock left behind.
    fresh = server.clone("alice")
    fresh.write("left/tool.py", PLUS)
    fresh.commit()
    assert fresh.push().returncode == 0
    fresh.git("pull", "--quiet", "--ff-only")
    fresh.git("rm", "--quiet", "left/tool.py")
    fresh.commit()
    _refused_without_trace(
        server, fresh, ["left/tool.py: the script is gone but its lock left/tool.py.lock is not"]
    )
    # Deleted together (every pushed commit is judged): accepted.
    fresh.git("rm", "--quiet", "left/tool.py.lock")
    fresh.git("commit", "--quiet", "--amend", "--no-edit")
    pushed = fresh.push()
    assert pushed.returncode == 0, pushed.stderr


def test_a_script_without_a_block_pushes_as_before(server: Server) -> None:
    clone = server.clone("alice")
    clone.write("plain/tool.py", HELLO)
    mine = clone.commit()
    pushed = clone.push()
    assert pushed.returncode == 0, pushed.stderr
    assert server.main() == mine
    assert "lock" not in pushed.stderr


def test_a_push_to_refs_for_main_is_locked_too(server: Server) -> None:
    clone = server.clone("alice")
    clone.write("landing/tool.py", ONE)
    pushed_commit = clone.commit()
    # main moves on meanwhile (an unrelated API upload): the push lands as a merge.
    made = server.api(
        "alice",
        "POST",
        f"{API}/scripts-from-text",
        json={"filename": "elsewhere.py", "display_name": "e", "content": HELLO.decode()},
    )
    assert made.status_code == 201, made.text
    pushed = clone.push("HEAD:refs/for/main")
    assert pushed.returncode == 0, pushed.stderr
    assert "locked landing/tool.py" in pushed.stderr, pushed.stderr
    assert locked(show(server, "landing/tool.py.lock")) == {"gsfixture": "1.0"}
    assert server.bare_git("merge-base", "--is-ancestor", pushed_commit, "main") == ""


def test_a_lock_moved_with_its_script_is_accepted(server: Server, tmp_path: Path) -> None:
    clone = server.clone("alice")
    clone.write("mv/tool.py", PLUS)
    clone.commit()
    assert clone.push().returncode == 0
    clone.git("pull", "--quiet", "--ff-only")
    lock = (clone.path / "mv/tool.py.lock").read_bytes()
    clone.git("mv", "mv/tool.py", "mv/renamed.py")
    clone.git("mv", "mv/tool.py.lock", "mv/renamed.py.lock")
    mine = clone.commit()
    pushed = clone.push()
    assert pushed.returncode == 0, pushed.stderr
    assert server.main() == mine
    assert show(server, "mv/renamed.py.lock") == lock


def test_pushes_over_the_services_lock_commit_without_pulling(server: Server) -> None:
    clone = server.clone("alice")
    clone.write("again/tool.py", PLUS)
    clone.commit()
    assert clone.push().returncode == 0
    lock = show(server, "again/tool.py.lock")
    locked_at = server.main()
    # Not pulled: the clone lacks the lock commit. A body edit lands over it (refs/for/main)
    # and keeps the lock: no new resolution (which would now pick gsfixture 3.0), no commit
    # on top.
    wheels = server.data_dir.parent / "wheels"
    newer = build_wheel(wheels, FixturePackage("gsfixture", "3.0", {"gsfixture/__init__.py": ""}))
    clone.write("again/tool.py", PLUS + b"# body\n")
    clone.commit()
    try:
        pushed = clone.push("HEAD:refs/for/main")
    finally:
        newer.unlink()  # the other tests' index stays as it was
    assert pushed.returncode == 0, pushed.stderr
    assert "locked" not in pushed.stderr
    assert server.bare_git("rev-parse", "main^1").strip() == locked_at  # the landing merge
    assert show(server, "again/tool.py.lock") == lock
    # A new block, still not pulled: locked anew on top of the landing.
    clone.write("again/tool.py", ONE)
    clone.commit()
    pushed = clone.push("HEAD:refs/for/main")
    assert pushed.returncode == 0, pushed.stderr
    assert "locked again/tool.py" in pushed.stderr
    assert locked(show(server, "again/tool.py.lock")) == {"gsfixture": "1.0"}


def test_a_pushed_lock_from_another_index_is_refused(server: Server, tmp_path: Path) -> None:
    clone = server.clone("alice")
    clone.write("elsewhere/tool.py", ONE)
    # The same packages, from a folder the service was not told about: uv's own check passes
    # (the lock satisfies the block), the service's sources do not.
    uv_lock(server, clone, "elsewhere/tool.py", build_wheelhouse(tmp_path / "elsewhere"))
    clone.commit()
    _refused_without_trace(
        server,
        clone,
        [
            "elsewhere/tool.py: elsewhere/tool.py.lock: the lock takes gsfixture from "
            f"{tmp_path / 'elsewhere'}, which is not the configured index"
        ],
    )
