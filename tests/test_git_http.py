"""Git over HTTP: the real `git` client against a real `gitscripts serve` on a loopback port.

The hooks of a push call back into the running service, so these tests cannot use TestClient: one
server per module (users registered once, each test working in paths of its own) and a second one
with anonymous reads for the tests that need other settings or a large repository.
"""

from __future__ import annotations

import base64
import gzip
import itertools
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import PASSWORD, live_server

HELLO = b"def main(data: dict) -> dict:\n    return {'hello': data.get('name', 'world')}\n"
API = "/api/v1/scripts-manager"
ZERO = "0" * 40


# -- the server -----------------------------------------------------------------------------------
@dataclass
class User:
    login: str
    id: int
    token: str  # a personal API token (gst_...)

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


@dataclass
class Server:
    base: str
    data_dir: Path
    work: Path  # clones and the git client's HOME live here
    process: subprocess.Popen[bytes]
    users: dict[str, User] = field(default_factory=dict)
    clones: Iterator[int] = field(default_factory=itertools.count)

    @property
    def port(self) -> int:
        return int(self.base.rsplit(":", 1)[1])

    @property
    def bare(self) -> Path:
        return self.data_dir / "scripts.git"

    def url(self, login: str | None = None, secret: str | None = None) -> str:
        """The clone URL, with credentials in it (the git client sends them as HTTP Basic)."""
        if login is None:
            return f"{self.base}/git/scripts.git"
        secret = secret if secret is not None else self.users[login].token
        credentials = f"{quote(login, safe='')}:{quote(secret, safe='')}"
        return f"http://{credentials}@127.0.0.1:{self.port}/git/scripts.git"

    def api(self, login: str, method: str, path: str, **kwargs: Any) -> httpx.Response:
        headers = {**self.users[login].headers, **kwargs.pop("headers", {})}
        return httpx.request(method, self.base + path, headers=headers, timeout=60, **kwargs)

    def bare_git(self, *args: str) -> str:
        return run_git(["--git-dir", str(self.bare), *args], cwd=self.work).stdout

    def refs(self) -> str:
        """Every ref of the served repository and where it points."""
        return self.bare_git("for-each-ref", "--format=%(refname) %(objectname)")

    def main(self) -> str:
        return self.bare_git("rev-parse", "refs/heads/main").strip()

    def objects(self) -> dict[str, str]:
        """What `git count-objects -v` says of the served repository: a push that left any
        object behind changes it."""
        lines = self.bare_git("count-objects", "-v").splitlines()
        return dict(line.split(": ", 1) for line in lines)

    def clone(self, login: str | None, *options: str, secret: str | None = None) -> Clone:
        path = self.work / f"clone-{next(self.clones)}"  # next() is atomic: threads clone too
        url = self.url(login, secret) if login is not None else self.url()
        run_git(["clone", "--quiet", *options, url, str(path)], cwd=self.work)
        name = login or "anonymous"
        clone = Clone(path)
        clone.git("config", "user.name", name)
        clone.git("config", "user.email", f"{name}@example.com")
        return clone

    def script(self, login: str, path: str) -> dict[str, Any] | None:
        """The script at `path` as GET /tree shows it to `login`, or None."""
        tree = self.api(login, "GET", f"{API}/tree").json()
        pending = [tree]
        while pending:
            node = pending.pop()
            for script in node.get("root_scripts", []) + node.get("scripts", []):
                if script["logical_path"] == path:
                    return script
            pending += node.get("root_folders", []) + node.get("subfolders", [])
        return None

    def run(self, login: str, path: str, data: dict[str, Any]) -> dict[str, Any]:
        reply = self.api(login, "POST", f"/api/v1/scripts/{path}", json={"data": data})
        assert reply.status_code == 200, reply.text
        return reply.json()

    def git_processes(self) -> dict[int, str]:
        """The git programs the server is running right now (its descendants named git*), by
        process id."""
        return {
            pid: command
            for pid, (program, command) in self.descendants().items()
            if program.startswith("git")
        }

    def descendants(self) -> dict[int, tuple[str, str]]:
        """Process id -> (program name, command line) of every process the server runs now."""
        children: dict[int, list[int]] = {}
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    stat = (entry / "stat").read_text()
                except OSError:
                    continue
                parent = int(stat.rsplit(")", 1)[1].split()[1])
                children.setdefault(parent, []).append(int(entry.name))
        found: dict[int, tuple[str, str]] = {}
        pending = list(children.get(self.process.pid, []))
        while pending:
            pid = pending.pop()
            pending += children.get(pid, [])
            try:
                argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            command = b" ".join(argv).decode(errors="replace")
            found[pid] = (os.path.basename(argv[0].decode(errors="replace")), command)
        return found


