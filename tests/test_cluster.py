"""EXECUTOR=dask with the real Dask: a scheduler and two `gitscripts worker` processes on loopback.

One cluster serves the whole module (starting one costs seconds). Tests that break it (a worker
killed, the scheduler restarted) put it back as they found it (`Cluster.ensure_workers`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import quote

import httpx
import pytest

from tests.conftest import (
    HELLO,
    PASSWORD,
    commit_behind_the_service,
    free_port,
    live_server,
    make_settings,
    register,
)
from tests.wheelhouse import FixturePackage, build_wheel, build_wheelhouse

pytest.importorskip("distributed")

WORKER_TOKEN = "worker-credential-" + "w" * 32
JWT_SECRET = "k" * 48  # what `live_server` gives the service
WORKERS = ("w1", "w2")
RESOURCES = {"w1": "", "w2": "GPU=1"}  # what each worker offers runs

SLEEPER = b"""import os, subprocess, time
def main(data):
    child = subprocess.Popen(["sleep", "300"])
    print(child.pid, flush=True)
    time.sleep(data.get("seconds", 30))
    return {"slept": True}
"""

WHO = b"""import os, time
def main(data):
    time.sleep(data.get("seconds", 0))
    return {"pid": os.getpid()}
"""

SNOOP = b"""import os
def main(data):
    seen = [path for path in data["paths"] if os.path.exists(path)]
    names = sorted(name for name in os.environ
                   if ("TOKEN" in name or "SECRET" in name) and name != "FILES_API_TOKEN")
    leaks = []
    for pid in filter(str.isdigit, os.listdir("/proc")):
        for part in ("environ", "cmdline"):
            try:
                with open(f"/proc/{pid}/{part}", "rb") as handle:
                    text = handle.read()
            except OSError:
                continue
            if any(secret.encode() in text for secret in data["secrets"]):
                leaks.append(f"{pid}/{part}")
    return {"seen": seen, "names": names, "leaks": leaks}
"""

VERSION_OF = b"""# /// script
# dependencies = ["DEPENDENCY"]
# ///
import gsfixture
def main(data):
    return {"version": gsfixture.VERSION}
"""

ONCE = b"""import os, time
from gitscripts.runtime import files
def main(data):
    start = time.time()
    if data.get("mark"):  # one line per run that ran
        try:
            with files.open(data["mark"], "r") as handle:
                before = handle.read()
        except Exception:
            before = ""
        with files.open(data["mark"], "w") as handle:
            handle.write(before + f"{os.getpid()}\\n")
    time.sleep(data.get("seconds", 0))
    return {"start": start, "end": time.time()}
"""

FILES = b"""from gitscripts.runtime import files
def main(data):
    with files.open("from-worker.txt", "w") as handle:
        handle.write(data["text"])
    with files.open("from-worker.txt", "r") as handle:
        return {"read": handle.read()}
