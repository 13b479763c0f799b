"""The sandbox as an attacker meets it: each attack is a real script, run through the HTTP API of a
real service, once with the service running as root and once as an ordinary user, and each must fail.

Every attempt in the attack scripts reports either "blocked" (with the error the kernel gave) or what
it got; a test fails on the first attempt that got anything of somebody else's.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

import gitscripts
from tests.conftest import PASSWORD, LiveServer, live_server

PLAIN_UID = 65534  # nobody: owns nothing of the service's, like a systemd `User=`


def _traversable_ancestors() -> list[tuple[Path, int]]:
    """Folders on the way to the interpreter and the project that an ordinary user cannot enter
    (a Python installed under /root): the plain-user service needs to run the same Python."""
    wanted = [Path(sys.executable).resolve(), Path(sys.base_prefix), Path(gitscripts.__file__)]
    wanted.append(Path(sys.prefix))
    found = {}
    for path in wanted:
        for folder in path.resolve().parents:
            mode = folder.stat().st_mode
            if not mode & stat.S_IXOTH:
                found[folder] = mode
    return list(found.items())


@pytest.fixture(scope="module")
def plain_user_can_run_python() -> Iterator[None]:
    changed = _traversable_ancestors()
    for folder, mode in changed:
        folder.chmod(mode | stat.S_IXOTH)  # enter (not list) only, and only while these run
    try:
        yield
    finally:
        for folder, mode in changed:
            folder.chmod(mode)


@dataclass
class Service:
    mode: str
    server: LiveServer
    data_dir: Path
    tokens: dict[str, str]

    @property
    def base(self) -> str:
        return self.server.base

    def headers(self, login: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[login]}"}

    def upload(self, login: str, name: str, source: str) -> None:
        reply = httpx.post(
            f"{self.base}/api/v1/scripts-manager/scripts-from-text",
            headers=self.headers(login),
            json={"filename": name, "display_name": name, "content": source},
        )
        assert reply.status_code in (201, 409), reply.text

    def run(self, login: str, name: str, data: Any = None, **query: Any) -> dict[str, Any]:
        reply = httpx.post(
            f"{self.base}/api/v1/scripts/{name}",
            headers=self.headers(login),
            params=query,
            json={"data": data or {}},
            timeout=60,
        )
        assert reply.status_code == 200, reply.text
        return reply.json()  # type: ignore[no-any-return]

    def fork_server_pid(self) -> int:
        """The fork server that serves: the first process of a PID namespace of its own, below
        the process the service started (which only waits for it)."""
        zygotes: dict[int, tuple[int, list[str]]] = {}  # pid -> (parent, NSpid)
        for entry in Path("/proc").iterdir():
            if entry.name.isdigit():
                try:
                    cmdline = (entry / "cmdline").read_bytes()
                    status = (entry / "status").read_text()
                except OSError:
                    continue
                if b"gitscripts.executor.zygote" in cmdline:
                    fields = dict(line.split(":", 1) for line in status.splitlines())
                    zygotes[int(entry.name)] = (int(fields["PPid"]), fields["NSpid"].split())
        for pid, (parent, nspid) in zygotes.items():
            started = zygotes.get(parent, (0, []))[0] == self.server.process.pid
            if started and len(nspid) == 2 and nspid[-1] == "1":
                return pid
        raise AssertionError("no fork server")


def signed_up(mode: str, server: LiveServer, data_dir: Path) -> Service:
    """The service with two users, alice and bob, signed in."""
    tokens = {}
    for login in ("alice", "bob"):
        credentials = {"login": login, "password": PASSWORD}
        httpx.post(f"{server.base}/api/v1/auth/register", json=credentials)
        reply = httpx.post(f"{server.base}/api/v1/auth/login", json=credentials)
        tokens[login] = reply.json()["access_token"]
    return Service(mode, server, data_dir, tokens)


@pytest.fixture(scope="module", params=["root", "plain"])
def service(request: pytest.FixtureRequest, plain_user_can_run_python: None) -> Iterator[Service]:
    mode = request.param
    if mode == "root" and os.geteuid() != 0:
        pytest.skip("the root deployment needs the tests to run as root")
    base = Path(tempfile.mkdtemp(prefix="gitscripts-sandbox-"))
    as_uid = PLAIN_UID if mode == "plain" and os.geteuid() == 0 else None
    if as_uid is not None:
        os.chown(base, as_uid, as_uid)
    settings = {
        "EXECUTION_SANDBOX": "strict",
        "EXECUTION_MAX_PROCESSES": "16",
        "EXECUTION_MEMORY_LIMIT_MB": "512",
        "EXECUTION_MAX_FILE_SIZE_MB": "4",
        "EXECUTION_MAX_OPEN_FILES": "64",
        "EXECUTION_SCRATCH_SIZE_MB": "10",
        "MAX_CONCURRENT_EXECUTIONS": "2",
        "LOG_LEVEL": "INFO",
    }
    # As the plain user, the JWT key is the development one kept in DATA_DIR: a file to steal.
    env_drop = {"JWT_SECRET_KEY": ""} if mode == "plain" else {}
    log = base / "server.log"
    with live_server(base / "data", log, as_uid=as_uid, **settings, **env_drop) as server:
        yield signed_up(mode, server, base / "data")
    print(log.read_text()[-20000:])  # shown when a test failed
    os.system(f"rm -rf {base}")


def test_strict_mode_starts_only_with_every_protection_and_says_which(service: Service) -> None:
    detail = httpx.get(f"{service.base}/health?detail=true").json()["execution"]
    assert detail["sandbox"] == "strict" and detail["network"] == "none"
    for protection in (
        "namespaces", "network_isolated", "private_root", "own_uid", "capabilities_dropped",
        "no_new_privs", "seccomp", "locked_mounts", "hard_limits",
    ):  # fmt: skip
        assert protection in detail["active"], detail
    assert detail["uid"] == ("pool" if service.mode == "root" else "service")
    # The original answer is unchanged without the detail.
    assert httpx.get(f"{service.base}/health").json() == {"status": "healthy"}


ESCAPE = r"""
import ctypes, errno, os, resource, signal, socket

