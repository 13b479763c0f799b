"""Running scripts: the seed contract, revisions, isolation, limits, concurrency, both engines."""

from __future__ import annotations

import os
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gitscripts.app import create_app
from tests.conftest import (
    HELLO,
    Caller,
    commit_behind_the_service,
    git,
    live_server,
    make_settings,
    register,
)


def run(caller: Caller, path: str, body: Any = None, **params: Any) -> Any:
    kwargs: dict[str, Any] = {"params": params}
    if body is not None:
        kwargs["json"] = body
    return caller.post(f"/api/v1/scripts/{path}", **kwargs)


def text_script(caller: Caller, filename: str, source: str, folder_id: int | None = None) -> dict:
    reply = caller.post(
        "/api/v1/scripts-manager/scripts-from-text",
        json={
            "filename": filename,
            "display_name": filename,
            "content": source,
            "folder_id": folder_id,
        },
    )
    assert reply.status_code == 201, reply.text
    return reply.json()


@pytest.fixture(params=["fork", "subprocess"])
def engine_user(request: pytest.FixtureRequest, data_dir: Path) -> Iterator[Caller]:
    """A user on a service running the given engine."""
    with TestClient(create_app(make_settings(data_dir, executor=request.param))) as client:
        yield register(client, "alice")


# -- the seed contract, on both engines -----------------------------------------------------------
def test_both_body_forms_and_the_sample_script(engine_user: Caller) -> None:
    engine_user.upload("hello.py", HELLO)
    for body in ({"data": {"name": "World", "value": 42}}, {"name": "World", "value": 42}):
        reply = run(engine_user, "hello.py", body)
        assert reply.status_code == 200
        outcome = reply.json()
        assert outcome["success"] is True
        assert outcome["result"] == {"message": "Hello, World!", "processed_value": 84}
        assert outcome["error"] is None
        assert isinstance(outcome["execution_time"], float) and outcome["execution_time"] > 0
        assert len(outcome["revision"]) == 40
    # A body whose "data" is not the only key is passed as is; an empty body is {}.
    echo = "def main(data):\n    return {'got': data}\n"
    text_script(engine_user, "echo.py", echo)
    assert run(engine_user, "echo.py", {"data": {"a": 1}, "b": 2}).json()["result"] == {
        "got": {"data": {"a": 1}, "b": 2}
    }
    assert run(engine_user, "echo.py", {"data": 5}).json()["result"] == {"got": {"data": 5}}
    assert run(engine_user, "echo.py").json()["result"] == {"got": {}}


def test_failures_are_200_with_a_readable_error(engine_user: Caller) -> None:
    text_script(engine_user, "none.py", "def main(data):\n    return None\n")
    text_script(engine_user, "listy.py", "def main(data):\n    return [1, 2]\n")
    text_script(
        engine_user,
        "raises.py",
        "def helper(x):\n    return x / 0\n\ndef main(data):\n    return helper(1)\n",
    )
    text_script(engine_user, "notjson.py", "def main(data):\n    return {'s': {1, 2}}\n")
    text_script(engine_user, "exits.py", "import sys\ndef main(data):\n    sys.exit(3)\n")
    assert run(engine_user, "none.py").json()["result"] == {}
    listy = run(engine_user, "listy.py").json()
    assert (listy["success"], listy["result"]) == (False, None)
    assert "must return a dict" in listy["error"] and "list" in listy["error"]
    raised = run(engine_user, "raises.py").json()
    assert raised["success"] is False and raised["result"] is None
    error = raised["error"]
    assert 'File "raises.py", line 5, in main' in error
    assert 'File "raises.py", line 2, in helper' in error
    assert "ZeroDivisionError" in error
    assert "gitscripts" not in error and "/tmp" not in error and "site-packages" not in error
    assert "not JSON" in run(engine_user, "notjson.py").json()["error"]
    assert "SystemExit" in run(engine_user, "exits.py").json()["error"]


