"""A start after any interrupted start succeeds: the data directory is made whole, nothing is lost."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from gitscripts.app import create_app
from tests.conftest import HELLO, commits, free_port, live_server, make_settings, register


def _bare_repository_without_main(data_dir: Path) -> None:
    # Killed between `git init` and the first commit.
    subprocess.run(["git", "init", "--quiet", "--bare", str(data_dir / "scripts.git")], check=True)


def _repository_without_objects(data_dir: Path) -> None:
    # Killed while git init laid out its folders.
    _bare_repository_without_main(data_dir)
    shutil.rmtree(data_dir / "scripts.git" / "objects")
    (data_dir / "scripts.git" / "config").unlink()


def _empty_repository_folder(data_dir: Path) -> None:
    (data_dir / "scripts.git" / "refs").mkdir(parents=True)


def _half_built_repository_beside(data_dir: Path) -> None:
    # Killed while building the repository in its temporary place (the way it is made now).
    _bare_repository_without_main(data_dir)
    (data_dir / "scripts.git").rename(data_dir / ".scripts.git.new-k1ll3d")


def _no_index(data_dir: Path) -> None:
    # Killed after the repository was made and before the index was first written.
    TestClient(create_app(make_settings(data_dir))).close()
    (data_dir / "index.json").unlink(missing_ok=True)


INTERRUPTED: dict[str, Callable[[Path], None]] = {
    "bare repository without main": _bare_repository_without_main,
    "repository without objects or config": _repository_without_objects,
    "empty repository folder": _empty_repository_folder,
    "half-built repository beside its place": _half_built_repository_beside,
    "no index": _no_index,
}


@pytest.mark.parametrize("state", list(INTERRUPTED))
def test_a_start_after_an_interrupted_start_succeeds(tmp_path: Path, state: str) -> None:
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    INTERRUPTED[state](data_dir)
    for start in range(2):  # and every start after that one
        with TestClient(create_app(make_settings(data_dir))) as client:
            alice = register(client, f"alice{start}")
            alice.upload(f"hello{start}.py", HELLO)
            assert {s["logical_path"] for s in alice.tree()["root_scripts"]} >= {f"hello{start}.py"}
    history = commits(data_dir)
    assert history[-1]["subject"] == "Initialize script repository"
    assert [c["subject"] for c in history[:2]] == [
        "Create script hello1.py",
        "Create script hello0.py",
    ]


def test_a_first_start_killed_while_it_builds_the_repository(tmp_path: Path) -> None:
    """`kill -9` the moment the repository starts to appear, several times; then start normally."""
    for attempt in range(3):
        data_dir = tmp_path / f"data{attempt}"
        env = {**os.environ, "DATA_DIR": str(data_dir), "JWT_SECRET_KEY": "k" * 48}
        starting = subprocess.Popen(
            [sys.executable, "-m", "gitscripts.cli", "serve", "--port", str(free_port())],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 60
        while not (data_dir.exists() and any(data_dir.glob("*scripts.git*"))):
            assert time.monotonic() < deadline and starting.poll() is None
            time.sleep(0.0005)
        starting.send_signal(signal.SIGKILL)
        starting.wait()
        with live_server(data_dir) as server:
            credentials = {"login": "alice", "password": "correct horse battery"}
            assert httpx.post(f"{server.base}/api/v1/auth/register", json=credentials).is_success
        assert commits(data_dir)[-1]["subject"] == "Initialize script repository"
