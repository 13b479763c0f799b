"""The built wheel is the whole service: installed into a fresh venv outside the checkout, or
run by `uvx --from <wheel>`, its `gitscripts serve` takes a clone, a push checked by its hooks,
and a run of the pushed script.

Nothing here may come from the checkout: the service starts in a folder of its own, from the
installed console script; from the venv, with a PATH that holds git and nothing else (no `python3`,
as on a machine where uv or pipx brought the only Python). A hook or file the wheel lacks makes
this fail.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import PASSWORD, live_server, register

PROJECT = Path(__file__).resolve().parents[1]
HELLO = b'def main(data):\n    return {"ok": True}\n'


def _outside_the_project() -> dict[str, str]:
    """This process's environment without what points into the project's own venv."""
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    env["PATH"] = os.pathsep.join(
        entry
        for entry in env.get("PATH", "").split(os.pathsep)
        if not Path(entry).resolve().is_relative_to(PROJECT)
    )
    return env


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel built from this checkout, in a folder outside it."""
    root = tmp_path_factory.mktemp("wheel")
    assert not root.resolve().is_relative_to(PROJECT)
    _uv("build", "--wheel", "--out-dir", str(root), cwd=PROJECT)
    (built,) = root.glob("gitscripts-*.whl")
    return built


def _uv(*args: str, cwd: Path) -> None:
    done = subprocess.run(
        ["uv", *args],
        cwd=cwd,
        env=_outside_the_project(),
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr


def _venv_with(wheel: Path, tmp_path: Path) -> tuple[str, ...]:
    """`gitscripts` installed from the wheel into a fresh venv."""
    venv = tmp_path / "venv"
    _uv("venv", "--quiet", "--python", sys.executable, str(venv), cwd=tmp_path)
    _uv("pip", "install", "--quiet", "--python", str(venv / "bin/python"), str(wheel), cwd=tmp_path)
    return (str(venv / "bin/gitscripts"),)


def _git(*args: str, cwd: Path, home: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("GIT_")}
    env.update(HOME=str(home), GIT_CONFIG_NOSYSTEM="1", GIT_TERMINAL_PROMPT="0", LC_ALL="C")
    done = subprocess.run(
        ["git", *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, f"git {' '.join(args)} failed:\n{done.stderr}"
    return done


@pytest.mark.parametrize("started_by", ["venv", "uvx"])
def test_the_installed_wheel_takes_a_push_and_runs_the_script(
    started_by: str, wheel: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name in ("VIRTUAL_ENV", "PYTHONPATH"):
        monkeypatch.delenv(name, raising=False)
    if started_by == "venv":
        program = _venv_with(wheel, tmp_path)
        only_git = tmp_path / "bin"
        only_git.mkdir()
        git_program = shutil.which("git")
        assert git_program is not None
        (only_git / "git").symlink_to(git_program)
        monkeypatch.setenv("PATH", str(only_git))  # the service's, and the git client's
    else:
        # uvx itself needs the PATH (it may be a shim); its venv is uv's, made from the wheel.
        program = ("uvx", "--quiet", "--python", sys.executable, "--from", str(wheel), "gitscripts")
        monkeypatch.setenv("PATH", _outside_the_project()["PATH"])
    elsewhere = tmp_path / "cwd"
    elsewhere.mkdir()
    with (
        live_server(tmp_path / "data", program=program, cwd=elsewhere) as server,
        httpx.Client(base_url=server.base, timeout=60) as client,
    ):
        alice = register(client, "alice")  # type: ignore[arg-type]
        port = server.base.rsplit(":", 1)[1]
        url = f"http://alice:{quote(PASSWORD, safe='')}@127.0.0.1:{port}/git/scripts.git"
        home = tmp_path / "home"
        home.mkdir()
        _git("clone", "--quiet", url, "clone", cwd=tmp_path, home=home)
        clone = tmp_path / "clone"
        (clone / "hello.py").write_bytes(HELLO)
        _git("add", "hello.py", cwd=clone, home=home)
        _git("-c", "user.name=alice", "-c", "user.email=a@example.com", "commit", "-qm", "hello",
             cwd=clone, home=home)  # fmt: skip
        pushed = _git("push", "origin", "HEAD:main", cwd=clone, home=home)
        # The post-receive hook's line: the service's own hooks saw the push through.
        assert "remote: gitscripts: main is at" in pushed.stderr, pushed.stderr

        reply = alice.post("/api/v1/scripts/hello.py", json={"data": {}})
        assert reply.status_code == 200, reply.text
        assert reply.json()["result"] == {"ok": True}, reply.json()
