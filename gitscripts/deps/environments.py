"""The scripts' environments: one per distinct lock, built once with uv, kept under DATA_DIR.

An environment is a folder of installed packages (`uv pip install --target` of the lock's exact
versions, without resolving anything again: hard links from uv's cache, which lies beside it on
the same file system, and bytecode compiled), named by its lock's key
(`locks.environment_key`). A run imports from it read-only (see `gitscripts.executor.pool`).

- Built whole or not at all: in a temporary folder, renamed into place once complete, so a folder
  under a key is always a whole environment, whatever crashed (a crashed build's folder is swept
  away at the next start).
- Built once: callers in this process share one build per key (`future`); other processes on the
  same data directory (a second service, the CLI) wait for a file lock per key, then find it built.
- A build that failed is remembered with uv's log (`<key>.failed`) and answered as
  `EnvironmentBuildFailed` without trying again, until `gitscripts environments prebuild` retries.
- A service holds a shared lock on an environment while a fork server uses it; `collect` (gc) never
  removes one whose lock it cannot take.

Layout of ENVIRONMENTS_DIR (DATA_DIR/environments):
  <key>/packages/  what runs import        <key>/lock       the lock it was built from
  <key>/info.json  size, build time        <key>/build.log  uv's output
  <key>.failed     uv's output of a failed build
  .locks/<key>.build, .locks/<key>.use     the build's and the users' file locks
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import json
import os
import re
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from gitscripts import errors
from gitscripts.config import Settings
from gitscripts.deps import locks, uv
from gitscripts.executor.worker import remove_tree
from gitscripts.repo import Commit, Repository
from gitscripts.timestamps import iso_seconds

log = structlog.get_logger("gitscripts.environments")

State = Literal["ready", "building", "failed"]
_KEY = re.compile(r"^[0-9a-f]{20}$")
# Builds at once: each is mostly uv copying and compiling; more would only share the disk.
_BUILDERS = 2
# Last use is written to disk at most this often per environment (it orders gc, nothing more).
_TOUCH_EVERY = 60.0
# What `uv export` reads beside the lock: a script whose block the lock is not checked against
# (`--frozen`): the lock alone says what is installed.
_STUB_SCRIPT = b"# /// script\n# dependencies = []\n# ///\n"


@dataclass(frozen=True)
class Environment:
    """A built environment."""

    key: str
    folder: Path

    @property
    def packages(self) -> Path:
        """What a run of it imports: the folder put first on its `sys.path`."""
        return self.folder / "packages"


@dataclass(frozen=True)
class EnvironmentInfo:
    """What an environment's state answer says (GET /api/v1/environments/{key}, the CLI)."""

    key: str
    state: State
    size: int | None = None  # bytes of its files
    built_at: float | None = None  # Unix seconds
    build_seconds: float | None = None
    last_used: float | None = None  # Unix seconds; None: never run
    log: str = ""  # the build's log: uv's own words
    # With EXECUTOR=dask, where environments are built: its state on each worker, by name
    # (None: not a cluster).
    workers: dict[str, State] | None = None

    def public(self) -> dict[str, Any]:
        """As the API answers it: times in ISO 8601."""
        shown = asdict(self)
        for name in ("built_at", "last_used"):
            shown[name] = None if shown[name] is None else iso_seconds(shown[name])
        return shown


class EnvironmentBuilds(Protocol):
    """Where the environments of a service are built and asked about: its own data directory
    (`Environments`), or the workers of its cluster (`cluster.environments`)."""

    def prepare(self, lock: bytes) -> None: ...

    def info(self, key: str, worker: str | None = None) -> EnvironmentInfo:
        """Its state; with `worker` (a cluster's worker, by name), that worker's own."""
        ...

    def close(self) -> None: ...


