"""Scripts that declare dependencies (PEP 723) are locked when written, through the API.

Every write of a script with a block commits its lock (`<script>.py.lock`, uv's format) in the
same commit; the lock follows the script (rename, move, delete, restore) and stays as it is while
the block does; a block that is wrong or does not resolve is refused with nothing committed. The
package index is a folder of wheels the tests build (`tests/wheelhouse.py`): nothing reaches the
internet.
"""

from __future__ import annotations

import functools
import http.server
import threading
import time
import tomllib
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gitscripts.app import create_app
from gitscripts.cli import main as cli
from gitscripts.config import Settings
from tests.conftest import (
    HELLO,
    Caller,
    commit_behind_the_service,
    commits,
    git,
    make_settings,
    register,
    tree_paths,
)
from tests.wheelhouse import FixturePackage, build_wheel, build_wheelhouse

API = "/api/v1/scripts-manager"


def script(*dependencies: str, requires_python: str | None = None, body: bytes = b"") -> bytes:
    """A script whose block declares `dependencies`."""
    lines = ["# /// script"]
    if requires_python is not None:
        lines.append(f'# requires-python = "{requires_python}"')
    lines.append("# dependencies = [" + ", ".join(f'"{d}"' for d in dependencies) + "]")
    lines.append("# ///")
    return ("\n".join(lines) + "\n").encode() + body + HELLO


PLUS = script("gsfixture-plus")
ONE = script("gsfixture==1.0")


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    """The test's own (a test may publish a new release into it)."""
    return build_wheelhouse(tmp_path / "wheelhouse")


def publish_gsfixture_3(wheelhouse: Path) -> None:
    """A newer gsfixture appears on the index: a new resolution of `gsfixture>=2` picks it."""
    build_wheel(
        wheelhouse,
        FixturePackage("gsfixture", "3.0", {"gsfixture/__init__.py": 'VERSION = "3.0"\n'}),
    )


@pytest.fixture
def settings(data_dir: Path, wheelhouse: Path) -> Settings:
    return make_settings(data_dir, packages_find_links=str(wheelhouse), packages_no_index=True)


def locked(lock: bytes) -> dict[str, str]:
    """Package name -> version, as a lock pins them."""
    return {p["name"]: p["version"] for p in tomllib.loads(lock.decode())["package"]}


def show(data_dir: Path, path: str, rev: str = "main") -> bytes:
    return git(data_dir, "show", f"{rev}:{path}").encode()


def changed_in(data_dir: Path, rev: str = "main") -> set[str]:
    out = git(data_dir, "show", "--name-only", "--format=", rev)
    return set(out.split())


def refused(reply: Any, code: str) -> dict[str, Any]:
    assert reply.status_code == 400, reply.text
    body: dict[str, Any] = reply.json()
    assert body["error_code"] == code, body
    return body


def test_an_upload_with_a_block_commits_the_script_and_its_lock(
    alice: Caller, data_dir: Path
) -> None:
    folder = alice.folder("tools")
    made = alice.upload("plus.py", PLUS, folder_id=folder["id"])
    assert made["logical_path"] == "tools/plus.py"
    # One commit, with the script, its sidecar and its lock.
    assert changed_in(data_dir) == {
        "tools/plus.py",
        "tools/plus.py.meta.json",
        "tools/plus.py.lock",
    }
    assert commits(data_dir)[0]["subject"] == "Create script tools/plus.py"
    # The lock pins the transitive dependency too: gsfixture-plus needs gsfixture>=2.
    assert locked(show(data_dir, "tools/plus.py.lock")) == {
        "gsfixture": "2.0",
        "gsfixture-plus": "1.0",
    }
    # A lock is no script: the seed answers do not list it, and it cannot be run.
    tree = alice.tree()
    assert [s["filename"] for s in tree["root_folders"][0]["scripts"]] == ["plus.py"]
    ran = alice.post("/api/v1/scripts/tools/plus.py.lock", json={})
    assert ran.status_code == 404, ran.text