def test_print_never_corrupts_the_result_and_output_is_captured(engine_user: Caller) -> None:
    source = (
        "import sys\n"
        "def main(data):\n"
        "    print('{\"success\": false}')\n"
        "    print('to stderr', file=sys.stderr)\n"
        "    sys.stdout.write('x' * (2 * 1024 * 1024))\n"
        "    return {'ok': 1}\n"
    )
    text_script(engine_user, "noisy.py", source)
    outcome = run(engine_user, "noisy.py").json()
    assert outcome["success"] is True and outcome["result"] == {"ok": 1}
    assert outcome["stdout"].startswith('{"success": false}\nxxx')
    assert outcome["stdout"].endswith("[... output truncated ...]\n")
    assert len(outcome["stdout"]) < 1024 * 1024 + 100
    assert outcome["stderr"] == "to stderr\n"


def test_timeout_gives_a_failure_and_a_request_may_only_ask_for_less(engine_user: Caller) -> None:
    text_script(engine_user, "slow.py", "import time\ndef main(data):\n    time.sleep(30)\n")
    outcome = run(engine_user, "slow.py", timeout=0.5).json()
    assert outcome["success"] is False
    assert "timed out after 0.5 seconds" in outcome["error"]
    assert outcome["execution_time"] < 10
    assert run(engine_user, "slow.py", timeout=0).status_code == 400


def test_unknown_script_and_bad_bodies(engine_user: Caller) -> None:
    reply = run(engine_user, "nope/missing.py")
    assert reply.status_code == 404 and reply.json()["error_code"] == "SCRIPT_NOT_FOUND"
    engine_user.upload("hello.py")
    reply = engine_user.post(
        "/api/v1/scripts/hello.py", content=b"{oops", headers={"Content-Type": "application/json"}
    )
    assert reply.status_code == 400 and reply.json()["error_code"] == "VALIDATION_ERROR"
    for path in (
        "../etc/passwd",
        "hello.py/..",
        "%2e%2e/hello.py",
        ".hidden.py",
        "hello.py.meta.json",
    ):
        assert run(engine_user, path).status_code in (404, 405), path


# -- revisions ---------------------------------------------------------------------------------
def test_run_at_any_revision_tag_or_branch(alice: Caller, data_dir: Path) -> None:
    script = text_script(alice, "calc.py", "def main(data):\n    return {'version': 1}\n")
    first = run(alice, "calc.py").json()["revision"]
    git(data_dir, "tag", "stable", first)
    git(data_dir, "branch", "release", first)
    alice.put(
        f"/api/v1/scripts-manager/scripts/{script['id']}",
        json={"content": "def main(data):\n    return {'version': 2}\n"},
    )
    assert run(alice, "calc.py").json()["result"] == {"version": 2}
    for rev in (first, first[:7], "stable", "release"):
        outcome = run(alice, "calc.py", rev=rev).json()
        assert outcome["result"] == {"version": 1}, rev
        assert outcome["revision"] == first
    assert run(alice, "calc.py", rev="main").json()["result"] == {"version": 2}


@pytest.mark.parametrize(
    "rev", ["--output=x", "main..HEAD", "HEAD~1", "main^", "a b", "main@{0}", "-n", "x:y", "../x"]
)
def test_malformed_revisions_are_400(alice: Caller, rev: str) -> None:
    alice.upload("hello.py")
    reply = run(alice, "hello.py", rev=rev)
    assert reply.status_code == 400, reply.text
    assert reply.json()["error_code"] == "INVALID_REVISION"


def test_unknown_revision_is_404(alice: Caller) -> None:
    alice.upload("hello.py")
    for rev in ("deadbeefdeadbeef", "no-such-tag", "0" * 40):
        reply = run(alice, "hello.py", rev=rev)
        assert reply.status_code == 404
        assert reply.json()["error_code"] == "REVISION_NOT_FOUND"
    # A script that did not exist yet at an old revision is not found there.
    old = run(alice, "hello.py").json()["revision"]
    alice.upload("later.py")
    reply = run(alice, "later.py", rev=old)
    assert reply.status_code == 404 and reply.json()["error_code"] == "SCRIPT_NOT_FOUND"


