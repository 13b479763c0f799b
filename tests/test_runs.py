"""The run log: every execution recorded, read back and listed through the HTTP API, with the
visibility rules, crash recovery and retention."""

from __future__ import annotations

import signal
import socket
import sqlite3
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi.testclient import TestClient

from gitscripts.app import create_app
from gitscripts.cli import main as cli
from tests.conftest import HELLO, PASSWORD, Caller, live_server, make_settings, register

SEED_KEYS = {"success", "result", "error", "execution_time", "revision", "stdout", "stderr"}
ISO = r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z$"


def script(caller: Caller, filename: str, source: str) -> dict[str, Any]:
    reply = caller.post(
        "/api/v1/scripts-manager/scripts-from-text",
        json={"filename": filename, "display_name": filename, "content": source},
    )
    assert reply.status_code == 201, reply.text
    return dict(reply.json())


def run(caller: Caller, path: str, data: Any = None, **params: Any) -> dict[str, Any]:
    reply = caller.post(f"/api/v1/scripts/{path}", json={"data": data or {}}, params=params)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def runs(caller: Caller, **params: Any) -> dict[str, Any]:
    reply = caller.get("/api/v1/runs", params=params)
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_a_sync_run_is_recorded_with_its_fields(alice: Caller) -> None:
    uploaded = alice.upload("hello.py", HELLO)
    answer = run(alice, "hello.py", {"name": "World", "value": 2})
    # The seed's answer, unchanged, with the run's id.
    assert set(answer) == SEED_KEYS | {"run_id"}
    assert answer["result"] == {"message": "Hello, World!", "processed_value": 4}
    record = alice.get(f"/api/v1/runs/{answer['run_id']}").json()
    assert record["id"] == answer["run_id"] and len(record["id"]) == 26
    assert record["script_path"] == "hello.py"
    assert record["script_id"] == str(uploaded["id"])
    assert record["revision"] == "main" and record["commit"] == answer["revision"]
    assert record["user"] == {"id": alice.id, "login": "alice"}
    assert record["mode"] == "sync" and record["status"] == "succeeded"
    assert record["error"] is None
    assert record["input"] == {"name": "World", "value": 2}
    assert record["result"] == answer["result"]
    for moment in ("queued_at", "started_at", "finished_at"):
        assert record[moment] is not None
    assert record["queued_at"] <= record["started_at"] <= record["finished_at"]
    assert record["queue_wait_ms"] >= 0 and record["run_time_ms"] > 0
    # A revision asked for by name keeps that name; the commit is what ran.
    tagged = alice.post("/api/v1/scripts-manager/tags", json={"name": "v1", "revision": "main"})
    assert tagged.status_code == 201, tagged.text
    again = run(alice, "hello.py", rev="v1")
    assert alice.get(f"/api/v1/runs/{again['run_id']}").json()["revision"] == "v1"


def test_failures_timeouts_and_output_are_recorded(alice: Caller) -> None:
    script(alice, "fails.py", "def main(data):\n    print('before')\n    raise ValueError('no')\n")
    script(alice, "slow.py", "import time\ndef main(data):\n    time.sleep(30)\n")
    script(alice, "loud.py", "def main(data):\n    print('x' * 100_000)\n    return {}\n")
    failed = run(alice, "fails.py")
    record = alice.get(f"/api/v1/runs/{failed['run_id']}").json()
    assert record["status"] == "failed" and "ValueError: no" in record["error"]
    assert record["stdout"] == "before\n" and record["result"] is None
    slow = run(alice, "slow.py", timeout=0.5)
    assert alice.get(f"/api/v1/runs/{slow['run_id']}").json()["status"] == "timed_out"
    # Output is kept up to RUNS_OUTPUT_LIMIT_CHARS, with a marker where it was cut.
    loud = run(alice, "loud.py")
    assert len(loud["stdout"]) == 100_001  # the answer itself is not cut
    record = alice.get(f"/api/v1/runs/{loud['run_id']}").json()
    assert record["stdout_truncated"] is True and record["stderr_truncated"] is False
    assert record["stdout"] == "x" * 65_536 + "\n[... cut: 34465 more characters]"