libc = ctypes.CDLL(None, use_errno=True)

def attempt(action):
    try:
        result = action()
    except OSError as exc:
        return "blocked: " + (errno.errorcode.get(exc.errno) or str(exc))
    except ValueError as exc:
        return "blocked: " + str(exc)
    return "GOT " + repr(result)[:200]

def call(name, *args):
    def go():
        if getattr(libc, name)(*args) != 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number))
        return "succeeded"
    return go

def made(name, *args):  # a call that answers a new object's id (>= 0), or -1 with errno
    def go():
        found = getattr(libc, name)(*args)
        if found < 0:
            number = ctypes.get_errno()
            raise OSError(number, os.strerror(number))
        return found
    return go

def read(path):
    return lambda: open(path, "rb").read()[:100]

def listing(path):
    return lambda: sorted(os.listdir(path))

def write(path):
    def go():
        with open(path, "ab") as handle:
            handle.write(b"attacker was here")
        return "written"
    return go

def main(data):
    out = {}
    data_dir, service, zygote = data["data_dir"], data["service_pid"], data["zygote_pid"]
    here = os.path.dirname(os.path.abspath(__file__))
    # Undo the covers.
    out["umount /proc"] = attempt(call("umount2", b"/proc", 2))
    out["umount /"] = attempt(call("umount2", b"/", 2))
    out["umount checkout"] = attempt(call("umount2", here.encode(), 2))
    out["remount checkout rw"] = attempt(call("mount", None, here.encode(), None, 32 | 4096, None))
    out["mount tmpfs"] = attempt(call("mount", b"x", b"/tmp", b"tmpfs", 0, None))
    out["unshare user"] = attempt(call("unshare", 0x10000000))
    out["unshare mount"] = attempt(call("unshare", 0x00020000))
    out["chroot"] = attempt(call("chroot", b"/tmp"))
    # Read what is not ours.
    for name in ("index.json", "jwt_secret.key", "scripts.git/config"):
        out["read " + name] = attempt(read(os.path.join(data_dir, name)))
    out["list data dir"] = attempt(listing(data_dir))
    out["root home"] = sorted(os.listdir("/root")) if os.path.isdir("/root") else []
    out["service environ"] = attempt(read("/proc/%d/environ" % service))
    out["service mem"] = attempt(read("/proc/%d/mem" % service))
    out["fork server environ"] = attempt(read("/proc/%d/environ" % zygote))
    out["processes"] = sorted(p for p in os.listdir("/proc") if p.isdigit())
    out["shadow"] = attempt(read("/etc/shadow"))
    # Write where we must not.
    out["write own script"] = attempt(write(os.path.abspath(__file__)))
    out["chmod own script"] = attempt(lambda: os.chmod(os.path.abspath(__file__), 0o777))
    out["new file in checkout"] = attempt(write(os.path.join(here, "planted.py")))
    out["write /etc"] = attempt(write("/etc/planted"))
    out["write /usr"] = attempt(write("/usr/planted"))
    out["write /root"] = attempt(write("/root/planted"))
    out["write repo config"] = attempt(write(os.path.join(data_dir, "scripts.git/config")))
    # Reach other processes.
    out["signal service"] = attempt(lambda: os.kill(service, signal.SIGSTOP))
    out["signal fork server"] = attempt(lambda: os.kill(zygote, signal.SIGSTOP))
    out["ptrace"] = attempt(call("ptrace", 16, zygote, None, None))  # PTRACE_ATTACH
    out["process_vm_readv"] = attempt(call("process_vm_readv", zygote, None, 0, None, 0, 0))
    numbers = {"x86_64": (250, 321, 323), "aarch64": (219, 280, 282)}[os.uname().machine]
    out["keyctl"] = attempt(call("syscall", numbers[0], 0, 0, 0, 0))
    out["bpf"] = attempt(call("syscall", numbers[1], 0, None, 0))
    out["userfaultfd"] = attempt(call("syscall", numbers[2], 0))
    # Privilege and limits.
    status = dict(line.split(":", 1) for line in open("/proc/self/status").read().splitlines())
    out["status"] = {k: status[k].strip() for k in ("Uid", "CapEff", "CapBnd", "NoNewPrivs", "Seccomp")}
    for name in ("RLIMIT_AS", "RLIMIT_CPU", "RLIMIT_NPROC", "RLIMIT_FSIZE", "RLIMIT_NOFILE"):
        number = getattr(resource, name)
        soft, hard = resource.getrlimit(number)
        out["raise " + name] = attempt(lambda: resource.setrlimit(number, (hard + 1, hard + 1)))
        out["limit " + name] = [soft, hard]
    # The network: the service's own port on the loopback is out of reach, and there is no
    # interface but the loopback.
    def connect():
        with socket.create_connection(("127.0.0.1", data["port"]), timeout=2):
            return "connected"
    out["connect to the service"] = attempt(connect)
    out["interfaces"] = sorted(name for _, name in socket.if_nameindex())
    # The loopback's namespace serves every run of this slot in turn: it must stay as it is.
    def loopback_down():
        import fcntl, struct
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            fcntl.ioctl(sock, 0x8914, struct.pack("16sH22x", b"lo", 0))  # SIOCSIFFLAGS
        return "down"
    out["take the loopback down"] = attempt(loopback_down)
    out["write a network sysctl"] = attempt(write("/proc/sys/net/ipv4/ip_unprivileged_port_start"))
    # What the runs' shared root holds besides: nothing to find, no way to the host's /proc.
    out["host proc"] = sorted(os.listdir("/.host-proc")) if os.path.isdir("/.host-proc") else []
    out["proc mounts"] = [line.split()[4] for line in open("/proc/self/mountinfo")
                          if " - proc " in line]
    out["cgroups"] = open("/proc/self/cgroup").read()
    out["vsock"] = attempt(lambda: socket.socket(40, socket.SOCK_STREAM))  # AF_VSOCK
    # SysV IPC and POSIX message queues: the runs share an IPC namespace that none can put
    # anything in (IPC_PRIVATE | IPC_CREAT, O_CREAT | O_RDWR), and it is not the host's.
    out["shmget"] = attempt(made("shmget", 0, 4096, 0o1600))
    out["semget"] = attempt(made("semget", 0, 1, 0o1600))
    out["msgget"] = attempt(made("msgget", 0, 0o1600))
    out["mq_open"] = attempt(made("mq_open", b"/gitscripts-run", 0o102, 0o600, None))
    out["sysvipc"] = [open("/proc/sysvipc/" + kind).read().splitlines()[1:]
                      for kind in ("shm", "sem", "msg")]
    # Of the folder that holds the gitscripts package, only the package (and a virtual
    # environment inside it) is there: not what lies beside the code (.env, data, tests).
    import gitscripts
    project = os.path.dirname(os.path.dirname(gitscripts.__file__))
    out["beside the package"] = sorted(os.listdir(project))
    return out
