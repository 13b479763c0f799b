"""Run one script's `main(data)` in a child process, supervised (standard library only).

Two sides per execution:
- the supervisor (`Run`, used by the fork server, and `supervise` for the fresh-interpreter
  engine) sets up pipes, forks the runner ahead of its job, hands it the job's header, reads its
  output (capped), enforces the timeout, and afterwards kills everything the script left behind:
  with the sandbox, the run's PID namespace ends with its first process; without it, the runner's
  process group and, as a child subreaper, any orphan that left the group;
- the runner (`_run`) is the run's one process: it builds its sandbox before the job comes,
  becomes its own session and process group, takes the job's confidential part from its folder,
  applies the resource limits, changes to its scratch directory, puts the checkout on `sys.path`,
  runs the script and writes the outcome to a pipe of its own, so whatever the script prints can
  never corrupt the result.

It is imported by the warm fork server (`zygote`) and also runs as `python -m
gitscripts.executor.worker` (job on stdin, report on stdout) for the fresh-interpreter engine, so it
must import nothing beyond the standard library.
"""

from __future__ import annotations

import base64
import contextlib
import ctypes
import fcntl
import io
import json
import math
import os
import resource
import select
import signal
import socket
import sys
import tempfile
import time
import traceback
import types
from collections.abc import Callable
from typing import Any

from gitscripts.executor import relay, sandbox
from gitscripts.executor.packages import Packages
from gitscripts.executor.protocol import (
    Answer,
    Handover,
    Job,
    Limits,
    ProtocolError,
    Report,
    encode,
    read_job,
)

_PR_SET_CHILD_SUBREAPER = 36
_READ_CHUNK = 65536
TRUNCATION_MARKER = "\n[... output truncated ...]\n"


# -- the runner (in the forked child) ------------------------------------------------------------
def _limits(limits: Limits) -> list[tuple[int, int]]:
    """The run's resource limits, each hard (soft = hard): a script can lower them, never raise."""
    chosen = [
        (resource.RLIMIT_AS, limits.get("memory_bytes")),
        (resource.RLIMIT_CPU, limits.get("cpu_seconds")),
        (resource.RLIMIT_NPROC, limits.get("processes")),
        (resource.RLIMIT_FSIZE, limits.get("file_size_bytes")),
        (resource.RLIMIT_NOFILE, limits.get("open_files")),
        (resource.RLIMIT_CORE, 0),
    ]
    result = []
    for name, value in chosen:
        if value is None:
            continue
        _, hard = resource.getrlimit(name)
        value = int(value)
        # Never above what this process may have (only root could raise a hard limit).
        result.append((name, value if hard == resource.RLIM_INFINITY else min(value, hard)))
    return result


def _apply(limits: list[tuple[int, int]]) -> None:
    for name, value in limits:
        resource.setrlimit(name, (value, value))


def _scrub(text: str, header: Job, scratch: str) -> str:
    """Tracebacks name the script's own files by logical path and never a server path."""
    text = text.replace(header["root"].rstrip("/") + "/", "")
    for prefix in sorted({sys.prefix, sys.base_prefix, sys.exec_prefix}, key=len, reverse=True):
        text = text.replace(prefix, "<python>")
    return text.replace(scratch, "<scratch>")


def _format_error(exc: BaseException, header: Job, scratch: str) -> str:
    frames = traceback.extract_tb(exc.__traceback__)
    # Drop the frames of this runner: the trace starts where the script's code does.
    while frames and frames[0].filename == __file__:
        frames.pop(0)
    lines = ["Traceback (most recent call last):\n", *traceback.format_list(frames)]
    lines += traceback.format_exception_only(type(exc), exc)
    return _scrub("".join(lines), header, scratch).rstrip()


def _outcome(header: Job, scratch: str, data: Any) -> Answer:
    logical_path = header["path"]
    filename = os.path.join(header["root"], logical_path)
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
        result = main(data)
    except BaseException as exc:
        return {"ok": False, "error": _format_error(exc, header, scratch)}
    if result is None:
        result = {}
    if not isinstance(result, dict):
        return {
            "ok": False,
            "error": f"main() must return a dict (or None), not {type(result).__name__}",
        }
    return {"ok": True, "result": result}


def _place(targets: dict[int, int]) -> None:
    """dup2 each source fd onto its target fd, whichever numbers they had to begin with."""
    parked = {target: fcntl.fcntl(source, fcntl.F_DUPFD, 100) for target, source in targets.items()}
    for target, fd in parked.items():
        os.dup2(fd, target)