def test_a_timed_out_run_keeps_what_it_printed(alice: Caller) -> None:
    # Printed lines, then a sleep past the timeout: the script is killed before it could flush.
    script(
        alice,
        "chatty.py",
        "import sys, time\n"
        "def main(data):\n"
        "    print('step 1 done')\n"
        "    print('partial', end='')\n"
        "    print('to stderr', file=sys.stderr)\n"
        "    time.sleep(30)\n",
    )
    answer = run(alice, "chatty.py", timeout=0.5)
    assert answer["success"] is False and answer["stdout"] == "step 1 done\n"
    record = alice.get(f"/api/v1/runs/{answer['run_id']}").json()
    assert record["status"] == "timed_out"
    assert record["stdout"] == "step 1 done\n" and record["stderr"] == "to stderr\n"
    # An asynchronous run's too.
    reply = alice.post("/api/v1/runs", json={"path": "chatty.py", "timeout": 0.5})
    record = alice.get(f"/api/v1/runs/{reply.json()['id']}", params={"wait": 30}).json()
    assert record["status"] == "timed_out" and record["stdout"] == "step 1 done\n"


def test_the_limits_of_a_run_are_published(data_dir: Path) -> None:
    settings = make_settings(
        data_dir,
        max_script_execution_time=12,
        max_async_execution_time=90,
        runs_batch_max_inputs=7,
        runs_store_data=False,
    )
    with TestClient(create_app(settings)) as client:
        assert client.get("/api/v1/runs/limits").status_code == 401
        alice = register(client, "alice")
        reply = alice.get("/api/v1/runs/limits")
        assert reply.status_code == 200, reply.text
        assert reply.json() == {
            "max_script_execution_time": 12,
            "max_async_execution_time": 90,
            "batch_max_inputs": 7,
            "data_stored": False,
        }


def test_inputs_and_results_can_be_left_out_of_the_log(data_dir: Path) -> None:
    with TestClient(create_app(make_settings(data_dir, runs_store_data=False))) as client:
        alice = register(client, "alice")
        alice.upload("hello.py", HELLO)
        answer = run(alice, "hello.py", {"name": "secret"})
        assert answer["result"]["message"] == "Hello, secret!"
        record = alice.get(f"/api/v1/runs/{answer['run_id']}").json()
        assert record["status"] == "succeeded" and record["data_stored"] is False
        assert record["input"] is None and record["result"] is None
        assert "secret" not in (data_dir / "runs.sqlite3").read_bytes().decode("latin-1")


def test_unknown_and_other_peoples_runs(alice: Caller, bob: Caller, admin: Caller) -> None:
    alice.upload("hello.py", HELLO)
    run_id = run(alice, "hello.py")["run_id"]
    for unknown in ("01J00000000000000000000000", "nope", "z" * 26):
        reply = alice.get(f"/api/v1/runs/{unknown}")
        assert reply.status_code == 404 and reply.json()["error_code"] == "RUN_NOT_FOUND"
    reply = bob.get(f"/api/v1/runs/{run_id}")
    assert reply.status_code == 403 and reply.json()["error_code"] == "NOT_RUN_OWNER"
    assert set(reply.json()) == {"error_code", "message", "details"}
    assert admin.get(f"/api/v1/runs/{run_id}").json()["user"]["login"] == "alice"
    # Without credentials, nothing.
    assert alice.client.get(f"/api/v1/runs/{run_id}").status_code == 401
    assert alice.client.get("/api/v1/runs").status_code == 401


