"""Scripts with dependencies run in their own environments: built once per lock, warm, pinned by
the revision, reported when they cannot be built; scripts without a block run as before.

Everything goes through the HTTP API with the real executor, against a wheelhouse of the tests' own
(`tests.wheelhouse`): nothing reaches the internet.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import tempfile
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from gitscripts import cli
from gitscripts.app import create_app
from gitscripts.deps import locks
from gitscripts.runs import store
from gitscripts.services import Services
from tests import test_git_http
from tests.conftest import (
    HELLO,
    Caller,
    commit_behind_the_service,
    git,
    live_server,
    make_settings,
    register,
)
from tests.test_sandbox import (
    ESCAPE,
    PLAIN_UID,
    plain_user_can_run_python,  # noqa: F401 - a fixture used below
    signed_up,
)
from tests.wheelhouse import FixturePackage, build_wheel, build_wheelhouse


def pinned(requirement: str) -> str:
    """A script that needs `requirement` and answers which gsfixture it imported."""
    return (
        f'# /// script\n# dependencies = ["{requirement}"]\n# ///\n'
        "import gsfixture\n\n"
        "def main(data):\n"
        '    return {"version": gsfixture.VERSION}\n'
    )


PLUS = (
    '# /// script\n# dependencies = ["gsfixture-plus"]\n# ///\n'
    "import gsfixture, gsfixture_plus\n\n"
    "def main(data):\n"
    '    return {"version": gsfixture.VERSION, "plus": gsfixture_plus.describe()}\n'
)


@pytest.fixture
def wheelhouse(tmp_path: Path) -> Path:
    return build_wheelhouse(tmp_path / "wheelhouse")


def deps_settings(data_dir: Path, wheelhouse: Path, **overrides: Any) -> Any:
    return make_settings(
        data_dir, packages_find_links=str(wheelhouse), packages_no_index=True, **overrides
    )


@pytest.fixture
def alice(data_dir: Path, wheelhouse: Path) -> Iterator[Caller]:
    with TestClient(create_app(deps_settings(data_dir, wheelhouse))) as client:
        yield register(client, "alice")


def services(caller: Caller) -> Services:
    found: Services = caller.client.app.state.services  # type: ignore[attr-defined]
    return found


def run(caller: Caller, path: str, **params: Any) -> Any:
    return caller.post(f"/api/v1/scripts/{path}", json={}, params=params)


def succeeded(caller: Caller, path: str, **params: Any) -> dict[str, Any]:
    reply = run(caller, path, **params)
    assert reply.status_code == 200, reply.text
    outcome: dict[str, Any] = reply.json()
    assert outcome["success"], outcome["error"]
    return outcome


def text_script(caller: Caller, filename: str, source: str) -> dict[str, Any]:
    reply = caller.post(
        "/api/v1/scripts-manager/scripts-from-text",
        json={"filename": filename, "display_name": filename, "content": source},
    )
    assert reply.status_code == 201, reply.text
    return reply.json()  # type: ignore[no-any-return]


def locked(caller: Caller, files: dict[str, str]) -> dict[str, bytes]:
    """`files` with the lock of each script that has a block beside it (as the write side
    commits them)."""
    settings = services(caller).settings
    out: dict[str, bytes] = {}
    for path, source in files.items():
        out[path] = source.encode()
        if "# /// script" in source:
            out[locks.lock_path(path)] = locks.resolve(settings, path, source.encode())
    return out


# -- running with dependencies ----------------------------------------------------------------------
def test_a_script_runs_with_its_dependencies_and_says_which_environment(alice: Caller) -> None:
    text_script(alice, "plus.py", PLUS)  # no lock committed: resolved at its first run
    outcome = succeeded(alice, "plus.py")
    assert outcome["result"] == {"version": "2.0", "plus": "plus on gsfixture 2.0"}
    key = outcome["environment"]
    assert isinstance(key, str) and len(key) == 20
    record = alice.get(f"/api/v1/runs/{outcome['run_id']}").json()
    assert record["environment"] == key
    state = alice.get(f"/api/v1/environments/{key}")
    assert state.status_code == 200, state.text
    assert state.json()["state"] == "ready" and state.json()["size"] > 0
    assert "gsfixture-plus" in state.json()["log"]
    assert str(services(alice).settings.data_dir) not in state.json()["log"]
    # Warm: the next run takes the same environment, built once.
    assert succeeded(alice, "plus.py")["environment"] == key
    assert services(alice).environments.builds == 1
    unknown = alice.get("/api/v1/environments/0123456789abcdef0123")
    assert unknown.status_code == 404 and unknown.json()["error_code"] == "ENVIRONMENT_NOT_FOUND"
    # One worker's own state is a cluster's (EXECUTOR=dask); this service has no workers.
    on_worker = alice.get(f"/api/v1/environments/{key}?worker=w1")
    assert on_worker.status_code == 404, on_worker.text
    assert on_worker.json()["error_code"] == "ENVIRONMENT_NOT_FOUND"
    assert on_worker.json()["details"] == {"environment": key, "worker": "w1"}


def test_a_rest_write_builds_the_environment_before_the_first_run(alice: Caller) -> None:
    made = text_script(alice, "plus.py", PLUS)
    answer = alice.get(f"/api/v1/scripts-manager/scripts/{made['id']}/dependencies").json()
    environment = answer["environment"]
    assert environment["url"] == f"/api/v1/environments/{environment['key']}"
    assert environment["state"] in ("building", "ready")
    deadline = time.monotonic() + 60
    while (state := alice.get(environment["url"]).json()["state"]) == "building":
        assert time.monotonic() < deadline, "the build did not end"
        time.sleep(0.1)
    assert state == "ready"
    assert services(alice).environments.builds == 1  # before any run asked for it
    assert succeeded(alice, "plus.py")["environment"] == environment["key"]
    assert services(alice).environments.builds == 1


def test_a_script_without_a_block_runs_as_before(alice: Caller) -> None:
    alice.upload("hello.py", HELLO)
    outcome = succeeded(alice, "hello.py")
    # The seed's answer, with no environment field: the default environment ran it.
    assert set(outcome) == {
        "success", "result", "error", "execution_time", "revision", "stdout", "stderr", "run_id"
    }  # fmt: skip
    assert alice.get(f"/api/v1/runs/{outcome['run_id']}").json()["environment"] is None
    assert services(alice).environments.builds == 0
    assert services(alice).executor.environment_engines.warm == 0
    # It cannot import what only environments have.
    text_script(alice, "bare.py", "import gsfixture\n\ndef main(data):\n    return {}\n")
    assert "gsfixture" in run(alice, "bare.py").json()["error"]


# Answers whether its package was imported before the script ran (it does not import it itself).
PRELOAD_PROBE = (
    '# /// script\n# dependencies = ["gsfixture==2.0"]\n# ///\n'
    "import sys\n\n"
    "def main(data):\n"
    '    return {"preloaded": "gsfixture" in sys.modules}\n'
)


@pytest.mark.parametrize(("trusted", "preloaded"), [("", False), ("numpy, gsfixture", True)])
def test_only_packages_the_operator_trusts_are_preloaded(
    tmp_path: Path, wheelhouse: Path, trusted: str, preloaded: bool
) -> None:
    # A declared package's import-time code would run in the fork server, outside the sandbox:
    # by default nothing a user names is imported there.
    settings = deps_settings(tmp_path / "data", wheelhouse, environment_preload=trusted)
    with TestClient(create_app(settings)) as client:
        caller = register(client, "alice")
        text_script(caller, "probe.py", PRELOAD_PROBE)
        assert succeeded(caller, "probe.py")["result"] == {"preloaded": preloaded}


def test_two_versions_of_one_package_run_side_by_side(alice: Caller) -> None:
    text_script(alice, "one.py", pinned("gsfixture==1.0"))
    text_script(alice, "two.py", pinned("gsfixture==2.0"))
    answers: dict[str, list[str]] = {"one.py": [], "two.py": []}

    def runs(path: str) -> None:
        for _ in range(4):
            answers[path].append(succeeded(alice, path)["result"]["version"])

    threads = [threading.Thread(target=runs, args=(path,)) for path in answers]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert answers == {"one.py": ["1.0"] * 4, "two.py": ["2.0"] * 4}
    assert services(alice).executor.environment_engines.warm == 2


def test_an_old_revision_runs_with_its_old_lock(alice: Caller, tmp_path: Path) -> None:
    commit_behind_the_service(
        services(alice).settings.data_dir,
        tmp_path / "work",
        locked(alice, {"tool.py": pinned("gsfixture==1.0")}),
    )
    old = succeeded(alice, "tool.py")
    assert old["result"] == {"version": "1.0"}
    commit_behind_the_service(
        services(alice).settings.data_dir,
        tmp_path / "work",
        locked(alice, {"tool.py": pinned("gsfixture==2.0")}),
    )
    new = succeeded(alice, "tool.py")
    assert new["result"] == {"version": "2.0"} and new["revision"] != old["revision"]
    again = succeeded(alice, "tool.py", rev=old["revision"])
    assert again["result"] == {"version": "1.0"} and again["environment"] == old["environment"]
    assert services(alice).environments.builds == 2


def test_a_helper_module_imports_the_environment_of_its_script(
    alice: Caller, tmp_path: Path
) -> None:
    files = locked(alice, {"tool.py": pinned("gsfixture==1.0").replace(
        "import gsfixture\n", "import gsfixture\nfrom _helper import version\n"
    ).replace('{"version": gsfixture.VERSION}', '{"version": version()}')})  # fmt: skip
    files["_helper.py"] = b"import gsfixture\n\ndef version():\n    return gsfixture.VERSION\n"
    commit_behind_the_service(services(alice).settings.data_dir, tmp_path / "work", files)
    assert succeeded(alice, "tool.py")["result"] == {"version": "1.0"}


def test_a_lock_resolved_elsewhere_is_built_from_the_configured_sources_alone(
    alice: Caller, tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Resolved with another uv cache (a clone's, another service's): this service's cache has
    # none of its wheels, so the build must find them in PACKAGES_FIND_LINKS with
    # PACKAGES_NO_INDEX, never asking the public index (unreachable here, as on an air-gapped
    # site: any request through this proxy fails).
    other = deps_settings(tmp_path / "other", wheelhouse)
    source = pinned("gsfixture==2.0").encode()
    lock = locks.resolve(other, "fresh.py", source)
    for variable in ("HTTPS_PROXY", "https_proxy", "HTTP_PROXY", "http_proxy"):
        monkeypatch.setenv(variable, "http://127.0.0.1:9")
    commit_behind_the_service(
        services(alice).settings.data_dir,
        tmp_path / "work",
        {"fresh.py": source, "fresh.py.lock": lock},
    )
    assert succeeded(alice, "fresh.py")["result"] == {"version": "2.0"}


def test_a_failed_build_is_a_clear_error_with_its_log(
    alice: Caller, tmp_path: Path, wheelhouse: Path
) -> None:
    # A lock that names a wheel the service's index does not have (any more).
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    build_wheel(elsewhere, FixturePackage("gsfixture", "3.0", {"gsfixture/__init__.py": ""}))
    other = make_settings(
        tmp_path / "other", packages_find_links=str(elsewhere), packages_no_index=True
    )
    source = pinned("gsfixture==3.0").encode()
    lock = locks.resolve(other, "gone.py", source)
    for wheel in elsewhere.iterdir():
        wheel.unlink()
    commit_behind_the_service(
        services(alice).settings.data_dir,
        tmp_path / "work",
        {"gone.py": source, "gone.py.lock": lock},
    )
    reply = run(alice, "gone.py")
    assert reply.status_code == 422, reply.text
    error = reply.json()
    assert error["error_code"] == "ENVIRONMENT_BUILD_FAILED"
    assert "gone.py.lock" in error["message"]
    key = locks.environment_key(lock)
    assert error["details"]["environment"] == key and error["details"]["lock"] == "gone.py.lock"
    assert "gsfixture" in error["details"]["log"]
    state = alice.get(f"/api/v1/environments/{key}").json()
    assert state["state"] == "failed" and state["log"] == error["details"]["log"]
    # Remembered: the next run is told at once, without building again.
    assert run(alice, "gone.py").json()["error_code"] == "ENVIRONMENT_BUILD_FAILED"
    assert services(alice).environments.builds == 1
    # Other scripts are not affected.
    alice.upload("hello.py", HELLO)
    assert succeeded(alice, "hello.py")["result"]["processed_value"] == 0
    text_script(alice, "one.py", pinned("gsfixture==1.0"))
    assert succeeded(alice, "one.py")["result"] == {"version": "1.0"}


def test_parallel_first_runs_of_a_new_lock_build_it_once(alice: Caller, tmp_path: Path) -> None:
    commit_behind_the_service(
        services(alice).settings.data_dir,
        tmp_path / "work",
        locked(alice, {"plus.py": PLUS}),
    )
    answers: list[dict[str, Any]] = []

    def first_run() -> None:
        answers.append(run(alice, "plus.py").json())

    threads = [threading.Thread(target=first_run) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [answer.get("result") for answer in answers] == [
        {"version": "2.0", "plus": "plus on gsfixture 2.0"}
    ] * 8
    assert len({answer["environment"] for answer in answers}) == 1
    assert services(alice).environments.builds == 1


def test_at_most_the_configured_environments_are_warm(data_dir: Path, wheelhouse: Path) -> None:
    settings = deps_settings(data_dir, wheelhouse, execution_max_environments=1)
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        scripts = {"one.py": pinned("gsfixture==1.0"), "two.py": pinned("gsfixture==2.0"),
                   "plus.py": PLUS}  # fmt: skip
        for path, source in scripts.items():
            text_script(alice, path, source)
        expected = {"one.py": "1.0", "two.py": "2.0", "plus.py": "2.0"}
        for _ in range(2):
            for path in scripts:
                assert succeeded(alice, path)["result"]["version"] == expected[path]
                assert services(alice).executor.environment_engines.warm == 1
        assert services(alice).environments.builds == 3


def test_an_idle_environment_engine_is_stopped(data_dir: Path, wheelhouse: Path) -> None:
    settings = deps_settings(data_dir, wheelhouse, environment_idle_seconds=0.5)
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        text_script(alice, "one.py", pinned("gsfixture==1.0"))
        assert succeeded(alice, "one.py")["result"] == {"version": "1.0"}
        engines = services(alice).executor.environment_engines
        assert engines.warm == 1
        deadline = time.monotonic() + 10
        while engines.warm and time.monotonic() < deadline:
            time.sleep(0.1)
        assert engines.warm == 0
        # Its next run starts it again.
        assert succeeded(alice, "one.py")["result"] == {"version": "1.0"}


def test_the_subprocess_engine_runs_environments_too(data_dir: Path, wheelhouse: Path) -> None:
    settings = deps_settings(data_dir, wheelhouse, executor="subprocess")
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        text_script(alice, "one.py", pinned("gsfixture==1.0"))
        text_script(alice, "plus.py", PLUS)
        assert succeeded(alice, "one.py")["result"] == {"version": "1.0"}
        assert succeeded(alice, "plus.py")["result"]["plus"] == "plus on gsfixture 2.0"
        assert succeeded(alice, "one.py")["result"] == {"version": "1.0"}


# -- the command line -------------------------------------------------------------------------------
def command_line_settings(
    monkeypatch: pytest.MonkeyPatch, data_dir: Path, wheelhouse: Path
) -> None:
    """What `gitscripts environments ...` reads: the environment of the test's own service."""
    for name, value in {"DATA_DIR": str(data_dir), "PACKAGES_FIND_LINKS": str(wheelhouse),
                        "PACKAGES_NO_INDEX": "true",
                        "JWT_SECRET_KEY": "k" * 48}.items():  # fmt: skip
        monkeypatch.setenv(name, value)