"""


def _start_scheduler(port: int, log: Path) -> subprocess.Popen[bytes]:
    command = [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1",
               "--port", str(port), "--no-dashboard"]  # fmt: skip
    return subprocess.Popen(command, stdout=log.open("ab"), stderr=subprocess.STDOUT)


@dataclass
class Cluster:
    base: str
    data_dir: Path
    scheduler_port: int
    root: Path
    token: str = ""
    scheduler: subprocess.Popen[bytes] | None = None
    workers: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    @property
    def address(self) -> str:
        return f"tcp://127.0.0.1:{self.scheduler_port}"

    def sign_in(self) -> None:
        """Register alice on the service and keep her token for the calls below."""
        credentials = {"login": "alice", "password": PASSWORD}
        httpx.post(f"{self.base}/api/v1/auth/register", json=credentials)
        login = httpx.post(f"{self.base}/api/v1/auth/login", json=credentials)
        self.token = login.json()["access_token"]

    @property
    def auth(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}

    def start_worker(self, name: str, service: str = "", resources: str = "") -> None:
        # Only what a worker machine would have: no DATA_DIR, no JWT secret of the service's.
        env = {key: os.environ[key] for key in ("PATH", "HOME", "LANG") if key in os.environ}
        env.update(WORKER_TOKEN=WORKER_TOKEN, LOG_LEVEL="INFO", PACKAGES_NO_INDEX="true",
                   PACKAGES_FIND_LINKS=str(self.root / "worker-wheels"))  # fmt: skip
        command = [sys.executable, "-m", "gitscripts", "worker", "--scheduler", self.address,
                   "--service", service or self.base, "--nthreads", "2", "--name", name,
                   "--local-directory", str(self.root / name),
                   "--resources", resources or RESOURCES[name]]  # fmt: skip
        log = (self.root / f"{name}.log").open("ab")
        self.workers[name] = subprocess.Popen(
            command, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=self.root
        )

    def health(self) -> dict[str, Any]:
        reply = httpx.get(f"{self.base}/health", timeout=5)
        assert reply.status_code == 200
        return dict(reply.json())

    def wait_for_workers(self, count: int, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        while True:
            cluster = self.health()["cluster"]
            if cluster["connected"] and cluster["workers"] == count:
                return
            assert time.monotonic() < deadline, (cluster, self.logs())
            time.sleep(0.1)

    def ensure_workers(self) -> None:
        if self.scheduler is None or self.scheduler.poll() is not None:
            self.scheduler = _start_scheduler(self.scheduler_port, self.root / "scheduler.log")
        for name in WORKERS:
            process = self.workers.get(name)
            if process is None or process.poll() is not None:
                self.start_worker(name)
        self.wait_for_workers(len(WORKERS))

    def logs(self) -> str:
        return "\n".join(
            f"--- {log.name}\n{log.read_text(errors='replace')[-3000:]}"
            for log in sorted(self.root.glob("*.log"))
        )

    def stop(self) -> None:
        for process in self.workers.values():
            if process.poll() is None:
                process.terminate()
        for process in self.workers.values():
            process.wait(timeout=30)
        if self.scheduler is not None and self.scheduler.poll() is None:
            self.scheduler.terminate()
            self.scheduler.wait(timeout=30)

    # -- the API ---------------------------------------------------------------------------------
    def upload(self, filename: str, content: bytes) -> dict[str, Any]:
        reply = httpx.post(
            f"{self.base}/api/v1/scripts-manager/scripts",
            headers=self.auth,
            files={"file": (filename, content)},
            data={"display_name": filename, "replace": "true"},
        )
        assert reply.status_code in (200, 201), reply.text
        return dict(reply.json())

    def run(self, path: str, data: Any = None, rev: str | None = None) -> httpx.Response:
        query = f"?rev={rev}" if rev else ""
        return httpx.post(
            f"{self.base}/api/v1/scripts/{path}{query}",
            headers=self.auth,
            json={"data": data or {}},
            timeout=120,
        )

    def record(self, run_id: str, wait: float = 0) -> dict[str, Any]:
        reply = httpx.get(
            f"{self.base}/api/v1/runs/{run_id}?wait={wait}", headers=self.auth, timeout=wait + 30
        )
        assert reply.status_code == 200, reply.text
        return dict(reply.json())

    def submit(self, path: str, data: Any = None) -> dict[str, Any]:
        reply = httpx.post(
            f"{self.base}/api/v1/runs",
            headers=self.auth,
            json={"path": path, "data": data or {}},
            timeout=30,
        )
        assert reply.status_code == 202, reply.text
        return dict(reply.json())


@contextmanager
def _started(root: Path, **settings: str) -> Iterator[Cluster]:
    """A service with EXECUTOR=dask (and `settings`), its scheduler and its two workers."""
    port = free_port()
    data_dir = root / "data"
    # The service's package index, and the workers' own: the same, but for gsfixture 3.0,
    # which only the service's has.
    build_wheelhouse(root / "worker-wheels")
    newer = FixturePackage("gsfixture", "3.0", {"gsfixture/__init__.py": 'VERSION = "3.0"\n'})
    build_wheel(build_wheelhouse(root / "service-wheels"), newer)
    with live_server(
        data_dir,
        root / "service.log",
        EXECUTOR="dask",
        PACKAGES_FIND_LINKS=str(root / "service-wheels"),
        PACKAGES_NO_INDEX="true",
        DASK_SCHEDULER_ADDRESS=f"tcp://127.0.0.1:{port}",
        DASK_CAPACITY_WAIT="2",
        WORKER_TOKEN=WORKER_TOKEN,
        LOG_LEVEL="INFO",
        **settings,
    ) as server:
        handle = Cluster(server.base, data_dir, port, root)
        handle.sign_in()
        try:
            handle.ensure_workers()
            yield handle
        finally:
            handle.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    with _started(tmp_path_factory.mktemp("cluster")) as started:
        yield started


@pytest.fixture
def ready(cluster: Cluster) -> Cluster:
    cluster.ensure_workers()
    return cluster


def _git(args: list[str], cwd: Path) -> str:
    env = {**os.environ, "GIT_TERMINAL_PROMPT": "0", "GIT_CONFIG_NOSYSTEM": "1",
           "HOME": str(cwd)}  # fmt: skip
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def _push(cluster: Cluster, work: Path, files: dict[str, bytes]) -> None:
    reply = httpx.post(f"{cluster.base}/api/v1/auth/tokens", headers=cluster.auth,
                       json={"name": f"git-{work.name}"})  # fmt: skip
    secret = quote(reply.json()["token"], safe="")
    url = f"http://alice:{secret}@{cluster.base.removeprefix('http://')}/git/scripts.git"
    _git(["clone", "-q", url, "clone"], work)
    clone = work / "clone"
    for path, content in files.items():
        (clone / path).write_bytes(content)
        _git(["add", path], clone)
    _git(["-c", "user.name=a", "-c", "user.email=a@x", "commit", "-qm", "push"], clone)
    _git(["push", "-q", "origin", "HEAD:main"], clone)


# -- running ---------------------------------------------------------------------------------------
def test_runs_at_main_at_an_old_revision_and_after_a_push(ready: Cluster, tmp_path: Path) -> None:
    ready.upload("hello.py", HELLO)
    first = ready.run("hello.py", {"name": "Dask", "value": 21})
    assert first.status_code == 200, first.text
    answer = first.json()
    # The seed API's answer, as from the service's own engine.
    assert answer["success"] is True and answer["error"] is None
    assert answer["result"] == {"message": "Hello, Dask!", "processed_value": 42}
    old = answer["revision"]
    record = ready.record(answer["run_id"])
    assert record["worker"] in WORKERS and record["status"] == "succeeded"

    ready.upload("hello.py", HELLO.replace(b"Hello", b"Goodbye"))
    assert ready.run("hello.py", {"name": "x"}).json()["result"]["message"] == "Goodbye, x!"
    at_old = ready.run("hello.py", {"name": "x"}, rev=old).json()
    assert at_old["result"]["message"] == "Hello, x!" and at_old["revision"] == old

    # A push with the real git client: the next run runs what was pushed.
    _push(ready, tmp_path, {"pushed.py": HELLO.replace(b"Hello", b"Pushed")})
    pushed = ready.run("pushed.py", {"name": "git"}).json()
    assert pushed["success"] is True and pushed["result"]["message"] == "Pushed, git!"


def test_the_file_api_from_a_worker(ready: Cluster) -> None:
    ready.upload("files_demo.py", FILES)
    reply = ready.run("files_demo.py", {"text": "written on a worker"})
    answer = reply.json()
    assert answer["success"] is True, answer
    assert answer["result"] == {"read": "written on a worker"}
    stored = httpx.get(f"{ready.base}/api/v1/files/from-worker.txt", headers=ready.auth)
    assert stored.status_code == 200 and stored.text == "written on a worker"


def test_concurrent_runs_spread_over_both_workers(ready: Cluster) -> None:
    ready.upload("who.py", WHO)
    with ThreadPoolExecutor(8) as pool:
        replies = list(pool.map(lambda _: ready.run("who.py", {"seconds": 0.5}), range(8)))
    assert all(reply.json()["success"] for reply in replies), [r.text for r in replies]
    workers = {ready.record(reply.json()["run_id"])["worker"] for reply in replies}
    assert workers == set(WORKERS)
    # A batch spreads the same way; a replay runs on the cluster too.
    batch = httpx.post(f"{ready.base}/api/v1/runs/batch", headers=ready.auth, timeout=60,
                       json={"path": "who.py", "inputs": [{"seconds": 0.5}] * 8})  # fmt: skip
    assert batch.status_code == 200, batch.text
    results = batch.json()["results"]
    assert all(item["success"] for item in results), results
    assert {ready.record(item["run_id"])["worker"] for item in results} == set(WORKERS)
    replay = httpx.post(f"{ready.base}/api/v1/runs/{results[0]['run_id']}/replay",
                        headers=ready.auth)  # fmt: skip
    assert replay.status_code == 202, replay.text
    replayed = ready.record(replay.json()["id"], wait=30)
    assert replayed["status"] == "succeeded" and replayed["worker"] in WORKERS


def test_runs_go_only_to_workers_with_the_resources_their_script_asks_for(
    ready: Cluster, tmp_path: Path
) -> None:
    _push(ready, tmp_path, {
        "gpu.py": WHO,
        "gpu.py.meta.json": b'{"display_name": "gpu", "resources": {"GPU": 1}}\n',
        "tpu.py": WHO,
        "tpu.py.meta.json": b'{"display_name": "tpu", "resources": {"TPU": 1}}\n',
    })  # fmt: skip
    with ThreadPoolExecutor(4) as pool:
        replies = list(pool.map(lambda _: ready.run("gpu.py", {"seconds": 0.2}), range(6)))
    assert all(reply.json()["success"] for reply in replies), [r.text for r in replies]
    assert {ready.record(r.json()["run_id"])["worker"] for r in replies} == {"w2"}
    # No worker offers a TPU: as if there were no worker at all.
    reply = ready.run("tpu.py", {})
    assert reply.status_code == 503 and reply.json()["error_code"] == "NO_EXECUTION_CAPACITY"


def _dependencies(cluster: Cluster, script_id: int) -> dict[str, Any]:
    reply = httpx.get(
        f"{cluster.base}/api/v1/scripts-manager/scripts/{script_id}/dependencies",
        headers=cluster.auth, timeout=30,
    )  # fmt: skip
    assert reply.status_code == 200, reply.text
    return dict(reply.json())


def test_scripts_with_dependencies_run_in_environments_the_workers_build(
    ready: Cluster, tmp_path: Path
) -> None:
    # A write hands the new lock to every worker, which builds it ahead of the first run.
    script = ready.upload("deps.py", VERSION_OF.replace(b"DEPENDENCY", b"gsfixture==2.0"))
    deadline = time.monotonic() + 60
    while (environment := _dependencies(ready, script["id"])["environment"])[
        "state"
    ] != "ready" or (environment.get("workers") != {"w1": "ready", "w2": "ready"}):
        assert time.monotonic() < deadline, (environment, ready.logs())
        time.sleep(0.2)
    first = ready.run("deps.py").json()
    assert first["success"] is True, first
    assert first["result"] == {"version": "2.0"}
    assert first["environment"] == environment["key"]
    assert ready.record(first["run_id"])["worker"] in WORKERS

    # A new lock runs in a new environment; the old revision still runs with its old one.
    ready.upload("deps.py", VERSION_OF.replace(b"DEPENDENCY", b'gsfixture-plus", "gsfixture==2.0')
                 .replace(b"gsfixture.VERSION", b"__import__('gsfixture_plus').describe()"))  # fmt: skip
    plus = ready.run("deps.py").json()
    assert plus["result"] == {"version": "plus on gsfixture 2.0"}, plus
    assert plus["environment"] != first["environment"]
    again = ready.run("deps.py", rev=first["revision"]).json()
    assert again["result"] == {"version": "2.0"} and again["environment"] == first["environment"]

    # Workers install from their own package sources (PACKAGES_*): one that cannot install
    # what a lock pins fails that run with the build's own words. The lock is resolved by the
    # service for a commit that has none, and carried to the worker all the same.
    newer = VERSION_OF.replace(b"DEPENDENCY", b"gsfixture==3.0")
    commit_behind_the_service(ready.data_dir, tmp_path / "work", {"newer.py": newer})
    refused = ready.run("newer.py")
    assert refused.status_code == 422, refused.text
    error = refused.json()
    assert error["error_code"] == "ENVIRONMENT_BUILD_FAILED"
    assert error["details"]["script"] == "newer.py" and "revision" in error["details"]
    assert "gsfixture" in error["details"]["log"], error["details"]["log"]
    state = httpx.get(f"{ready.base}/api/v1/environments/{error['details']['environment']}",
                      headers=ready.auth).json()  # fmt: skip
    assert state["state"] == "failed" and "failed" in state["workers"].values(), state


def test_a_worker_never_sees_the_services_data_or_secrets(ready: Cluster) -> None:
    ready.upload("snoop.py", SNOOP)
    paths = [str(ready.data_dir), str(ready.data_dir / "scripts.git"), str(ready.root / "data")]
    for _ in range(4):  # both workers, most likely
        answer = ready.run(
            "snoop.py", {"paths": paths, "secrets": [WORKER_TOKEN, JWT_SECRET]}
        ).json()
        assert answer["success"] is True, answer
        assert answer["result"] == {"seen": [], "names": [], "leaks": []}


# -- the direct way back ------------------------------------------------------------------------
def _results_socket(cluster: Cluster, token: str | None) -> Any:
    from websockets.sync.client import connect

    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    url = "ws" + cluster.base.removeprefix("http") + "/internal/v1/results"
    return connect(url, additional_headers=headers, proxy=None)


def _running_run(cluster: Cluster) -> str:
    """The key of the one run a worker runs now, as the workers know it."""
    from distributed import Client

    def keys() -> list[str]:
        from gitscripts.cluster import worker

        runtime = worker.runtime
        assert runtime is not None
        return [key for key, task in runtime._runs.items() if task is not None and not task.done()]

    with Client(cluster.address, timeout=10) as client:
        found: list[str] = []
        _wait(lambda: found.extend(k for ks in client.run(keys).values() for k in ks) or found,
              what="the run is not running")  # fmt: skip
    assert len(found) == 1, found
    return found[0]


def test_a_forged_or_unauthenticated_reply_is_refused(ready: Cluster) -> None:
    from websockets.exceptions import InvalidStatus

    for token in (None, WORKER_TOKEN[:-1] + "x"):
        with pytest.raises(InvalidStatus) as refused:
            _results_socket(ready, token).close()
        assert refused.value.response.status_code == 403
    # With the worker credential but not the run's own secret (another run, another worker),
    # a reply for a run that is running is dropped: the run's real result is its answer.
    ready.upload("who.py", WHO)
    run = ready.submit("who.py", {"seconds": 2})
    key = _running_run(ready)
    forged = {"ok": True, "duration": 0.0, "stdout": "", "stderr": "", "timed_out": False,
              "result": {"pid": -1}, "worker": "w1"}  # fmt: skip
    with _results_socket(ready, WORKER_TOKEN) as results:
        for secret in ("x" * 32, "", None):
            results.send(json.dumps({"key": key, "secret": secret, "result": forged}))
    record = ready.record(run["id"], wait=30)
    assert record["status"] == "succeeded", record
    assert record["result"]["pid"] > 0


def _service_log(cluster: Cluster) -> str:
    return (cluster.root / "service.log").read_text(errors="replace")


def _slot_tasks(cluster: Cluster) -> list[tuple[str, list[str], str]]:
    """The slots the service holds now, as the scheduler sees them: for each, the worker its
    task is processing on (name), the workers it is restricted to, and that worker's address."""
    from distributed import Client

    def placed(dask_scheduler: Any) -> list[tuple[str, list[str], str]]:
        return [(str(task.processing_on.name), sorted(task.worker_restrictions or ()),
                 task.processing_on.address)
                for key, task in dask_scheduler.tasks.items()
                if str(key).startswith("gitscripts-slot-") and task.state == "processing"]  # fmt: skip

    with Client(cluster.address, timeout=10) as client:
        return list(client.run_on_scheduler(placed))


