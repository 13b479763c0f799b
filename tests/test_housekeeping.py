"""API writes leave a packed repository, as pushes do: the loose objects libgit2 writes for each
commit are packed by `git gc --auto` once git finds enough of them, and nothing is lost."""

from __future__ import annotations

import hashlib
import itertools
import time
from pathlib import Path

from fastapi.testclient import TestClient

from gitscripts.app import create_app
from tests.conftest import HELLO, git, make_settings, register


def scripts_in_one_object_folder(count: int) -> list[bytes]:
    """`count` scripts whose blobs all land in `objects/17/`: the one folder `git gc --auto`
    samples to estimate how many loose objects there are."""
    found: list[bytes] = []
    for n in itertools.count():
        content = HELLO + f"# version {n}\n".encode()
        blob_id = hashlib.sha1(b"blob %d\0" % len(content) + content).hexdigest()
        if blob_id.startswith("17"):
            found.append(content)
            if len(found) == count:
                return found
    raise AssertionError("unreachable")


def test_api_commits_are_packed_like_pushes_and_nothing_is_lost(data_dir: Path) -> None:
    settings = make_settings(data_dir, git_housekeeping_seconds=0)
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        # git packs once it estimates more than 256 loose objects (2 or more in objects/17/).
        git(data_dir, "config", "gc.auto", "256")
        commits_before = len(git(data_dir, "rev-list", "main").split())
        contents = scripts_in_one_object_folder(3)
        made = [alice.upload(f"tool_{n}.py", content) for n, content in enumerate(contents)]
        sample = data_dir / "scripts.git" / "objects" / "17"
        deadline = time.monotonic() + 60
        while not list((data_dir / "scripts.git" / "objects" / "pack").glob("*.pack")):
            assert time.monotonic() < deadline, "the loose objects were never packed"
            time.sleep(0.05)
        # gc removes what it packed; at most one may stay loose (written after git last looked,
        # and below its threshold since).
        deadline = time.monotonic() + 60
        while sample.exists() and len(list(sample.iterdir())) > 1:
            assert time.monotonic() < deadline, "the packed loose objects stayed"
            time.sleep(0.05)
        git(data_dir, "fsck", "--strict")
        # Every script, and its history, is still served.
        for script, content in zip(made, contents, strict=True):
            reply = alice.get(f"/api/v1/scripts-manager/scripts/{script['id']}/content")
            assert reply.json()["content"] == content.decode()
        assert len(git(data_dir, "rev-list", "main").split()) == commits_before + 3
        # Writing goes on as before on the packed repository.
        alice.upload("after.py", HELLO)
        assert "after.py" in git(data_dir, "ls-tree", "--name-only", "main")