def test_the_same_upload_through_scripts_from_text(alice: Caller, data_dir: Path) -> None:
    reply = alice.post(
        f"{API}/scripts-from-text",
        json={"filename": "one.py", "display_name": "one", "content": ONE.decode()},
    )
    assert reply.status_code == 201, reply.text
    assert locked(show(data_dir, "one.py.lock")) == {"gsfixture": "1.0"}


def test_a_save_that_keeps_the_block_keeps_the_lock_and_a_new_block_relocks(
    alice: Caller, data_dir: Path, wheelhouse: Path
) -> None:
    made = alice.upload("tool.py", PLUS)
    first_lock = show(data_dir, "tool.py.lock")
    # Resolving again now would pick gsfixture 3.0: a kept lock shows it was not resolved again.
    publish_gsfixture_3(wheelhouse)
    # A change below the block: the lock stays byte for byte, in no commit of its own.
    reply = alice.put(
        f"{API}/scripts/{made['id']}", json={"content": (PLUS + b"# more\n").decode()}
    )
    assert reply.status_code == 200, reply.text
    assert changed_in(data_dir) == {"tool.py"}
    assert show(data_dir, "tool.py.lock") == first_lock
    # Replacing with the same block keeps it too.
    alice.upload("tool.py", PLUS + b"# again\n", replace=True)
    assert "tool.py.lock" not in changed_in(data_dir)
    assert show(data_dir, "tool.py.lock") == first_lock
    # A new block: a new lock, in the same commit as the script.
    reply = alice.put(
        f"{API}/scripts/{made['id']}",
        json={"content": script("gsfixture-plus", "gsfixture").decode()},
    )
    assert reply.status_code == 200, reply.text
    assert changed_in(data_dir) == {"tool.py", "tool.py.lock"}
    assert locked(show(data_dir, "tool.py.lock"))["gsfixture"] == "3.0"
    reply = alice.put(f"{API}/scripts/{made['id']}", json={"content": ONE.decode()})
    assert reply.status_code == 200, reply.text
    assert changed_in(data_dir) == {"tool.py", "tool.py.lock"}
    assert locked(show(data_dir, "tool.py.lock")) == {"gsfixture": "1.0"}
    # A version without a block has no lock.
    reply = alice.put(f"{API}/scripts/{made['id']}", json={"content": HELLO.decode()})
    assert reply.status_code == 200, reply.text
    assert changed_in(data_dir) == {"tool.py", "tool.py.lock"}
    assert "tool.py.lock" not in tree_paths(data_dir)


def test_the_lock_follows_rename_move_folder_rename_and_delete(
    alice: Caller, data_dir: Path
) -> None:
    src = alice.folder("src")
    dst = alice.folder("dst")
    made = alice.upload("tool.py", PLUS, folder_id=src["id"])
    lock = show(data_dir, "src/tool.py.lock")

    reply = alice.put(f"{API}/scripts/{made['id']}", json={"filename": "renamed.py"})
    assert reply.status_code == 200, reply.text
    assert show(data_dir, "src/renamed.py.lock") == lock
    assert "src/tool.py.lock" not in tree_paths(data_dir)

    reply = alice.put(f"{API}/scripts/{made['id']}", json={"folder_id": dst["id"]})
    assert reply.status_code == 200, reply.text
    assert show(data_dir, "dst/renamed.py.lock") == lock
    # The folder it left is kept (its marker), with no lone lock in it.
    assert {p for p in tree_paths(data_dir) if p.startswith("src/")} == {"src/.gitkeep"}

    reply = alice.put(f"{API}/folders/{dst['id']}", json={"name": "moved"})
    assert reply.status_code == 200, reply.text
    assert show(data_dir, "moved/renamed.py.lock") == lock

    reply = alice.delete(f"{API}/scripts/{made['id']}")
    assert reply.status_code == 204, reply.text
    assert not {p for p in tree_paths(data_dir) if p.endswith(".lock")}
    assert "moved/.gitkeep" in tree_paths(data_dir)