def git_environment(home: Path) -> dict[str, str]:
    """The git client's environment: no user or system config, never a prompt."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GIT_", "SSH_ASKPASS"))}
    env.update(
        HOME=str(home),
        GIT_CONFIG_GLOBAL=str(home / ".gitconfig"),
        GIT_CONFIG_NOSYSTEM="1",
        GIT_TERMINAL_PROMPT="0",
        LC_ALL="C",
    )
    return env


_HOME: Path | None = None


def _home() -> Path:
    assert _HOME is not None, "the _git_home fixture sets it"
    return _HOME


def run_git(
    args: list[str], cwd: Path, check: bool = True, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    completed = subprocess.run(
        ["git", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        env={**git_environment(_home()), **(env or {})},
        timeout=120,
    )
    if check and completed.returncode != 0:
        raise AssertionError(f"git {' '.join(args)} failed:\n{completed.stderr}")
    return completed


@dataclass
class Clone:
    path: Path

    def git(self, *args: str, check: bool = True, **env: str) -> subprocess.CompletedProcess[str]:
        return run_git(list(args), cwd=self.path, check=check, env=env)

    def write(self, path: str, content: bytes) -> None:
        target = self.path / path
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content)
        self.git("add", path)

    def commit(self, message: str = "change", **env: str) -> str:
        self.git("commit", "--quiet", "--allow-empty", "-m", message, **env)
        return self.head()

    def head(self) -> str:
        return self.git("rev-parse", "HEAD").stdout.strip()

    def push(self, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
        return self.git("push", "origin", *(args or ("HEAD:main",)), check=False, **env)


@contextmanager
def _started(root: Path, logins: list[str], **settings: str) -> Iterator[Server]:
    root.mkdir(parents=True, exist_ok=True)
    work = root / "work"
    work.mkdir()
    data_dir = root / "data"
    # The admin comes first, through the real command, so it is user 1.
    admin = subprocess.run(
        [sys.executable, "-m", "gitscripts.cli", "create-admin", "root"],
        env={**os.environ, "DATA_DIR": str(data_dir), "GITSCRIPTS_ADMIN_PASSWORD": PASSWORD},
        capture_output=True,
        text=True,
    )
    assert admin.returncode == 0, admin.stderr
    with live_server(data_dir, root / "server.log", **settings) as live:
        server = Server(live.base, data_dir, work, live.process)
        for login in ["root", *logins]:
            credentials = {"login": login, "password": PASSWORD}
            if login != "root":
                assert httpx.post(
                    f"{server.base}/api/v1/auth/register", json=credentials
                ).is_success
            session = httpx.post(f"{server.base}/api/v1/auth/login", json=credentials).json()
            headers = {"Authorization": f"Bearer {session['access_token']}"}
            me = httpx.get(f"{server.base}/api/v1/auth/me", headers=headers).json()
            token = httpx.post(
                f"{server.base}/api/v1/auth/tokens", headers=headers, json={"name": "git"}
            ).json()["token"]
            server.users[login] = User(login, me["id"], token)
        yield server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with _started(tmp_path_factory.mktemp("git-http"), ["alice", "bob"]) as started:
        yield started


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    """A server that lets anyone clone (GIT_ANONYMOUS_READ), with throttling that shows fast."""
    with _started(
        tmp_path_factory.mktemp("git-http-open"),
        ["carol"],
        GIT_ANONYMOUS_READ="true",
        LOGIN_THROTTLE_FREE_ATTEMPTS="2",
        LOGIN_THROTTLE_BASE_DELAY="0.4",
    ) as started:
        yield started


@pytest.fixture(scope="module", autouse=True)
def _git_home(tmp_path_factory: pytest.TempPathFactory) -> None:
    """An empty HOME for the git client: no user config, no credential helper."""
    global _HOME
    _HOME = tmp_path_factory.mktemp("git-home")


# -- cloning and authentication -------------------------------------------------------------------
def test_clone_with_a_token_or_a_password_and_not_with_wrong_credentials(server: Server) -> None:
    with_token = server.clone("alice")
    assert with_token.head() == server.main()
    with_password = server.clone("alice", secret=PASSWORD)
    assert with_password.head() == server.main()
    for login, secret in (
        ("alice", "wrong password"),
        ("alice", "gst_not-a-real-token"),
        ("bob", server.users["alice"].token),  # alice's token does not work for bob
    ):
        url = server.url(login, secret)
        failed = run_git(["ls-remote", url], cwd=server.work, check=False)
        assert failed.returncode != 0
        assert "Authentication failed" in failed.stderr
    # Without credentials: 401 with a Basic challenge, so that the git client asks for them.
    info_refs = f"{server.url()}/info/refs?service=git-upload-pack"
    reply = httpx.get(info_refs)
    assert reply.status_code == 401
    assert reply.headers["WWW-Authenticate"].startswith("Basic")
    failed = run_git(["ls-remote", server.url()], cwd=server.work, check=False)
    assert failed.returncode != 0
    # A token also works as a Bearer header (for tools that send one).
    reply = httpx.get(info_refs, headers=server.users["alice"].headers)
    assert reply.status_code == 200
    assert reply.headers["content-type"] == "application/x-git-upload-pack-advertisement"
    # Only the smart protocol's three paths are served.
    for path in ("HEAD", "objects/info/packs", "config"):
        assert (
            httpx.get(f"{server.url()}/{path}", headers=server.users["alice"].headers).status_code
            == 404
        )


def test_anonymous_clone_only_when_allowed_and_never_an_anonymous_push(
    server: Server, open_server: Server
) -> None:
    refused = run_git(
        ["clone", server.url(), str(server.work / "anon")], cwd=server.work, check=False
    )
    # The server asked for credentials (401 + Basic), and the client, not allowed to prompt, gave up.
    assert refused.returncode != 0 and "could not read Username" in refused.stderr
    clone = open_server.clone(None)
    assert clone.head() == open_server.main()
    before = open_server.refs()
    clone.write("anonymous.py", HELLO)
    clone.commit("anonymous push")
    pushed = clone.push()
    assert pushed.returncode != 0 and "could not read Username" in pushed.stderr
    assert open_server.refs() == before


def test_password_checks_are_throttled_like_the_login(open_server: Server) -> None:
    info_refs = f"{open_server.url()}/info/refs?service=git-upload-pack"
    wrong = httpx.BasicAuth("carol", "not the password")
    for _ in range(2):  # the free attempts
        assert httpx.get(info_refs, auth=wrong).status_code == 401
    started = time.monotonic()
    assert httpx.get(info_refs, auth=wrong).status_code == 401
    assert time.monotonic() - started >= 0.4
    started = time.monotonic()
    reply = httpx.get(info_refs, auth=httpx.BasicAuth("carol", PASSWORD), timeout=30)
    assert reply.status_code == 200 and time.monotonic() - started >= 0.8


# -- pushing --------------------------------------------------------------------------------------
def test_pushed_script_is_owned_by_the_pusher_and_runs(server: Server) -> None:
    clone = server.clone("alice")
    clone.write("pushed/hello.py", HELLO)
    clone.write(
        "pushed/hello.py.meta.json", b'{"display_name": "Hello from git", "description": "d"}\n'
    )
    # The commit claims to be bob's, even in the address form gitscripts' own commits use, and
    # claims gitscripts as committer: identity comes from the authentication, never from this.
    bob = server.users["bob"]
    forged = f"{bob.id}+bob@users.gitscripts.invalid"
    clone.commit(
        "a script by 'bob'",
        GIT_AUTHOR_NAME="bob",
        GIT_AUTHOR_EMAIL=forged,
        GIT_COMMITTER_NAME="gitscripts",
        GIT_COMMITTER_EMAIL="gitscripts@gitscripts.invalid",
    )
    pushed = clone.push()
    assert pushed.returncode == 0, pushed.stderr
    assert "remote: gitscripts: main is at" in pushed.stderr
    script = server.script("bob", "pushed/hello.py")
    assert script is not None
    assert script["created_by"]["login"] == "alice"
    assert script["display_name"] == "Hello from git" and script["description"] == "d"
    assert script["can_edit"] is False  # bob is not its owner
    folder = server.api("alice", "GET", f"{API}/folders/{script['folder_id']}").json()
    assert folder["path"] == "pushed" and folder["created_by"]["login"] == "alice"
    reply = server.run("bob", "pushed/hello.py", {"name": "git"})
    assert reply["success"] is True and reply["result"] == {"hello": "git"}
    assert reply["revision"] == clone.head() == server.main()
    # Bob, being someone else, cannot change it over git either.
    theirs = server.clone("bob")
    theirs.write("pushed/hello.py", HELLO + b"# bob was here\n")
    theirs.commit()
    refused = theirs.push()
    assert refused.returncode != 0
    assert "pushed/hello.py: belongs to alice" in refused.stderr


def test_pushes_are_counted_accepted_or_refused(server: Server) -> None:
    def pushes(outcome: str) -> float:
        text = httpx.get(f"{server.base}/metrics").text
        found = re.search(
            rf'^gitscripts_git_pushes_total{{outcome="{outcome}"}} (\S+)$', text, re.M
        )
        return float(found.group(1)) if found else 0.0

    accepted, refused = pushes("accepted"), pushes("refused")
    clone = server.clone("alice")
    clone.write("counted/mine.py", HELLO)
    clone.commit()
    assert clone.push().returncode == 0
    theirs = server.clone("bob")
    theirs.write("counted/mine.py", HELLO + b"# not bob's\n")
    theirs.commit()
    assert theirs.push().returncode != 0
    assert (pushes("accepted"), pushes("refused")) == (accepted + 1, refused + 1)


def test_ownership_is_checked_against_main_even_when_the_index_is_behind(server: Server) -> None:
    # An API commit of bob's whose index write never happened (a crash in between): only `main`
    # knows the script. The push check must bring the index up to date before asking for owners.
    bob = server.users["bob"]
    work = server.work / "behind"
    work.mkdir()
    env = {
        "GIT_DIR": str(server.bare),
        "GIT_INDEX_FILE": str(work / "index"),
        "GIT_AUTHOR_NAME": "bob",
        "GIT_AUTHOR_EMAIL": f"{bob.id}+bob@users.gitscripts.invalid",
        "GIT_COMMITTER_NAME": "gitscripts",
        "GIT_COMMITTER_EMAIL": "gitscripts@gitscripts.invalid",
    }
    run_git(["read-tree", "main"], cwd=work, env=env)
    (work / "bob.py").write_bytes(HELLO)
    blob = run_git(["hash-object", "-w", "bob.py"], cwd=work, env=env).stdout.strip()
    run_git(
        ["update-index", "--add", "--cacheinfo", f"100644,{blob},behind/bob.py"], cwd=work, env=env
    )
    tree = run_git(["write-tree"], cwd=work, env=env).stdout.strip()
    main = server.main()
    commit = run_git(["commit-tree", tree, "-p", main, "-m", "Create script"], cwd=work, env=env)
    run_git(["update-ref", "refs/heads/main", commit.stdout.strip(), main], cwd=work, env=env)
    clone = server.clone("alice")
    clone.write("behind/bob.py", HELLO + b"# alice\n")
    clone.commit("alice overwrites bob's script")
    refused = clone.push()
    assert refused.returncode != 0
    assert "behind/bob.py: belongs to bob" in refused.stderr


@pytest.fixture(scope="module")
def others(server: Server) -> dict[str, Any]:
    """Bob's scripts in his folder (one pushed without a metadata file) and an empty folder of
    his; and a tag."""
    folder = server.api("bob", "POST", f"{API}/folders", json={"name": "bobs"}).json()
    script = server.api(
        "bob",
        "POST",
        f"{API}/scripts",
        files={"file": ("tool.py", HELLO)},
        data={"display_name": "Tool", "folder_id": str(folder["id"])},
    )
    assert script.status_code == 201, script.text
    empty = server.api("bob", "POST", f"{API}/folders", json={"name": "bob-empty"})
    assert empty.status_code == 201
    # A script bob pushed without a metadata file: its display name is its file name.
    bobs = server.clone("bob")
    bobs.write("bobs/bare.py", HELLO)
    bobs.commit("a script without metadata")
    assert bobs.push().returncode == 0
    clone = server.clone("alice")
    clone.git("tag", "-a", "-m", "release", "v1")
    assert clone.push("v1").returncode == 0
    return {"folder": folder, "script": script.json(), "empty": empty.json()}


def _symlink(clone: Clone) -> None:
    os.symlink("hello.py", clone.path / "link.py")
    clone.git("add", "link.py")


def _submodule(clone: Clone) -> None:
    clone.git("update-index", "--add", "--cacheinfo", f"160000,{clone.head()},sub")


def _mktree(clone: Clone, entries: str) -> str:
    made = subprocess.run(
        ["git", "mktree"],
        input=entries,
        cwd=clone.path,
        capture_output=True,
        text=True,
        env=git_environment(_home()),
        check=True,
    )
    return made.stdout.strip()


def _dot_git(clone: Clone) -> None:
    # Neither `git add` nor `git read-tree` accepts such a path: build the commit by hand.
    (clone.path / "x.txt").write_bytes(b"[core]\n")
    blob = clone.git("hash-object", "-w", "x.txt").stdout.strip()
    dot_git = _mktree(clone, f"100644 blob {blob}\tconfig\n")
    folder = _mktree(clone, f"040000 tree {dot_git}\t.git\n100644 blob {blob}\tok.txt\n")
    root = _mktree(clone, clone.git("ls-tree", "HEAD").stdout + f"040000 tree {folder}\tx\n")
    commit = clone.git("commit-tree", root, "-p", "HEAD", "-m", "a .git folder").stdout.strip()
    clone.git("update-ref", "HEAD", commit)


def _rewrite_main(clone: Clone) -> None:
    # A new commit on top of main's parent: main's last commit would be lost.
    clone.git("reset", "--quiet", "--hard", "origin/main~1")
    clone.write("rewritten.py", HELLO)


CONTENT_CASES: dict[str, tuple[Callable[[Clone], None], list[str]]] = {
    "syntax error": (
        lambda c: c.write("bad/broken.py", b"def main(data):\n    return {\n"),
        ["bad/broken.py", "not valid Python"],
    ),
    "no main": (lambda c: c.write("nomain.py", b"x = 1\n"), ["nomain.py", "main(data)"]),
    "symlink": (_symlink, ["link.py", "symlinks are not allowed"]),
    "submodule": (_submodule, ["sub", "submodules are not allowed"]),
    "huge file": (
        lambda c: c.write("data/huge.txt", b"x" * (1_048_576 + 1)),
        ["data/huge.txt", "the limit is 1048576 bytes"],
    ),
    # git's own fsck (receive.fsckObjects) turns this away before the hook runs.
    ".git component": (_dot_git, [".git"]),
    ".gitkeep as a folder": (
        lambda c: c.write("lib/.gitkeep/x.py", HELLO),
        ["lib/.gitkeep/x.py", "'.gitkeep': name cannot start with a dot"],
    ),
    "leading dot": (
        lambda c: c.write("lib/.hidden.py", HELLO),
        ["lib/.hidden.py", "start with a dot"],
    ),
    "control character": (
        lambda c: c.write("ctl/bell\x07.py", HELLO),
        ["ctl/bell", "control characters"],
    ),
    "invalid metadata": (
        lambda c: (c.write("meta.py", HELLO), c.write("meta.py.meta.json", b'{"display_name": 3}')),
        ["meta.py.meta.json", "invalid metadata file", "display_name"],
    ),
    "someone else's script changed": (
        lambda c: c.write("bobs/tool.py", HELLO + b"# alice\n"),
        ["bobs/tool.py: belongs to bob", "may change it"],
    ),
    "someone else's metadata changed": (
        lambda c: c.write("bobs/tool.py.meta.json", b'{"display_name": "Mine"}'),
        ["bobs/tool.py: belongs to bob"],
    ),
    "someone else's metadata added": (
        lambda c: c.write("bobs/bare.py.meta.json", b'{"display_name": "Mine now"}'),
        ["bobs/bare.py: belongs to bob", "may change it"],
    ),
    "someone else's script deleted": (
        lambda c: c.git("rm", "--quiet", "bobs/tool.py"),
        ["bobs/tool.py: belongs to bob", "may delete it"],
    ),
    "someone else's script renamed": (
        lambda c: c.git("mv", "bobs/tool.py", "bobs/mine.py"),
        ["bobs/tool.py: belongs to bob"],
    ),
    "someone else's folder deleted": (
        lambda c: c.git("rm", "--quiet", "-r", "bob-empty"),
        ["bob-empty/: folder belongs to bob"],
    ),
    "non-fast-forward": (_rewrite_main, ["refs/heads/main", "non-fast-forward"]),
}


@pytest.mark.parametrize("case", list(CONTENT_CASES))
def test_push_breaking_a_rule_is_rejected_and_leaves_no_trace(
    server: Server, others: dict[str, Any], case: str
) -> None:
    change, expected = CONTENT_CASES[case]
    clone = server.clone("alice")
    clone.write("hello.py", HELLO)  # a good change travels with the bad one, and is refused too
    clone.commit("a good change")
    change(clone)
    clone.commit(f"breaks a rule: {case}")
    refs, objects = server.refs(), server.objects()
    pushed = clone.push("--force", "HEAD:main")
    assert pushed.returncode != 0
    remote = [line for line in pushed.stderr.splitlines() if line.startswith("remote:")]
    assert remote, pushed.stderr
    for fragment in expected:
        assert fragment in pushed.stderr, pushed.stderr
    assert server.refs() == refs
    assert server.objects() == objects
    assert server.script("alice", "hello.py") is None


REF_CASES: dict[str, tuple[list[str], list[str]]] = {
    "delete main": (["--delete", "main"], ["refs/heads/main: main cannot be deleted"]),
    "move a tag": (["--force", "HEAD:refs/tags/v1"], ["refs/tags/v1: only an admin can move"]),
    "delete a tag": (["--delete", "refs/tags/v1"], ["refs/tags/v1: only an admin can delete"]),
    "notes": (["refs/notes/commits:refs/notes/x"], ["refs/notes/x: only branches"]),
    # A tag named like a branch or a commit id would change what `?rev=` runs.
    "tag named main": (["HEAD:refs/tags/main"], ["refs/tags/main: a tag name cannot be a branch"]),
    "tag named like a commit id": (["HEAD:refs/tags/abc1234"], ["refs/tags/abc1234: a tag name"]),
    # A tag of a bare blob would bring a file that no commit, hence no content rule, covers.
    "tag of a blob": (["big-blob:refs/tags/big-blob"], ["refs/tags/big-blob: can only point at"]),
}


@pytest.mark.parametrize("case", list(REF_CASES))
def test_ref_updates_that_are_refused(server: Server, others: dict[str, Any], case: str) -> None:
    args, expected = REF_CASES[case]
    clone = server.clone("alice")
    clone.git("notes", "add", "-m", "a note")
    huge = clone.path / "huge.bin"
    huge.write_bytes(b"x" * (1_048_576 + 1))
    clone.git("tag", "big-blob", clone.git("hash-object", "-w", str(huge)).stdout.strip())
    refs, objects = server.refs(), server.objects()
    pushed = clone.push(*args)
    assert pushed.returncode != 0
    for fragment in expected:
        assert f"remote:   - {fragment}" in pushed.stderr, pushed.stderr
    assert server.refs() == refs
    assert server.objects() == objects


def test_a_pushed_tag_cannot_name_another_user_as_its_tagger(server: Server) -> None:
    """The API lets a tag's tagger move it: a push must not put someone else's name there."""
    bob = server.users["bob"]
    clone = server.clone("alice")
    forged = {
        "GIT_COMMITTER_NAME": "bob",
        "GIT_COMMITTER_EMAIL": f"{bob.id}+bob@users.gitscripts.invalid",
    }
    clone.git("tag", "-a", "-m", "looks like bob's", "forged-tagger", **forged)
    refs = server.refs()
    pushed = clone.push("refs/tags/forged-tagger")
    assert pushed.returncode != 0
    assert "refs/tags/forged-tagger: the tagger names another gitscripts user" in pushed.stderr
    assert server.refs() == refs
    clone.git("tag", "-a", "-m", "mine", "honest-tagger")
    assert clone.push("refs/tags/honest-tagger").returncode == 0


def test_admin_may_delete_others_folders_and_move_tags(
    server: Server, others: dict[str, Any]
) -> None:
    admin = server.clone("root")
    admin.git("tag", "-a", "-f", "-m", "moved", "v1", "HEAD")
    assert admin.push("--force", "refs/tags/v1").returncode == 0
    assert server.bare_git("rev-parse", "v1^{commit}").strip() == server.main()
    assert admin.push("--delete", "refs/tags/v1").returncode == 0
    assert "refs/tags/v1" not in server.refs()
    admin.git("rm", "--quiet", "-r", "bob-empty")
    admin.commit("remove bob's empty folder")
    pushed = admin.push()
    assert pushed.returncode == 0, pushed.stderr
    reply = server.api("bob", "GET", f"{API}/folders/{others['empty']['id']}")
    assert reply.status_code == 404
    # A new tag, and a feature branch under one's own login, are anyone's to push.
    clone = server.clone("alice")
    clone.git("tag", "v2")
    assert clone.push("v2", "HEAD:refs/heads/alice/feature").returncode == 0
    assert "refs/tags/v2" in server.refs() and "refs/heads/alice/feature" in server.refs()


# -- every commit that enters main, merges included -----------------------------------------------
@pytest.fixture
def bobs_script(server: Server) -> str:
    """A script of bob's, made through the API, in a folder of its own per test."""
    folder = server.api("bob", "POST", f"{API}/folders", json={"name": f"b{next(server.clones)}"})
    assert folder.status_code == 201, folder.text
    made = server.api(
        "bob",
        "POST",
        f"{API}/scripts",
        files={"file": ("tool.py", HELLO)},
        data={"display_name": "Tool", "folder_id": str(folder.json()["id"])},
    )
    assert made.status_code == 201, made.text
    return str(made.json()["logical_path"])