def _slots(cluster: Cluster) -> list[tuple[str, list[str], str]]:
    """`_slot_tasks`, once there is one."""
    found: list[tuple[str, list[str], str]] = []
    _wait(lambda: found.extend(_slot_tasks(cluster)) or found, what="no slot's task is processing")
    return found


def test_runs_one_after_another_share_one_slot_let_go_of_once_idle(ready: Cluster) -> None:
    ready.upload("who.py", WHO)
    _wait(lambda: not _slot_tasks(ready), 20, "the slots of earlier runs were never let go of")
    taken = _service_log(ready).count("slot_taken")
    for _ in range(5):
        answer = ready.run("who.py", {}).json()
        assert answer["success"] is True, answer
    # One slot for all five (taken at the first), which the scheduler sees held on its worker.
    assert _service_log(ready).count("slot_taken") == taken + 1
    [(name, restricted, address)] = _slot_tasks(ready)
    assert restricted == [address] and name == ready.record(answer["run_id"])["worker"]
    # DASK_SLOT_IDLE (2 s) after its last run the service lets go of it: the worker is idle
    # for the scheduler (an adaptive cluster may retire it).
    idle_since = time.monotonic()
    _wait(lambda: not _slot_tasks(ready), 20, "the idle slot was never let go of")
    assert time.monotonic() - idle_since > 1.0


