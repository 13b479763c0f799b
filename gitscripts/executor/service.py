"""Run a script's `main(data)` as it is at a revision: resolve, check out, admit, run, report."""

from __future__ import annotations

import asyncio
import base64
import collections
import contextlib
import ctypes
import json
import math
import os
import sys
import time
import urllib.parse
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import structlog
from starlette.concurrency import run_in_threadpool

import gitscripts
from gitscripts import access, errors
from gitscripts.cluster.jobs import ClusterJob
from gitscripts.config import ConfigurationError, Settings
from gitscripts.deps import locks, metadata
from gitscripts.deps.environments import Environment, Environments
from gitscripts.executor import cgroups, sandbox
from gitscripts.executor.checkout import CheckoutCache, TreeSource
from gitscripts.executor.engines import (
    Engine,
    EngineUnresponsive,
    ForkServerEngine,
    SubprocessEngine,
)
from gitscripts.executor.pool import EnvironmentEngines, engine_maker
from gitscripts.executor.protocol import Answer, Handover, Job, Limits, Report
from gitscripts.executor.worker import JOB_FILE, remove_tree
from gitscripts.files.grants import FileGrants
from gitscripts.repo import Repository, layout, rules
from gitscripts.repo.trees import TreeReader

if TYPE_CHECKING:
    from gitscripts.cluster.dispatch import Cluster

log = structlog.get_logger("gitscripts.executor")

_PR_SET_DUMPABLE = 4
_SAFE_PATH = "/usr/local/bin:/usr/bin:/bin"


class Admission:
    """At most `slots` executions at once; at most `queue` more waiting; beyond that, refuse.

    A refusal's Retry-After is how long the runs waiting now take to start, at the pace the queue
    has been moving; `refusal` lets the gate in front of the app refuse the same way before any
    work is done for a run (see `gitscripts.executor.gate`). The number of slots can change while
    runs hold them (`resize`: a cluster's workers come and go).
    """

    def __init__(self, slots: int, queue: int) -> None:
        self._slots = slots
        self._free = slots  # below 0 after a shrink, until enough runs have ended
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
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

    @property
    def waiting(self) -> int:
        """Runs waiting for a place now."""
        return self._waiting

    def full(self) -> bool:
        """Whether a run arriving now would be refused."""
        return self._free <= 0 and self._waiting >= self._queue

    def resize(self, slots: int) -> None:
        """Let `slots` runs at once from now on; runs holding a place keep it."""
        self._free += slots - self._slots
        self._slots = slots
        self.capacity = slots + self._queue
        self._wake()

    def _wake(self) -> None:
        while self._free > 0 and self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                self._free -= 1
                waiter.set_result(None)

    async def __aenter__(self) -> None:
        if self._free > 0 and not self._waiters:
            self._free -= 1
            return
        if self.full():
            raise self.refusal()
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        self._waiting += 1
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # given a place as it was cancelled
                self._release()
            raise
        finally:
            self._waiting -= 1
            with contextlib.suppress(ValueError):
                self._waiters.remove(waiter)

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
        self._release()

    def _release(self) -> None:
        self._free += 1
        self._wake()


def _protected(settings: Settings, execution_root: Path) -> list[Path]:
    """What no run may see: the data directory, the local file store, the execution root."""
    paths = [settings.data_dir.resolve(), execution_root.resolve()]
    if settings.local_files_dir is not None:
        paths.append(settings.local_files_dir.resolve())
    return paths


def _python_paths(protected: list[Path]) -> list[str]:
    """What a run needs of Python, read-only: the installation's prefixes (the standard library,
    site-packages) and the gitscripts package, nothing else.

    Not every `sys.path` folder: an editable install puts the project's own folder there, with
    whatever lies beside the code (a `.env` with the service's secrets, the data directory).
    """
    prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
    shown = {Path(gitscripts.__file__).resolve().parent}
    shown |= {p for p in prefixes if not any(p == q or p in q.parents for q in protected)}
    # Shortest first: a folder is mounted before anything inside it (which then needs no mount).
    return sorted((str(p) for p in shown), key=len)