def test_a_folder_whose_last_script_moves_out_with_its_lock_stays(
    admin: Caller, data_dir: Path, tmp_path: Path
) -> None:
    made = admin.upload("tool.py", PLUS)
    # A folder made by git holds no marker, only the script, its sidecar and its lock (the
    # script has no owner: an admin moves it).
    lock = show(data_dir, "tool.py.lock")
    files = {"gitfolder/other.py": PLUS, "gitfolder/other.py.lock": lock}
    commit_behind_the_service(data_dir, tmp_path / "work", files)
    other = next(
        s for f in admin.tree()["root_folders"] for s in f["scripts"] if s["filename"] == "other.py"
    )
    reply = admin.put(f"{API}/scripts/{other['id']}", json={"folder_id": None})
    assert reply.status_code == 200, reply.text
    assert {p for p in tree_paths(data_dir) if p.startswith("gitfolder/")} == {"gitfolder/.gitkeep"}
    assert show(data_dir, "other.py.lock") == lock
    assert made["id"] != other["id"]


def test_a_rename_into_a_helper_drops_the_lock_and_back_locks_again(
    alice: Caller, data_dir: Path
) -> None:
    made = alice.upload("tool.py", PLUS)
    reply = alice.put(f"{API}/scripts/{made['id']}", json={"filename": "_helper.py"})
    assert reply.status_code == 200, reply.text
    assert not {p for p in tree_paths(data_dir) if p.endswith(".lock")}
    reply = alice.put(f"{API}/scripts/{made['id']}", json={"filename": "tool.py"})
    assert reply.status_code == 200, reply.text
    assert locked(show(data_dir, "tool.py.lock")) == {"gsfixture": "2.0", "gsfixture-plus": "1.0"}


def test_restore_brings_back_the_lock_the_version_had(alice: Caller, data_dir: Path) -> None:
    made = alice.upload("tool.py", ONE)
    old = commits(data_dir)[0]["id"]
    old_lock = show(data_dir, "tool.py.lock")
    reply = alice.put(f"{API}/scripts/{made['id']}", json={"content": PLUS.decode()})
    assert reply.status_code == 200, reply.text
    assert show(data_dir, "tool.py.lock") != old_lock
    reply = alice.post(f"{API}/scripts/{made['id']}/restore", json={"revision": old})
    assert reply.status_code == 200, reply.text
    assert changed_in(data_dir) == {"tool.py", "tool.py.lock"}
    assert show(data_dir, "tool.py.lock") == old_lock


def test_a_deleted_script_comes_back_with_its_lock(alice: Caller, data_dir: Path) -> None:
    made = alice.upload("tool.py", ONE)
    lock = show(data_dir, "tool.py.lock")
    assert alice.delete(f"{API}/scripts/{made['id']}").status_code == 204
    assert "tool.py.lock" not in tree_paths(data_dir)
    reply = alice.post(f"{API}/deleted/{made['id']}/restore", json={})
    assert reply.status_code == 201, reply.text
    assert reply.json()["id"] == made["id"]
    assert {"tool.py", "tool.py.lock"} <= changed_in(data_dir)
    assert show(data_dir, "tool.py.lock") == lock  # the lock it had, not a new resolution


INVALID_BLOCKS = {
    "bad TOML": b"# /// script\n# dependencies = [\n# ///\n" + HELLO,
    "unknown key": b'# /// script\n# dependencies = []\n# colour = "blue"\n# ///\n' + HELLO,
    "direct URL": script("gsfixture @ https://example.invalid/gsfixture-1.0-py3-none-any.whl"),
    "impossible requires-python": script("gsfixture", requires_python="<3"),
    # uv obeys these in a block: they would take packages from elsewhere than the index.
    "uv sources": b'# /// script\n# dependencies = ["gsfixture"]\n# [tool.uv.sources]\n'
    b'# gsfixture = { path = "/srv/elsewhere/gsfixture-1.0-py3-none-any.whl" }\n# ///\n' + HELLO,
    "uv index": b'# /// script\n# dependencies = ["gsfixture"]\n# [tool.uv]\n'
    b'# extra-index-url = ["https://elsewhere.invalid/simple"]\n# ///\n' + HELLO,
}


