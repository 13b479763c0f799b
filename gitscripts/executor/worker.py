"""Run one script's `main(data)` in a child process, supervised (standard library only).

Two processes per execution:
- the supervisor (this module's `supervise`) sets up pipes and a scratch directory, forks the runner,
  reads its output (capped), enforces the timeout, and afterwards kills everything the script left
  behind: the runner's process group and, as a child subreaper, any orphan that left the group;
- the runner becomes its own session and process group, applies the resource limits, changes to the
  scratch directory, puts the checkout on `sys.path`, runs the script and writes the outcome to a pipe
  of its own, so whatever the script prints can never corrupt the result.

It is imported by the warm fork server (`zygote`) and also runs as `python -m
gitscripts.executor.worker` (job on stdin, report on stdout) for the fresh-interpreter engine, so it
must import nothing beyond the standard library.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import resource
import select
import shutil
import signal
import sys
import tempfile
import time
import traceback
import types
from typing import Any

_PR_SET_CHILD_SUBREAPER = 36
_READ_CHUNK = 65536
TRUNCATION_MARKER = "\n[... output truncated ...]\n"


# -- the runner (in the forked child) ------------------------------------------------------------
_CLONE_NEWNS = 0x00020000
_MS_RDONLY, _MS_REMOUNT, _MS_BIND, _MS_REC, _MS_PRIVATE = 1, 32, 4096, 16384, 1 << 18


def _sandbox_filesystem(job: dict[str, Any]) -> None:
    """In a private mount namespace, make checkouts read-only and hide the server's own files.

    File modes already make checkouts read-only for an unprivileged service; a service running as
    root ignores modes, so there the runner gets its own view of the file system instead. Where the
    kernel refuses (no privilege for namespaces), the file modes are what remains.
    """
    sandbox = job.get("sandbox") or {}
    if os.geteuid() != 0 or not sandbox:
        return
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.unshare(_CLONE_NEWNS) != 0:
        return
    if libc.mount(b"none", b"/", None, _MS_REC | _MS_PRIVATE, None) != 0:
        return
    for path in sandbox.get("readonly", []):
        target = path.encode()
        if libc.mount(target, target, None, _MS_BIND | _MS_REC, None) == 0:
            libc.mount(b"none", target, None, _MS_BIND | _MS_REMOUNT | _MS_RDONLY, None)
    for path in sandbox.get("hidden", []):
        libc.mount(b"tmpfs", path.encode(), b"tmpfs", _MS_RDONLY, b"size=4k,mode=0555")


def _apply_limits(job: dict[str, Any]) -> None:
    limits = job["limits"]
    for name, value in (
        ("RLIMIT_AS", limits.get("memory_bytes")),
        ("RLIMIT_CPU", limits.get("cpu_seconds")),
        ("RLIMIT_NPROC", limits.get("processes")),
        ("RLIMIT_FSIZE", limits.get("file_size_bytes")),
        ("RLIMIT_CORE", 0),
    ):
        if value is None:
            continue
        _, hard = resource.getrlimit(getattr(resource, name))
        value = int(value)
        if hard != resource.RLIM_INFINITY:
            value = min(value, hard)
        try:
            resource.setrlimit(
                getattr(resource, name), (value, hard if name != "RLIMIT_CPU" else value + 1)
            )
        except (ValueError, OSError):
            resource.setrlimit(getattr(resource, name), (value, value))


def _scrub(text: str, job: dict[str, Any]) -> str:
    """Tracebacks name the script's own files by logical path and never a server path."""
    text = text.replace(job["root"].rstrip("/") + "/", "")
    for prefix in sorted({sys.prefix, sys.base_prefix, sys.exec_prefix}, key=len, reverse=True):
        text = text.replace(prefix, "<python>")
    return text.replace(job["scratch"], "<scratch>")