def _remove_abandoned(base: Path) -> None:
    for folder in base.glob("pid-*"):
        pid = folder.name.split("-")[1]
        if pid.isdigit() and not Path(f"/proc/{pid}").exists():
            remove_tree(folder)


class ExecutionService:
    """Runs scripts: admission, checkouts, the sandbox's set-up and report, the engine."""

    def __init__(
        self,
        settings: Settings,
        repo: Repository | None,
        file_grants: FileGrants,
        environments: Environments | None = None,
        trees: TreeSource | None = None,
    ) -> None:
        """`repo` is the repository runs are resolved in; a cluster worker has none: it runs
        trees the service names, read from `trees` (fetched from the service). `environments`:
        where scripts with dependencies get theirs (on a cluster worker: its own, built from the
        locks the service sends; with EXECUTOR=dask the service builds none)."""
        self.settings = settings
        self.repo = repo
        self.file_grants = file_grants
        self.environments = environments
        # By blob id (content never changes under an id): a script's block when it declares
        # dependencies (None: the default environment), a lock resolved for a script committed
        # without one. So a script without a block costs a run a tree lookup
        # and a dict lookup, nothing more.
        self._declared: dict[str, metadata.ScriptMetadata | None] = {}
        self._resolved: dict[str, asyncio.Task[bytes]] = {}  # one resolution however many ask
        # Not dumpable: another process of the same user (a script, when the service does not
        # run as root) can then not read this process's environment or memory through /proc.
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None).prctl(_PR_SET_DUMPABLE, 0, 0, 0, 0)
        # Each service process has its own folder, so two processes on one data directory never
        # evict each other's checkouts; folders of processes that are gone are cleared away.
        base = settings.execution_root
        # Private to the service: runs see only what their sandbox binds in from here.
        base.mkdir(parents=True, exist_ok=True, mode=0o700)
        _remove_abandoned(base)
        root = base / f"pid-{os.getpid()}-{uuid.uuid4().hex[:6]}"
        root.mkdir(mode=0o700)
        self.root = root
        self.scratch_root = root / "scratch"
        # Others may pass through (not list): a sandboxed run, under its slot's own uid, takes
        # its job from its own folder in here, whose random name only it is told.
        self.scratch_root.mkdir(exist_ok=True, mode=0o711)
        self.scratch_root.chmod(0o711)
        if trees is None:
            assert repo is not None, "runs need a repository or a source of trees"
            trees = TreeReader(repo.git)
        self.checkouts = CheckoutCache(trees, root / "trees", settings.checkout_cache_bytes)
        # The fork server's socket lives apart, so runners can be denied the way to it.
        control = root / "control"
        control.mkdir(exist_ok=True, mode=0o700)
        self._control = control
        mount_point = root / "run-root"
        mount_point.mkdir(exist_ok=True, mode=0o755)
        self.mode = settings.sandbox_mode
        # Where a run without network finds the file API (the app serves it there, see app.py).
        self.files_socket = root / "files.sock"
        self.sandbox = sandbox.SandboxConfig(
            enabled=self.mode != "off",
            network=settings.execution_network,
            readonly=_python_paths(_protected(settings, base)),
            checkouts=str(self.checkouts.root),
            files_socket=str(self.files_socket),
            service_port=settings.port,
            mount_point=str(mount_point),
            uid_base=settings.execution_uid_base,
            tmp_size_bytes=settings.execution_tmp_size_mb << 20,
            scratch_size_bytes=settings.execution_scratch_size_mb << 20,
            jobs=str(self.scratch_root),
            slots=settings.max_concurrent_executions,
            limits=self._limits(settings.max_script_execution_time),
        )
        self.protections: dict[str, Any] = {"sandbox": self.mode}
        # Free slots, least recently used first: a slot's next runner (sandbox and all) is built
        # by the fork server once its run ends, so the slot that rested longest is the readiest.
        self._slots = collections.deque(range(settings.max_concurrent_executions))
        self._cgroups = cgroups.SlotCgroups()
        self.admission = Admission(
            settings.max_concurrent_executions, settings.max_queued_executions
        )
        self._base_env = self._worker_environment()
        self.engine: Engine | None = None
        # EXECUTOR=dask: runs go to the cluster's workers (`gitscripts.cluster`), not an engine.
        self.cluster: Cluster | None = None
        if settings.executor == "dask":
            from gitscripts.cluster.dispatch import Cluster  # the optional extra, only here

            self.cluster = Cluster(settings, self.admission)
        self.environment_engines = (
            None
            if environments is None
            else EnvironmentEngines(
                environments,
                engine_maker(settings.executor, root, self._base_env, lambda: self.sandbox),
                settings.execution_max_environments,
                settings.environment_idle_seconds,
            )
        )

    @property
    def running(self) -> int:
        """Runs holding a slot now (on the cluster's workers, with EXECUTOR=dask)."""
        if self.cluster is not None:
            return self.cluster.running
        return self.settings.max_concurrent_executions - len(self._slots)

    @property
    def waiting(self) -> int:
        """Runs waiting for a slot now (and, with EXECUTOR=dask, for a worker to appear)."""
        return self.admission.waiting + (self.cluster.waiting if self.cluster else 0)

    @property
    def warm_fork_servers(self) -> int:
        """Fork servers alive and ready to fork runs: the default one and the environments'
        (none with the subprocess engine)."""
        engine = self.engine
        if not isinstance(engine, ForkServerEngine):
            return 0
        zygote = engine._zygote  # engines.py says nothing of its health otherwise
        warm_environments = self.environment_engines.warm if self.environment_engines else 0
        return int(zygote is not None and zygote.returncode is None) + warm_environments

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
        """Find out which protections this machine gives, refuse to start if strict and one is
        missing, say which are active, and start the engine with them. With EXECUTOR=dask, connect
        to the cluster instead: its workers run the scripts, each in its own sandbox."""
        if self.cluster is not None:
            self.protections = {"sandbox": "on the cluster's workers", "active": {}, "inactive": {}}
            await self.cluster.start()
            return
        if self.mode != "off":
            if os.geteuid() == 0:
                settings = self.settings
                self._cgroups = await run_in_threadpool(
                    cgroups.prepare,
                    settings.max_concurrent_executions,
                    settings.execution_memory_limit_mb << 20,
                    settings.execution_max_processes,
                )
            self.sandbox = sandbox.SandboxConfig(
                **{**self.sandbox.__dict__, "cgroups": dict(self._cgroups.parents)}
            )
            self.sandbox = await self._probe()
        self._log_protections()
        preload = [m.strip() for m in self.settings.preload_modules.split(",") if m.strip()]
        self.engine = (
            ForkServerEngine(self._control / "zygote.sock", preload, self._base_env, self.sandbox)
            if self.settings.executor == "fork"
            else SubprocessEngine(self._base_env, self.sandbox)
        )
        await self.engine.start()

    async def _probe(self) -> sandbox.SandboxConfig:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-I", "-m", "gitscripts.executor.sandbox", "probe",
            self.sandbox.to_json(),
            stdin=asyncio.subprocess.DEVNULL, stdout=asyncio.subprocess.PIPE,
            env=self._base_env,
        )  # fmt: skip
        output, _ = await asyncio.wait_for(process.communicate(), timeout=60)
        try:
            found = json.loads(output)
        except ValueError:
            found = {"applied": {}, "refused": {"error": "the sandbox probe did not answer"}}
        applied: dict[str, str] = found["applied"]
        refused: dict[str, str] = found["refused"]
        if self._cgroups.unavailable or not self._cgroups.parents:
            refused.setdefault(
                "cgroup", self._cgroups.unavailable or "not root: rlimits bound each process"
            )
        essential = list(sandbox.ESSENTIAL)
        if self.settings.execution_network != "host":
            essential.append("network_isolated")
        missing = {name: refused.get(name, "not applied") for name in essential
                   if name not in applied}  # fmt: skip
        self.protections = {
            "sandbox": self.mode,
            "network": self.settings.execution_network,
            "uid": "pool" if os.geteuid() == 0 else "service",
            "active": applied,
            "inactive": refused,
        }
        if missing and self.mode == "strict":
            problems = "; ".join(f"{name}: {reason}" for name, reason in missing.items())
            raise ConfigurationError(
                f"EXECUTION_SANDBOX=strict, but this machine refuses: {problems}. "
                "Allow it (user namespaces, seccomp), or set EXECUTION_SANDBOX=auto to run "
                "with the protections that remain"
            )
        return sandbox.SandboxConfig(**{**self.sandbox.__dict__, "skip": sorted(refused)})

    def _log_protections(self) -> None:
        if self.mode == "off":
            self.protections = {"sandbox": "off", "active": {}, "inactive": {}}
            log.warning(
                "sandbox_off",
                message="EXECUTION_SANDBOX=off: scripts run with the service's own privileges "
                "and can read and change its data, secrets and other runs. Use this only for a "
                "single trusted user.",
            )
            return
        inactive = self.protections["inactive"]
        log.info(
            "sandbox",
            mode=self.mode,
            network=self.settings.execution_network,
            active=sorted(self.protections["active"]),
            inactive=inactive,
        )
        if inactive:
            log.warning("sandbox_incomplete", inactive=inactive)

    async def stop(self) -> None:
        if self.cluster is not None:
            await self.cluster.stop()
        if self.environment_engines is not None:
            await self.environment_engines.stop()
        if self.engine is not None:
            await self.engine.stop()
        await run_in_threadpool(remove_tree, self.root)
        self._cgroups.remove()
        with contextlib.suppress(OSError):  # the shared folder goes with its last user
            self.root.parent.rmdir()

    def _locate(self, logical_path: str, revision: str) -> tuple[Any, str]:
        assert self.repo is not None, "a cluster worker resolves no revisions"
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

    def target(
        self,
        logical_path: str,
        revision: str | None = None,
        timeout: float | None = None,
        limit: float | None = None,
    ) -> Target:
        """What a run of `logical_path` at `revision` executes, checked before anything runs: the
        commit, the script's path in it and the timeout (a request may ask for less than `limit`,
        never more; default MAX_SCRIPT_EXECUTION_TIME)."""
        limit = limit or self.settings.max_script_execution_time
        if timeout is not None and not 0 < timeout < float("inf"):  # NaN fails this too
            raise errors.ValidationError("timeout must be a positive number of seconds")
        revision = revision or "main"
        commit, path = self._locate(logical_path, revision)
        resources, retries = None, None
        if self.settings.executor == "dask":  # where its runs may go (see `gitscripts.cluster`)
            assert self.repo is not None
            stated = self.repo.script_metadata(commit.tree, path)
            resources, retries = stated.resources, stated.worker_lost_retries
        return Target(commit, path, revision, min(timeout or limit, limit), resources, retries)

    async def run(
        self,
        user: access.User | None,
        target: Target,
        data: Any,
        on_start: Callable[[], None] | None = None,
        patient: bool = False,
    ) -> RunResult:
        """Admit the run, then run it in a free slot; `on_start` is called once it has a slot
        (a run refused by admission never starts). On a cluster with no worker, a run waits
        DASK_CAPACITY_WAIT for one, then is refused; a `patient` one waits as long as it takes."""
        started = time.perf_counter()
        report: RunResult | None = None
        outcome = "failed"  # what the log says of a run that raised before it reported
        environment: tuple[Environment, list[str]] | None = None
        try:
            # Before it takes a place: a lock resolved, or a build others wait for, holds no slot.
            needs = await self._needs(target)
            if self.cluster is not None:
                await self.cluster.wait_for_capacity(patient, target.resources)
            elif needs is not None:
                with self._explained(target, needs):
                    environment = await self._environment(needs)
            async with self.admission:
                if on_start is not None:
                    on_start()
                if self.cluster is not None:
                    with self._explained(target, needs):
                        report = await self._run_on_cluster(user, target, data, needs)
                else:
                    slot = self._slots.popleft()
                    try:
                        report = await self._run_in_slot(
                            slot, user, target.commit, target.path, data, target.timeout,
                            environment,
                        )  # fmt: skip
                    finally:
                        self._slots.append(slot)
            outcome = "success" if report.ok else ("timeout" if report.timed_out else "error")
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
                script=target.path,
                revision=str(target.commit.id),
                outcome=outcome,
                duration_ms=round(report.duration * 1000, 2) if report else None,
                total_ms=round((time.perf_counter() - started) * 1000, 2),
                peak_memory_kb=report.peak_memory_kb if report else None,
                user=user.login if user else None,
                environment=report.environment if report else None,
                worker=report.worker if report else None,
            )
        return report

    def _may_preload(self, module: str) -> bool:
        """Whether the operator trusts `module` to be imported in a fork server (ENVIRONMENT_PRELOAD):
        a package a user names could be anyone's, and its import-time code runs there unsandboxed."""
        trusted = {name.strip() for name in self.settings.environment_preload.split(",")}
        return "*" in trusted or module in trusted

    async def _needs(self, target: Target) -> Needs | None:
        """What a run of `target` needs beyond the default environment (None: nothing): the
        script's lock at the same revision (resolved now, once per script content, when the
        revision has none) and the modules its block names."""
        assert self.repo is not None, "a cluster worker resolves no scripts"
        tree, path = target.commit.tree, target.path
        blob_id, declared = self._declared_block(target)
        if declared is None:
            return None
        lock_id = self.repo.entry_id(tree, locks.lock_path(path))
        if lock_id is None:
            lock = await asyncio.shield(self._resolution(blob_id, path))
            return Needs(lock, list(declared.import_guesses), in_tree=False)
        return Needs(self.repo.blob(lock_id), list(declared.import_guesses), in_tree=True)

    async def _environment(self, needs: Needs) -> tuple[Environment, list[str]]:
        """The environment of `needs.lock`, built (or its build waited for), with what its engine
        may preload; `EnvironmentBuildFailed` when it cannot be built."""
        assert self.environments is not None and self.environment_engines is not None
        key = locks.environment_key(needs.lock)
        preload = [name for name in needs.imports if self._may_preload(name)]
        if self.environment_engines.is_warm(key):  # built: its engine uses it
            return Environment(key, self.environments.root / key), preload
        return await self.environments.ensure(needs.lock), preload

    @staticmethod
    @contextlib.contextmanager
    def _explained(target: Target, needs: Needs | None) -> Iterator[None]:
        """A failed build, told as the run's: which script, which lock, which revision (wherever
        it was built: here, or on a cluster worker)."""
        try:
            yield
        except errors.EnvironmentBuildFailed as exc:
            if needs is None:
                raise
            lock_path = locks.lock_path(target.path)
            at = str(target.commit.id)[:12]
            where = f"{lock_path} at {at}"
            if not needs.in_tree:
                where = f"the lock resolved for {target.path} at {at}"
            raise errors.EnvironmentBuildFailed(
                f"{target.path} cannot run: the environment of {where} could not be built "
                f"({exc.message}); see the log",
                script=target.path,
                lock=lock_path if needs.in_tree else None,
                revision=str(target.commit.id),
                **exc.details,
            ) from None

    def _declared_block(self, target: Target) -> tuple[str, metadata.ScriptMetadata | None]:
        """The script's blob id, and its PEP 723 block when it declares dependencies (read
        once per blob)."""
        assert self.repo is not None, "a cluster worker resolves no scripts"
        blob_id = self.repo.entry_id(target.commit.tree, target.path)
        assert blob_id is not None, "a target names a script of its commit"
        try:
            return blob_id, self._declared[blob_id]
        except KeyError:
            return blob_id, self._read_block(blob_id)

    def _read_block(self, blob_id: str) -> metadata.ScriptMetadata | None:
        assert self.repo is not None, "a cluster worker resolves no scripts"
        found = metadata.read(
            self.repo.blob(blob_id),
            allow_direct_references=self.settings.packages_allow_direct_references,
        )
        declared = found if found is not None and found.has_dependencies else None
        if len(self._declared) > 100_000:
            self._declared.clear()
        self._declared[blob_id] = declared
        return declared

    def _resolution(self, blob_id: str, path: str) -> asyncio.Task[bytes]:
        """The lock of a script committed without one (before locks were, or behind the
        service), resolved as a write would, once per script content (a failure is not kept:
        the next run tries again)."""
        task = self._resolved.get(blob_id)
        if task is None:
            assert self.repo is not None, "a cluster worker resolves no scripts"
            source = self.repo.blob(blob_id)
            filename = os.path.basename(path)
            task = asyncio.ensure_future(
                run_in_threadpool(locks.resolve, self.settings, filename, source)
            )
            if len(self._resolved) > 10_000:
                self._resolved.clear()
            self._resolved[blob_id] = task

            def forget_failure(done: asyncio.Task[bytes]) -> None:
                if done.cancelled() or done.exception() is not None:
                    self._resolved.pop(blob_id, None)

            task.add_done_callback(forget_failure)
        return task

    async def _run_in_slot(
        self, slot: int, user: access.User | None, commit: Any, path: str, data: Any,
        timeout: float, environment: tuple[Environment, list[str]] | None,
    ) -> RunResult:  # fmt: skip
        # The script reaches the file store as the user who ran it, for this run only.
        files_token = self.file_grants.issue(user.id if user else None, timeout)
        try:
            limits = self._run_limits(timeout)
            tree_id = str(commit.tree.id)
            return await self._run_tree(
                slot, tree_id, path, data, timeout, files_token, limits, environment
            )
        finally:
            self.file_grants.revoke(files_token)

    async def _run_on_cluster(
        self, user: access.User | None, target: Target, data: Any, needs: Needs | None
    ) -> RunResult:
        assert self.cluster is not None
        files_token = self.file_grants.issue(user.id if user else None, target.timeout)
        try:
            return await self.cluster.run(
                {
                    "tree": str(target.commit.tree.id),
                    "path": target.path,
                    "data": data,
                    "timeout": target.timeout,
                    "files_token": files_token,
                    "limits": self._run_limits(target.timeout),
                    "lock": needs.lock if needs else None,
                    "imports": needs.imports if needs else [],
                },
                target.resources,
                target.retries,
            )
        finally:
            self.file_grants.revoke(files_token)

    async def run_job(self, job: ClusterJob) -> RunResult:
        """Run a job the service handed over whole (on a cluster worker: `gitscripts.cluster`):
        the tree is read from this service's source of trees, the file token is the service's,
        the environment is built here from the job's lock (before the run takes a slot)."""
        environment = None
        if job["lock"] is not None:
            environment = await self._environment(Needs(job["lock"], job["imports"], True))
        slot = self._slots.popleft()
        try:
            return await self._run_tree(
                slot, job["tree"], job["path"], job["data"], job["timeout"], job["files_token"],
                job["limits"], environment,
            )  # fmt: skip
        finally:
            self._slots.append(slot)

    async def _run_tree(
        self, slot: int, tree_id: str, path: str, data: Any, timeout: float, files_token: str,
        limits: Limits, environment: tuple[Environment, list[str]] | None = None,
    ) -> RunResult:  # fmt: skip
        assert self.engine is not None, "the execution service was not started"
        # Writing a checkout out is disk work for a thread; finding one ready is not.
        if self.checkouts.is_ready(tree_id):
            root = self.checkouts.lease(tree_id)
        else:
            root = await run_in_threadpool(self.checkouts.lease, tree_id)
        scratch = ""
        report: Report | None = None
        try:
            scratch = self._make_scratch()
            self._hand_over(scratch, data, files_token, sandbox.run_uid(self.sandbox, slot))
            job = self._job(root, path, timeout, os.path.basename(scratch), slot, limits)
            try:
                if environment is None:
                    report = await self.engine.run(job)
                else:
                    assert self.environment_engines is not None
                    async with self.environment_engines.engine(*environment) as engine:
                        report = await engine.run(job)
            except EngineUnresponsive as exc:
                # A fork server that died mid-run may leave runs of any slot behind.
                for each in range(self.settings.max_concurrent_executions):
                    self._cgroups.kill_strays(each)
                raise errors.InternalError(str(exc)) from None
        finally:
            if self.checkouts.release(tree_id):
                await run_in_threadpool(self.checkouts.evict)
            if scratch and report is None:  # the runner never took its job
                await run_in_threadpool(remove_tree, scratch)
        ended = _with_answer(report)
        return ended if environment is None else replace(ended, environment=environment[0].key)

    def _make_scratch(self) -> str:
        """The run's folder on the service's side: it holds only the job the runner takes from
        it. A sandboxed run never sees it: its scratch directory is a tmpfs of its own (see
        `sandbox.SCRATCH`); only EXECUTION_SANDBOX=off runs in this folder itself."""
        scratch = str(self.scratch_root / uuid.uuid4().hex)
        os.mkdir(scratch, 0o700)
        return scratch

    def _hand_over(self, scratch: str, data: Any, files_token: str, owner: int) -> None:
        """The job's confidential part goes to the run's runner through the run's folder, which
        only the run's uid (`owner`) can read: the fork server never holds a run's input or token
        (see `worker._take_job`)."""
        env = {  # HOME and TMPDIR: the run's scratch directory, set by the runner
            **self._base_env,
            # What `gitscripts.runtime.files` talks to: the service itself, with a token that only
            # the file endpoints accept and that dies with this run.
            "FILES_API_URL": self._files_url(),
            "FILES_API_TOKEN": files_token,
        }
        job: Handover = {"data": data, "env": env}
        try:
            body = orjson.dumps(job)
        except orjson.JSONEncodeError:  # an input deeper than orjson writes (255 levels)
            body = json.dumps(job).encode("utf-8")
        fd = os.open(os.path.join(scratch, JOB_FILE), os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            os.write(fd, body)
            if owner != os.geteuid():
                os.fchown(fd, owner, owner)
                os.chown(scratch, owner, owner)
        finally:
            os.close(fd)

    def _files_url(self) -> str:
        active = self.protections.get("active", {})
        if "network_isolated" not in active or "private_root" not in active:
            return self.settings.internal_url
        if self.settings.execution_network == "loopback-service":
            return f"http://127.0.0.1:{self.settings.port}"
        return "http+unix://" + urllib.parse.quote(sandbox.FILES_SOCKET_IN_RUN, safe="")

    def _job(
        self, root: Any, path: str, timeout: float, run: str, slot: int, limits: Limits
    ) -> Job:
        """What the fork server needs to supervise the run: nothing confidential."""
        return {
            "root": str(root),
            "path": path,
            "timeout": timeout,
            "run": run,
            "slot": slot,
            "limits": limits,
        }

    def _run_limits(self, timeout: float) -> Limits:
        """Every limit of a run with this timeout, its output's included."""
        settings = self.settings
        return {
            **self._limits(timeout),
            "output_bytes": settings.execution_output_limit_bytes,
            "result_bytes": settings.execution_result_limit_bytes,
        }

    def _limits(self, timeout: float) -> Limits:
        """The resource limits of a run with this timeout (the CPU time follows it)."""
        settings = self.settings
        return {
            "memory_bytes": settings.execution_memory_limit_mb * 1024 * 1024,
            "cpu_seconds": settings.execution_cpu_limit_seconds or max(1, int(timeout) + 1),
            "processes": settings.execution_max_processes,
            "file_size_bytes": settings.execution_max_file_size_mb * 1024 * 1024,
            "open_files": settings.execution_max_open_files,
        }


@dataclass(frozen=True)
class RunResult:
    """How a run ended, as the service tells it: the supervisor's report with the script's answer
    parsed (here, and only here)."""

    ok: bool
    duration: float
    stdout: str
    stderr: str
    timed_out: bool
    result: dict[str, Any] | None = None
    error: str | None = None
    peak_memory_kb: int | None = None
    worker: str | None = None  # the cluster worker that ran it (EXECUTOR=dask)
    environment: str | None = None  # the environment's key; None: the default environment


@dataclass(frozen=True)
class Needs:
    """What a script with dependencies needs to run: its lock, and the modules its block names
    (preloaded where the operator trusts them, ENVIRONMENT_PRELOAD)."""

    lock: bytes
    imports: list[str]
    in_tree: bool  # the lock is the revision's own (False: resolved for a revision without one)


@dataclass(frozen=True)
class Target:
    """A script at a revision, resolved: what a run executes."""

    commit: Any  # the commit (pygit2) whose tree runs
    path: str  # the script's path in it
    revision: str  # the name it was asked for by
    timeout: float
    resources: dict[str, float] | None = None  # the cluster worker resources it needs
    retries: int | None = None  # runs again after a lost worker (None: DASK_WORKER_LOST_RETRIES)


def answer(target: Target, report: RunResult) -> dict[str, Any]:
    """The seed API's answer to a run (with the environment that ran it, unless the default)."""
    answered = {
        "success": report.ok,
        "result": report.result if report.ok else None,
        "error": None if report.ok else report.error,
        "execution_time": round(report.duration, 6),
        "revision": str(target.commit.id),
        "stdout": report.stdout,
        "stderr": report.stderr,
    }
    if report.environment is not None:
        answered["environment"] = report.environment
    return answered


def _with_answer(report: Report) -> RunResult:
    """The run's own answer, parsed here and only here; one that cannot become a JSON response
    (malformed, nested deeper than 255 levels, text that is not Unicode) fails its run only."""
    ended = RunResult(
        ok=report.get("ok", False),
        duration=report["duration"],
        stdout=report["stdout"],
        stderr=report["stderr"],
        timed_out=report["timed_out"],
        error=report.get("error"),
        peak_memory_kb=report.get("peak_memory_kb"),
    )
    encoded = report.get("answer")
    if encoded is None:
        return ended
    try:
        answer: Answer = orjson.loads(base64.b64decode(encoded))
        if not isinstance(answer, dict) or not isinstance(answer.get("ok"), bool):
            raise ValueError("the run's answer is not an outcome")
        if answer["ok"]:
            # What the response will have to do, at the depth the result will have there.
            orjson.dumps({"result": answer.get("result")})
    except (ValueError, TypeError, RecursionError, orjson.JSONEncodeError) as exc:
        return replace(
            ended,
            error="main() returned a value that cannot be sent as JSON (nested deeper than "
            f"255 levels, or text that is not valid Unicode): {exc}",
        )
    return replace(
        ended,
        ok=answer["ok"],
        result=answer.get("result"),
        error=answer.get("error"),
        peak_memory_kb=answer.get("peak_memory_kb", ended.peak_memory_kb),
    )