def test_pushed_scripts_run_and_siblings_import(
    alice: Caller, data_dir: Path, tmp_path: Path
) -> None:
    files = {
        "lib/__init__.py": b"",
        "lib/units.py": b"BAR = 1e5\n",
        "geo/_helpers.py": b"def twice(x):\n    return 2 * x\n",
        "geo/pressure.py": b"from _helpers import twice\nfrom lib.units import BAR\n"
        b"def main(data):\n    return {'pa': twice(data['bar']) * BAR}\n",
    }
    commit_behind_the_service(data_dir, tmp_path / "work", files, "pressure")
    assert run(alice, "geo/pressure.py", {"bar": 2}).json()["result"] == {"pa": 400000.0}
    reply = run(alice, "geo/_helpers.py")
    assert reply.status_code == 404 and "helper module" in reply.json()["message"]


# -- the checkout cache ------------------------------------------------------------------------
def test_checkouts_are_read_only_per_tree_and_shared(alice: Caller) -> None:
    folder = alice.folder("geo")
    text_script(
        alice,
        "probe.py",
        "import os\ndef main(data):\n"
        "    here = os.path.dirname(os.path.realpath(__file__))\n"
        "    try:\n        open(os.path.join(here, 'x'), 'w')\n        writable = True\n"
        "    except OSError:\n        writable = False\n"
        "    return {'writable': writable, 'cwd_writable': os.access('.', os.W_OK)}\n",
        folder_id=folder["id"],
    )
    outcome = run(alice, "geo/probe.py").json()
    assert outcome["result"] == {"writable": False, "cwd_writable": True}
    cache = alice.client.app.state.services.executor.checkouts
    trees = {p.name for p in cache.root.iterdir()}
    first_revision = outcome["revision"]
    # Changing a root script makes a new root tree but reuses the unchanged folder's directory.
    alice.upload("other.py")
    run(alice, "geo/probe.py")
    new_trees = {p.name for p in cache.root.iterdir()} - trees
    assert len(new_trees) == 1
    # Runs at the old revision reuse its checkout.
    before = {p.name for p in cache.root.iterdir()}
    assert run(alice, "geo/probe.py", rev=first_revision).json()["success"]
    assert {p.name for p in cache.root.iterdir()} == before


def test_checkout_cache_is_bounded(data_dir: Path) -> None:
    settings = make_settings(data_dir, checkout_cache_bytes=1 << 20)
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        big = "def main(data):\n    return {}\n" + "# " + "x" * 400_000 + "\n"
        revisions = []
        for n in range(4):
            text_script(alice, f"big{n}.py", big)
            revisions.append(run(alice, f"big{n}.py").json()["revision"])
        cache = client.app.state.services.executor.checkouts
        assert cache.size <= 1 << 20
        # Evicted revisions are rebuilt on demand.
        assert run(alice, "big0.py", rev=revisions[0]).json()["success"]