def _refused_without_trace(
    server: Server, clone: Clone, expected: list[str], *refspecs: str
) -> str:
    """Push, see it refused with `expected` as `remote:` lines and nothing changed; git's output."""
    refs, objects = server.refs(), server.objects()
    pushed = clone.push(*refspecs)
    assert pushed.returncode != 0, pushed.stderr
    for fragment in expected:
        assert f"remote:   - {fragment}" in pushed.stderr, pushed.stderr
    assert server.refs() == refs and server.objects() == objects
    return pushed.stderr


def test_an_edit_of_someone_elses_script_then_its_revert_is_refused(
    server: Server, bobs_script: str
) -> None:
    clone = server.clone("alice")
    clone.write(bobs_script, HELLO.replace(b"world", b"alice"))
    edit = clone.commit("edit bob's script")
    clone.git("revert", "--no-edit", "HEAD")
    clone.write("mine-after-revert.py", HELLO)
    clone.commit("a change of my own")
    refused = _refused_without_trace(
        server, clone, [f"{bobs_script}: belongs to bob; only its owner or an admin may change it"]
    )
    assert f"(commit {edit[:10]})" in refused
    assert server.run("bob", bobs_script, {})["result"] == {"hello": "world"}


def test_a_merge_s_ours_of_an_edit_of_someone_elses_script_is_refused(
    server: Server, bobs_script: str
) -> None:
    clone = server.clone("alice")
    clone.git("checkout", "--quiet", "-b", "side")
    clone.write(bobs_script, HELLO.replace(b"world", b"alice"))
    clone.commit("edit bob's script on a side branch")
    clone.git("checkout", "--quiet", "main")
    clone.write("mine-ours.py", HELLO)
    clone.commit("a change of my own")
    clone.git("merge", "--quiet", "-s", "ours", "--no-edit", "side")
    _refused_without_trace(server, clone, [f"{bobs_script}: belongs to bob"])
    # Nor when the side commit reached the repository first, on a branch of alice's own: it is
    # not new to the repository, but it is new to main.
    staged = clone.push("side:refs/heads/alice/side")
    assert staged.returncode == 0, staged.stderr
    _refused_without_trace(server, clone, [f"{bobs_script}: belongs to bob"])


