"""Shared fixtures: a fresh service per test, reached through its HTTP API, and the real git CLI."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gitscripts.app import create_app
from gitscripts.config import Settings

PASSWORD = "correct horse battery"
HELLO = (
    b"def main(data: dict) -> dict:\n"
    b"    return {\"message\": f\"Hello, {data.get('name', 'Unknown')}!\",\n"
    b'            "processed_value": data.get("value", 0) * 2}\n'
)


def make_settings(data_dir: Path, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "data_dir": data_dir,
        "jwt_secret_key": "test-secret-key-that-is-long-enough-for-hs256",
        # Cheap hashes keep the suite fast; production uses the defaults.
        "password_hash_time_cost": 1,
        "password_hash_memory_kib": 256,
        "login_throttle_base_delay": 0.2,
        "login_throttle_max_delay": 1.0,
    }
    values.update(overrides)
    return Settings(**values)


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    return tmp_path / "data"


@pytest.fixture
def settings(data_dir: Path) -> Settings:
    return make_settings(data_dir)


@pytest.fixture
def client(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as test_client:
        yield test_client


@dataclass
class Caller:
    """A registered, logged-in user making requests through the HTTP API."""

    client: TestClient
    login: str
    id: int
    token: str
    headers: dict[str, str] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def request(self, method: str, url: str, **kwargs: Any) -> Any:
        headers = {**self.headers, **kwargs.pop("headers", {})}
        return self.client.request(method, url, headers=headers, **kwargs)

    def get(self, url: str, **kwargs: Any) -> Any:
        return self.request("GET", url, **kwargs)

    def post(self, url: str, **kwargs: Any) -> Any:
        return self.request("POST", url, **kwargs)

    def put(self, url: str, **kwargs: Any) -> Any:
        return self.request("PUT", url, **kwargs)

    def patch(self, url: str, **kwargs: Any) -> Any:
        return self.request("PATCH", url, **kwargs)

    def delete(self, url: str, **kwargs: Any) -> Any:
        return self.request("DELETE", url, **kwargs)

    # -- the Scripts Manager calls most tests need ------------------------------------------
    def folder(self, name: str, parent_id: int | None = None) -> dict[str, Any]:
        reply = self.post(
            "/api/v1/scripts-manager/folders", json={"name": name, "parent_id": parent_id}
        )
        assert reply.status_code == 201, reply.text
        return reply.json()

    def upload(
        self,
        filename: str,
        content: bytes = HELLO,
        folder_id: int | None = None,
        display_name: str | None = None,
        replace: bool = False,
        expect: int = 201,
        **form: str,
    ) -> dict[str, Any]:
        data = {"display_name": display_name or filename, "replace": str(replace).lower(), **form}
        if folder_id is not None:
            data["folder_id"] = str(folder_id)
        reply = self.post(
            "/api/v1/scripts-manager/scripts", files={"file": (filename, content)}, data=data
        )
        assert reply.status_code == expect, reply.text
        return reply.json()

    def tree(self) -> dict[str, Any]:
        reply = self.get("/api/v1/scripts-manager/tree")
        assert reply.status_code == 200, reply.text
        return reply.json()


def register(client: TestClient, login: str, password: str = PASSWORD) -> Caller:
    reply = client.post("/api/v1/auth/register", json={"login": login, "password": password})
    assert reply.status_code == 201, reply.text
    reply = client.post("/api/v1/auth/login", json={"login": login, "password": password})
    assert reply.status_code == 200, reply.text
    user = client.get(
        "/api/v1/auth/me", headers={"Authorization": f"Bearer {reply.json()['access_token']}"}
    ).json()
    return Caller(client, login, user["id"], reply.json()["access_token"])


@pytest.fixture
def make_user(
    client: TestClient, data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Caller]:
    """Register and log in a user; `admin=True` makes them admin with the real CLI command."""

    def make(login: str, admin: bool = False) -> Caller:
        caller = register(client, login)
        if admin:
            from gitscripts.cli import main as cli

            monkeypatch.setenv("DATA_DIR", str(data_dir))
            monkeypatch.setenv("GITSCRIPTS_ADMIN_PASSWORD", PASSWORD)
            assert cli(["create-admin", login]) == 0
            assert caller.get("/api/v1/auth/me").json()["is_admin"] is True
        return caller

    return make


@pytest.fixture
def alice(make_user: Callable[..., Caller]) -> Caller:
    return make_user("alice")


@pytest.fixture
def bob(make_user: Callable[..., Caller]) -> Caller:
    return make_user("bob")


@pytest.fixture
def admin(make_user: Callable[..., Caller]) -> Caller:
    return make_user("root-admin", admin=True)


def git(data_dir: Path, *args: str) -> str:
    """Run the real git CLI against the service's bare repository."""
    completed = subprocess.run(
        ["git", "--git-dir", str(data_dir / "scripts.git"), *args],
        capture_output=True,
        text=True,
        check=True,
    )
    return completed.stdout