def test_a_run_in_a_slot_runs_once_on_the_worker_whose_slot_task_holds_it(
    ready: Cluster,
) -> None:
    ready.upload("once.py", ONCE)
    httpx.delete(f"{ready.base}/api/v1/files/once.txt", headers=ready.auth)
    run = ready.submit("once.py", {"mark": "once.txt", "seconds": 1})
    _running_run(ready)
    slots = _slots(ready)
    record = ready.record(run["id"], wait=30)
    assert record["status"] == "succeeded", record
    # The scheduler sees each slot's task processing on the worker it is bound to, and the run
    # ran on one of those workers.
    assert all(restricted == [address] for _, restricted, address in slots), slots
    assert record["worker"] in {name for name, _, _ in slots}, (record, slots)
    stored = httpx.get(f"{ready.base}/api/v1/files/once.txt", headers=ready.auth)
    assert stored.status_code == 200 and len(stored.text.splitlines()) == 1, stored.text
    # Concurrent runs: never more on a worker at once than its slots (2 each).
    with ThreadPoolExecutor(6) as pool:
        replies = list(pool.map(lambda _: ready.run("once.py", {"seconds": 1}), range(6)))
    spans: dict[str, list[tuple[float, float]]] = {}
    for reply in replies:
        answer = reply.json()
        assert answer["success"] is True, answer
        worker = ready.record(answer["run_id"])["worker"]
        spans.setdefault(worker, []).append((answer["result"]["start"], answer["result"]["end"]))
    for worker, runs in spans.items():
        busiest = max(sum(1 for s, e in runs if s <= start < e) for start, _ in runs)
        assert busiest <= 2, (worker, runs)