def _answer(outcome: Answer) -> None:
    """Write the run's answer on fd 3 (a pipe of its own: nothing the script prints mixes in)."""
    try:
        payload = json.dumps(outcome, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError, RecursionError) as exc:
        payload = json.dumps(
            {"ok": False, "error": f"main() returned a value that is not JSON: {exc}"}
        ).encode("utf-8")
    with os.fdopen(3, "wb") as result:
        result.write(payload)


JOB_FILE = ".job.json"


def _take_job(jobs: int, run: str) -> bytes:
    """The job's confidential part (input, environment with the run's file token), which the
    service left in the run's folder under `jobs` (a folder descriptor): read and removed by the
    runner, never by the fork server, so that no other runner forked from it can find it in its
    memory."""
    fd = os.open(JOB_FILE, os.O_RDONLY | os.O_NOFOLLOW, dir_fd=_folder(jobs, run))
    try:
        with os.fdopen(fd, "rb") as handle:
            body = handle.read()
    finally:
        folder = _folder(jobs, run)
        os.unlink(JOB_FILE, dir_fd=folder)
        os.close(folder)
    return body


def _folder(jobs: int, run: str) -> int:
    return os.open(run, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW, dir_fd=jobs)


def _script(header: Job, job: bytes, scratch: str) -> None:
    """Run the script (in its sandbox by now) and answer; the caller exits."""
    os.chdir(scratch)
    body: Handover = json.loads(job)
    del job
    os.environ.clear()
    os.environ.update(body["env"], HOME=scratch, TMPDIR=scratch)
    root = header["root"]
    folder = os.path.dirname(os.path.join(root, header["path"]))
    sys.path[:0] = [folder] if folder == root else [folder, root]
    sys.argv = [header["path"]]
    tempfile.tempdir = scratch
    # Into the pipe line by line, as on a terminal: a run killed at its timeout keeps what it
    # printed, which a block buffer would have taken with it.
    if isinstance(sys.stdout, io.TextIOWrapper):
        sys.stdout.reconfigure(line_buffering=True)
    outcome = _outcome(header, scratch, body["data"])
    outcome["peak_memory_kb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    # Everything printed is in the pipes before the answer: the answer may be reported at once.
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(Exception):
            stream.flush()
    _answer(outcome)


def _run(
    config: sandbox.SandboxConfig,
    shared: sandbox.Shared,
    slot: int,
    pipes: tuple[int, int, int, int],
) -> None:
    """The run's whole life, in one process; it ends in `os._exit`, whatever the script does.

    It is forked ahead of its job (with the sandbox on, as the first process of a PID namespace of
    its own: see `sandbox.fork_run`), for the slot the job will run in, so that a request waits
    for neither the fork nor the sandbox: all of it is built before the job's header arrives on
    fd 4. The job's confidential part it then takes from the run's folder (see `_take_job`),
    through a descriptor it closes before the script's first line.
    """
    try:
        # Dies with the fork server, however that ends, and so takes the run with it.
        sandbox.set_parent_death_signal()
        os.setsid()  # its own process group: the timeout kills the script and all it started
        job_fd, result_fd, out_fd, err_fd = pipes
        _place({0: os.open(os.devnull, os.O_RDONLY), 1: out_fd, 2: err_fd, 3: result_fd, 4: job_fd})
        # Nothing else is inherited: not the service's connection, not the fork server's socket,
        # not another slot's namespaces (its own it enters, then closes).
        _close_all_but(shared.kept_by(slot), start=5)
        jobs = os.open(config.jobs, os.O_RDONLY | os.O_DIRECTORY)
        scratch = _sandboxed(config, shared, slot, jobs) if config.enabled else ""
        header = _header()
        try:
            job = _take_job(jobs, header["run"])
        except OSError as exc:
            _answer({"ok": False, "error": f"The run's job could not be read: {exc}"})
            os._exit(0)
        finally:
            os.close(jobs)
        scratch = scratch or os.path.join(config.jobs, header["run"])
        try:  # the job's own limits: lower than the sandbox's (the CPU time follows its timeout)
            _apply(_limits(header["limits"]))
        except (OSError, ValueError) as exc:
            _answer({"ok": False, "error": f"The run's limits could not be set: {exc}"})
            os._exit(0)
        _start_script(header, job, scratch)
    finally:
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # the script may have closed or replaced them
                stream.flush()
        os._exit(0)


def _sandboxed(config: sandbox.SandboxConfig, shared: sandbox.Shared, slot: int, jobs: int) -> str:
    """Build the run's sandbox, ahead of its job; the path of its scratch folder.

    Namespaces, the run's root and mounts while still privileged, then no privilege for good
    (see `sandbox.outer`, `sandbox.inner`). Where a step fails, the job that comes is answered
    with why, and the run ends there.
    """
    scratch = sandbox.scratch_folder()
    outcome = sandbox.Outcome()
    try:
        sandbox.outer(config, shared, slot, scratch, outcome, required=True)
        listener = (
            relay.listen(config.service_port) if config.network == "loopback-service" else None
        )
        limits = _limits(config.limits)
        sandbox.inner(config, shared, slot, outcome, required=True, limits=limits)
    except (OSError, ValueError) as exc:
        _header()
        _answer({"ok": False, "error": f"The run's sandbox could not be set up: {exc}"})
        os._exit(0)
    if listener is not None:
        _start_relay(listener, jobs)
    return scratch


def _start_relay(listener: socket.socket, jobs: int) -> None:
    """EXECUTION_NETWORK=loopback-service: a process of the run (as unprivileged as the script)
    that passes the connections to its loopback on to the file API (see `relay`). It never sees
    the job, and it ends with the run (the kernel ends every process of a PID namespace whose
    first process has ended)."""
    if os.fork() == 0:
        for fd in (0, 1, 2, 3, 4, jobs):
            os.close(fd)
        with contextlib.suppress(Exception):  # a broken relay costs the script its connections
            relay.serve(listener, sandbox.FILES_SOCKET_IN_RUN)
        os._exit(0)
    listener.close()


def _header() -> Job:
    with os.fdopen(4, "rb") as job_pipe:
        try:
            return read_job(job_pipe)
        except ProtocolError:  # no job is coming: this spare runner is not needed
            os._exit(0)


def _start_script(header: Job, job: bytes, scratch: str) -> None:
    try:
        _script(header, job, scratch)
    except Exception as exc:  # the runner's own failure, not the script's (that is caught)
        _answer({"ok": False, "error": f"The run could not start the script: {exc}"})


def _close_all_but(kept: set[int], start: int) -> None:
    for fd in sorted(kept):
        os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, 1 << 16)


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


