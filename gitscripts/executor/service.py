"""Run a script's `main(data)` as it is at a revision: resolve, check out, admit, run, report."""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import math
import os
import time
import uuid
from pathlib import Path
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool

from gitscripts import errors
from gitscripts.config import Settings
from gitscripts.executor.checkout import CheckoutCache, remove_tree
from gitscripts.executor.engines import Engine, ForkServerEngine, SubprocessEngine
from gitscripts.files.grants import FileGrants
from gitscripts.repo import Repository, layout, rules

log = structlog.get_logger("gitscripts.executor")

_PR_SET_DUMPABLE = 4
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


class Admission:
    """At most `slots` executions at once; at most `queue` more waiting; beyond that, refuse.

    A refusal's Retry-After is how long the runs waiting now take to start, at the pace the queue
    has been moving; `refusal` lets the gate in front of the app refuse the same way before any
    work is done for a run (see `gitscripts.executor.gate`).
    """

    def __init__(self, slots: int, queue: int) -> None:
        self._semaphore = asyncio.Semaphore(slots)
        self._queue = queue
        self.capacity = slots + queue  # runs held at most: running and waiting
        self._waiting = 0
        # Seconds between two runs finishing while others waited (smoothed), and when the last
        # such run finished: how fast the queue moves.
        self._pace = 0.0
        self._last_queued_exit: float | None = None

    def expected_wait(self) -> float:
        """Seconds until a run queued now would start, at the pace the queue has been moving
        (0 before it has been seen moving)."""
        return (self._waiting + 1) * self._pace

    def refusal(self, answered_in: float = 0.0) -> errors.TooManyExecutions:
        """The 429 for a run refused now and answered `answered_in` seconds from now."""
        retry_after = max(1, math.ceil(self.expected_wait() - answered_in))
        return errors.TooManyExecutions(
            "Too many executions are running or waiting; try again shortly",
            queue_limit=self._queue,
            retry_after=retry_after,
        )

    async def __aenter__(self) -> None:
        if self._semaphore.locked():
            if self._waiting >= self._queue:
                raise self.refusal()
            self._waiting += 1
            try:
                await self._semaphore.acquire()
            finally:
                self._waiting -= 1
        else:
            await self._semaphore.acquire()

    async def __aexit__(self, *exc: object) -> None:
        now = time.monotonic()
        if self._waiting:
            # Busy all along since the previous such exit: the gap is the queue's pace.
            if self._last_queued_exit is not None:
                gap = now - self._last_queued_exit
                self._pace = 0.8 * self._pace + 0.2 * gap if self._pace else gap
            self._last_queued_exit = now
        else:
            self._last_queued_exit = None
        self._semaphore.release()


def _outside_data_dir(settings: Settings) -> list[str]:
    """The local file store, when it lives outside DATA_DIR (which is hidden as a whole)."""
    files = settings.local_files_dir
    if files is None:
        return []
    files, data = files.resolve(), settings.data_dir.resolve()
    return [] if files == data or data in files.parents else [str(files)]