def test_cancel_of_a_run_started_directly_kills_it_before_its_task_reaches_the_worker(
    ready: Cluster,
) -> None:
    ready.upload("sleeper.py", SLEEPER)
    before = _sleep_pids()
    assert ready.scheduler is not None
    pool = ThreadPoolExecutor(1)
    ready.scheduler.send_signal(signal.SIGSTOP)  # no task reaches a worker now
    try:
        run = ready.submit("sleeper.py", {"seconds": 60})
        _wait(lambda: _sleep_pids() - before, 5, "the run did not start without the scheduler")
        started = _sleep_pids() - before
        url = f"{ready.base}/api/v1/runs/{run['id']}/cancel"
        cancel = pool.submit(httpx.post, url, headers=ready.auth, timeout=60)
        # Well before the service takes the scheduler for lost (it fails the run then too).
        _wait(lambda: not any(_process_alive(pid) for pid in started), 2,
              "the run's process tree outlived its cancel")  # fmt: skip
    finally:
        ready.scheduler.send_signal(signal.SIGCONT)
        pool.shutdown()
    assert cancel.result().status_code == 200, cancel.result().text
    assert ready.record(run["id"])["status"] == "cancelled"


def test_a_lost_scheduler_stops_the_runs_started_directly(ready: Cluster) -> None:
    ready.upload("sleeper.py", SLEEPER)
    before = _sleep_pids()
    assert ready.scheduler is not None
    ready.scheduler.send_signal(signal.SIGSTOP)  # it answers no more: lost to the service
    try:
        run = ready.submit("sleeper.py", {"seconds": 60})
        _wait(lambda: _sleep_pids() - before, 5, "the run did not start without the scheduler")
        started = _sleep_pids() - before
        record = ready.record(run["id"], wait=20)
        # Lost either way: the connection to the cluster, or (its workers gone from the
        # service's view first) the run's worker.
        assert record["status"] == "failed", record
        assert any(lost in record["error"] for lost in ("execution cluster", "worker running"))
        _wait(lambda: not any(_process_alive(pid) for pid in started), 5,
              "the run's process tree outlived its failure")  # fmt: skip
    finally:
        ready.scheduler.send_signal(signal.SIGCONT)


class _Proxy:
    """A TCP proxy to the service on `port`, on a port of its own (`port`). With
    `refuse_websockets` it cuts any connection asking for a WebSocket (as a proxy without
    WebSocket support would); `cut()` ends every connection open through it now."""

    def __init__(self, port: int, refuse_websockets: bool = False) -> None:
        self.server = socket.create_server(("127.0.0.1", 0))
        self.port = self.server.getsockname()[1]
        self.refuse_websockets = refuse_websockets
        self._open: set[socket.socket] = set()
        self._service_port = port
        threading.Thread(target=self._serve, daemon=True).start()

    def cut(self) -> None:
        for each in list(self._open):
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)

    def close(self) -> None:
        self.server.close()
        self.cut()

    def _pipe(self, source: socket.socket, target: socket.socket, upstream: bool) -> None:
        with contextlib.suppress(OSError):
            while chunk := source.recv(1 << 16):
                if upstream and self.refuse_websockets and b"upgrade: websocket" in chunk.lower():
                    break
                target.sendall(chunk)
        for each in (source, target):
            self._open.discard(each)
            with contextlib.suppress(OSError):
                each.shutdown(socket.SHUT_RDWR)

    def _serve(self) -> None:
        while True:
            try:
                client, _ = self.server.accept()
            except OSError:
                return
            service = socket.create_connection(("127.0.0.1", self._service_port))
            self._open |= {client, service}
            threading.Thread(target=self._pipe, args=(client, service, True), daemon=True).start()
            threading.Thread(target=self._pipe, args=(service, client, False), daemon=True).start()


@contextmanager
def _proxy(cluster: Cluster, refuse_websockets: bool = False) -> Iterator[_Proxy]:
    proxy = _Proxy(int(cluster.base.rsplit(":", 1)[1]), refuse_websockets)
    try:
        yield proxy
    finally:
        proxy.close()


@contextmanager
def _third_worker(cluster: Cluster, proxy: _Proxy, resource: str) -> Iterator[None]:
    """Worker w3, offering `resource`, that reaches the service through `proxy`."""
    cluster.start_worker("w3", service=f"http://127.0.0.1:{proxy.port}", resources=f"{resource}=1")
    try:
        cluster.wait_for_workers(3)
        yield
    finally:
        worker = cluster.workers.pop("w3")
        worker.terminate()
        worker.wait(timeout=30)
        cluster.wait_for_workers(len(WORKERS))


def test_a_result_comes_back_through_dask_when_the_direct_way_is_closed(
    ready: Cluster, tmp_path: Path
) -> None:
    _push(ready, tmp_path, {
        "proxied.py": WHO,
        "proxied.py.meta.json": b'{"display_name": "proxied", "resources": {"PROXIED": 1}}\n',
    })  # fmt: skip
    with _proxy(ready, refuse_websockets=True) as proxy, _third_worker(ready, proxy, "PROXIED"):
        _wait(lambda: "reply_channel_unavailable" in (ready.root / "w3.log").read_text(),
              what="the worker's WebSocket was not refused")  # fmt: skip
        reply = ready.run("proxied.py", {})
        answer = reply.json()
        assert answer["success"] is True, answer
        assert answer["result"]["pid"] > 0
        assert ready.record(answer["run_id"])["worker"] == "w3"


