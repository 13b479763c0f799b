"""The long-lived objects one running service shares, built once by the app factory.

Routers get them the one way: as annotated dependencies (`Files`, `Git`, ...), never by reaching
into the app state themselves.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from starlette.requests import HTTPConnection

from gitscripts.auth.service import AuthService
from gitscripts.config import Settings
from gitscripts.deps.environments import EnvironmentBuilds, Environments
from gitscripts.deps.views import DependencyViews
from gitscripts.executor.service import ExecutionService
from gitscripts.files.grants import FileGrants
from gitscripts.files.service import FileService
from gitscripts.files.store import FileStore
from gitscripts.githttp.service import GitService
from gitscripts.history.service import HistoryService
from gitscripts.index import Index
from gitscripts.index.lookups import Lookups
from gitscripts.manager.service import ManagerService
from gitscripts.manager.views import Views
from gitscripts.metrics import Metrics
from gitscripts.repo import Repository
from gitscripts.repo.housekeeping import Housekeeping
from gitscripts.runs.service import RunService
from gitscripts.runs.store import RunStore


@dataclass
class Services:
    settings: Settings
    index: Index
    repo: Repository
    auth: AuthService
    lookups: Lookups
    views: Views
    dependencies: DependencyViews
    manager: ManagerService
    executor: ExecutionService
    environments: EnvironmentBuilds
    files: FileService
    file_grants: FileGrants
    git: GitService
    history: HistoryService
    runs: RunService
    metrics: Metrics

    @classmethod
    def build(cls, settings: Settings) -> Services:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Only the service's: as root, runs are other uids, and must not even list it.
        settings.data_dir.chmod(0o700)
        index = Index(settings.index_path)
        repo = Repository(settings.repo_path)
        repo.housekeeping = Housekeeping(settings.repo_path, settings.git_housekeeping_seconds)
        auth = AuthService(settings, index)
        lookups = Lookups(index, repo)
        views = Views(index, repo, lookups)
        file_grants = FileGrants()
        environments: EnvironmentBuilds
        if settings.executor == "dask":  # built on the cluster's workers, none here
            from gitscripts.cluster.environments import ClusterEnvironments

            executor = ExecutionService(settings, repo, file_grants)
            assert executor.cluster is not None
            environments = ClusterEnvironments(executor.cluster)
        else:
            local = Environments(settings)
            executor = ExecutionService(settings, repo, file_grants, local)
            environments = local
        metrics = Metrics()
        metrics.watch(
            queue_depth=lambda: executor.waiting,
            running=lambda: executor.running,
            fork_servers=lambda: executor.warm_fork_servers,
        )
        if settings.executor == "dask":
            metrics.watch_cluster(
                connected=lambda: executor.cluster is not None and executor.cluster.connected,
                workers=lambda: len(executor.cluster.workers) if executor.cluster else 0,
                capacity=lambda: executor.cluster.capacity if executor.cluster else 0,
            )
        return cls(
            settings=settings,
            index=index,
            repo=repo,
            auth=auth,
            lookups=lookups,
            views=views,
            dependencies=DependencyViews(settings, repo, lookups, environments),
            manager=ManagerService(settings, index, repo, lookups, views, environments),
            executor=executor,
            environments=environments,
            files=FileService(settings, index, FileStore.from_settings(settings)),
            file_grants=file_grants,
            git=GitService(settings, index, repo, lookups, metrics, environments),
            history=HistoryService(index, repo, lookups),
            runs=RunService(settings, index, executor, RunStore(settings.runs_path), metrics),
            metrics=metrics,
        )


def services_of(request: HTTPConnection) -> Services:
    services: Services = request.app.state.services
    return services


# An HTTPConnection, not a Request: WebSocket routes (`cluster.routes`) take these two too.
def _settings(request: HTTPConnection) -> Settings:
    return services_of(request).settings


def _auth(request: Request) -> AuthService:
    return services_of(request).auth


def _files(request: Request) -> FileService:
    return services_of(request).files


def _executor(request: HTTPConnection) -> ExecutionService:
    return services_of(request).executor


def _environments(request: Request) -> EnvironmentBuilds:
    return services_of(request).environments


def _runs(request: Request) -> RunService:
    return services_of(request).runs


def _git(request: Request) -> GitService:
    return services_of(request).git


def _history(request: Request) -> HistoryService:
    return services_of(request).history


def _views(request: Request) -> Views:
    return services_of(request).views


def _dependencies(request: Request) -> DependencyViews:
    return services_of(request).dependencies


def _lookups(request: Request) -> Lookups:
    return services_of(request).lookups


def _repo(request: Request) -> Repository:
    return services_of(request).repo


def _index(request: Request) -> Index:
    return services_of(request).index


def _manager(request: Request) -> ManagerService:
    return services_of(request).manager


AppSettings = Annotated[Settings, Depends(_settings)]
Auth = Annotated[AuthService, Depends(_auth)]
Executor = Annotated[ExecutionService, Depends(_executor)]
Envs = Annotated[EnvironmentBuilds, Depends(_environments)]
RunLog = Annotated[RunService, Depends(_runs)]
Files = Annotated[FileService, Depends(_files)]
Git = Annotated[GitService, Depends(_git)]
History = Annotated[HistoryService, Depends(_history)]
Manager = Annotated[ManagerService, Depends(_manager)]
Lookup = Annotated[Lookups, Depends(_lookups)]
View = Annotated[Views, Depends(_views)]
Dependencies = Annotated[DependencyViews, Depends(_dependencies)]
Repo = Annotated[Repository, Depends(_repo)]
Store = Annotated[Index, Depends(_index)]
