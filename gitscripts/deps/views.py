"""A script's dependencies as the API shows them: what it declares, what its lock pins, and the
environment that lock names, at any revision.

Read from the repository only: the block from the script's source (`metadata.read`), the packages
from its lock (`<script>.py.lock`, see `lockfile`), the key from
`locks.environment_key`. A script without a block has no lock and no environment of its own (it
runs in the default one): `declared`, `lock` and `environment` are then null. `environment` is an
object so that what is known of the environment itself (built, building, failed) can join its key.
"""

from __future__ import annotations

from typing import TypedDict

from gitscripts import errors
from gitscripts.config import Settings
from gitscripts.deps import locks
from gitscripts.deps.environments import EnvironmentBuilds
from gitscripts.deps.lockfile import LockedPackage, locked_packages
from gitscripts.index.lookups import Lookups
from gitscripts.repo import Repository, layout, rules


class Declared(TypedDict):
    requires_python: str | None
    dependencies: list[str]


class Lock(TypedDict):
    path: str
    packages: list[LockedPackage]


class Environment(TypedDict):
    key: str
    # "ready", "building", "failed" (its log at `url`), or "not_built" (built at its first run)
    state: str
    url: str  # GET: the environment's state, size, last use and build log
    # With EXECUTOR=dask: its state on each worker that has it or tried (None: not a cluster).
    workers: dict[str, str] | None


class ScriptDependencies(TypedDict):
    script_id: int
    revision: str
    path: str
    declared: Declared | None
    lock: Lock | None
    environment: Environment | None


class DependencyViews:
    def __init__(
        self,
        settings: Settings,
        repo: Repository,
        lookups: Lookups,
        environments: EnvironmentBuilds,
    ) -> None:
        self.settings = settings
        self.repo = repo
        self.lookups = lookups
        self.environments = environments

    def of_script(self, script_id: int, revision: str | None = None) -> ScriptDependencies:
        """The script's dependencies on `main`, or as they were at `revision`."""
        self.lookups.ensure_synced()
        source, commit_id, path = self.lookups.script_content(script_id, revision)
        commit = self.repo.resolve(commit_id)
        # Shown as declared: an admin's later refusal of direct references is a rule for new
        # versions, not a reason to hide what an old one says.
        declared = rules.script_dependencies(path.rsplit("/", 1)[-1], source, True)
        lock = self.repo.read_file(commit.tree, layout.lock_path(path))
        if declared is None or lock is None:
            lock_view, environment = None, None
        else:
            lock_view = Lock(path=layout.lock_path(path), packages=locked_packages(lock))
            environment = self._environment(locks.environment_key(lock))
        return ScriptDependencies(
            script_id=script_id,
            revision=commit_id,
            path=path,
            declared=None
            if declared is None
            else Declared(
                requires_python=declared.requires_python,
                dependencies=list(declared.dependencies),
            ),
            lock=lock_view,
            environment=environment,
        )

    def _environment(self, key: str) -> Environment:
        try:
            info = self.environments.info(key)
        except errors.EnvironmentNotFound:
            return Environment(key=key, state="not_built", url=f"/api/v1/environments/{key}",
                               workers=None)  # fmt: skip
        workers: dict[str, str] | None = None if info.workers is None else dict(info.workers)
        return Environment(key=key, state=info.state, url=f"/api/v1/environments/{key}",
                           workers=workers)  # fmt: skip