def test_a_result_that_ends_while_its_workers_socket_is_down_comes_when_it_is_back(
    ready: Cluster, tmp_path: Path
) -> None:
    _push(ready, tmp_path, {
        "blip.py": WHO,
        "blip.py.meta.json": b'{"display_name": "blip", "resources": {"BLIP": 1}}\n',
    })  # fmt: skip
    with _proxy(ready) as proxy, _third_worker(ready, proxy, "BLIP"):
        taken = _service_log(ready).count("slot_taken")
        _wait(lambda: ready.run("blip.py", {}).json()["success"], what="w3 runs nothing")
        assert _service_log(ready).count("slot_taken") > taken  # in a slot: no other way back
        run = ready.submit("blip.py", {"seconds": 1.5})
        _running_run(ready)
        proxy.cut()  # the socket goes down mid-run; the worker opens it again 5 s later
        record = ready.record(run["id"], wait=30)
        assert record["status"] == "succeeded", record
        assert record["result"]["pid"] > 0 and record["worker"] == "w3"
        # It came when the socket was back (the run itself took 1.5 s).
        assert record["run_time_ms"] > 4000, record


# -- failures ------------------------------------------------------------------------------------
def _process_alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(") ")[1][0] != "Z"
    except (FileNotFoundError, ProcessLookupError):  # gone (also between open and read)
        return False


def _sleep_pids() -> set[int]:
    found = set()
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/cmdline", "rb") as handle:
                if handle.read() == b"sleep\x00300\x00":
                    found.add(int(pid))
        except OSError:
            continue
    return found


def _wait(condition: Any, timeout: float = 30, what: str = "") -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def test_cancel_of_an_async_run_kills_its_process_on_the_worker(ready: Cluster) -> None:
    ready.upload("sleeper.py", SLEEPER)
    before = _sleep_pids()
    run = ready.submit("sleeper.py", {"seconds": 60})
    _wait(lambda: _sleep_pids() - before, what="the run did not start")
    started = _sleep_pids() - before
    reply = httpx.post(
        f"{ready.base}/api/v1/runs/{run['id']}/cancel", headers=ready.auth, timeout=30
    )
    assert reply.status_code == 200, reply.text
    assert reply.json()["status"] == "cancelled"
    _wait(lambda: not any(_process_alive(pid) for pid in started), 10,
          "the run's process tree outlived its cancel")  # fmt: skip


def test_a_worker_killed_mid_run_fails_its_run_with_worker_lost(ready: Cluster) -> None:
    ready.upload("sleeper.py", SLEEPER)
    ready.upload("who.py", WHO)
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(ready.run, "sleeper.py", {"seconds": 60})
        _wait(lambda: "running" in _statuses(ready), what="the run did not start")
        running = next(r for r in _runs(ready) if r["status"] == "running")
        worker = running_worker(ready, running["id"])
        ready.workers[worker].send_signal(signal.SIGKILL)
        reply = pending.result(timeout=60)
    assert reply.status_code == 502, reply.text
    assert reply.json()["error_code"] == "WORKER_LOST"
    record = ready.record(running["id"])
    assert record["status"] == "failed" and "died" in record["error"]
    assert record["worker"] == worker
    # The other worker takes the next runs.
    survivor = next(name for name in WORKERS if name != worker)
    ready.wait_for_workers(1)
    later = ready.run("who.py", {})
    assert later.json()["success"] is True
    assert ready.record(later.json()["run_id"])["worker"] == survivor
    # What the killed worker left on its machine (its execution folder, with its sockets and
    # checkouts) is cleared when a worker starts there again; its environments stay.
    killed = ready.workers[worker].pid
    left = list(Path(tempfile.gettempdir()).glob(f"gitscripts-*/pid-{killed}-*"))
    assert left, "the killed worker's folder was not where this test looks"
    ready.ensure_workers()
    assert not any(folder.exists() for folder in left)
    assert list((ready.root / worker).glob("gitscripts-worker-*/environments"))