def commits(data_dir: Path) -> list[dict[str, str]]:
    """`main`'s history, newest first: id, author name and email, subject."""
    out = git(data_dir, "log", "--format=%H%x1f%an%x1f%ae%x1f%s", "main")
    return [
        dict(zip(("id", "author", "email", "subject"), line.split("\x1f"), strict=True))
        for line in out.splitlines()
    ]


def tree_paths(data_dir: Path, rev: str = "main") -> set[str]:
    return set(git(data_dir, "ls-tree", "-r", "--name-only", rev).splitlines())


# A push straight into the bare repository with the service's hooks switched off.
PUSH_BEHIND_THE_SERVICE = [
    "push",
    "-q",
    "--receive-pack=git -c core.hooksPath=/dev/null receive-pack",
    "origin",
    "main",
]


def commit_behind_the_service(
    data_dir: Path, work: Path, files: dict[str, bytes], message: str = "outside change"
) -> None:
    """Move main without the service, as a crash, a restore or an operator would: a commit of
    `files` pushed straight into the bare repository with the service's hooks switched off."""
    if not work.exists():
        subprocess.run(["git", "clone", "-q", str(data_dir / "scripts.git"), str(work)], check=True)
    for path, content in files.items():
        (work / path).parent.mkdir(parents=True, exist_ok=True)
        (work / path).write_bytes(content)
    identity = {"GIT_AUTHOR_NAME": "dev", "GIT_AUTHOR_EMAIL": "dev@example.invalid"}
    env = {**os.environ, **identity, "GIT_COMMITTER_NAME": "dev", "GIT_COMMITTER_EMAIL": "dev@x"}
    for command in (["add", "-A"], ["commit", "-qm", message], PUSH_BEHIND_THE_SERVICE):
        subprocess.run(["git", "-C", str(work), *command], check=True, env=env)


# -- a real server -------------------------------------------------------------------------------
def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class LiveServer:
    base: str
    process: subprocess.Popen[bytes]


@contextmanager
def live_server(
    data_dir: Path,
    log: Path | None = None,
    as_uid: int | None = None,
    prefix: tuple[str, ...] = (),
    program: tuple[str, ...] = (sys.executable, "-m", "gitscripts.cli"),
    cwd: Path | None = None,
    **settings: str,
) -> Iterator[LiveServer]:
    """`gitscripts serve` in a subprocess on a free loopback port, stopped when the block ends.

    Needed wherever something calls back into the service (git hooks, running scripts) or the
    test is about the process itself; `settings` are environment variables. With `as_uid` (the
    tests run as root), the service runs as that ordinary user, as under systemd's `User=`;
    `prefix` is a command that starts it (in a namespace of its own, say); `program` is the
    `gitscripts` it runs (an installed one, say).
    """
    port = free_port()
    env = {
        **os.environ,
        "DATA_DIR": str(data_dir),
        "JWT_SECRET_KEY": "k" * 48,
        "PASSWORD_HASH_TIME_COST": "1",
        "PASSWORD_HASH_MEMORY_KIB": "256",
        "LOG_LEVEL": "WARNING",
        **settings,
    }
    env.pop("PYTEST_CURRENT_TEST", None)
    output = open(log, "wb") if log else subprocess.DEVNULL  # noqa: SIM115 - open while it runs
    command = [*prefix, *program, "serve", "--port", str(port)]
    if as_uid is not None:
        env["HOME"] = str(data_dir.parent)
        command = ["setpriv", f"--reuid={as_uid}", f"--regid={as_uid}", "--clear-groups", *command]
    process = subprocess.Popen(
        command,
        env=env,
        cwd=cwd,
        stdout=output,
        stderr=subprocess.STDOUT,
    )
    server = LiveServer(f"http://127.0.0.1:{port}", process)
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{server.base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert process.poll() is None, log.read_text() if log else "the service exited"
            assert time.monotonic() < deadline, "the service did not start"
            time.sleep(0.05)
        yield server
    finally:
        process.terminate()
        process.wait(timeout=15)
        if log:
            output.close()  # type: ignore[union-attr]