def _format_error(exc: BaseException, job: dict[str, Any]) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    # Drop the frames of this runner: the trace starts where the script's code does.
    while frames and frames[0].filename == __file__:
        frames.pop(0)
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines += traceback.format_exception_only(type(exc), exc)
    return _scrub("".join(lines), job).rstrip()


def _outcome(job: dict[str, Any]) -> dict[str, Any]:
    logical_path = job["path"]
    filename = os.path.join(job["root"], logical_path)
    module_name = os.path.splitext(os.path.basename(logical_path))[0]
    module = types.ModuleType(module_name)
    module.__file__ = filename
    sys.modules[module_name] = module
    try:
        with open(filename, "rb") as handle:
            source = handle.read()
        code = compile(source, logical_path, "exec")
        exec(code, module.__dict__)
        main = module.__dict__.get("main")
        if not callable(main):
            return {"ok": False, "error": "The script defines no main(data) function"}
        result = main(job["data"])
    except BaseException as exc:
        return {"ok": False, "error": _format_error(exc, job)}
    if result is None:
        result = {}
    if not isinstance(result, dict):
        return {
            "ok": False,
            "error": f"main() must return a dict (or None), not {type(result).__name__}",
        }
    return {"ok": True, "result": result}


def _run(job: dict[str, Any], result_fd: int, out_fd: int, err_fd: int) -> None:
    """The runner's whole life; it ends in `os._exit`, whatever the script does."""
    try:
        os.setsid()  # its own process group: the timeout kills the script and all it started
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.dup2(out_fd, 1)
        os.dup2(err_fd, 2)
        os.dup2(result_fd, 3)
        result_fd = 3
        # Nothing else is inherited: not the service's connection, not the fork server's socket.
        os.closerange(4, 1 << 16)
        _sandbox_filesystem(job)
        os.chdir(job["scratch"])
        os.environ.clear()
        os.environ.update(job["env"])
        root = job["root"]
        folder = os.path.dirname(os.path.join(root, job["path"]))
        sys.path[:0] = [folder] if folder == root else [folder, root]
        sys.argv = [job["path"]]
        tempfile.tempdir = job["scratch"]
        _apply_limits(job)
        outcome = _outcome(job)
        try:
            payload = json.dumps(outcome, allow_nan=False).encode("utf-8")
        except (TypeError, ValueError) as exc:
            payload = json.dumps(
                {"ok": False, "error": f"main() returned a value that is not JSON: {exc}"}
            ).encode("utf-8")
        with os.fdopen(result_fd, "wb") as result:
            result.write(payload)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # the script may have closed or replaced them
                stream.flush()
        os._exit(0)


# -- the supervisor ------------------------------------------------------------------------------
class _Capture:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.chunks: list[bytes] = []
        self.size = 0
        self.truncated = False

    def add(self, chunk: bytes) -> None:
        room = self.limit - self.size
        if len(chunk) > room:
            self.truncated = True
            chunk = chunk[: max(room, 0)]
        if chunk:
            self.chunks.append(chunk)
            self.size += len(chunk)

    def text(self) -> str:
        text = b"".join(self.chunks).decode("utf-8", "replace")
        return text + TRUNCATION_MARKER if self.truncated else text


def _become_subreaper() -> None:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)
    except (OSError, AttributeError):
        pass  # not Linux: the process group kill still applies