def test_listing_newest_first_paged_filtered_and_by_visibility(
    data_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    settings = make_settings(data_dir, allow_anonymous_execution=True)
    with TestClient(create_app(settings)) as client:
        alice, bob, admin = (register(client, login) for login in ("alice", "bob", "root"))
        monkeypatch.setenv("DATA_DIR", str(data_dir))
        monkeypatch.setenv("GITSCRIPTS_ADMIN_PASSWORD", PASSWORD)
        assert cli(["create-admin", "root"]) == 0
        hello = alice.upload("hello.py", HELLO)
        script(alice, "fails.py", "def main(data):\n    raise ValueError\n")
        mine = [run(alice, "hello.py", {"i": i})["run_id"] for i in range(5)]
        failed = run(alice, "fails.py")["run_id"]
        bobs = run(bob, "hello.py")["run_id"]
        anonymous = client.post("/api/v1/scripts/hello.py", json={}).json()["run_id"]
        # A user sees their own runs, newest first; paged by `before`.
        page = runs(alice, limit=4)
        assert [r["id"] for r in page["runs"]] == [failed, *reversed(mine)][:4]
        assert "input" not in page["runs"][0] and "stdout" not in page["runs"][0]
        rest = runs(alice, limit=4, before=page["next"])
        assert [r["id"] for r in rest["runs"]] == [mine[1], mine[0]] and rest["next"] is None
        assert [r["id"] for r in runs(bob)["runs"]] == [bobs]
        assert runs(bob, user="alice")["runs"] == []
        # Admins see everyone's, the anonymous ones too.
        everyone = [r["id"] for r in runs(admin)["runs"]]
        assert everyone == [anonymous, bobs, failed, *reversed(mine)]
        assert admin.get(f"/api/v1/runs/{anonymous}").json()["user"] is None
        assert [r["id"] for r in runs(admin, user="bob")["runs"]] == [bobs]
        assert runs(admin, user="nobody")["runs"] == []
        # Filters: status, path, script id, time.
        assert [r["id"] for r in runs(alice, status="failed")["runs"]] == [failed]
        assert [r["id"] for r in runs(admin, path="fails.py")["runs"]] == [failed]
        by_id = runs(admin, script_id=hello["id"])["runs"]
        assert [r["id"] for r in by_id] == [anonymous, bobs, *reversed(mine)]
        assert runs(admin, since="2999-01-01T00:00:00Z")["runs"] == []
        assert len(runs(admin, since="2000-01-01T00:00:00+00:00")["runs"]) == 8
        # Bad filters are 400s in the one shape.
        for params in ({"since": "yesterday"}, {"since": "2020-01-01T00:00"},
                       {"before": "x"}, {"status": "done"}, {"limit": 0}):  # fmt: skip
            reply = admin.get("/api/v1/runs", params=params)
            assert reply.status_code == 400, params
            assert reply.json()["error_code"] == "VALIDATION_ERROR"
        # Deleting a script keeps its runs.
        assert alice.delete(f"/api/v1/scripts-manager/scripts/{hello['id']}").status_code == 204
        assert alice.get(f"/api/v1/runs/{mine[0]}").json()["status"] == "succeeded"


def _login(client: TestClient, login: str) -> Caller:
    reply = client.post("/api/v1/auth/login", json={"login": login, "password": PASSWORD})
    assert reply.status_code == 200, reply.text
    token = reply.json()["access_token"]
    me = client.get("/api/v1/auth/me", headers={"Authorization": f"Bearer {token}"}).json()
    return Caller(client, login, me["id"], token)


def _raw_run_of_slow(base: str, token: str) -> tuple[int, bytes]:
    """The server's port, and a synchronous run of slow.py as raw HTTP (to hang up mid-run)."""
    port = int(base.rsplit(":", 1)[1])
    request = (
        f"POST /api/v1/scripts/slow.py HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer {token}"
        "\r\nContent-Length: 2\r\n\r\n{}"
    ).encode()
    return port, request


def test_a_client_going_away_is_a_cancelled_run(tmp_path: Path) -> None:
    with live_server(tmp_path / "data") as server:
        token = _account(server.base)
        auth = {"Authorization": f"Bearer {token}"}
        _upload(server.base, auth, "slow.py", "import time\ndef main(data):\n    time.sleep(30)\n")
        port, request = _raw_run_of_slow(server.base, token)
        with socket.create_connection(("127.0.0.1", port)) as connection:
            connection.sendall(request)
            time.sleep(1)
        deadline = time.monotonic() + 10
        while True:
            listed = httpx.get(f"{server.base}/api/v1/runs", headers=auth).json()["runs"]
            if (listed and listed[0]["status"] == "cancelled") or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert listed[0]["status"] == "cancelled", listed
        assert listed[0]["error"] == "the client went away before the run ended"


def _account(base: str) -> str:
    creds = {"login": "alice", "password": "password123"}
    httpx.post(f"{base}/api/v1/auth/register", json=creds)
    return str(httpx.post(f"{base}/api/v1/auth/login", json=creds).json()["access_token"])


def _upload(base: str, auth: dict[str, str], filename: str, source: str) -> None:
    reply = httpx.post(
        f"{base}/api/v1/scripts-manager/scripts-from-text",
        headers=auth,
        json={"filename": filename, "display_name": filename, "content": source},
    )
    assert reply.status_code == 201, reply.text


def test_a_run_killed_with_the_service_is_failed_after_the_restart(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with live_server(data) as server:
        token = _account(server.base)
        auth = {"Authorization": f"Bearer {token}"}
        _upload(server.base, auth, "slow.py", "import time\ndef main(data):\n    time.sleep(20)\n")
        port, request = _raw_run_of_slow(server.base, token)
        connection = socket.create_connection(("127.0.0.1", port))
        connection.sendall(request)
        # Recorded as running (the log is written off the request path, but soon).
        deadline = time.monotonic() + 10
        while True:
            listed = httpx.get(f"{server.base}/api/v1/runs", headers=auth).json()["runs"]
            if listed or time.monotonic() > deadline:
                break
            time.sleep(0.1)
        assert listed[0]["status"] == "running", listed
        server.process.send_signal(signal.SIGKILL)
        server.process.wait()
        connection.close()
    with live_server(data) as server:
        auth = {"Authorization": f"Bearer {_account(server.base)}"}
        record = httpx.get(f"{server.base}/api/v1/runs/{listed[0]['id']}", headers=auth).json()
        assert record["status"] == "failed"
        assert (
            record["error"] == "the service stopped while this run was running; it did not finish"
        )
        assert record["finished_at"] is not None


@pytest.mark.parametrize("by", ["count", "age"])
def test_retention_prunes_ended_runs(data_dir: Path, by: str) -> None:
    with TestClient(create_app(make_settings(data_dir))) as client:
        alice = register(client, "alice")
        alice.upload("hello.py", HELLO)
        made = [run(alice, "hello.py")["run_id"] for _ in range(4)]
    time.sleep(1.0)
    retention = {"runs_retention_count": 2} if by == "count" else {"runs_retention_days": 1e-5}
    with TestClient(create_app(make_settings(data_dir, **retention))) as client:
        alice = _login(client, "alice")
        kept = [r["id"] for r in runs(alice)["runs"]]
        assert kept == ([made[3], made[2]] if by == "count" else [])


# -- asynchronous runs ---------------------------------------------------------------------------
SLEEPER = (
    "import subprocess, time\n"
    "def main(data):\n"
    "    subprocess.Popen(['sleep', data['marker']])\n"
    "    print('started', flush=True)\n"
    "    time.sleep(data.get('seconds', 60))\n"
    "    return {'slept': True}\n"
)


def submit(caller: Caller, body: dict[str, Any], expect: int = 202, **headers: str) -> Any:
    reply = caller.post("/api/v1/runs", json=body, headers=headers)
    assert reply.status_code == expect, reply.text
    return reply.json()


def wait(caller: Caller, run_id: str, seconds: float = 30) -> dict[str, Any]:
    reply = caller.get(f"/api/v1/runs/{run_id}", params={"wait": seconds})
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def until(caller: Caller, run_id: str, status: str) -> dict[str, Any]:
    deadline = time.monotonic() + 20
    while True:
        record = caller.get(f"/api/v1/runs/{run_id}").json()
        if record["status"] == status:
            return dict(record)
        assert time.monotonic() < deadline, record
        time.sleep(0.05)


def test_an_async_run_answers_at_once_and_is_waited_for(data_dir: Path) -> None:
    # Longer than a synchronous run may be: async runs have their own limit.
    settings = make_settings(data_dir, max_script_execution_time=1)
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        alice.upload("hello.py", HELLO)
        script(
            alice, "slow.py", "import time\ndef main(data):\n    time.sleep(1.5)\n    return {}\n"
        )
        reply = alice.post("/api/v1/runs", json={"path": "hello.py", "data": {"name": "A"}})
        assert reply.status_code == 202, reply.text
        run_id = reply.json()["id"]
        assert reply.json()["url"] == reply.headers["location"] == f"/api/v1/runs/{run_id}"
        assert reply.json()["mode"] == "async" and reply.json()["status"] in ("queued", "running")
        record = wait(alice, run_id)
        assert record["status"] == "succeeded"
        assert record["result"] == {"message": "Hello, A!", "processed_value": 0}
        assert record["input"] == {"name": "A"} and record["revision"] == "main"
        # A wait that runs out answers with the run as it is.
        slow = submit(alice, {"path": "slow.py", "timeout": 5})
        assert wait(alice, slow["id"], 0.2)["status"] in ("queued", "running")
        assert wait(alice, slow["id"])["status"] == "succeeded"
        assert run(alice, "slow.py")["success"] is False  # synchronously, it times out
        # Bad submissions change nothing.
        before = runs(alice)["runs"]
        for body, status, code in (
            ({"path": "nope.py"}, 404, "SCRIPT_NOT_FOUND"),
            ({"path": "hello.py", "rev": "nope"}, 404, "REVISION_NOT_FOUND"),
            ({"path": "hello.py", "timeout": -1}, 400, "VALIDATION_ERROR"),
            ({"path": "hello.py", "extra": 1}, 400, "VALIDATION_ERROR"),
            ({}, 400, "VALIDATION_ERROR"),
        ):
            reply = alice.post("/api/v1/runs", json=body)
            assert reply.status_code == status and reply.json()["error_code"] == code, body
        assert runs(alice)["runs"] == before
        assert client.post("/api/v1/runs", json={"path": "hello.py"}).status_code == 401


def test_cancelling_a_running_run_kills_its_processes(
    alice: Caller, bob: Caller, admin: Caller
) -> None:
    script(alice, "sleeper.py", SLEEPER)
    alice.upload("hello.py", HELLO)
    marker = "307.0321"
    running = submit(alice, {"path": "sleeper.py", "data": {"marker": marker}})
    until(alice, running["id"], "running")
    deadline = time.monotonic() + 10
    while not _running(marker):
        assert time.monotonic() < deadline, "the script did not start its child"
        time.sleep(0.05)
    reply = bob.post(f"/api/v1/runs/{running['id']}/cancel")
    assert reply.status_code == 403 and reply.json()["error_code"] == "NOT_RUN_OWNER"
    reply = alice.post(f"/api/v1/runs/{running['id']}/cancel")
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "cancelled" and reply.json()["error"] == "cancelled by alice"
    time.sleep(0.3)
    assert _running(marker) == []
    reply = alice.post(f"/api/v1/runs/{running['id']}/cancel")
    assert reply.status_code == 409 and reply.json()["error_code"] == "RUN_ALREADY_FINISHED"
    reply = alice.post("/api/v1/runs/01J00000000000000000000000/cancel")
    assert reply.status_code == 404 and reply.json()["error_code"] == "RUN_NOT_FOUND"
    # An admin may cancel anyone's.
    other = submit(alice, {"path": "sleeper.py", "data": {"marker": "307.0654"}})
    until(alice, other["id"], "running")
    assert admin.post(f"/api/v1/runs/{other['id']}/cancel").json()["status"] == "cancelled"
    # A synchronous run ends with its request.
    finished = run(alice, "hello.py")["run_id"]
    reply = alice.post(f"/api/v1/runs/{finished}/cancel")
    assert reply.status_code == 409 and reply.json()["error_code"] == "RUN_ALREADY_FINISHED"


def _running(marker: str) -> list[int]:
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    state = (entry / "stat").read_text().rsplit(")", 1)[1].split()[0]
                    if state != "Z":
                        found.append(int(entry.name))
            except OSError:
                continue
    return found


def test_cancelling_a_queued_run(data_dir: Path) -> None:
    settings = make_settings(data_dir, max_concurrent_executions=1)
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        script(alice, "sleeper.py", SLEEPER)
        alice.upload("hello.py", HELLO)
        first = submit(alice, {"path": "sleeper.py", "data": {"marker": "308.01"}})
        until(alice, first["id"], "running")
        queued = submit(alice, {"path": "hello.py"})
        assert alice.get(f"/api/v1/runs/{queued['id']}").json()["status"] == "queued"
        cancelled = alice.post(f"/api/v1/runs/{queued['id']}/cancel").json()
        assert cancelled["status"] == "cancelled" and cancelled["started_at"] is None
        alice.post(f"/api/v1/runs/{first['id']}/cancel")
        # The slot is free again.
        assert wait(alice, submit(alice, {"path": "hello.py"})["id"])["status"] == "succeeded"


def test_an_idempotency_key_returns_the_first_run(alice: Caller, bob: Caller) -> None:
    alice.upload("hello.py", HELLO)
    body = {"path": "hello.py", "data": {"name": "once"}}
    first = submit(alice, body, **{"Idempotency-Key": "k-1"})
    again = submit(alice, body, **{"Idempotency-Key": "k-1"})
    assert again["id"] == first["id"]
    assert len(runs(alice)["runs"]) == 1
    reply = alice.post(
        "/api/v1/runs", json={**body, "data": {"name": "twice"}}, headers={"Idempotency-Key": "k-1"}
    )
    assert reply.status_code == 422 and reply.json()["error_code"] == "IDEMPOTENCY_KEY_REUSED"
    assert reply.json()["details"] == {"run_id": first["id"]}
    # Keys are each user's own; without a key every submit is a new run.
    assert submit(bob, body, **{"Idempotency-Key": "k-1"})["id"] != first["id"]
    assert submit(alice, body)["id"] != first["id"]
    assert len(runs(alice)["runs"]) == 2


def test_a_restart_runs_queued_runs_and_fails_running_ones(data_dir: Path) -> None:
    settings = make_settings(data_dir, max_concurrent_executions=1)
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        script(alice, "sleeper.py", SLEEPER)
        alice.upload("hello.py", HELLO)
        running = submit(alice, {"path": "sleeper.py", "data": {"marker": "309.01"}})
        until(alice, running["id"], "running")
        queued = submit(alice, {"path": "hello.py", "data": {"name": "later"}})
    with TestClient(create_app(settings)) as client:
        alice = _login(client, "alice")
        lost = alice.get(f"/api/v1/runs/{running['id']}").json()
        assert lost["status"] == "failed"
        assert lost["error"] == "the service stopped while this run was running; it did not finish"
        record = wait(alice, queued["id"])
        assert record["status"] == "succeeded"
        assert record["result"]["message"] == "Hello, later!"
    assert _running("309.01") == []


# -- batches and replays -------------------------------------------------------------------------
COUNTER = (
    "import time\n"
    "calls = 0\n"
    "def main(data):\n"
    "    global calls\n"
    "    calls += 1  # a fresh process per input: always 1\n"
    "    time.sleep(data.get('sleep', 0))\n"
    "    if data['x'] == 3:\n"
    "        raise ValueError('three')\n"
    "    return {'x': data['x'], 'calls': calls}\n"
)


def test_a_batch_keeps_order_per_item_errors_and_isolation(data_dir: Path) -> None:
    settings = make_settings(data_dir, max_concurrent_executions=4, runs_batch_max_inputs=8)
    with TestClient(create_app(settings)) as client:
        alice = register(client, "alice")
        script(alice, "counter.py", COUNTER)
        # Later inputs finish first; the answer keeps the inputs' order.
        inputs = [{"x": x, "sleep": 0.4 - 0.05 * x} for x in range(8)]
        began = time.monotonic()
        reply = alice.post("/api/v1/runs/batch", json={"path": "counter.py", "inputs": inputs})
        took = time.monotonic() - began
        assert reply.status_code == 200, reply.text
        outcome = reply.json()
        assert len(outcome["revision"]) == 40
        results = outcome["results"]
        assert [r["success"] for r in results] == [x != 3 for x in range(8)]
        assert [r["result"]["x"] for r in results if r["success"]] == [0, 1, 2, 4, 5, 6, 7]
        assert all(r["result"]["calls"] == 1 for r in results if r["success"])
        assert "ValueError: three" in results[3]["error"]
        assert took < 2.0, took  # in parallel: one after the other would take 2.2 s
        record = alice.get(f"/api/v1/runs/{results[5]['run_id']}").json()
        assert record["mode"] == "batch" and record["input"] == inputs[5]
        assert len({r["run_id"] for r in results}) == 8
        # Too many inputs: 413, and nothing runs.
        reply = alice.post(
            "/api/v1/runs/batch", json={"path": "counter.py", "inputs": [{"x": 0}] * 9}
        )
        assert reply.status_code == 413 and reply.json()["error_code"] == "BATCH_TOO_LARGE"
        assert len(runs(alice)["runs"]) == 8
        reply = alice.post("/api/v1/runs/batch", json={"path": "nope.py", "inputs": [{}]})
        assert reply.status_code == 404 and reply.json()["error_code"] == "SCRIPT_NOT_FOUND"
        assert alice.post("/api/v1/runs/batch", json={"path": "counter.py"}).status_code == 400


def test_the_runs_of_a_batch_carry_its_id_and_are_listed_by_it(
    alice: Caller, bob: Caller, admin: Caller
) -> None:
    alice.upload("hello.py", HELLO)
    inputs = [{"name": str(n)} for n in range(3)]
    batches = []
    for _ in range(2):
        reply = alice.post("/api/v1/runs/batch", json={"path": "hello.py", "inputs": inputs})
        assert reply.status_code == 200, reply.text
        batches.append(reply.json())
    first, second = batches
    assert first["batch_id"] != second["batch_id"] and len(first["batch_id"]) == 26
    run(alice, "hello.py")  # in no batch
    listed = runs(alice, batch=first["batch_id"])["runs"]
    assert sorted(r["id"] for r in listed) == sorted(r["run_id"] for r in first["results"])
    assert {r["batch_id"] for r in listed} == {first["batch_id"]}
    assert alice.get(f"/api/v1/runs/{listed[0]['id']}").json()["batch_id"] == first["batch_id"]
    assert {r["batch_id"] for r in runs(alice)["runs"]} == {
        None,
        first["batch_id"],
        second["batch_id"],
    }
    # Visibility as for any listing; a malformed id is refused.
    assert runs(bob, batch=first["batch_id"])["runs"] == []
    assert len(runs(admin, batch=second["batch_id"])["runs"]) == 3
    reply = alice.get("/api/v1/runs", params={"batch": "nope"})
    assert reply.status_code == 400 and reply.json()["error_code"] == "VALIDATION_ERROR"


def test_a_run_log_from_before_batch_ids_gains_them(data_dir: Path) -> None:
    with TestClient(create_app(make_settings(data_dir))) as client:
        alice = register(client, "alice")
        alice.upload("hello.py", HELLO)
        old = run(alice, "hello.py")["run_id"]
    # The log as a version without batch ids wrote it.
    with sqlite3.connect(data_dir / "runs.sqlite3") as connection:
        connection.execute("DROP INDEX IF EXISTS runs_by_batch")
        connection.execute("ALTER TABLE runs DROP COLUMN batch_id")
    with TestClient(create_app(make_settings(data_dir))) as client:
        alice = _login(client, "alice")
        assert alice.get(f"/api/v1/runs/{old}").json()["batch_id"] is None
        batch = alice.post("/api/v1/runs/batch", json={"path": "hello.py", "inputs": [{}]}).json()
        assert len(runs(alice, batch=batch["batch_id"])["runs"]) == 1


def test_a_replay_runs_the_same_input_at_the_same_commit(
    alice: Caller, bob: Caller, admin: Caller
) -> None:
    script(alice, "version.py", "def main(data):\n    return {'v': 1, 'got': data}\n")
    first = run(alice, "version.py", {"well": 7})
    replaced = alice.post(
        "/api/v1/scripts-manager/scripts-from-text",
        json={
            "filename": "version.py",
            "display_name": "version.py",
            "content": "def main(data):\n    return {'v': 2, 'got': data}\n",
            "replace": True,
        },
    )
    assert replaced.status_code in (200, 201), replaced.text
    assert run(alice, "version.py", {"well": 7})["result"]["v"] == 2  # main moved
    reply = alice.post(f"/api/v1/runs/{first['run_id']}/replay")
    assert reply.status_code == 202, reply.text
    replay = wait(alice, reply.json()["id"])
    assert replay["status"] == "succeeded" and replay["mode"] == "replay"
    assert replay["result"] == {"v": 1, "got": {"well": 7}}
    assert replay["commit"] == first["revision"] and replay["replay_of"] == first["run_id"]
    reply = bob.post(f"/api/v1/runs/{first['run_id']}/replay")
    assert reply.status_code == 403 and reply.json()["error_code"] == "NOT_RUN_OWNER"
    # An admin's replay is the admin's run.
    theirs = wait(admin, admin.post(f"/api/v1/runs/{first['run_id']}/replay").json()["id"])
    assert theirs["user"]["login"] == "root-admin" and theirs["result"]["v"] == 1


def test_a_run_without_its_input_cannot_be_replayed(data_dir: Path) -> None:
    with TestClient(create_app(make_settings(data_dir, runs_store_data=False))) as client:
        alice = register(client, "alice")
        alice.upload("hello.py", HELLO)
        run_id = run(alice, "hello.py", {"name": "secret"})["run_id"]
        reply = alice.post(f"/api/v1/runs/{run_id}/replay")
        assert reply.status_code == 409 and reply.json()["error_code"] == "RUN_NOT_REPLAYABLE"
        # An async run's input is kept only until it starts.
        queued = submit(alice, {"path": "hello.py", "data": {"name": "secret"}})
        record = wait(alice, queued["id"])
        assert record["result"] is None and record["input"] is None
        assert record["status"] == "succeeded"


# -- the standard-library client -----------------------------------------------------------------
def test_the_stdlib_client_submits_waits_cancels_and_batches(tmp_path: Path) -> None:
    from gitscripts.client import Client, GitscriptsError

    with live_server(tmp_path / "data") as server:
        token = _account(server.base)
        auth = {"Authorization": f"Bearer {token}"}
        _upload(server.base, auth, "counter.py", COUNTER)
        _upload(server.base, auth, "sleeper.py", SLEEPER)
        gs = Client(server.base, token=token)
        run = gs.submit("counter.py", {"x": 1}, idempotency_key="once")
        assert run["status"] in ("queued", "running")
        assert gs.submit("counter.py", {"x": 1}, idempotency_key="once")["id"] == run["id"]
        ended = gs.wait(run["id"], timeout=30)
        assert ended["status"] == "succeeded" and ended["result"] == {"x": 1, "calls": 1}
        # A wait that runs out returns the run as it is.
        long = gs.submit("sleeper.py", {"marker": "311.01"})
        began = time.monotonic()
        assert gs.wait(long["id"], timeout=0.5)["status"] in ("queued", "running")
        assert time.monotonic() - began < 5
        assert gs.cancel(long["id"])["status"] == "cancelled"
        try:
            gs.cancel(long["id"])
        except GitscriptsError as error:
            assert (error.status, error.error_code) == (409, "RUN_ALREADY_FINISHED")
        else:
            raise AssertionError("cancelling an ended run must fail")
        results = gs.run_batch("counter.py", [{"x": x} for x in range(6)])
        assert [r["success"] for r in results] == [True, True, True, False, True, True]
        assert [r["result"]["x"] for r in results if r["success"]] == [0, 1, 2, 4, 5]