def _remove_abandoned(base: Path) -> None:
    for folder in base.glob("pid-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            remove_tree(folder)


class ExecutionService:
    def __init__(self, settings: Settings, repo: Repository, file_grants: FileGrants) -> None:
        self.settings = settings
        self.repo = repo
        self.file_grants = file_grants
        # Not dumpable: another process of the same user (a script, when the service does not
        # run as root) can then not read this process's environment or memory through /proc.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
        # Each service process has its own folder, so two processes on one data directory never
        # evict each other's checkouts; folders of processes that are gone are cleared away.
        base = settings.execution_root
        base.mkdir(parents=True, exist_ok=True, mode=0o711)
        _remove_abandoned(base)
        root = base / f"pid-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        root.mkdir(mode=0o711)
        self.root = root
        self.scratch_root = root / "scratch"
        self.scratch_root.mkdir(exist_ok=True, mode=0o700)
        self.checkouts = CheckoutCache(repo.git, root / "trees", settings.checkout_cache_bytes)
        # The fork server's socket lives apart, so runners can be denied the way to it.
        control = root / "control"
        control.mkdir(exist_ok=True, mode=0o700)
        self.sandbox = {
            "readonly": [str(self.checkouts.root)],
            "hidden": [
                str(settings.data_dir.resolve()),
                str(control),
                *_outside_data_dir(settings),
            ],
        }
        self.admission = Admission(
            settings.max_concurrent_executions, settings.max_queued_executions
        )
        env = self._base_env = self._worker_environment()
        preload = [m.strip() for m in settings.preload_modules.split(",") if m.strip()]
        self.engine: Engine = (
            ForkServerEngine(control / "zygote.sock", preload, env, self.sandbox)
            if settings.executor == "fork"
            else SubprocessEngine(env)
        )

    def _worker_environment(self) -> dict[str, str]:
        """What the worker processes start with: no server secret, no server variable."""
        env = {
            "PATH": _SAFE_PATH,
            "LANG": "C.UTF-8",
            "PYTHONIOENCODING": "utf-8",
            # One thread per numeric library: each run is its own process already.
            "OPENBLAS_NUM_THREADS": "1",
            "OMP_NUM_THREADS": "1",
            "MKL_NUM_THREADS": "1",
        }
        for name in self.settings.execution_env_passthrough.split(","):
            name = name.strip()
            if name and name in os.environ:
                env[name] = os.environ[name]
        return env

    async def start(self) -> None:
        await self.engine.start()

    async def stop(self) -> None:
        await self.engine.stop()
        await run_in_threadpool(remove_tree, self.root)
        with contextlib.suppress(OSError):  # the shared folder goes with its last user
            self.root.parent.rmdir()

    def _locate(self, logical_path: str, revision: str) -> tuple[Any, str]:
        commit = self.repo.resolve(revision)
        parts = logical_path.split("/")
        runnable = (
            logical_path.endswith(rules.SCRIPT_SUFFIX)
            and all(rules.name_problem(part) is None for part in parts)
            and not rules.is_helper_module(parts[-1])
        )
        if runnable and self.repo.is_file(commit.tree, logical_path):
            return commit, logical_path
        if runnable or not layout.is_script_path(logical_path):
            raise errors.ScriptNotFound(
                f"Script '{logical_path}' not found at revision {revision}",
                logical_path=logical_path,
                revision=revision,
            )
        raise errors.ScriptNotFound(
            f"'{logical_path}' is a helper module: scripts can import it, but it cannot be run",
            logical_path=logical_path,
        )

    async def execute(
        self,
        user: dict[str, Any] | None,
        logical_path: str,
        data: Any,
        revision: str | None = None,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        limit = self.settings.max_script_execution_time
        if timeout is not None and not 0 < timeout < float("inf"):  # NaN fails this too
            raise errors.ValidationError("timeout must be a positive number of seconds")
        timeout = min(timeout or limit, limit)  # a request may ask for less, never more
        revision = revision or "main"
        commit, path = self._locate(logical_path, revision)
        started = time.perf_counter()
        report: dict[str, Any] = {}
        outcome = "failed"  # what the log says of a run that raised before it reported
        try:
            async with self.admission:
                # Writing a checkout out is disk work for a thread; finding one ready is not.
                if self.checkouts.is_ready(commit.tree):
                    root = self.checkouts.lease(commit.tree)
                else:
                    root = await run_in_threadpool(self.checkouts.lease, commit.tree)
                try:
                    # The script reaches the file store as the user who ran it, for this run only.
                    files_token = self.file_grants.issue(user["id"] if user else None, timeout)
                    try:
                        job = self._job(root, path, data, timeout, files_token)
                        report = await self.engine.run(job)
                    finally:
                        self.file_grants.revoke(files_token)
                finally:
                    if self.checkouts.release(commit.tree):
                        await run_in_threadpool(self.checkouts.evict)
            outcome = (
                "success"
                if report.get("ok")
                else ("timeout" if report.get("timed_out") else "error")
            )
        except asyncio.CancelledError:
            outcome = "cancelled"  # its client went away
            raise
        except errors.TooManyExecutions:
            outcome = "refused"
            raise
        finally:
            # Every run is logged, whatever became of it.
            log.info(
                "execution",
                script=path,
                revision=str(commit.id),
                outcome=outcome,
                duration_ms=round(report["duration"] * 1000, 2) if report else None,
                total_ms=round((time.perf_counter() - started) * 1000, 2),
                peak_memory_kb=report.get("peak_memory_kb"),
                user=user["login"] if user else None,
            )
        return {
            "success": bool(report.get("ok")),
            "result": report.get("result") if report.get("ok") else None,
            "error": None if report.get("ok") else report.get("error"),
            "execution_time": round(report["duration"], 6),
            "revision": str(commit.id),
            "stdout": report.get("stdout", ""),
            "stderr": report.get("stderr", ""),
        }

    def _job(
        self, root: Any, path: str, data: Any, timeout: float, files_token: str
    ) -> dict[str, Any]:
        scratch = str(self.scratch_root / uuid.uuid4().hex)
        settings = self.settings
        env = {
            **self._base_env,
            "HOME": scratch,
            "TMPDIR": scratch,
            # What `gitscripts.runtime.files` talks to: the service itself, with a token that only
            # the file endpoints accept and that dies with this run.
            "FILES_API_URL": settings.internal_url,
            "FILES_API_TOKEN": files_token,
        }
        return {
            "root": str(root),
            "path": path,
            "data": data,
            "timeout": timeout,
            "scratch": scratch,
            "env": env,
            "sandbox": self.sandbox,
            "limits": {
                "memory_bytes": settings.execution_memory_limit_mb * 1024 * 1024,
                "cpu_seconds": settings.execution_cpu_limit_seconds or max(1, int(timeout) + 1),
                "processes": settings.execution_max_processes if os.getuid() != 0 else None,
                "file_size_bytes": settings.execution_max_file_size_mb * 1024 * 1024,
                "output_bytes": settings.execution_output_limit_bytes,
                "result_bytes": settings.execution_result_limit_bytes,
            },
        }