def test_a_merge_that_keeps_an_older_version_of_someone_elses_script_is_refused(
    server: Server, bobs_script: str
) -> None:
    clone = server.clone("alice")
    clone.write("mine-older.py", HELLO)
    clone.commit("a change of my own")
    bobs = server.clone("bob")
    bobs.write(bobs_script, HELLO.replace(b"world", b"bob v2"))
    bobs.commit("bob's second version")
    assert bobs.push().returncode == 0
    clone.git("fetch", "--quiet")
    clone.git("merge", "--quiet", "-s", "ours", "--no-edit", "origin/main")
    _refused_without_trace(server, clone, [f"{bobs_script}: belongs to bob"])


def test_an_honest_merge_of_two_users_own_edits_is_accepted(
    server: Server, bobs_script: str
) -> None:
    clone = server.clone("alice")
    clone.write("merged/alice.py", HELLO)
    clone.commit("alice's own script")
    bobs = server.clone("bob")
    bobs.write(bobs_script, HELLO.replace(b"world", b"bob v2"))
    bobs.commit("bob edits his own script")
    assert bobs.push().returncode == 0
    clone.git("pull", "--quiet", "--no-rebase", "--no-edit")
    assert len(clone.git("rev-list", "--parents", "-n1", "HEAD").stdout.split()) == 3  # a merge
    pushed = clone.push()
    assert pushed.returncode == 0, pushed.stderr
    assert server.main() == clone.head()
    assert server.run("bob", bobs_script, {})["result"] == {"hello": "bob v2"}
    assert server.script("alice", "merged/alice.py") is not None


def test_a_file_name_that_is_not_utf8_is_refused(server: Server) -> None:
    clone = server.clone("alice")
    (clone.path / os.fsdecode(b"caf\xe9.py")).write_bytes(HELLO)
    clone.git("add", "-A")
    clone.commit("a latin-1 file name")
    _refused_without_trace(server, clone, ["caf\\xe9.py: file and folder names must be UTF-8 text"])