@pytest.mark.parametrize("case", sorted(INVALID_BLOCKS))
def test_an_invalid_block_is_refused_at_every_door_and_nothing_is_committed(
    alice: Caller, data_dir: Path, case: str
) -> None:
    content = INVALID_BLOCKS[case]
    existing = alice.upload("kept.py")
    head = commits(data_dir)[0]["id"]
    refused(
        alice.post(
            f"{API}/scripts", files={"file": ("new.py", content)}, data={"display_name": "n"}
        ),
        "INVALID_SCRIPT_METADATA",
    )
    refused(
        alice.post(
            f"{API}/scripts-from-text",
            json={"filename": "new.py", "display_name": "n", "content": content.decode()},
        ),
        "INVALID_SCRIPT_METADATA",
    )
    refused(
        alice.put(f"{API}/scripts/{existing['id']}", json={"content": content.decode()}),
        "INVALID_SCRIPT_METADATA",
    )
    refused(
        alice.post(f"{API}/validate", json={"filename": "new.py", "content": content.decode()}),
        "INVALID_SCRIPT_METADATA",
    )
    assert commits(data_dir)[0]["id"] == head


def test_an_unresolvable_block_is_refused_with_the_resolvers_reason(
    alice: Caller, data_dir: Path
) -> None:
    existing = alice.upload("kept.py")
    head = commits(data_dir)[0]["id"]
    broken = script("gsfixture-broken")
    body = refused(
        alice.post(
            f"{API}/scripts", files={"file": ("new.py", broken)}, data={"display_name": "n"}
        ),
        "DEPENDENCIES_UNRESOLVABLE",
    )
    assert "gsfixture-nowhere-to-be-found" in body["message"]
    refused(
        alice.put(f"{API}/scripts/{existing['id']}", json={"content": broken.decode()}),
        "DEPENDENCIES_UNRESOLVABLE",
    )
    refused(
        alice.post(
            f"{API}/scripts-from-text",
            json={
                "filename": "new.py",
                "display_name": "n",
                "content": script("gsfixture>=3").decode(),
            },
        ),
        "DEPENDENCIES_UNRESOLVABLE",
    )
    assert commits(data_dir)[0]["id"] == head
    assert alice.tree()["root_scripts"][0]["filename"] == "kept.py"


def test_a_script_without_a_block_is_unaffected(alice: Caller, data_dir: Path) -> None:
    made = alice.upload("plain.py")
    assert changed_in(data_dir) == {"plain.py", "plain.py.meta.json"}
    reply = alice.get(f"{API}/scripts/{made['id']}/dependencies")
    assert reply.status_code == 200, reply.text
    assert reply.json() == {
        "script_id": made["id"],
        "revision": commits(data_dir)[0]["id"],
        "path": "plain.py",
        "declared": None,
        "lock": None,
        "environment": None,
    }
    # A helper's block means nothing: it runs in its importer's environment, with no lock.
    alice.upload("_helper.py", PLUS)
    assert "_helper.py.lock" not in tree_paths(data_dir)


def test_the_dependencies_endpoint_at_main_and_at_an_old_revision(
    alice: Caller, data_dir: Path
) -> None:
    made = alice.upload("tool.py", script("gsfixture-plus", requires_python=">=3.8"))
    first = commits(data_dir)[0]["id"]
    reply = alice.get(f"{API}/scripts/{made['id']}/dependencies")
    assert reply.status_code == 200, reply.text
    answer = reply.json()
    assert answer["declared"] == {"requires_python": ">=3.8", "dependencies": ["gsfixture-plus"]}
    assert answer["lock"]["path"] == "tool.py.lock"
    assert [(p["name"], p["version"]) for p in answer["lock"]["packages"]] == [
        ("gsfixture", "2.0"),
        ("gsfixture-plus", "1.0"),
    ]
    assert answer["lock"]["packages"][0]["source"]["kind"] == "registry"
    assert len(answer["environment"]["key"]) == 20
    alice.put(f"{API}/scripts/{made['id']}", json={"content": ONE.decode()})
    now = alice.get(f"{API}/scripts/{made['id']}/dependencies").json()
    assert [p["version"] for p in now["lock"]["packages"]] == ["1.0"]
    assert now["environment"]["key"] != answer["environment"]["key"]
    then = alice.get(f"{API}/scripts/{made['id']}/dependencies", params={"rev": first[:10]})
    # The same answer, but for the environment's state: its build started with the upload.
    assert {**then.json(), "environment": None} == {
        **answer,
        "revision": first,
        "environment": None,
    }
    assert then.json()["environment"]["key"] == answer["environment"]["key"]
    missing = alice.get(f"{API}/scripts/999/dependencies")
    assert missing.status_code == 404 and missing.json()["error_code"] == "SCRIPT_NOT_FOUND"
    # The seed's script object is unchanged: no new fields.
    assert set(alice.get(f"{API}/scripts/{made['id']}").json()) == {
        "id", "filename", "logical_path", "display_name", "description", "folder_id",
        "created_by", "created_at", "updated_at", "can_edit", "can_delete",
    }  # fmt: skip