def test_a_run_whose_worker_died_runs_again_where_retries_are_allowed(
    tmp_path_factory: pytest.TempPathFactory,
) -> None:
    # With DASK_SLOT_IDLE=0 as well: each run then takes a slot of its own (its own Dask task).
    retrying = tmp_path_factory.mktemp("retrying")
    with _started(retrying, DASK_WORKER_LOST_RETRIES="1", DASK_SLOT_IDLE="0") as cluster:
        cluster.upload("sleeper.py", SLEEPER)
        with ThreadPoolExecutor(1) as pool:
            pending = pool.submit(cluster.run, "sleeper.py", {"seconds": 3})
            _wait(lambda: "running" in _statuses(cluster), what="the run did not start")
            running = next(r for r in _runs(cluster) if r["status"] == "running")
            _wait(lambda: _has_sleep(cluster), what="the script did not start")
            worker = running_worker(cluster, running["id"])
            cluster.workers[worker].send_signal(signal.SIGKILL)
            reply = pending.result(timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.json()["success"] is True and reply.json()["result"] == {"slept": True}
        survivor = next(name for name in WORKERS if name != worker)
        assert cluster.record(running["id"])["worker"] == survivor
        cluster.upload("who.py", WHO)
        taken = _service_log(cluster).count("slot_taken")
        for _ in range(3):
            assert cluster.run("who.py", {}).json()["success"] is True
        assert _service_log(cluster).count("slot_taken") == taken + 3
        _wait(lambda: not _slot_tasks(cluster), 5, "a slot was kept after its run")


def test_a_script_stated_idempotent_runs_again_when_its_worker_dies(
    ready: Cluster, tmp_path: Path
) -> None:
    # The cluster allows no rerun (DASK_WORKER_LOST_RETRIES 0); this script's sidecar does.
    _push(ready, tmp_path, {
        "again.py": SLEEPER,
        "again.py.meta.json": b'{"display_name": "again", "worker_lost_retries": 1}\n',
    })  # fmt: skip
    with ThreadPoolExecutor(1) as pool:
        pending = pool.submit(ready.run, "again.py", {"seconds": 3})
        _wait(lambda: _has_sleep(ready), what="the script did not start")
        running = next(r for r in _runs(ready) if r["status"] == "running")
        worker = running_worker(ready, running["id"])
        ready.workers[worker].send_signal(signal.SIGKILL)
        reply = pending.result(timeout=60)
    assert reply.status_code == 200, reply.text
    assert reply.json()["result"] == {"slept": True}
    assert ready.record(running["id"])["worker"] == next(w for w in WORKERS if w != worker)


def _has_sleep(cluster: Cluster) -> bool:
    table = subprocess.run(["ps", "-o", "pid=,ppid=,args=", "-e"], capture_output=True,
                           text=True).stdout  # fmt: skip
    return any(_descends(table, p.pid, "sleep 300") for p in cluster.workers.values())


def running_worker(cluster: Cluster, run_id: str, timeout: float = 20) -> str:
    """Which worker runs `run_id` now: the one a `sleep 300` descends from (once the script,
    `running` since it took its slot, has started it)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        table = subprocess.run(["ps", "-o", "pid=,ppid=,args=", "-e"], capture_output=True,
                               text=True).stdout  # fmt: skip
        for name, process in cluster.workers.items():
            if _descends(table, process.pid, "sleep 300"):
                return name
        time.sleep(0.05)
    raise AssertionError(f"no worker runs {run_id}")


def _descends(table: str, root: int, command: str) -> bool:
    parents: dict[int, int] = {}
    commands: dict[int, str] = {}
    for line in table.splitlines():
        pid, ppid, *args = line.split(None, 2)
        parents[int(pid)] = int(ppid)
        commands[int(pid)] = args[0] if args else ""
    for pid, args in commands.items():
        if args.strip() != command:
            continue
        while pid in parents and pid != root:
            pid = parents[pid]
        if pid == root:
            return True
    return False


def _runs(cluster: Cluster) -> list[dict[str, Any]]:
    reply = httpx.get(f"{cluster.base}/api/v1/runs?limit=5", headers=cluster.auth)
    return list(reply.json()["runs"])


def _statuses(cluster: Cluster) -> set[str]:
    return {run["status"] for run in _runs(cluster)}


def test_the_service_reconnects_after_a_scheduler_restart(ready: Cluster) -> None:
    assert ready.scheduler is not None
    ready.scheduler.terminate()
    ready.scheduler.wait(timeout=30)
    _wait(lambda: not ready.health()["cluster"]["connected"], what="still connected")
    # The service stays up, and says so.
    metrics = httpx.get(f"{ready.base}/metrics").text
    assert "gitscripts_cluster_connected 0.0" in metrics
    ready.scheduler = _start_scheduler(ready.scheduler_port, ready.root / "scheduler.log")
    ready.wait_for_workers(len(WORKERS))
    assert "gitscripts_cluster_connected 1.0" in httpx.get(f"{ready.base}/metrics").text
    ready.upload("who.py", WHO)
    assert ready.run("who.py", {}).json()["success"] is True


def test_no_worker_answers_503_and_an_async_run_stays_queued(ready: Cluster) -> None:
    ready.upload("who.py", WHO)
    for process in ready.workers.values():
        process.terminate()
    for process in ready.workers.values():
        process.wait(timeout=30)
    ready.wait_for_workers(0)
    reply = ready.run("who.py", {})
    assert reply.status_code == 503, reply.text
    assert reply.json()["error_code"] == "NO_EXECUTION_CAPACITY"
    assert int(reply.headers["Retry-After"]) >= 1
    queued = ready.submit("who.py", {})
    time.sleep(1)
    assert ready.record(queued["id"])["status"] == "queued"
    # Waiting for a worker is waiting in the queue: /metrics counts it.
    assert "gitscripts_run_queue_depth 1.0" in httpx.get(f"{ready.base}/metrics").text
    ready.ensure_workers()
    ended = ready.record(queued["id"], wait=30)
    assert ended["status"] == "succeeded" and ended["worker"] in WORKERS


# -- the pieces, without a cluster -------------------------------------------------------------
def test_looking_for_a_scheduler_that_is_not_there_leaves_nothing_behind(tmp_path: Path) -> None:
    # In a process of its own: what a leaked Dask client does, it does when it is collected, at
    # the latest as the interpreter ends.
    code = f"""
import asyncio
from pathlib import Path
from gitscripts.cluster.dispatch import Cluster
from gitscripts.executor.service import Admission
from tests.conftest import make_settings

async def look_a_while():
    settings = make_settings(Path({str(tmp_path / "data")!r}), executor="dask",
                             dask_scheduler_address="tcp://127.0.0.1:{free_port()}")
    cluster = Cluster(settings, Admission(1, 1))
    await cluster.start()
    await asyncio.sleep(1.2)  # a few attempts to connect, to nobody
    await cluster.stop()

asyncio.run(look_a_while())
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=60, cwd=Path(__file__).parent.parent)  # fmt: skip
    assert done.returncode == 0, done.stderr
    # Each failed attempt's client is closed then, not left to close itself when collected
    # (which fails, or leaves its closing coroutine never awaited).
    assert "Exception ignored" not in done.stderr, done.stderr
    assert "was never awaited" not in done.stderr, done.stderr