# -- revision names -------------------------------------------------------------------------------
def test_names_that_could_stand_in_for_another_revision_are_refused(server: Server) -> None:
    main = server.main()
    tagged = server.api(
        "bob", "POST", f"{API}/tags", json={"name": "bobs-stable", "revision": "main"}
    )
    assert tagged.status_code == 201, tagged.text
    # A branch other than main is its pusher's, under their login: nobody else can move it.
    alice = server.clone("alice")
    for ref in ("refs/heads/bobs-stable", f"refs/heads/{main[:7]}", "refs/heads/HEAD"):
        _refused_without_trace(
            server,
            alice,
            [f"{ref}: branches other than main live under their owner's login"],
            f"HEAD:{ref}",
        )
    # Not even an admin may create a name that reads as another revision.
    root = server.clone("root")
    cases = {
        f"refs/heads/{main}": "a branch name cannot look like a commit id",
        f"refs/heads/{main[:7]}": "a branch name cannot look like a commit id",
        "refs/heads/HEAD": "a branch name cannot be HEAD",
        "refs/heads/bobs-stable": "a branch name cannot be a tag name (refs/tags/bobs-stable",
        "refs/heads/BOBS-stable": "a branch name cannot be a tag name (refs/tags/bobs-stable",
        "refs/heads/tags/bobs-stable": "a branch name cannot start with refs/, heads/, tags/",
        f"refs/tags/{main[:12]}": "a tag name cannot look like a commit id",
        "refs/tags/ORIG_HEAD": "a tag name cannot be HEAD or one of git's *_HEAD names",
    }
    for ref, fragment in cases.items():
        _refused_without_trace(server, root, [f"{ref}: {fragment}"], f"HEAD:{ref}")
    # A branch of one's own; then no tag of its name, through git or the API, in any case.
    assert alice.push("HEAD:refs/heads/alice/shadowed").returncode == 0
    _refused_without_trace(
        server,
        alice,
        ["refs/tags/alice/shadowed: a tag name cannot be a branch name"],
        "HEAD:refs/tags/alice/shadowed",
    )
    for name in ("alice/shadowed", "Alice/Shadowed"):
        reply = server.api("bob", "POST", f"{API}/tags", json={"name": name, "revision": "main"})
        assert reply.status_code == 400 and reply.json()["error_code"] == "INVALID_TAG_NAME"
        assert "cannot be a branch name" in reply.json()["message"]
    # And the branch stays alice's: bob can neither move nor delete it.
    bob = server.clone("bob")
    bob.commit("bob's commit")
    for args in (["--force", "HEAD:refs/heads/alice/shadowed"], ["--delete", "alice/shadowed"]):
        _refused_without_trace(
            server, bob, ["refs/heads/alice/shadowed: branches other than main live under"], *args
        )


def test_refs_made_behind_the_service_cannot_stand_in_for_a_tag_a_commit_id_or_head(
    tmp_path: Path,
) -> None:
    """Refs with such names made before the rules (or straight in the bare repository): `?rev=`
    still runs what the victim named, and the start-up log names them for an admin."""
    with _started(tmp_path, ["alice", "bob"]) as server:
        made = server.api(
            "bob",
            "POST",
            f"{API}/scripts-from-text",
            json={"filename": "victim.py", "display_name": "V", "content": HELLO.decode()},
        )
        assert made.status_code == 201, made.text
        tagged = server.api(
            "bob", "POST", f"{API}/tags", json={"name": "stable", "revision": "main"}
        )
        assert tagged.status_code == 201, tagged.text
        main = server.main()
        clone = server.clone("alice")
        clone.write("victim.py", HELLO.replace(b"'world'", b"'alice'").replace(b"name", b"x"))
        evil = clone.commit("alice's version of bob's script")
        # A branch of alice's own may hold it (ownership guards main): `?rev=alice/evil` names it.
        assert clone.push("HEAD:refs/heads/alice/evil").returncode == 0
        planted = [
            f"refs/heads/{main}",
            f"refs/heads/{main[:7]}",
            "refs/heads/HEAD",
            "refs/tags/HEAD",
            "refs/heads/stable",
        ]
        for ref in planted:
            server.bare_git("update-ref", ref, evil)
        users = server.users
    log = tmp_path / "restarted.log"
    with live_server(server.data_dir, log) as live:
        restarted = Server(live.base, server.data_dir, server.work, live.process, users)
        report = log.read_text()
        assert "ambiguous_refs" in report
        for ref in planted:
            assert ref in report, report
        for rev in ("stable", main, main[:7], "HEAD", "main"):
            reply = restarted.run("bob", f"victim.py?rev={rev}", {})
            assert reply["result"] == {"hello": "world"}, rev
            assert reply["revision"] == main, rev
        assert restarted.run("bob", "victim.py?rev=alice/evil", {})["result"] == {"hello": "alice"}


# -- renames, metadata and the API ----------------------------------------------------------------
def test_git_mv_keeps_the_script_id_and_metadata_edits_show(server: Server) -> None:
    clone = server.clone("alice")
    clone.write("moving/first.py", HELLO)
    clone.commit("add")
    assert clone.push().returncode == 0
    script = server.script("alice", "moving/first.py")
    assert script is not None
    # The folder and the script renamed in one push, with metadata written by hand.
    clone.git("mv", "moving", "moved")
    clone.git("mv", "moved/first.py", "moved/second.py")
    clone.write("moved/second.py.meta.json", b'{"display_name": "Renamed in git"}\n')
    clone.commit("rename the folder and the script")
    pushed = clone.push()
    assert pushed.returncode == 0, pushed.stderr
    reply = server.api("alice", "GET", f"{API}/scripts/{script['id']}").json()
    assert reply["logical_path"] == "moved/second.py"
    assert reply["display_name"] == "Renamed in git"
    assert reply["created_by"]["login"] == "alice"
    folder = server.api("alice", "GET", f"{API}/folders/{script['folder_id']}").json()
    assert folder["path"] == "moved"  # the folder kept its id too
    assert server.run("alice", "moved/second.py", {})["success"] is True


def test_api_changes_and_pulls_see_each_other(server: Server) -> None:
    clone = server.clone("alice")
    reply = server.api(
        "alice",
        "POST",
        f"{API}/scripts-from-text",
        json={"filename": "from_api.py", "display_name": "From API", "content": HELLO.decode()},
    )
    assert reply.status_code == 201, reply.text
    clone.git("pull", "--quiet", "--ff-only")
    assert (clone.path / "from_api.py").read_bytes() == HELLO
    changed = HELLO.replace(b"world", b"git")
    clone.write("from_api.py", changed)
    clone.commit("edit over git")
    assert clone.push().returncode == 0
    content = server.api("alice", "GET", f"{API}/scripts/{reply.json()['id']}/content").json()
    assert content["content"] == changed.decode()
    assert server.run("alice", "from_api.py", {})["result"] == {"hello": "git"}


def test_a_push_of_a_thousand_files(server: Server) -> None:
    clone = server.clone("alice")
    for number in range(1000):
        target = clone.path / "many" / f"f{number // 100}" / f"script_{number:04d}.py"
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(HELLO + f"# {number}\n".encode())
    clone.git("add", "many")
    clone.commit("a thousand scripts")
    started = time.monotonic()
    pushed = clone.push()
    assert pushed.returncode == 0, pushed.stderr
    assert time.monotonic() - started < 30
    tree = server.api("alice", "GET", f"{API}/tree").json()
    many = next(item for item in tree["root_folders"] if item["folder"]["path"] == "many")
    scripts = [s for sub in many["subfolders"] for s in sub["scripts"]]
    assert len(scripts) == 1000
    assert {s["created_by"]["login"] for s in scripts} == {"alice"}
    assert len({s["id"] for s in scripts}) == 1000


def test_a_push_larger_than_the_buffers_streams_through(server: Server) -> None:
    # A few MB of incompressible helper modules: the pack keeps arriving long after git has
    # answered with its headers, so any other reader of the request body would corrupt it.
    clone = server.clone("alice")
    for number in range(5):
        data = base64.b64encode(os.urandom(700_000)).decode()
        clone.write(f"bulk/_data{number}.py", f'DATA = "{data}"\n'.encode())
    clone.commit("bulk data")
    pushed = clone.push()
    assert pushed.returncode == 0, pushed.stderr
    assert server.main() == clone.head()
    assert server.bare_git("cat-file", "-s", "main:bulk/_data4.py").strip() == "933346"