# -- isolation and limits ----------------------------------------------------------------------
def test_scripts_see_a_clean_environment(data_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SERVER_ONLY_SECRET", "do-not-leak")
    settings = make_settings(data_dir)
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        text_script(alice, "env.py", "import os\ndef main(data):\n    return dict(os.environ)\n")
        environment = run(alice, "env.py").json()["result"]
    values = " ".join(environment.values())
    assert "SERVER_ONLY_SECRET" not in environment and "do-not-leak" not in values
    assert settings.jwt_secret_key not in values
    assert not any(name.startswith(("JWT", "DATA_DIR", "GITSCRIPTS")) for name in environment)
    assert set(environment) <= {
        "PATH",
        "LANG",
        "LC_ALL",
        "TZ",
        "HOME",
        "TMPDIR",
        "PYTHONIOENCODING",
        "OPENBLAS_NUM_THREADS",
        "OMP_NUM_THREADS",
        "MKL_NUM_THREADS",
        "OPENBLAS_CORETYPE",
        "OPENBLAS_L2_SIZE",
        # The file store's address and this run's file-only token (gitscripts.runtime.files).
        "FILES_API_URL",
        "FILES_API_TOKEN",
    }


def test_scratch_directory_is_fresh_and_removed(alice: Caller) -> None:
    text_script(
        alice,
        "scratch.py",
        "import os\ndef main(data):\n    before = os.listdir('.')\n"
        "    open('out.txt', 'w').write('x')\n    return {'cwd': os.getcwd(), 'before': before}\n",
    )
    first = run(alice, "scratch.py").json()["result"]
    second = run(alice, "scratch.py").json()["result"]
    assert first["before"] == [] and second["before"] == []
    assert first["cwd"] != second["cwd"]
    assert not Path(first["cwd"]).exists()


def _running(marker: str) -> list[int]:
    """Live processes of the machine whose command line holds `marker` (runs have PID
    namespaces of their own, so the ids a script sees mean nothing out here)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            if marker.encode() not in (entry / "cmdline").read_bytes():
                continue
            state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
        except OSError:
            continue
        if state != "Z":
            found.append(int(entry.name))
    return found


def test_no_processes_are_left_behind(engine_user: Caller) -> None:
    source = (
        "import subprocess, time\n"
        "def main(data):\n"
        "    same_group = subprocess.Popen(['sleep', data['group']])\n"
        "    escaped = subprocess.Popen(['sleep', data['escaped']], start_new_session=True)\n"
        "    time.sleep(0.2)\n"
        "    print('started', flush=True)\n"
        "    if data.get('wait'):\n"
        "        time.sleep(60)\n"
        "    return {'started': True}\n"
    )
    text_script(engine_user, "forker.py", source)
    markers = {"group": "301.0123", "escaped": "301.0456"}
    assert run(engine_user, "forker.py", markers).json()["result"] == {"started": True}
    time.sleep(0.2)
    assert _running("301.0123") == [] and _running("301.0456") == []
    # After a timeout too: the script is killed with everything it started.
    markers = {"group": "302.0123", "escaped": "302.0456", "wait": True}
    outcome = run(engine_user, "forker.py", markers, timeout=1).json()
    assert outcome["success"] is False and "timed out" in outcome["error"]
    assert outcome["stdout"] == "started\n"
    time.sleep(0.2)
    assert _running("302.0123") == [] and _running("302.0456") == []


def test_memory_limit(data_dir: Path) -> None:
    with TestClient(create_app(make_settings(data_dir, execution_memory_limit_mb=256))) as client:
        alice = register(client, "alice")
        text_script(
            alice,
            "hog.py",
            "def main(data):\n    block = bytearray(1024 * 1024 * 1024)\n"
            "    return {'n': len(block)}\n",
        )
        outcome = run(alice, "hog.py").json()
    assert outcome["success"] is False
    assert "MemoryError" in outcome["error"]


def test_file_size_limit(data_dir: Path) -> None:
    with TestClient(create_app(make_settings(data_dir, execution_max_file_size_mb=1))) as client:
        alice = register(client, "alice")
        text_script(
            alice,
            "writer.py",
            "def main(data):\n    with open('big', 'wb') as f:\n"
            "        f.write(b'x' * (3 * 1024 * 1024))\n",
        )
        outcome = run(alice, "writer.py").json()
    assert outcome["success"] is False
    assert "File too large" in outcome["error"] or "SIGXFSZ" in outcome["error"]


def test_cpu_time_limit(data_dir: Path) -> None:
    with TestClient(create_app(make_settings(data_dir, execution_cpu_limit_seconds=1))) as client:
        alice = register(client, "alice")
        text_script(alice, "spin.py", "def main(data):\n    while True:\n        pass\n")
        outcome = run(alice, "spin.py", timeout=20).json()
    assert outcome["success"] is False
    assert "CPU time limit" in outcome["error"]
    assert outcome["execution_time"] < 15


# -- concurrency -------------------------------------------------------------------------------
def test_a_full_queue_refuses_before_reading_the_request_or_checking_its_token(
    data_dir: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """While the executor is full, a run is refused with 429: at the door, so a request that has
    no token and an unreadable body is told 429 (in the same shape), not 401 or 400: neither was
    looked at."""
    settings = make_settings(data_dir, max_concurrent_executions=1, max_queued_executions=0)
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        text_script(alice, "slow.py", "import time\ndef main(data):\n    time.sleep(1.5)\n")
        first: list[Any] = []
        worker = threading.Thread(target=lambda: first.append(run(alice, "slow.py")))
        worker.start()
        time.sleep(0.5)
        capsys.readouterr()
        refusals = [
            run(alice, "slow.py"),
            client.post(
                "/api/v1/scripts/slow.py",
                content=b"{not json",
                headers={"Content-Type": "application/json"},
            ),
            client.post("/api/v1/scripts/no/such/script.py", json={"data": {}}),
        ]
        log = capsys.readouterr().err
        worker.join()
        # A place is free again: the same requests get their usual answers.
        assert client.post("/api/v1/scripts/slow.py", json={}).status_code == 401
        assert run(alice, "no/such/script.py").status_code == 404
    for reply in refusals:
        assert reply.status_code == 429, reply.text
        assert reply.json() == {
            "error_code": "TOO_MANY_EXECUTIONS",
            "message": "Too many executions are running or waiting; try again shortly",
            "details": {"queue_limit": 0},
        }
        assert int(reply.headers["retry-after"]) >= 1
    assert first[0].status_code == 200 and first[0].json()["success"]
    refused_lines = [line for line in log.splitlines() if "outcome=refused" in line]
    assert len(refused_lines) == 3 and "script=slow.py" in refused_lines[0]


def test_retry_after_follows_the_queue(data_dir: Path) -> None:
    """Retry-After says how long the runs already waiting take to start, at the pace the queue
    has moved (here one 0.8 s run at a time), not a fixed second."""
    settings = make_settings(data_dir, max_concurrent_executions=1, max_queued_executions=2)
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        text_script(alice, "slow.py", "import time\ndef main(data):\n    time.sleep(0.8)\n")
        replies: list[Any] = []

        def start_runs(count: int) -> list[threading.Thread]:
            threads = [
                threading.Thread(target=lambda: replies.append(run(alice, "slow.py")))
                for _ in range(count)
            ]
            for thread in threads:
                thread.start()
                time.sleep(0.1)
            return threads

        # Three runs fill the place and the queue; two of them finish with others waiting, which
        # shows the queue's pace (0.8 s); two more refill it.
        threads = start_runs(3)
        time.sleep(1.8)
        threads += start_runs(2)
        refused = run(alice, "slow.py")
        for thread in threads:
            thread.join()
    assert refused.status_code == 429 and refused.json()["error_code"] == "TOO_MANY_EXECUTIONS"
    # Two waiting plus this one: about 3 x 0.8 s.
    assert 2 <= int(refused.headers["retry-after"]) <= 4, refused.headers["retry-after"]
    assert sorted(reply.status_code for reply in replies) == [200] * 5


def test_api_stays_responsive_while_scripts_run(alice: Caller) -> None:
    text_script(
        alice,
        "burn.py",
        "import time\ndef main(data):\n    end = time.time() + 3\n"
        "    while time.time() < end:\n        pass\n",
    )
    workers = [threading.Thread(target=run, args=(alice, "burn.py")) for _ in range(2)]
    for worker in workers:
        worker.start()
    time.sleep(0.5)
    started = time.perf_counter()
    assert alice.get("/api/v1/scripts-manager/tree").status_code == 200
    elapsed = time.perf_counter() - started
    for worker in workers:
        worker.join()
    assert elapsed < 2.0  # well inside the 3 s the scripts keep both cores busy


def test_client_disconnect_cancels_the_execution(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with live_server(tmp_path / "data", log, LOG_LEVEL="INFO") as server:
        base = server.base
        port = int(base.rsplit(":", 1)[1])
        creds = {"login": "alice", "password": "password123"}
        httpx.post(f"{base}/api/v1/auth/register", json=creds)
        token = httpx.post(f"{base}/api/v1/auth/login", json=creds).json()["access_token"]
        # A finished run leaves a mark in the file store (the one place a run can write to).
        source = (
            "import time, subprocess\nfrom gitscripts.runtime import files\n"
            "def main(data):\n"
            "    print(subprocess.Popen(['sleep', '300']).pid, flush=True)\n"
            "    time.sleep(2)\n"
            "    with files.open('finished.txt', 'w') as mark:\n"
            "        mark.write('done')\n"
        )
        auth = {"Authorization": f"Bearer {token}"}

        def finished() -> bool:
            reply = httpx.get(f"{base}/api/v1/files/finished.txt/info", headers=auth)
            return reply.status_code == 200

        httpx.post(
            f"{base}/api/v1/scripts-manager/scripts-from-text",
            headers={"Authorization": f"Bearer {token}"},
            json={"filename": "long.py", "display_name": "long", "content": source},
        )
        body = b"{}"
        request = (
            f"POST /api/v1/scripts/long.py HTTP/1.1\r\nHost: x\r\n"
            f"Authorization: Bearer {token}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode() + body
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(request)
            time.sleep(0.7)
        time.sleep(2.5)
        assert not finished()
        # The server is fine and runs the next request normally.
        reply = httpx.post(
            f"{base}/api/v1/scripts/long.py",
            json={"data": {}},
            headers={"Authorization": f"Bearer {token}"},
            timeout=30,
        )
        assert reply.json()["success"] is True, reply.json()
        assert finished()
    # Both runs are in the log, with what became of them.
    runs = [
        line for line in log.read_text().splitlines() if "execution" in line and "long.py" in line
    ]
    assert len(runs) == 2, runs
    assert "outcome=cancelled" in runs[0] and "user=alice" in runs[0]
    assert "outcome=success" in runs[1]
    # A client going away is not a failure of the service: no error line for it.
    assert "request_failed" not in log.read_text() and "INTERNAL_ERROR" not in log.read_text()


# -- auth --------------------------------------------------------------------------------------
def test_execution_needs_a_token_unless_anonymous_is_allowed(data_dir: Path) -> None:
    with TestClient(create_app(make_settings(data_dir))) as client:
        alice = register(client, "alice")
        alice.upload("hello.py")
        assert client.post("/api/v1/scripts/hello.py", json={}).status_code == 401
        token = alice.post("/api/v1/auth/tokens", json={"name": "sim"}).json()["token"]
        reply = client.post(
            "/api/v1/scripts/hello.py",
            json={"name": "T"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert reply.json()["result"]["message"] == "Hello, T!"
    with TestClient(create_app(make_settings(data_dir, allow_anonymous_execution=True))) as client:
        reply = client.post("/api/v1/scripts/hello.py", json={"name": "anon"})
        assert reply.status_code == 200 and reply.json()["result"]["message"] == "Hello, anon!"
        # A token that is present must still be valid.
        bad = client.post(
            "/api/v1/scripts/hello.py", json={}, headers={"Authorization": "Bearer x"}
        )
        assert bad.status_code == 401


def test_preloaded_modules_are_imported_once_by_the_fork_server(data_dir: Path) -> None:
    settings = make_settings(data_dir, preload_modules="numpy")
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        text_script(
            alice,
            "np.py",
            "import sys\nwas_loaded = 'numpy' in sys.modules\n"
            "import numpy as np\n"
            "def main(data):\n    return {'preloaded': was_loaded, "
            "'sum': float(np.arange(data['n']).sum())}\n",
        )
        outcome = run(alice, "np.py", {"n": 10}).json()
    assert outcome["result"] == {"preloaded": True, "sum": 45.0}


def test_children_share_no_state(alice: Caller) -> None:
    text_script(
        alice,
        "counter.py",
        "import builtins\ndef main(data):\n"
        "    builtins.COUNT = getattr(builtins, 'COUNT', 0) + 1\n"
        "    return {'count': builtins.COUNT}\n",
    )
    assert [run(alice, "counter.py").json()["result"]["count"] for _ in range(3)] == [1, 1, 1]


def test_every_execution_is_logged(alice: Caller, capsys: pytest.CaptureFixture[str]) -> None:
    alice.upload("hello.py")
    capsys.readouterr()
    revision = run(alice, "hello.py").json()["revision"]
    line = next(
        line
        for line in capsys.readouterr().err.splitlines()
        if "execution" in line and "script=hello.py" in line
    )
    for fact in (
        "user=alice",
        f"revision={revision}",
        "outcome=success",
        "duration_ms=",
        "peak_memory_kb=",
    ):
        assert fact in line


def test_scripts_cannot_read_the_service_data_or_its_socket(alice: Caller, data_dir: Path) -> None:
    source = (
        "import os\n"
        "def main(data):\n"
        "    seen = {}\n"
        "    for path in data['paths']:\n"
        "        try:\n"
        "            seen[path] = sorted(os.listdir(path))\n"
        "        except OSError as exc:\n"
        "            seen[path] = type(exc).__name__\n"
        "    return seen\n"
    )
    text_script(alice, "snoop.py", source)
    control = alice.client.app.state.services.executor.checkouts.root.parent / "control"
    assert "index.json" in os.listdir(data_dir) and os.listdir(control)
    seen = run(alice, "snoop.py", {"paths": [str(data_dir), str(control)]}).json()["result"]
    for listing in seen.values():
        assert listing in ([], "PermissionError", "FileNotFoundError"), seen


def test_a_dead_fork_server_is_replaced(alice: Caller) -> None:
    alice.upload("hello.py")
    engine = alice.client.app.state.services.executor.engine
    assert run(alice, "hello.py").json()["success"]
    os.kill(engine._zygote.pid, 9)
    time.sleep(0.2)
    outcome = run(alice, "hello.py", {"name": "again"}).json()
    assert outcome["result"]["message"] == "Hello, again!"


def test_many_concurrent_runs_all_succeed(alice: Caller) -> None:
    text_script(
        alice,
        "echo.py",
        "import sys\ndef main(data):\n    print(data['n'])\n"
        "    print('e', file=sys.stderr)\n    return {'n': data['n']}\n",
    )
    outcomes: list[Any] = []

    def client(base: int) -> None:
        for n in range(base, base + 15):
            outcomes.append((n, run(alice, "echo.py", {"n": n}).json()))

    threads = [threading.Thread(target=client, args=(i * 100,)) for i in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len(outcomes) == 90
    for n, outcome in outcomes:
        assert outcome["success"], outcome
        assert outcome["result"] == {"n": n} and outcome["stdout"] == f"{n}\n"
        assert outcome["stderr"] == "e\n"


def test_scripts_cannot_see_other_processes(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """No way round the clean environment: not the service's /proc entries (its environment,
    its view of the file system), nor those of anything else it runs."""
    monkeypatch.setenv("SERVICE_CANARY", "canary-value-in-the-service")
    source = (
        "import os\n"
        "def main(data):\n"
        "    found = []\n"
        "    for path in ['/proc/%d/environ' % data['pid'], '/proc/1/environ',\n"
        "                 '/proc/self/../%d/root' % data['pid']]:\n"
        "        try:\n"
        "            found.append(open(path, 'rb').read().decode('latin-1'))\n"
        "        except OSError:\n"
        "            pass\n"
        "    try:\n"
        "        listed = os.listdir('/proc')\n"
        "    except OSError:\n"
        "        listed = []\n"
        "    return {'found': found, 'processes': [p for p in listed if p.isdigit()]}\n"
    )
    with TestClient(create_app(make_settings(data_dir))) as client:
        alice = register(client, "alice")
        text_script(alice, "snoop.py", source)
        outcome = run(alice, "snoop.py", {"pid": os.getpid()}).json()
    assert outcome["success"], outcome
    assert not any("canary-value" in text for text in outcome["result"]["found"])
    # The run has a PID namespace of its own: it sees itself (PID 1) and nothing of the machine.
    assert outcome["result"]["processes"] == ["1"]