def become_subreaper() -> None:
    """Orphans of the scripts we start are re-parented to us, so we can find and kill them."""
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0)


def _children() -> set[int]:
    me = os.getpid()
    try:
        with open(f"/proc/{me}/task/{me}/children", "rb") as handle:
            return {int(pid) for pid in handle.read().split()}
    except OSError:  # no such file: find them the slow way
        children = set()
        for entry in os.listdir("/proc"):
            if entry.isdigit():
                with (
                    contextlib.suppress(OSError, IndexError),
                    open(f"/proc/{entry}/stat", "rb") as f,
                ):
                    if int(f.read().rsplit(b")", 1)[1].split()[1]) == me:
                        children.add(int(entry))
        return children


def kill_orphans(keep: set[int]) -> None:
    """Kill every child of ours except the runners in `keep`: what is left is an orphan that a
    finished script left behind (it escaped its process group, then its parent died)."""
    for _ in range(100):
        orphans = _children() - keep
        if not orphans:
            return
        for pid in orphans:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        for pid in orphans:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(pid, 0)


class Run:
    """One execution, seen from the process that started the runner: its pipes, limits, outcome."""

    def __init__(self, config: sandbox.SandboxConfig, shared: sandbox.Shared, slot: int) -> None:
        """Fork a runner for `slot` that waits for its job (see `start`)."""
        job_r, job_w = os.pipe()
        result_r, result_w = os.pipe()
        out_r, out_w = os.pipe()
        err_r, err_w = os.pipe()
        pid = sandbox.fork_run(shared)
        if pid == 0:
            for fd in (job_w, result_r, out_r, err_r):
                os.close(fd)
            _run(config, shared, slot, (job_r, result_w, out_w, err_w))
        for fd in (job_r, result_w, out_w, err_w):
            os.close(fd)
        self.pid = pid
        self.slot = slot
        # In a PID namespace of its own, nothing the run starts can outlive it or become ours.
        self.contained = shared.home >= 0
        self.jobs = config.jobs
        self.job: Job | None = None
        self._job_fd: int | None = job_w
        self._pipes = (out_r, err_r, result_r)
        self.result_fd = result_r
        self.captures: dict[int, _Capture] = {}
        self.started = time.perf_counter()
        self.deadline = math.inf
        self.status: int | None = None
        self.rusage: Any = None
        self.duration: float | None = None
        self.timed_out = False
        try:
            self.pidfd: int | None = os.pidfd_open(pid)  # readable once the runner exits
        except (AttributeError, OSError):
            self.pidfd = None

    def start(self, job: Job) -> None:
        """Hand the runner its job's header; from here on the clock and the limits apply."""
        assert self._job_fd is not None
        self.job = job
        limit = int(job["limits"]["output_bytes"])
        self.stdout, self.stderr = _Capture(limit), _Capture(limit)
        self.result = _Capture(int(job["limits"]["result_bytes"]))
        out_r, err_r, result_r = self._pipes
        self.captures = {out_r: self.stdout, err_r: self.stderr, result_r: self.result}
        for fd in self.captures:
            os.set_blocking(fd, False)
        self.started = time.perf_counter()
        self.deadline = self.started + float(job["timeout"])
        with os.fdopen(self._job_fd, "wb") as job_pipe:
            job_pipe.write(encode(job))
        self._job_fd = None

    def discard(self) -> None:
        """Dismiss a runner that never got a job."""
        if self._job_fd is not None:
            os.close(self._job_fd)  # it reads EOF and exits
            self._job_fd = None
        self.kill()
        with contextlib.suppress(ChildProcessError):
            os.waitpid(self.pid, 0)
        for fd in (*self._pipes, *([self.pidfd] if self.pidfd is not None else [])):
            os.close(fd)

    @property
    def open_fds(self) -> list[int]:
        return list(self.captures)

    def read(self, fd: int) -> bool:
        """Take what the runner wrote on `fd`; False once the pipe is closed (then `close` it)."""
        capture = self.captures[fd]
        while True:
            try:
                chunk = os.read(fd, _READ_CHUNK)
            except BlockingIOError:
                return True
            if not chunk:
                return False
            capture.add(chunk)

    def close(self, fd: int) -> None:
        del self.captures[fd]
        os.close(fd)

    def reap(self) -> bool:
        """Whether the runner has exited (collecting its status and resource usage if so)."""
        if self.status is None:
            pid, status, rusage = os.wait4(self.pid, os.WNOHANG)
            if pid:
                self.status, self.rusage = status, rusage
                self.duration = time.perf_counter() - self.started
        return self.status is not None

    def kill(self, timed_out: bool = False) -> None:
        self.timed_out = self.timed_out or timed_out
        with contextlib.suppress(ProcessLookupError, PermissionError):
            os.killpg(self.pid, signal.SIGKILL)

    @property
    def answered(self) -> bool:
        """The script finished and wrote its outcome (the runner only exits now)."""
        return bool(self.captures) and self.result_fd not in self.captures and self.result.size > 0

    def finish(
        self,
        send: Callable[[Report], None],
        other_runners: set[int],
        *,
        wait: bool = True,
    ) -> bool:
        """Report, and kill whatever the script left behind.

        A script that answered is reported at once (its output was flushed before its answer);
        otherwise everything is killed first, so the report can say how the run ended. Returns
        whether the run is cleaned up: with `wait=False`, one that answered is only killed, and
        the caller cleans up (`clean_up`) once the runner's pidfd says it is gone. Taking down a
        sandbox's namespaces takes the kernel milliseconds; a fork server that waited for it
        would keep every other run waiting too.
        """
        if self.duration is None:
            self.duration = self.elapsed
        if self.answered and not self.timed_out:
            for fd in self.open_fds:
                self.read(fd)
            send(self.report())
            if not wait and self.pidfd is not None:
                self.kill()
                return False
            self.clean_up(other_runners)
        else:
            self.clean_up(other_runners)
            send(self.report())
        return True

    def clean_up(self, other_runners: set[int]) -> None:
        self.kill()  # the script's whole process group, whether or not the runner is gone
        if self.status is None:
            with contextlib.suppress(ChildProcessError):
                _, self.status, self.rusage = os.wait4(self.pid, 0)
        if not self.contained:
            kill_orphans(other_runners)
        for fd in self.open_fds:  # every writer is gone now: what is left ends in EOF
            for _ in range(1000):  # unless a writer could not be killed (uninterruptible sleep)
                if not self.read(fd):
                    break
                time.sleep(0.001)
            self.close(fd)
        if self.pidfd is not None:
            os.close(self.pidfd)
            self.pidfd = None

    def remove_scratch(self) -> None:
        """Separate from `finish`, so the report can go out before the disk work."""
        if self.job is not None:
            remove_tree(os.path.join(self.jobs, self.job["run"]))

    @property
    def elapsed(self) -> float:
        return time.perf_counter() - self.started

    def report(self) -> Report:
        assert self.job is not None, "a runner that never got a job has nothing to report"
        duration = self.duration if self.duration is not None else self.elapsed
        report: Report = {
            "duration": duration,
            "stdout": self.stdout.text(),
            "stderr": self.stderr.text(),
            # From the runner's own account when it answered before we reaped it.
            "peak_memory_kb": self.rusage.ru_maxrss if self.rusage is not None else None,
            "timed_out": self.timed_out,
        }
        if self.timed_out:
            timeout = float(self.job["timeout"])
            report["ok"], report["error"] = False, f"Script timed out after {timeout:g} seconds"
        elif self.result.truncated:
            report["ok"] = False
            report["error"] = "The script's result is larger than the result size limit"
        elif self.result.size:
            # Passed on as it came, never parsed here: a malformed answer fails its own run only,
            # in the service, and cannot take the fork server down with it.
            report["answer"] = base64.b64encode(b"".join(self.result.chunks)).decode("ascii")
        else:
            cpu_limit = self.job["limits"].get("cpu_seconds")
            used = self.rusage.ru_utime + self.rusage.ru_stime if self.rusage else 0.0
            # The kernel counts CPU time in ticks: what rusage says may fall a little short.
            over_cpu = cpu_limit is not None and used >= 0.8 * float(cpu_limit)
            report["ok"], report["error"] = False, _death_cause(self.status, over_cpu)
        return report