def test_history_diff_and_reindex_know_the_lock_is_no_script(
    alice: Caller, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    made = alice.upload("tool.py", ONE)
    alice.put(f"{API}/scripts/{made['id']}", json={"content": PLUS.decode()})
    # A script's diff shows its lock changing next to its code.
    diff = alice.get(f"{API}/scripts/{made['id']}/diff").json()
    assert [f["new_path"] for f in diff["files"]] == ["tool.py", "tool.py.lock"]
    # The history lists the script's versions, never a lock as a script of its own.
    versions = alice.get(f"{API}/scripts/{made['id']}/history").json()["versions"]
    assert len(versions) == 2
    # Rebuilding the index from git: the lock is no entry; the script keeps its id.
    monkeypatch.setenv("DATA_DIR", str(data_dir))
    assert cli(["reindex"]) == 0
    tree = alice.tree()
    assert [(s["id"], s["filename"]) for s in tree["root_scripts"]] == [(made["id"], "tool.py")]


def test_resolution_has_a_time_limit(tmp_path: Path, wheelhouse: Path) -> None:
    settings = make_settings(
        tmp_path / "data",
        packages_find_links=str(wheelhouse),
        packages_no_index=True,
        packages_resolve_timeout=0.001,
    )
    with TestClient(create_app(settings)) as client:
        carol = register(client, "carol")
        reply = carol.post(
            f"{API}/scripts-from-text",
            json={"filename": "slow.py", "display_name": "s", "content": PLUS.decode()},
        )
        body = refused(reply, "DEPENDENCIES_UNRESOLVABLE")
        assert "PACKAGES_RESOLVE_TIMEOUT" in body["message"]
        assert carol.tree()["root_scripts"] == []


class _SlowIndex(http.server.SimpleHTTPRequestHandler):
    """A folder of wheels served over HTTP, each answer late: a resolution that takes a while."""

    delay = 1.5

    def do_GET(self) -> None:
        time.sleep(self.delay)
        super().do_GET()

    def log_message(self, *args: Any) -> None:
        pass


def test_other_writers_do_not_wait_while_a_lock_is_resolved(
    tmp_path: Path, wheelhouse: Path
) -> None:
    handler = functools.partial(_SlowIndex, directory=str(wheelhouse))
    with http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler) as index:
        threading.Thread(target=index.serve_forever, daemon=True).start()
        settings = make_settings(
            tmp_path / "data",
            packages_find_links=f"http://127.0.0.1:{index.server_address[1]}/",
            packages_no_index=True,
        )
        with TestClient(create_app(settings)) as client:
            dave = register(client, "dave")
            slow: dict[str, Any] = {}

            def locked_upload() -> None:
                slow["reply"] = dave.post(
                    f"{API}/scripts-from-text",
                    json={"filename": "slow.py", "display_name": "s", "content": ONE.decode()},
                )

            started = time.monotonic()
            resolving = threading.Thread(target=locked_upload)
            resolving.start()
            time.sleep(0.5)  # the upload is resolving now
            plain = dave.post(
                f"{API}/scripts-from-text",
                json={"filename": "plain.py", "display_name": "p", "content": HELLO.decode()},
            )
            plain_done = time.monotonic() - started
            resolving.join()
            index.shutdown()
        assert plain.status_code == 201, plain.text
        assert slow["reply"].status_code == 201, slow["reply"].text
        slow_done = time.monotonic() - started
        # The plain upload committed while uv was still waiting for the index.
        assert plain_done < 1.4 < slow_done, (plain_done, slow_done)