# -- protocol -------------------------------------------------------------------------------------
def test_protocol_v2_clone_fetch_and_push(server: Server) -> None:
    traced = run_git(
        ["-c", "protocol.version=2", "ls-remote", server.url("alice")],
        cwd=server.work,
        env={"GIT_TRACE_PACKET": "1"},
    )
    assert "< version 2" in traced.stderr
    assert server.main() in traced.stdout
    v0 = run_git(
        ["-c", "protocol.version=0", "ls-remote", server.url("alice")],
        cwd=server.work,
        env={"GIT_TRACE_PACKET": "1"},
    )
    assert "version 2" not in v0.stderr and server.main() in v0.stdout
    clone = server.clone("alice", "--config", "protocol.version=2")
    clone.write("v2/pushed.py", HELLO)
    clone.commit("over v2")
    assert clone.push().returncode == 0
    other = server.clone("bob", "--config", "protocol.version=2")
    other.write("v2/other.py", HELLO)
    other.commit("bob's")
    assert other.push().returncode == 0
    fetched = clone.git("pull", "--quiet", "--rebase", GIT_TRACE_PACKET="1")
    assert "version 2" in fetched.stderr
    assert (clone.path / "v2/other.py").exists()
    assert server.script("alice", "v2/pushed.py") is not None


def test_gzip_encoded_request_bodies(server: Server) -> None:
    def pkt(line: str) -> bytes:
        return f"{len(line) + 4:04x}{line}".encode()

    main = server.main()
    request = pkt(f"want {main} ofs-delta\n") + b"0000" + pkt("done\n")
    reply = httpx.post(
        f"{server.url()}/git-upload-pack",
        content=gzip.compress(request),
        headers={
            **server.users["alice"].headers,
            "Content-Type": "application/x-git-upload-pack-request",
            "Content-Encoding": "gzip",
        },
    )
    assert reply.status_code == 200
    # git inflated it: a negotiation it could not read would be answered with an error instead.
    assert reply.content.startswith(b"0008NAK\n") and b"PACK" in reply.content
    garbled = httpx.post(
        f"{server.url()}/git-upload-pack",
        content=request,  # said to be gzip, and is not
        headers={
            **server.users["alice"].headers,
            "Content-Type": "application/x-git-upload-pack-request",
            "Content-Encoding": "gzip",
        },
    )
    assert b"PACK" not in garbled.content