def remove_tree(path: str | os.PathLike[str]) -> None:
    """Delete a directory tree whatever modes were left on it (read-only checkouts, a chmod 000),
    without following its links, however deep it is (no recursion), and never raise: what cannot
    be removed stays, the caller goes on."""
    folders, pending = [], [os.fspath(path)]
    while pending:
        folder = pending.pop()
        with contextlib.suppress(OSError):
            if os.path.islink(folder):
                os.unlink(folder)
                continue
            os.chmod(folder, 0o700)
            folders.append(folder)
            with os.scandir(folder) as entries:
                for entry in entries:
                    if entry.is_dir(follow_symlinks=False):
                        pending.append(entry.path)
                    else:
                        with contextlib.suppress(OSError):
                            os.unlink(entry.path)
    for folder in reversed(folders):
        with contextlib.suppress(OSError):
            os.rmdir(folder)


def supervise(config: sandbox.SandboxConfig, job: Job) -> Report:
    """Run one job to its end in this process (the fresh-interpreter engine)."""
    become_subreaper()
    try:
        shared = sandbox.prepare(config, sandbox.Outcome(), required=True)
    except OSError as exc:
        remove_tree(os.path.join(config.jobs, job["run"]))
        error = f"The run's sandbox could not be set up: {exc}"
        return {"duration": 0.0, "stdout": "", "stderr": "", "timed_out": False, "ok": False,
                "error": error}  # fmt: skip
    run = Run(config, shared, int(job["slot"]))
    run.start(job)

    def on_terminate(signum: int, frame: Any) -> None:  # the service cancelled the run
        run.kill()
        if not run.contained:
            kill_orphans(set())
        remove_tree(os.path.join(config.jobs, job["run"]))
        os._exit(1)

    signal.signal(signal.SIGTERM, on_terminate)
    # Until the runner has exited: then everything it wrote is in the pipes, and `finish` drains
    # them (after killing anything it left behind that still holds them open).
    while not run.reap():
        remaining = run.deadline - time.perf_counter()
        if remaining <= 0:
            run.kill(timed_out=True)
            break
        watched = run.open_fds + ([run.pidfd] if run.pidfd is not None else [])
        wait = min(remaining, 0.05 if run.pidfd is not None else 0.002)
        for fd in select.select(watched, [], [], wait)[0]:
            if fd != run.pidfd and not run.read(fd):
                run.close(fd)
    reports: list[Report] = []
    run.finish(reports.append, other_runners=set())
    run.remove_scratch()
    return reports[0]


def _death_cause(status: int | None, over_cpu: bool = False) -> str:
    if status is not None and os.WIFSIGNALED(status):
        number = os.WTERMSIG(status)
        name = (
            signal.Signals(number).name if number in signal.Signals._value2member_map_ else number
        )
        if over_cpu and name in ("SIGKILL", "SIGXCPU"):  # the hard CPU limit kills at once
            return f"The script's process was terminated by signal {name} (CPU time limit exceeded)"
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
    config = sandbox.SandboxConfig.from_json(sys.argv[1] if len(sys.argv) > 1 else "")
    Packages.from_json(sys.argv[2] if len(sys.argv) > 2 else "").use()
    job = read_job(sys.stdin.buffer)
    report = supervise(config, job)
    sys.stdout.buffer.write(encode(report))
    sys.stdout.buffer.flush()


if __name__ == "__main__":
    main()