"""


def test_an_attacker_cannot_leave_its_run(service: Service) -> None:
    service.upload("alice", "escape.py", ESCAPE)
    data = {
        "data_dir": str(service.data_dir),
        "service_pid": service.server.process.pid,
        "zygote_pid": service.fork_server_pid(),
        "port": int(service.base.rsplit(":", 1)[1]),
    }
    outcome = service.run("alice", "escape.py", data)
    assert outcome["success"], outcome["error"]
    found = outcome["result"]
    got = {name: value for name, value in found.items() if str(value).startswith("GOT")}
    assert got == {}, got
    assert found["processes"] == ["1"]  # itself, and nothing of the machine
    # /root holds at most the way to the Python installation, if that lives there.
    ways = {Path(p).parts[2] for p in (sys.base_prefix, sys.prefix) if p.startswith("/root/")}
    assert set(found["root home"]) <= ways
    status = found["status"]
    assert status["CapEff"] == "0000000000000000" and status["CapBnd"] == "0000000000000000"
    assert status["NoNewPrivs"] == "1" and status["Seccomp"] == "2"
    if service.mode == "root":  # a uid of the pool, never root's
        assert all(int(uid) >= 2_000_000 for uid in status["Uid"].split())
    assert found["limit RLIMIT_NPROC"] == [16, 16]
    assert found["limit RLIMIT_NOFILE"] == [64, 64]
    assert found["limit RLIMIT_FSIZE"] == [4 << 20, 4 << 20]
    assert found["limit RLIMIT_AS"] == [512 << 20, 512 << 20]
    assert found["interfaces"] == ["lo"]
    assert found["proc mounts"] == ["/proc"]  # its own, and only that one
    assert found["sysvipc"] == [[], [], []]
    assert found["host proc"] == []  # where the runs' shared root had the host's, nothing
    assert set(found["beside the package"]) <= {"gitscripts", ".venv", "venv"}
    # A cgroup namespace of its own: the run's cgroup is its root (see the next test for where
    # it really is).
    assert all(line.endswith(":/") for line in found["cgroups"].splitlines())
    # Nothing it tried left a trace for the service or the next run.
    assert not (service.data_dir / "scripts.git" / "config").read_bytes().endswith(b"here")
    again = service.run("bob", "escape.py", data)
    assert again["result"]["write own script"].startswith("blocked")
    content = httpx.get(
        f"{service.base}/api/v1/scripts-manager/scripts/1/content", headers=service.headers("bob")
    )
    assert content.json()["content"] == ESCAPE


def _cgroups_of_runs() -> list[str]:
    """/proc/<pid>/cgroup of every process of a run (the pool's uids) on the machine."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                uid = int((entry / "status").read_text().split("\nUid:")[1].split()[0])
                if uid >= 2_000_000:
                    found.append((entry / "cgroup").read_text())
            except (OSError, IndexError, ValueError):
                pass
    return found


def test_a_run_is_held_in_its_slots_cgroup(service: Service) -> None:
    detail = httpx.get(f"{service.base}/health?detail=true").json()["execution"]
    if "cgroup" not in detail["active"]:
        assert detail["inactive"]["cgroup"]  # and the service says why not
        return
    service.upload("alice", "sleeper.py", "import time\ndef main(data):\n    time.sleep(1.5)\n")
    thread = threading.Thread(target=lambda: service.run("alice", "sleeper.py"))
    thread.start()
    cgroups: list[str] = []
    deadline = time.monotonic() + 10
    while not cgroups and time.monotonic() < deadline:  # until the run's processes exist
        time.sleep(0.05)
        cgroups = _cgroups_of_runs()
    thread.join()
    assert cgroups and all("/slot-" in text for text in cgroups), cgroups


SPY = r"""
import glob, os, socket, time

def main(data):
    time.sleep(0.5)  # the victim is running by now
    out = {"processes": sorted(p for p in os.listdir("/proc") if p.isdigit())}
    environs = []
    for path in glob.glob("/proc/[0-9]*/environ"):
        try:
            environs.append(open(path, "rb").read().decode("latin-1"))
        except OSError:
            pass
    out["tokens seen"] = sum(text.count("FILES_API_TOKEN") for text in environs)
    mine = os.getcwd()
    parent = os.path.dirname(mine)
    out["neighbours"] = sorted(set(os.listdir(parent)) - {os.path.basename(mine)})
    found = []
    for folder in ("/tmp", "/dev/shm", parent):
        for root, dirs, files in os.walk(folder):
            for name in files:
                try:
                    if data["secret"].encode() in open(os.path.join(root, name), "rb").read():
                        found.append(os.path.join(root, name))
                except OSError:
                    pass
    out["secrets found"] = found
    reached = []
    for family, address in ((socket.AF_UNIX, b"\0gitscripts-victim"),
                            (socket.AF_INET, ("127.0.0.1", 47011))):
        with socket.socket(family) as sock:
            try:
                sock.connect(address)
                reached.append(str(address))
            except OSError:
                pass
    out["listeners reached"] = reached
    return out
"""

VICTIM = r"""
import os, socket, time

def main(data):
    for path in ("secret.txt", "/tmp/secret.txt", "/dev/shm/secret.txt"):
        with open(path, "w") as handle:
            handle.write(data["secret"])
    # Listening where a neighbour sharing its network would find it.
    listeners = [socket.socket(socket.AF_UNIX), socket.socket()]
    listeners[0].bind(b"\0gitscripts-victim")
    listeners[1].bind(("127.0.0.1", 47011))
    for listener in listeners:
        listener.listen()
    time.sleep(1.5)
    return {"token": os.environ["FILES_API_TOKEN"], "cwd": os.getcwd()}
"""


def test_concurrent_runs_cannot_see_each_other(service: Service) -> None:
    service.upload("alice", "victim.py", VICTIM)
    service.upload("bob", "spy.py", SPY)
    victim: list[dict[str, Any]] = []
    secret = {"secret": f"victim-secret-{os.getpid()}-{time.time_ns()}"}
    thread = threading.Thread(
        target=lambda: victim.append(service.run("alice", "victim.py", secret))
    )
    thread.start()
    time.sleep(0.2)
    spy = service.run("bob", "spy.py", secret)
    thread.join()
    assert victim[0]["success"] and spy["success"], (victim, spy)
    found = spy["result"]
    assert found["processes"] == ["1"]
    # Not even its own: a run's token is handed over after the fork, never in an environ block.
    assert found["tokens seen"] == 0
    assert found["neighbours"] == [] and found["secrets found"] == []
    assert found["listeners reached"] == []  # each slot has a network of its own
    # And a later run finds nothing the victim left in the places runs share on a machine.
    later = service.run("bob", "spy.py", secret)["result"]
    assert later["secrets found"] == [] and later["listeners reached"] == []


HOSTILE_ANSWERS = r"""
import contextlib
import os

def main(data):
    kind = data["kind"]
    if kind == "garbage":
        os.write(3, b"\x00\xff{not json" * 1000)
        os._exit(0)
    if kind == "huge":
        os.write(3, b"[" * 100000)
        os._exit(0)
    if kind == "deep":
        value = []
        for _ in range(300):
            value = [value]
        return {"deep": value}
    if kind == "surrogate":
        return {"text": "\ud800"}
    if kind == "deep folders":  # deeper than any recursive walk of it could go
        os.chdir(os.environ["HOME"])
        for _ in range(1500):
            os.mkdir("a")
            os.chdir("a")
        return {}
    if kind == "stop all":
        for pid in range(2, 40000):
            try:
                os.kill(pid, 19)
            except OSError:
                pass
        try:
            os.kill(-1, 19)
        except OSError:
            pass
        print("tried")
        return {}
"""


def test_hostile_answers_and_signals_fail_their_own_run_only(service: Service) -> None:
    service.upload("alice", "hostile.py", HOSTILE_ANSWERS)
    service.upload("bob", "honest.py", "def main(data):\n    return {'n': data['n'] * 2}\n")
    honest: list[dict[str, Any]] = []

    def honest_runs() -> None:
        for n in range(20):
            honest.append(service.run("bob", "honest.py", {"n": n}))

    thread = threading.Thread(target=honest_runs)
    thread.start()
    outcomes = {
        kind: service.run("alice", "hostile.py", {"kind": kind})
        for kind in ("garbage", "huge", "deep", "surrogate", "deep folders", "stop all")
    }
    thread.join()
    for kind in ("garbage", "huge", "deep", "surrogate"):
        assert outcomes[kind]["success"] is False, outcomes[kind]
        assert outcomes[kind]["error"], outcomes[kind]
    assert "255 levels" in outcomes["deep"]["error"]
    assert "Unicode" in outcomes["surrogate"]["error"]
    assert outcomes["deep folders"]["success"], outcomes["deep folders"]
    assert outcomes["stop all"]["success"], outcomes["stop all"]
    assert outcomes["stop all"]["stdout"] == "tried\n"
    assert [o["result"] for o in honest] == [{"n": n * 2} for n in range(20)]
    assert service.run("bob", "honest.py", {"n": 21})["result"] == {"n": 42}


def test_a_stopped_fork_server_is_replaced_and_the_next_run_succeeds(service: Service) -> None:
    service.upload("bob", "honest.py", "def main(data):\n    return {'n': data['n'] * 2}\n")
    zygote = service.fork_server_pid()
    os.kill(zygote, signal.SIGSTOP)
    try:
        started = time.monotonic()
        reply = httpx.post(
            f"{service.base}/api/v1/scripts/honest.py",
            headers=service.headers("bob"),
            params={"timeout": 1},
            json={"data": {"n": 1}},
            timeout=60,
        )
        waited = time.monotonic() - started
    finally:
        with contextlib.suppress(ProcessLookupError):  # it was killed, as it should be
            os.kill(zygote, signal.SIGCONT)
    assert reply.status_code == 500
    assert reply.json()["message"].startswith("The execution engine stopped answering")
    assert waited < 30
    assert service.run("bob", "honest.py", {"n": 2})["result"] == {"n": 4}
    assert service.fork_server_pid() != zygote


LIMITS = r"""
import os, subprocess, time

def main(data):
    out = {}
    children = []
    try:
        for _ in range(100):
            children.append(subprocess.Popen(["sleep", "30"]))
    except OSError as exc:
        out["fork stopped"] = exc.strerror
    out["processes"] = len(children)
    for child in children:
        child.kill()
        child.wait()
    try:
        block = bytearray(1024 * 1024 * 1024)
        out["memory"] = "allocated"
    except MemoryError:
        out["memory"] = "refused"
    try:
        with open("big", "wb") as handle:
            handle.write(b"x" * (8 << 20))
        out["file"] = "written"
    except OSError as exc:
        out["file"] = exc.strerror
    written = 0  # files each under the size limit, more of them than the scratch holds
    try:
        for n in range(5):
            with open("part%d" % n, "wb") as handle:
                handle.write(b"x" * ((4 << 20) - 1))
            written += 1
        out["scratch"] = "all written"
    except OSError as exc:
        out["scratch"] = exc.strerror
    out["parts"] = written
    # A daemon that tries to outlive its run.
    if os.fork() == 0:
        os.setsid()
        if os.fork() == 0:
            os.execvp("sleep", ["sleep", data["marker"]])
        os._exit(0)
    return out
"""


def test_limits_hold_and_nothing_outlives_its_run(service: Service) -> None:
    service.upload("alice", "limits.py", LIMITS)
    marker = f"303.{os.getpid() % 1000}"
    outcome = service.run("alice", "limits.py", {"marker": marker})
    assert outcome["success"], outcome["error"]
    found = outcome["result"]
    assert found["processes"] < 16 and found["fork stopped"]  # EXECUTION_MAX_PROCESSES=16
    assert found["memory"] == "refused"
    assert found["file"] == "File too large"
    assert found["scratch"] == "No space left on device" and found["parts"] < 3  # 10 MB
    time.sleep(0.3)
    survivors = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                if marker.encode() in (entry / "cmdline").read_bytes():
                    survivors.append(entry.name)
            except OSError:
                pass
    assert survivors == []


HONEST = r"""
import json, os, sys, tempfile
import numpy
from _helpers import double
from gitscripts.runtime import files

def main(data):
    print("to stdout")
    print("to stderr", file=sys.stderr)
    with open("scratch.txt", "w") as handle:
        handle.write("mine")
    with tempfile.NamedTemporaryFile() as handle:
        handle.write(b"temp")
    key = files.write_bytes(b"1,2,3", prefix="honest", suffix=".csv")
    values = [int(v) for v in files.read_bytes(key).split(b",")]
    return {
        "sum": int(numpy.array(values).sum()),
        "double": double(21),
        "scratch": open("scratch.txt").read(),
        "key_prefix": key.split("/")[0],
    }
"""


def test_an_honest_script_works_as_before(service: Service) -> None:
    service.upload("alice", "_helpers.py", "def double(x):\n    return 2 * x\n")
    service.upload("alice", "honest_all.py", HONEST)
    outcome = service.run("alice", "honest_all.py")
    assert outcome["success"], outcome["error"]
    assert outcome["result"] == {"sum": 6, "double": 42, "scratch": "mine", "key_prefix": "honest"}
    assert outcome["stdout"] == "to stdout\n" and outcome["stderr"] == "to stderr\n"


# Starts the service in a user namespace of its own in which no further user namespace may be
# made: a kernel that refuses them, as some distributions and container runtimes do.
NO_USER_NAMESPACES = (
    "unshare", "--user", "--map-root-user", "--",
    "sh", "-c", 'echo 0 > /proc/sys/user/max_user_namespaces && exec "$@"', "sh",
)  # fmt: skip


def test_strict_refuses_to_start_where_the_kernel_refuses(tmp_path: Path) -> None:
    log = tmp_path / "server.log"
    with (
        pytest.raises(AssertionError),
        live_server(tmp_path / "data", log, prefix=NO_USER_NAMESPACES, EXECUTION_SANDBOX="strict"),
    ):
        pass
    text = log.read_text()
    assert "EXECUTION_SANDBOX=strict, but this machine refuses" in text
    assert "locked_mounts" in text


def test_auto_starts_where_the_kernel_refuses_and_says_what_is_missing(tmp_path: Path) -> None:
    with live_server(
        tmp_path / "data", prefix=NO_USER_NAMESPACES, EXECUTION_SANDBOX="auto"
    ) as server:
        detail = httpx.get(f"{server.base}/health?detail=true").json()["execution"]
        assert detail["sandbox"] == "auto"
        assert "locked_mounts" in detail["inactive"]
        assert "namespaces" in detail["active"]
        service = signed_up("auto", server, tmp_path / "data")
        service.upload("alice", "a.py", "def main(d):\n    return d\n")
        outcome = service.run("alice", "a.py", {"x": 1})
        assert outcome["result"] == {"x": 1}, outcome


NETWORK_PROBE = r"""
import os, socket, urllib.request
from gitscripts.runtime import files

def status(url, token):
    request = urllib.request.Request(url, headers={"Authorization": "Bearer " + token})
    try:
        with urllib.request.urlopen(request, timeout=5) as reply:
            return reply.status
    except urllib.error.HTTPError as error:
        return error.code
    except OSError:
        return "unreachable"

def connect(port):
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
        return "connected"
    except OSError:
        return "unreachable"

def main(data):
    url, token = os.environ["FILES_API_URL"], os.environ["FILES_API_TOKEN"]
    key = files.write_bytes(b"over the loopback", prefix="net")
    return {
        "url": url,
        "read back": files.read_bytes(key).decode(),
        "files endpoint": status(url + "/api/v1/files", token),
        "anything else": status(url + "/api/v1/auth/me", token),
        "another port": connect(data["other_port"]),
        "interfaces": sorted(name for _, name in socket.if_nameindex()),
    }
"""


@pytest.mark.parametrize("network", ["loopback-service", "host"])
def test_the_network_setting_decides_what_a_run_can_reach(tmp_path: Path, network: str) -> None:
    with live_server(
        tmp_path / "data", EXECUTION_SANDBOX="strict", EXECUTION_NETWORK=network
    ) as server:
        port = int(server.base.rsplit(":", 1)[1])
        service = signed_up(network, server, tmp_path / "data")
        service.upload("alice", "net.py", NETWORK_PROBE)
        with socket.socket() as other:  # a loopback service of the host's that is not ours
            other.bind(("127.0.0.1", 0))
            other.listen()
            outcome = service.run("alice", "net.py", {"other_port": other.getsockname()[1]})
    assert outcome["success"], outcome["error"]
    found = outcome["result"]
    assert found["url"] == f"http://127.0.0.1:{port}"
    assert found["read back"] == "over the loopback"
    assert found["files endpoint"] == 200
    if network == "loopback-service":
        # The run's loopback leads to the file API and nowhere else.
        assert found["anything else"] == 404
        assert found["another port"] == "unreachable"
        assert found["interfaces"] == ["lo"]
    else:  # the machine's network, as the service has it
        assert found["anything else"] == 401  # a file token opens nothing else
        assert found["another port"] == "connected"
        assert len(found["interfaces"]) >= 1