def _kill_descendants(runner_pid: int) -> None:
    """Kill the runner's process group, then any orphan re-parented to us (it left the group)."""
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(runner_pid, signal.SIGKILL)
    me = os.getpid()
    for _ in range(50):
        orphans = []
        for entry in os.listdir("/proc") if os.path.isdir("/proc") else []:
            if not entry.isdigit():
                continue
            try:
                with open(f"/proc/{entry}/stat", "rb") as stat:
                    fields = stat.read().rsplit(b")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == me:
                orphans.append(int(entry))
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        while True:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                break
        if not orphans:
            return
        time.sleep(0.002)


def supervise(job: dict[str, Any]) -> dict[str, Any]:
    """Run the job in a fresh runner process and report what happened."""
    _become_subreaper()
    os.makedirs(job["scratch"], mode=0o700)
    result_r, result_w = os.pipe()
    out_r, out_w = os.pipe()
    err_r, err_w = os.pipe()
    started = time.perf_counter()
    pid = os.fork()
    if pid == 0:
        for fd in (result_r, out_r, err_r):
            os.close(fd)
        _run(job, result_w, out_w, err_w)
    for fd in (result_w, out_w, err_w):
        os.close(fd)

    def on_terminate(signum: int, frame: Any) -> None:
        _kill_descendants(pid)
        shutil.rmtree(job["scratch"], ignore_errors=True)
        os._exit(1)

    signal.signal(signal.SIGTERM, on_terminate)
    deadline = started + float(job["timeout"])
    limit = int(job["limits"]["output_bytes"])
    stdout, stderr = _Capture(limit), _Capture(limit)
    result = _Capture(int(job["limits"]["result_bytes"]))
    streams = {out_r: stdout, err_r: stderr, result_r: result}
    timed_out = False
    status = None
    rusage = None
    # Read until the runner has exited; its output pipes may outlive it (a grandchild holds them).
    while status is None:
        remaining = deadline - time.perf_counter()
        if remaining <= 0:
            timed_out = True
            break
        open_fds = list(streams)
        readable = select.select(open_fds, [], [], min(remaining, 0.05))[0] if open_fds else []
        if not open_fds:
            time.sleep(min(remaining, 0.001))
        for fd in readable:
            chunk = os.read(fd, _READ_CHUNK)
            if chunk:
                streams[fd].add(chunk)
            else:
                del streams[fd]
                os.close(fd)
        if result_r not in streams:
            waited, raw_status, rusage = os.wait4(pid, os.WNOHANG)
            if waited:
                status = raw_status
    duration = time.perf_counter() - started
    _kill_descendants(pid)
    if status is None:
        with contextlib.suppress(ChildProcessError):
            _, status, rusage = os.wait4(pid, 0)
    # Every writer is gone now: drain what is left in the pipes.
    for fd, capture in streams.items():
        while chunk := os.read(fd, _READ_CHUNK):
            capture.add(chunk)
        os.close(fd)
    shutil.rmtree(job["scratch"], ignore_errors=True)

    report: dict[str, Any] = {
        "duration": duration,
        "stdout": stdout.text(),
        "stderr": stderr.text(),
        "peak_memory_kb": rusage.ru_maxrss if rusage is not None else None,
        "timed_out": timed_out,
    }
    if timed_out:
        report.update(ok=False, error=f"Script timed out after {float(job['timeout']):g} seconds")
    elif result.truncated:
        report.update(ok=False, error="The script's result is larger than the result size limit")
    elif result.size:
        report.update(json.loads(b"".join(result.chunks)))
    else:
        report.update(ok=False, error=_death_cause(status))
    return report


def _death_cause(status: int | None) -> str:
    if status is not None and os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = (
            signal.Signals(number).name if number in signal.Signals._value2member_map_ else number
        )
        hint = {
            "SIGKILL": " (killed: it may have exceeded its memory or CPU limit)",
            "SIGXCPU": " (CPU time limit exceeded)",
            "SIGXFSZ": " (file size limit exceeded)",
            "SIGSEGV": " (crashed)",
        }.get(str(name), "")
        return f"The script's process was terminated by signal {name}{hint}"
    code = os.WEXITSTATUS(status) if status is not None else "unknown"
    return f"The script's process exited (status {code}) before returning a result"


def main() -> None:
    from gitscripts.executor.protocol import encode, read_frame

    job = read_frame(sys.stdin.buffer)
    report = supervise(job)
    sys.stdout.buffer.write(encode(report))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