def test_runs_waiting_for_a_first_worker_are_queued_runs(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from gitscripts.app import create_app

    settings = make_settings(
        tmp_path / "data", executor="dask", dask_capacity_wait=3, max_queued_executions=1,
        dask_scheduler_address=f"tcp://127.0.0.1:{free_port()}",  # nobody there
        metrics_token=WORKER_TOKEN,
    )  # fmt: skip
    scrape = {"Authorization": f"Bearer {WORKER_TOKEN}"}
    with TestClient(create_app(settings)) as client, ThreadPoolExecutor(1) as pool:
        alice = register(client, "alice")
        alice.upload("who.py", WHO)
        first = pool.submit(alice.post, "/api/v1/scripts/who.py", json={"data": {}})
        deadline = time.monotonic() + 2
        while "gitscripts_run_queue_depth 1.0" not in client.get("/metrics", headers=scrape).text:
            assert time.monotonic() < deadline and not first.done()
            time.sleep(0.02)
        # It holds the queue's one place: the next synchronous run is refused, as with slots.
        second = alice.post("/api/v1/scripts/who.py", json={"data": {}})
        assert second.status_code == 429, second.text
        assert second.json()["error_code"] == "TOO_MANY_EXECUTIONS"
        assert first.result().status_code == 503


def test_the_tree_endpoint_serves_workers_only_what_they_lack(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from gitscripts.app import create_app
    from gitscripts.cluster.trees import unpack
    from tests.conftest import make_settings, register

    with TestClient(create_app(make_settings(tmp_path / "data"))) as client:
        # Without WORKER_TOKEN there is no such endpoint.
        assert client.post(f"/internal/v1/trees/{'0' * 40}", json={}).status_code == 404
    settings = make_settings(tmp_path / "data", worker_token=WORKER_TOKEN)
    with TestClient(create_app(settings)) as client:
        alice = register(client, "bob")
        folder = alice.folder("deep")
        alice.upload("one.py", HELLO, folder_id=folder["id"])
        alice.upload("two.py", HELLO)
        from gitscripts.repo import Repository

        repo = Repository(settings.repo_path)
        root = str(repo.head().tree.id)
        url = f"/internal/v1/trees/{root}"
        assert client.post(url, json={}).status_code == 401
        wrong = {"Authorization": "Bearer " + WORKER_TOKEN[:-1] + "x"}
        assert client.post(url, json={}, headers=wrong).status_code == 401
        worker = {"Authorization": f"Bearer {WORKER_TOKEN}"}
        full = client.post(url, json={"have": []}, headers=worker)
        assert full.status_code == 200
        trees, blobs = unpack(full.content)
        assert set(trees) == {root, next(e.id for e in trees[root] if e.name == "deep")}
        assert HELLO in blobs.values()
        deep = next(e.id for e in trees[root] if e.name == "deep")
        # A worker that has deep/ on disk gets the root only, and no blob of deep/.
        alice.upload("two.py", HELLO + b"# changed\n", replace=True)
        new_root = str(repo.head().tree.id)
        part = client.post(f"/internal/v1/trees/{new_root}", json={"have": [deep]}, headers=worker)
        trees, blobs = unpack(part.content)
        assert set(trees) == {new_root}
        assert HELLO + b"# changed\n" in blobs.values()
        assert HELLO not in blobs.values()  # deep/one.py's: the worker has it
        missing = client.post(f"/internal/v1/trees/{'1' * 40}", json={}, headers=worker)
        assert missing.status_code == 404
        bad = client.post(url, json={"have": ["../x"]}, headers=worker)
        assert bad.status_code == 400 and bad.json()["error_code"] == "VALIDATION_ERROR"


def test_a_run_log_made_before_workers_gains_the_column(tmp_path: Path) -> None:
    import sqlite3

    from gitscripts.runs.store import RunStore

    path = tmp_path / "runs.sqlite3"
    old = sqlite3.connect(path)
    old.execute(
        "CREATE TABLE runs (id TEXT PRIMARY KEY, script_path TEXT NOT NULL, script_id INTEGER,"
        " revision TEXT NOT NULL, commit_id TEXT NOT NULL, user_id INTEGER, user_login TEXT,"
        " mode TEXT NOT NULL, status TEXT NOT NULL, queued_at REAL NOT NULL,"
        " timeout REAL NOT NULL, error TEXT, started_at REAL, finished_at REAL, input TEXT,"
        " result TEXT, stdout TEXT NOT NULL, stderr TEXT NOT NULL, stdout_cut INTEGER NOT NULL,"
        " stderr_cut INTEGER NOT NULL, input_stored INTEGER NOT NULL, replay_of TEXT,"
        " idempotency_key TEXT, request_hash TEXT) WITHOUT ROWID"
    )
    old.execute(
        "INSERT INTO runs VALUES ('01KB0000000000000000000000', 'a.py', 1, 'main', 'c', 1,"
        " 'alice', 'sync', 'succeeded', 1.0, 5.0, NULL, 1.0, 2.0, NULL, NULL, '', '', 0, 0,"
        " 1, NULL, NULL, NULL)"
    )
    old.commit()
    old.close()
    store = RunStore(path)
    try:
        earlier = store.get("01KB0000000000000000000000")
        assert earlier is not None and earlier.worker is None
        assert earlier.public()["worker"] is None
        from dataclasses import replace

        store.write([replace(earlier, id="01KB0000000000000000000001", worker="w1")])
        later = store.get("01KB0000000000000000000001")
        assert later is not None and later.worker == "w1"
    finally:
        store.close()