# -- concurrency ----------------------------------------------------------------------------------
def test_api_uploads_and_pushes_race_without_losing_anything(server: Server) -> None:
    errors: list[str] = []
    pushed_heads: list[str] = []

    def upload(number: int) -> None:
        reply = server.api(
            "alice",
            "POST",
            f"{API}/scripts-from-text",
            json={
                "filename": f"api_{number:02d}.py",
                "display_name": "x",
                "content": HELLO.decode(),
            },
        )
        if reply.status_code != 201:
            errors.append(reply.text)

    def push(number: int) -> None:
        try:
            pushing(number)
        except Exception as exc:  # an exception in a thread must fail the test too
            errors.append(repr(exc))

    def pushing(number: int) -> None:
        clone = server.clone("bob")
        clone.write(f"race/push_{number}.py", HELLO)
        clone.commit(f"push {number}")
        for _ in range(30):
            pushed = clone.push()
            if pushed.returncode == 0:
                pushed_heads.append(clone.head())
                return
            # Only a lost race may turn a push away: pull, and try again.
            if not re.search(
                r"non-fast-forward|fetch first|cannot lock ref|failed to update ref", pushed.stderr
            ):
                errors.append(pushed.stderr)
                return
            clone.git("pull", "--quiet", "--rebase")
        errors.append(f"push {number} never got through")

    threads = [threading.Thread(target=upload, args=(n,)) for n in range(20)]
    threads += [threading.Thread(target=push, args=(n,)) for n in range(5)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    files = set(server.bare_git("ls-tree", "-r", "--name-only", "main").splitlines())
    for number in range(20):
        assert f"api_{number:02d}.py" in files
    for number in range(5):
        assert f"race/push_{number}.py" in files
    history = set(server.bare_git("rev-list", "main").split())
    assert set(pushed_heads) <= history
    subjects = server.bare_git("log", "--format=%s", "main")
    assert sum(line.startswith("Create script api_") for line in subjects.splitlines()) == 20
    for number in range(20):
        assert server.script("alice", f"api_{number:02d}.py") is not None
    for number in range(5):
        script = server.script("alice", f"race/push_{number}.py")
        assert script is not None and script["created_by"]["login"] == "bob"


def _api_save(server: Server, login: str, filename: str, content: bytes) -> str:
    """Create or replace a root script through the API; the commit it made."""
    reply = server.api(
        login,
        "POST",
        f"{API}/scripts-from-text",
        json={"filename": filename, "display_name": filename, "content": content.decode()},
    )
    if reply.status_code == 409:  # it exists: replace it
        reply = server.api(
            login,
            "POST",
            f"{API}/scripts-from-text",
            json={
                "filename": filename,
                "display_name": filename,
                "content": content.decode(),
                "replace": True,
            },
        )
    assert reply.status_code == 201, reply.text
    return server.main()


def _push_while_the_api_commits(
    server: Server, clone: Clone, api_file: str
) -> tuple[subprocess.CompletedProcess[str], str]:
    """Push, and commit `api_file` through the API while pre-receive is checking the push: `main`
    moves after git advertised it to the push and before the push's ref update. (The push, and
    the API commit.)"""
    result: dict[str, subprocess.CompletedProcess[str]] = {}
    pushing = threading.Thread(target=lambda: result.update(push=clone.push()))
    pushing.start()
    deadline = time.monotonic() + 60
    while not any("hooks/pre-receive" in command for _, command in server.descendants().values()):
        assert pushing.is_alive() and time.monotonic() < deadline, result
        time.sleep(0.002)
    api_commit = _api_save(server, "bob", api_file, HELLO.replace(b"world", b"api"))
    pushing.join()
    return result["push"], api_commit


def _many_scripts(clone: Clone, folder: str) -> None:
    """Enough files that the push's check takes a while."""
    for number in range(400):
        clone.write(f"{folder}/s{number:03d}.py", HELLO + f"# {number}\n".encode())


def test_an_accepted_push_lands_when_the_api_moves_main_during_its_check(server: Server) -> None:
    clone = server.clone("bob")
    _many_scripts(clone, "checked")
    pushed_commit = clone.commit("400 scripts")
    pushed, api_commit = _push_while_the_api_commits(server, clone, "during_the_check.py")
    assert pushed.returncode == 0, pushed.stderr
    assert "failed to update ref" not in pushed.stderr
    assert "main had 1 newer commit touching none of your files" in pushed.stderr
    history = set(server.bare_git("rev-list", "main").split())
    assert {pushed_commit, api_commit} <= history
    files = set(server.bare_git("ls-tree", "-r", "--name-only", "main").splitlines())
    assert {"during_the_check.py", "checked/s399.py"} <= files
    merge = server.bare_git("log", "-1", "--format=%P%x1f%an%x1f%s", "main").split("\x1f")
    assert merge[0].split() == [api_commit, pushed_commit]
    assert merge[1] == "bob"
    # The pusher's clone only has to fast-forward, and the pushed scripts are bob's.
    clone.git("pull", "--quiet", "--ff-only")
    assert clone.head() == server.main()
    script = server.script("alice", "checked/s000.py")
    assert script is not None and script["created_by"]["login"] == "bob"


def test_a_push_racing_an_api_commit_to_the_same_script_is_refused_cleanly(
    server: Server,
) -> None:
    _api_save(server, "bob", "raced.py", HELLO)
    clone = server.clone("bob")
    _many_scripts(clone, "raced-folder")
    clone.write("raced.py", HELLO.replace(b"world", b"git"))
    clone.commit("400 scripts and raced.py")
    pushed, api_commit = _push_while_the_api_commits(server, clone, "raced.py")
    assert pushed.returncode != 0
    assert "failed to update ref" not in pushed.stderr
    assert "raced.py: changed on main too" in pushed.stderr, pushed.stderr
    assert server.main() == api_commit
    assert server.bare_git("show", "main:raced.py").encode() == HELLO.replace(b"world", b"api")


def test_a_push_to_refs_for_main_lands_over_unrelated_api_commits(server: Server) -> None:
    clone = server.clone("bob")
    api_commits = [_api_save(server, "alice", f"meanwhile_{n}.py", HELLO) for n in range(3)]
    clone.write("landing/mine.py", HELLO)
    pushed_commit = clone.commit("mine")
    # Plain `git push` to main: git's client refuses before sending anything.
    refused = clone.push()
    assert refused.returncode != 0 and "fetch first" in refused.stderr
    assert server.main() == api_commits[-1]

    pushed = clone.push("HEAD:refs/for/main")
    assert pushed.returncode == 0, pushed.stderr
    assert "main had 3 newer commits touching none of your files" in pushed.stderr
    assert "HEAD -> main" in pushed.stderr, pushed.stderr
    history = set(server.bare_git("rev-list", "main").split())
    assert {pushed_commit, *api_commits} <= history
    assert server.bare_git("rev-parse", "main^1").strip() == api_commits[-1]
    assert "refs/for/" not in server.refs()
    script = server.script("alice", "landing/mine.py")
    assert script is not None and script["created_by"]["login"] == "bob"
    clone.git("pull", "--quiet", "--ff-only")
    assert clone.head() == server.main()

    # Not behind at all: a plain fast-forward, no merge commit.
    clone.write("landing/again.py", HELLO)
    again = clone.commit("again")
    assert clone.push("HEAD:refs/for/main").returncode == 0
    assert server.main() == again


def test_a_push_conflicting_with_newer_api_commits_is_refused_and_changes_nothing(
    server: Server,
) -> None:
    _api_save(server, "bob", "contested.py", HELLO)
    clone = server.clone("bob")
    clone.write("elsewhere/fine.py", HELLO)
    clone.write("contested.py", HELLO.replace(b"world", b"git"))
    clone.commit("edit a script the API edits too")
    api_commit = _api_save(server, "bob", "contested.py", HELLO.replace(b"world", b"api"))

    pushed = clone.push("HEAD:refs/for/main")
    assert pushed.returncode != 0
    assert "main has newer commits that change what this push changes" in pushed.stderr
    assert "contested.py: changed on main too" in pushed.stderr, pushed.stderr
    assert "git pull --rebase, then push again" in pushed.stderr
    assert server.main() == api_commit
    assert "elsewhere/fine.py" not in server.bare_git("ls-tree", "-r", "--name-only", "main")
    # The advice works: after a rebase that keeps the pusher's version, the push lands.
    clone.git("pull", "--quiet", "--rebase", "-X", "theirs")
    assert clone.push().returncode == 0
    assert server.main() == clone.head()


def test_a_push_into_a_folder_removed_meanwhile_is_refused(server: Server) -> None:
    folder = server.api("bob", "POST", f"{API}/folders", json={"name": "going"}).json()
    clone = server.clone("bob")
    clone.write("going/new.py", HELLO)
    clone.commit("a script in a folder about to go")
    removed = server.api("bob", "DELETE", f"{API}/folders/{folder['id']}")
    assert removed.status_code in (200, 204), removed.text
    api_commit = server.main()
    pushed = clone.push("HEAD:refs/for/main")
    assert pushed.returncode != 0
    assert "going/: changed on main too" in pushed.stderr, pushed.stderr
    assert server.main() == api_commit


def test_writes_wait_while_git_itself_holds_the_lock_of_main(server: Server) -> None:
    """git locks main for a moment now and then (the `git gc --auto` a push can start packs refs
    and expires reflogs): an API commit and a push landing meanwhile wait, and both land."""
    clone = server.clone("bob")
    clone.write("locked/pushed.py", HELLO)
    pushed_commit = clone.commit("pushed while main is locked")
    lock = server.bare / "refs" / "heads" / "main.lock"
    lock.write_text(server.main() + "\n")
    results: dict[str, Any] = {}

    def api_write() -> None:
        results["api"] = server.api(
            "alice",
            "POST",
            f"{API}/scripts-from-text",
            json={"filename": "while_locked.py", "display_name": "x", "content": HELLO.decode()},
        )

    threads = [
        threading.Thread(target=api_write),
        threading.Thread(target=lambda: results.update(push=clone.push("HEAD:refs/for/main"))),
    ]
    try:
        for thread in threads:
            thread.start()
        time.sleep(0.5)
    finally:
        lock.unlink()
    for thread in threads:
        thread.join()
    assert results["api"].status_code == 201, results["api"].text
    assert results["push"].returncode == 0, results["push"].stderr
    files = server.bare_git("ls-tree", "-r", "--name-only", "main").splitlines()
    assert {"while_locked.py", "locked/pushed.py"} <= set(files)
    assert pushed_commit in server.bare_git("rev-list", "main").split()


# -- a client that goes away ----------------------------------------------------------------------
def _large_branch(server: Server) -> str:
    """A branch of ~8 MB of incompressible files, written straight into the bare repository."""
    work = server.work / "large"
    work.mkdir(exist_ok=True)
    env = {
        "GIT_DIR": str(server.bare),
        "GIT_INDEX_FILE": str(work / "index"),
        "GIT_AUTHOR_NAME": "setup",
        "GIT_AUTHOR_EMAIL": "setup@example.com",
        "GIT_COMMITTER_NAME": "setup",
        "GIT_COMMITTER_EMAIL": "setup@example.com",
    }
    for number in range(8):
        (work / f"blob{number}").write_bytes(base64.b64encode(os.urandom(750_000)))
        blob = run_git(["hash-object", "-w", str(work / f"blob{number}")], cwd=work, env=env)
        run_git(
            ["update-index", "--add", "--cacheinfo", f"100644,{blob.stdout.strip()},_b{number}.py"],
            cwd=work,
            env=env,
        )
    tree = run_git(["write-tree"], cwd=work, env=env).stdout.strip()
    commit = run_git(["commit-tree", tree, "-m", "large"], cwd=work, env=env).stdout.strip()
    run_git(["update-ref", "refs/heads/large", commit], cwd=work, env=env)
    return commit


def _wait_for_no_git(server: Server) -> dict[int, str]:
    deadline = time.monotonic() + 10
    while (left := server.git_processes()) and time.monotonic() < deadline:
        time.sleep(0.1)
    return left


def _push_stalled_mid_pack(server: Server, login: str, new: str) -> socket.socket:
    """A push that announced an update of main and sent the start of its pack, and waits:
    receive-pack waits for the rest (with its quarantine made) until the socket closes."""
    command = f"{server.main()} {new} refs/heads/main\0report-status\n"
    body = (
        f"{len(command) + 4:04x}{command}0000".encode()
        # A pack header promising nine objects, and none of them.
        + b"PACK\0\0\0\2\0\0\0\x09"
    )
    auth = base64.b64encode(f"{login}:{server.users[login].token}".encode()).decode()
    request = (
        (
            f"POST /git/scripts.git/git-receive-pack HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Basic {auth}\r\n"
            f"Content-Type: application/x-git-receive-pack-request\r\n"
            f"Transfer-Encoding: chunked\r\n\r\n{len(body):x}\r\n"
        ).encode()
        + body
        + b"\r\n"
    )
    connection = socket.create_connection(("127.0.0.1", server.port))
    connection.sendall(request)
    return connection


def _quarantines(server: Server) -> set[Path]:
    """The quarantine folders of pushes in the served repository."""
    return set((server.bare / "objects").glob("tmp_objdir-incoming-*"))


def test_a_client_that_disconnects_mid_clone_or_mid_push_leaves_no_process(
    open_server: Server,
) -> None:
    server = open_server
    large = _large_branch(server)
    # Mid-clone: ask for the large branch's pack, read a little of it, hang up.
    body = f"0032want {large}\n00000009done\n".encode()
    request = (
        f"POST /git/scripts.git/git-upload-pack HTTP/1.1\r\nHost: x\r\n"
        f"Content-Type: application/x-git-upload-pack-request\r\n"
        f"Content-Length: {len(body)}\r\n\r\n"
    ).encode() + body
    with socket.create_connection(("127.0.0.1", server.port)) as connection:
        connection.sendall(request)
        assert b"200 OK" in connection.recv(4096)
        time.sleep(0.5)
        assert server.git_processes(), "the pack should still be on its way"
    assert _wait_for_no_git(server) == {}
    # Mid-push: announce an update of main, send the start of a pack, hang up.
    objects, refs = server.objects(), server.refs()
    with _push_stalled_mid_pack(server, "carol", large):
        time.sleep(0.5)
        assert server.git_processes(), "receive-pack should be waiting for the rest"
    assert _wait_for_no_git(server) == {}
    assert server.refs() == refs and server.objects() == objects
    assert not _quarantines(server), "a quarantine was left behind"
    # And the server serves the next clone normally.
    assert server.clone(None).head() == server.main()


def _age(path: Path, seconds: float) -> None:
    """Date `path` and everything in it `seconds` back."""
    when = time.time() - seconds
    inside = [Path(top, name) for top, dirs, files in os.walk(path) for name in [*dirs, *files]]
    for item in [*inside, path]:
        os.utime(item, (when, when))


def _wait_for_quarantines(server: Server, count: int) -> set[Path]:
    deadline = time.monotonic() + 10
    while len(found := _quarantines(server)) < count:
        assert time.monotonic() < deadline, found
        time.sleep(0.05)
    return found


def test_crash_leftovers_are_removed_and_what_a_live_push_uses_is_kept(tmp_path: Path) -> None:
    from gitscripts.repo import leftovers

    with _started(tmp_path, ["alice"]) as server:
        main = server.main()
        # A push whose receive-pack is killed (kill -9) mid-pack leaves its quarantine behind.
        with _push_stalled_mid_pack(server, "alice", main):
            (killed,) = _wait_for_quarantines(server, 1)
            for pid in server.git_processes():
                os.kill(pid, signal.SIGKILL)
        assert _wait_for_no_git(server) == {}
        assert killed.exists()
        _age(killed, 2 * 3600)
        # libgit2's temporary files of objects: one a writer killed long ago left, one being written.
        objects = server.bare / "objects"
        abandoned, written = objects / "tmp_object_git2_a1B2c3", objects / "tmp_object_git2_d4E5f6"
        for temp in (abandoned, written):
            temp.write_bytes(b"x\x9c\x4b\xca\xc9\x4f")
        _age(abandoned, 3600)
        # A push in progress, stalled mid-pack for longer than the bound: still in use, kept.
        with _push_stalled_mid_pack(server, "alice", main):
            live = _wait_for_quarantines(server, 2) - {killed}
            (live_quarantine,) = live
            _age(live_quarantine, 2 * 3600)
            removed = leftovers.sweep(server.bare)  # what the service runs every ten minutes
            assert set(removed) == {killed, abandoned}
            assert live_quarantine.exists() and written.exists()
            assert server.git_processes(), "the live push goes on"
        assert _wait_for_no_git(server) == {}
        # The repository is whole and takes the next push.
        clone = server.clone("alice")
        clone.write("after-sweep.py", HELLO)
        clone.commit("after the sweep")
        assert clone.push().returncode == 0
        assert server.bare_git("fsck", "--no-dangling").strip() == ""
    # At start-up too: what a crash left, once it is old enough to be provably abandoned.
    _age(written, 3600)
    leftover = server.bare.parent / ".scripts.git.new-k1ll3d"
    leftover.mkdir()
    _age(leftover, 2 * 3600)
    with live_server(server.data_dir):
        assert not written.exists() and not leftover.exists()


def test_a_ref_lock_a_killed_writer_left_is_removed_once_provably_stale(tmp_path: Path) -> None:
    from gitscripts.repo import leftovers

    def write(name: str) -> httpx.Response:
        body = {"filename": name, "display_name": name, "content": HELLO.decode()}
        return server.api("alice", "POST", f"{API}/scripts-from-text", json=body)

    with _started(tmp_path, ["alice"]) as server:
        # A writer killed between taking main's lock and renaming it in (kill -9, the OOM killer)
        # leaves the lock behind, and while it stays no write to main can land.
        lock = server.bare / "refs" / "heads" / "main.lock"
        lock.write_text(server.main() + "\n")
        blocked = write("blocked.py")
        assert blocked.status_code == 409 and blocked.json()["error_code"] == "CONCURRENT_UPDATE"
        assert leftovers.sweep(server.bare) == []  # young: a writer may still hold it
        _age(lock, 3600)
        assert leftovers.sweep(server.bare) == [lock]  # what the service runs every ten minutes
        reply = write("after_sweep.py")
        assert reply.status_code == 201, reply.text
        assert server.bare_git("fsck", "--no-dangling").strip() == ""


def test_without_its_hooks_the_service_does_not_start(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # git runs no hook it cannot find: a push would then go in unchecked, so an install that lost
    # the packaged hook refuses to start rather than serve with pushes unchecked or disabled.
    import gitscripts.githttp.service as git_service
    from gitscripts.app import create_app
    from gitscripts.config import ConfigurationError
    from tests.conftest import make_settings

    monkeypatch.setattr(git_service, "_HOOK", "no-such-hook")
    with pytest.raises(ConfigurationError, match="its git hook cannot be read"):
        create_app(make_settings(tmp_path / "data"))


def test_the_hooks_are_the_packaged_one_under_each_name(tmp_path: Path) -> None:
    # Also where an older version pointed core.hooksPath elsewhere (a folder beside the package).
    from importlib import resources

    from gitscripts.app import create_app
    from tests.conftest import make_settings

    bare = tmp_path / "data" / "scripts.git"
    subprocess.run(["git", "init", "--quiet", "--bare", str(bare)], check=True)
    run_git(
        ["--git-dir", str(bare), "config", "core.hooksPath", str(tmp_path / "elsewhere")],
        cwd=tmp_path,
    )
    create_app(make_settings(tmp_path / "data"))
    config = run_git(["--git-dir", str(bare), "config", "core.hooksPath"], cwd=tmp_path)
    hooks = Path(config.stdout.strip())
    packaged = resources.files("gitscripts.githttp").joinpath("hook").read_bytes()
    for name in ("pre-receive", "proc-receive", "post-receive"):
        assert (hooks / name).read_bytes() == packaged
        assert os.access(hooks / name, os.X_OK) and not (hooks / name).is_symlink()


def test_with_a_git_too_old_to_hand_main_to_the_service_pushing_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Before 2.31 git ignores the configuration that hands main to the service.
    from fastapi.testclient import TestClient

    from gitscripts.app import create_app
    from tests.conftest import make_settings, register

    old_git = tmp_path / "bin" / "git"
    old_git.parent.mkdir()
    old_git.write_text("#!/bin/sh\necho 'git version 2.30.2'\n")
    old_git.chmod(0o755)
    monkeypatch.setenv("PATH", f"{old_git.parent}{os.pathsep}{os.environ['PATH']}")
    with TestClient(create_app(make_settings(tmp_path / "data"))) as client:
        alice = register(client, "alice")
        reply = client.get(
            "/git/scripts.git/info/refs?service=git-receive-pack", headers=alice.headers
        )
        assert reply.status_code == 403, reply.text
        assert "older than 2.31 (git version 2.30.2)" in reply.json()["message"]


def test_pushing_to_refs_for_main_is_held_to_the_ownership_rules(
    server: Server, bobs_script: str
) -> None:
    """The way past "fetch first" is no way past the rules: an edit of someone else's script,
    pushed to refs/for/main, is refused whether the clone is up to date or behind."""
    clone = server.clone("alice")
    clone.write(bobs_script, HELLO + b"# alice was here\n")
    clone.commit("edit bob's tool")
    before = server.main()
    _refused_without_trace(server, clone, [f"{bobs_script}: belongs to bob"], "HEAD:refs/for/main")
    # Behind unrelated API commits, so the service would land it as a merge: still refused.
    _api_save(server, "bob", f"meanwhile_{next(server.clones)}.py", HELLO)
    moved = server.main()
    pushed = clone.push("HEAD:refs/for/main")
    assert pushed.returncode != 0, pushed.stderr
    assert f"{bobs_script}: belongs to bob" in pushed.stderr
    assert server.main() == moved != before
    assert server.bare_git("show", f"main:{bobs_script}").encode() == HELLO