class Environments:
    """The environments of one data directory."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.root = settings.environments_dir
        self.root.mkdir(parents=True, exist_ok=True, mode=0o700)
        self._locks = self.root / ".locks"
        self._locks.mkdir(exist_ok=True, mode=0o700)
        self._guard = threading.Lock()
        self._building: dict[str, Future[Environment]] = {}
        self._builder = ThreadPoolExecutor(_BUILDERS, thread_name_prefix="environment-build")
        self._touched: dict[str, float] = {}
        self.builds = 0  # builds this process ran (whether they worked or not)
        self._sweep()

    # -- getting one ---------------------------------------------------------------------------
    def prepare(self, lock: bytes) -> None:
        """Start building `lock`'s environment if it is not built or being built (returns at
        once): what a write that introduced the lock calls, so its first run finds it ready."""
        future = self.future(lock)
        # A failure is remembered on disk and told to the runs; here there is nobody to tell.
        future.add_done_callback(lambda done: done.exception())

    async def ensure(self, lock: bytes) -> Environment:
        """`lock`'s environment, built first if needed (waiting for a build under way);
        `EnvironmentBuildFailed` when it cannot be built."""
        # Shielded: a run whose client leaves must not cancel the build others wait for.
        return await asyncio.shield(asyncio.wrap_future(self.future(lock)))

    def future(self, lock: bytes) -> Future[Environment]:
        """The build of `lock`'s environment: done already when it is built (or failed)."""
        key = locks.environment_key(lock)
        with self._guard:
            building = self._building.get(key)
            if building is not None:
                return building
            future: Future[Environment] = Future()
            built = self.built(key)
            if built is not None:
                future.set_result(built)
                return future
            failure = self._failure(key)
            if failure is not None:
                future.set_exception(failure)
                return future
            future = self._builder.submit(self._build, key, lock)
            self._building[key] = future
        future.add_done_callback(lambda _: self._forget(key, future))
        return future

    def _forget(self, key: str, future: Future[Environment]) -> None:
        with self._guard:
            if self._building.get(key) is future:
                del self._building[key]

    def built(self, key: str) -> Environment | None:
        folder = self.root / key
        return Environment(key, folder) if folder.is_dir() else None

    def _failure(self, key: str) -> errors.EnvironmentBuildFailed | None:
        try:
            output = (self.root / f"{key}.failed").read_text()
        except FileNotFoundError:
            return None
        return _failed(key, output)

    # -- building ------------------------------------------------------------------------------
    def _build(self, key: str, lock: bytes) -> Environment:
        with self._file_lock(key, "build", fcntl.LOCK_EX):
            built = self.built(key)  # by another process while we waited for its lock
            if built is not None:
                return built
            failure = self._failure(key)
            if failure is not None:
                raise failure
            self.builds += 1
            started = time.time()
            work = Path(tempfile.mkdtemp(prefix=f".building-{os.getpid()}-{key}-", dir=self.root))
            try:
                ok, output = self._install(lock, work)
                output = self._scrubbed(output, work)
                if not ok:
                    _write_atomically(self.root / f"{key}.failed", output.encode())
                    log.warning("environment_build_failed", environment=key)
                    raise _failed(key, output)
                (work / "lock").write_bytes(lock)
                (work / "build.log").write_text(output)
                finished = time.time()
                info = {"size": _size(work / "packages"), "built_at": finished,
                        "build_seconds": round(finished - started, 3)}  # fmt: skip
                (work / "info.json").write_text(json.dumps(info))
                # Runs (other uids, as root) read it through their own bind of `packages`.
                work.chmod(0o755)
                os.rename(work, self.root / key)
            finally:
                if work.exists():
                    remove_tree(work)
            log.info("environment_built", environment=key, **info)
            return Environment(key, self.root / key)

    def _install(self, lock: bytes, work: Path) -> tuple[bool, str]:
        """Install exactly what `lock` pins into `work/packages`: uv's answer and its output."""
        spec = work / "spec"
        spec.mkdir()
        (spec / "environment.py").write_bytes(_STUB_SCRIPT)
        (spec / locks.lock_path("environment.py")).write_bytes(lock)
        timeout = self.settings.environment_build_timeout
        steps = [
            ["export", "--script", "environment.py", "--frozen", "--no-header", "--no-annotate",
             "--quiet", "--output-file", "requirements.txt"],
            ["pip", "install", "--target", str(work / "packages"), "--no-deps",
             "--link-mode", "hardlink", "--compile-bytecode", "-r", "requirements.txt",
             # `uv pip` does not read UV_NO_INDEX (uv 0.13): without the flag it asks the
             # public index whenever its cache lacks a wheel.
             *(["--no-index"] if self.settings.packages_no_index else [])],
        ]  # fmt: skip
        output: list[str] = []
        try:
            for arguments in steps:
                outcome = uv.run(self.settings, arguments, timeout, spec)
                output.append(f"$ uv {' '.join(arguments)}\n{outcome.output}")
                if outcome.timed_out:
                    output.append(f"(stopped after {timeout:g} s: ENVIRONMENT_BUILD_TIMEOUT)")
                if not outcome.ok:
                    return False, "\n".join(output)
        finally:
            remove_tree(spec)
        return True, "\n".join(output)

    def _scrubbed(self, output: str, work: Path) -> str:
        """The log without the service's own paths (it is shown to users)."""
        for path, name in ((work, "<environment>"), (self.settings.data_dir.resolve(), "<data>"),
                           (Path(sys.prefix), "<python>")):  # fmt: skip
            output = output.replace(str(path), name)
        return output

    def retry(self, key: str) -> None:
        """Forget that `key`'s build failed: the next use builds it again."""
        with contextlib.suppress(FileNotFoundError):
            (self.root / f"{key}.failed").unlink()

    # -- its users -----------------------------------------------------------------------------
    @contextlib.contextmanager
    def _file_lock(self, key: str, kind: str, operation: int) -> Iterator[None]:
        fd = os.open(self._locks / f"{key}.{kind}", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, operation)
            yield
        finally:
            os.close(fd)

    def hold(self, environment: Environment) -> int:
        """Mark `environment` in use until `release` (gc leaves it alone, in any process)."""
        fd = os.open(self._locks / f"{environment.key}.use", os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(fd, fcntl.LOCK_SH)
        self.touch(environment.key)
        return fd

    @staticmethod
    def release(held: int) -> None:
        os.close(held)

    def touch(self, key: str) -> None:
        """Note a use of `key` (on disk at most once a minute: it orders gc, nothing more)."""
        now = time.monotonic()
        if now - self._touched.get(key, -_TOUCH_EVERY) < _TOUCH_EVERY:
            return
        self._touched[key] = now
        with contextlib.suppress(FileNotFoundError):
            os.utime(self.root / key / "info.json")

    # -- state ---------------------------------------------------------------------------------
    def info(self, key: str, worker: str | None = None) -> EnvironmentInfo:
        """The state of environment `key`; `EnvironmentNotFound` when it is none of them, or
        when a `worker` is asked for: the environments here are built by this process."""
        if worker is not None:
            raise errors.EnvironmentNotFound(
                f"Environment '{key}' has no worker '{worker}': this service builds its "
                "environments itself",
                environment=key,
                worker=worker,
            )
        if _KEY.match(key):
            folder = self.root / key
            with contextlib.suppress(FileNotFoundError, ValueError):
                built = json.loads((folder / "info.json").read_text())
                return EnvironmentInfo(
                    key=key,
                    state="ready",
                    size=built["size"],
                    built_at=built["built_at"],
                    build_seconds=built["build_seconds"],
                    last_used=_last_used(folder / "info.json", built["built_at"]),
                    log=(folder / "build.log").read_text(),
                )
            if self._is_building(key):
                return EnvironmentInfo(key=key, state="building")
            with contextlib.suppress(FileNotFoundError):
                output = (self.root / f"{key}.failed").read_text()
                return EnvironmentInfo(key=key, state="failed", log=output)
        raise errors.EnvironmentNotFound(f"Environment '{key}' not found", environment=key)

    def _is_building(self, key: str) -> bool:
        with self._guard:
            if key in self._building:
                return True
        fd = os.open(self._locks / f"{key}.build", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            return True  # another process builds it now
        finally:
            os.close(fd)
        return False

    def keys(self) -> list[str]:
        """Every environment here: built, failed or being built."""
        found = {p.name for p in self.root.iterdir() if _KEY.match(p.name)}
        found |= {p.name.removesuffix(".failed") for p in self.root.glob("*.failed")}
        with self._guard:
            found |= set(self._building)
        return sorted(found)

    # -- removing ------------------------------------------------------------------------------
    def collect(self, needed: set[str]) -> list[str]:
        """Remove the environments not `needed` (and their remembered failures), then the least
        recently used beyond ENVIRONMENTS_MAX_BYTES; never one in use. The keys removed."""
        removed = []
        ready = []
        for key in self.keys():
            try:
                info = self.info(key)
            except errors.EnvironmentNotFound:
                continue
            if info.state == "failed" and key not in needed:
                self.retry(key)
                removed.append(key)
            elif info.state == "ready":
                ready.append(info)
        ready.sort(key=lambda info: info.last_used or info.built_at or 0)
        total = sum(info.size or 0 for info in ready)
        kept_budget = self.settings.environments_max_bytes
        for info in ready:
            if (info.key not in needed or total > kept_budget) and self._remove(info.key):
                removed.append(info.key)
                total -= info.size or 0
        return removed

    def _remove(self, key: str) -> bool:
        fd = os.open(self._locks / f"{key}.use", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                return False  # a fork server uses it
            # Renamed away first: a half-removed environment never looks ready.
            doomed = self.root / f".removing-{os.getpid()}-{key}-{os.urandom(4).hex()}"
            try:
                os.rename(self.root / key, doomed)
            except FileNotFoundError:
                return False
        finally:
            os.close(fd)  # a service starting to use it waits for the rename only
        remove_tree(doomed)
        log.info("environment_removed", environment=key)
        return True

    def _sweep(self) -> None:
        """Remove what builds and removals of processes that are gone left behind."""
        for folder in self.root.glob(".*-*-*"):
            kind, _, rest = folder.name.partition("-")
            pid = rest.split("-")[0]
            gone = pid.isdigit() and not Path(f"/proc/{pid}").exists()
            if kind in (".building", ".removing") and gone:
                remove_tree(folder)

    def close(self) -> None:
        self._builder.shutdown(wait=False, cancel_futures=True)


def needed_by_refs(repo: Repository) -> dict[str, tuple[bytes, list[str]]]:
    """The environments `main` and every tag need: key -> (its lock, the refs naming it). An
    environment is needed by a ref when a script there has a committed lock for it."""
    revisions = [("main", repo.head())] + [(f"tag {t.name}", t.commit) for t in repo.tags()]
    needed: dict[str, tuple[bytes, list[str]]] = {}
    for name, commit in revisions:
        listing = repo.listing(commit)
        for path in listing.scripts:
            lock = repo.read_file(commit.tree, locks.lock_path(path))
            if lock is None:
                continue
            key = locks.environment_key(lock)
            refs = needed.setdefault(key, (lock, []))[1]
            if name not in refs:
                refs.append(name)
    return needed


def locks_introduced(repo: Repository, old: Commit | None, new: Commit) -> list[bytes]:
    """The locks `new` has that `old` (None: nothing) has not: what a write or push that moved a
    ref from `old` to `new` asks environments of."""
    found = []
    for path in repo.listing(new).scripts:
        lock_path = locks.lock_path(path)
        lock_id = repo.entry_id(new.tree, lock_path)
        if lock_id is not None and (old is None or repo.entry_id(old.tree, lock_path) != lock_id):
            found.append(repo.blob(lock_id))
    return found


def _failed(key: str, output: str) -> errors.EnvironmentBuildFailed:
    lines = [line for line in output.splitlines() if line.strip()]
    reason = next((line for line in reversed(lines) if "error" in line.lower()), "")
    return errors.EnvironmentBuildFailed(
        f"The environment {key} could not be built" + (f": {reason.strip()}" if reason else ""),
        environment=key,
        log=output,
    )


def _size(folder: Path) -> int:
    total = 0
    for parent, _, files in os.walk(folder):
        for name in files:
            with contextlib.suppress(OSError):
                total += os.lstat(os.path.join(parent, name)).st_size
    return total


def _last_used(info: Path, built_at: float) -> float | None:
    used = info.stat().st_mtime
    return used if used > built_at + 1 else None


def _write_atomically(path: Path, content: bytes) -> None:
    temporary = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    temporary.write_bytes(content)
    os.replace(temporary, path)