def test_gc_keeps_what_main_and_tags_need(
    data_dir: Path,
    wheelhouse: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    command_line_settings(monkeypatch, data_dir, wheelhouse)
    work = tmp_path / "work"
    with TestClient(create_app(deps_settings(data_dir, wheelhouse))) as client:
        alice = register(client, "alice")
        files = locked(alice, {"one.py": pinned("gsfixture==1.0"),
                               "two.py": pinned("gsfixture==2.0"), "plus.py": PLUS})  # fmt: skip
        keys = {path: locks.environment_key(files[locks.lock_path(path)]) for path in
                ("one.py", "two.py", "plus.py")}  # fmt: skip
        commit_behind_the_service(data_dir, work, files)
        first = git(data_dir, "rev-parse", "main").strip()
        for gone in ("two.py", "two.py.lock"):
            (work / gone).unlink()
        commit_behind_the_service(data_dir, work, {}, "two.py goes")
        git(data_dir, "tag", "v2", "main")  # one and plus
        for gone in ("plus.py", "plus.py.lock"):
            (work / gone).unlink()
        commit_behind_the_service(data_dir, work, {}, "plus.py goes")  # main: one only
        for path in keys:
            succeeded(alice, path, rev=first)
        assert services(alice).executor.environment_engines.warm == 3
        # In use (their fork servers are warm): kept, whatever refs need them.
        assert cli.main(["environments", "gc"]) == 0
        assert built(data_dir) == set(keys.values())
    assert cli.main(["environments", "list"]) == 0
    listed = {line.split()[0]: line for line in capsys.readouterr().out.splitlines()[1:]}
    assert "main" in listed[keys["one.py"]] and "v2" in listed[keys["one.py"]]
    assert "v2" in listed[keys["plus.py"]] and "main" not in listed[keys["plus.py"]]
    assert listed[keys["two.py"]].rstrip().endswith("-")  # needed by no ref
    assert cli.main(["environments", "gc"]) == 0
    assert built(data_dir) == {keys["one.py"], keys["plus.py"]}
    assert keys["two.py"] in capsys.readouterr().out


def built(data_dir: Path) -> set[str]:
    folder = data_dir / "environments"
    return {p.name for p in folder.iterdir() if p.is_dir() and not p.name.startswith(".")}


def test_prebuild_builds_the_environments_of_main_and_every_tag(
    data_dir: Path,
    wheelhouse: Path,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    command_line_settings(monkeypatch, data_dir, wheelhouse)
    work = tmp_path / "work"
    with TestClient(create_app(deps_settings(data_dir, wheelhouse))) as client:
        alice = register(client, "alice")
        old = locked(alice, {"tool.py": pinned("gsfixture==1.0")})
        commit_behind_the_service(data_dir, work, old)
        git(data_dir, "tag", "v1", "main")
        new = locked(alice, {"tool.py": pinned("gsfixture==2.0")})
        commit_behind_the_service(data_dir, work, new)
    assert cli.main(["environments", "prebuild"]) == 0
    out = capsys.readouterr().out
    for files in (old, new):
        key = locks.environment_key(files["tool.py.lock"])
        assert key in out
        assert (data_dir / "environments" / key / "packages" / "gsfixture").is_dir()


# -- the sandbox holds for environment runs ----------------------------------------------------------
ENVIRONMENT_ESCAPE = (
    '# /// script\n# dependencies = ["gsfixture==1.0"]\n# ///\n'
    + ESCAPE
    + r"""
_escape = main

def main(data):
    out = _escape(data)
    import gsfixture
    packages = os.path.dirname(os.path.dirname(gsfixture.__file__))
    out["write the environment's package"] = attempt(write(gsfixture.__file__))
    out["new file in the environment"] = attempt(write(os.path.join(packages, "planted.py")))
    out["remount the environment rw"] = attempt(
        call("mount", None, packages.encode(), None, 32 | 4096, None))
    out["umount the environment"] = attempt(call("umount2", packages.encode(), 2))
    out["beside the environment"] = sorted(os.listdir(os.path.dirname(packages)))
    out["version"] = gsfixture.VERSION
    return out
"""
)


@pytest.mark.parametrize("mode", ["root", "plain"])
@pytest.mark.usefixtures("plain_user_can_run_python")
def test_an_environment_run_is_as_sandboxed_as_any(mode: str) -> None:
    if mode == "root" and os.geteuid() != 0:
        pytest.skip("the root deployment needs the tests to run as root")
    base = Path(tempfile.mkdtemp(prefix="gitscripts-envs-"))
    as_uid = PLAIN_UID if mode == "plain" and os.geteuid() == 0 else None
    wheelhouse = build_wheelhouse(base / "wheelhouse")
    if as_uid is not None:
        for path in (base, base / "wheelhouse"):
            os.chown(path, as_uid, as_uid)
    settings = {
        "EXECUTION_SANDBOX": "strict",
        "MAX_CONCURRENT_EXECUTIONS": "2",
        "PACKAGES_FIND_LINKS": str(wheelhouse),
        "PACKAGES_NO_INDEX": "true",
    }
    env_drop = {"JWT_SECRET_KEY": ""} if mode == "plain" else {}
    try:
        with live_server(
            base / "data", base / "log", as_uid=as_uid, **settings, **env_drop
        ) as server:
            service = signed_up(mode, server, base / "data")
            service.upload("alice", "escape.py", ENVIRONMENT_ESCAPE)
            data = {
                "data_dir": str(service.data_dir),
                "service_pid": server.process.pid,
                "zygote_pid": service.fork_server_pid(),
                "port": int(service.base.rsplit(":", 1)[1]),
            }
            outcome = service.run("alice", "escape.py", data)
            assert outcome["success"], outcome["error"]
            assert outcome["environment"]
            found = outcome["result"]
            assert found["version"] == "1.0"
            got = {name: value for name, value in found.items() if str(value).startswith("GOT")}
            assert got == {}, got
            for name in ("write the environment's package", "new file in the environment",
                         "remount the environment rw", "umount the environment"):  # fmt: skip
                assert found[name].startswith("blocked"), (name, found[name])
            # Of the environments a run sees its own packages only: no other environment, no
            # lock, no log.
            assert found["beside the environment"] == [outcome["environment"]]
            status = found["status"]
            assert status["CapEff"] == "0000000000000000" and status["Seccomp"] == "2"
            if mode == "root":
                assert all(int(uid) >= 2_000_000 for uid in status["Uid"].split())
            # Nothing it tried changed the environment for the next run.
            again = service.run("bob", "escape.py", data)
            assert again["result"]["version"] == "1.0"
            assert again["result"]["new file in the environment"].startswith("blocked")
    finally:
        shutil.rmtree(base, ignore_errors=True)


# -- built ahead -------------------------------------------------------------------------------------
def test_a_pushed_lock_is_built_before_its_first_run(
    tmp_path: Path, wheelhouse: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(test_git_http, "_HOME", tmp_path / "home")
    (tmp_path / "home").mkdir()
    source = pinned("gsfixture==2.0").encode()
    other = make_settings(tmp_path / "other", packages_find_links=str(wheelhouse),
                          packages_no_index=True)  # fmt: skip
    lock = locks.resolve(other, "tool.py", source)
    key = locks.environment_key(lock)
    settings = {"PACKAGES_FIND_LINKS": str(wheelhouse), "PACKAGES_NO_INDEX": "true"}
    with test_git_http._started(tmp_path / "server", ["alice"], **settings) as server:
        clone = server.clone("alice")
        clone.write("tool.py", source)
        clone.write("tool.py.lock", lock)
        clone.commit("a script and its lock")
        pushed = clone.push()
        assert pushed.returncode == 0, pushed.stderr
        deadline = time.monotonic() + 60
        while True:  # no run has asked for it: the push did
            state = server.api("alice", "GET", f"/api/v1/environments/{key}")
            if state.status_code == 200 and state.json()["state"] == "ready":
                break
            assert time.monotonic() < deadline, state.text
            time.sleep(0.1)
        assert state.json()["last_used"] is None
        outcome = server.run("alice", "tool.py", {})
        assert outcome["result"] == {"version": "2.0"} and outcome["environment"] == key


def test_a_run_log_from_before_environments_gains_the_column(
    data_dir: Path, wheelhouse: Path
) -> None:
    """A run log written before runs named their environment opens as it was, and says null."""
    data_dir.mkdir(parents=True)
    with sqlite3.connect(data_dir / "runs.sqlite3") as old:
        old.executescript(store._SCHEMA.replace(",\n    environment TEXT", ""))
        old.execute(
            "INSERT INTO runs (id, script_path, revision, commit_id, mode, status, queued_at, "
            "timeout, stdout, stderr, stdout_cut, stderr_cut, input_stored) "
            "VALUES ('01J0000000000000000000000A', 'old.py', 'main', 'abc', 'sync', "
            "'succeeded', ?, 5.0, '', '', 0, 0, 1)",
            (time.time(),),
        )
    with TestClient(create_app(deps_settings(data_dir, wheelhouse))) as client:
        alice = register(client, "alice")
        text_script(alice, "one.py", pinned("gsfixture==1.0"))
        outcome = succeeded(alice, "one.py")
        record = alice.get(f"/api/v1/runs/{outcome['run_id']}").json()
        assert record["environment"] == outcome["environment"]
        before = services(alice).runs.store.get("01J0000000000000000000000A")
        assert before is not None and before.environment is None
        assert before.script_path == "old.py" and before.status == "succeeded"
