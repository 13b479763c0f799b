"""The long-lived objects one running service shares, built once by the app factory."""

from __future__ import annotations

from dataclasses import dataclass

from fastapi import Request

from gitscripts.auth.service import AuthService
from gitscripts.config import Settings
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
from gitscripts.repo import Repository


@dataclass
class Services:
    settings: Settings
    index: Index
    repo: Repository
    auth: AuthService
    lookups: Lookups
    views: Views
    manager: ManagerService
    executor: ExecutionService
    files: FileService
    file_grants: FileGrants
    git: GitService
    history: HistoryService

    @classmethod
    def build(cls, settings: Settings) -> Services:
        settings.data_dir.mkdir(parents=True, exist_ok=True)
        # Only the service's: as root, runs are other uids, and must not even list it.
        settings.data_dir.chmod(0o700)
        index = Index(settings.index_path)
        repo = Repository(settings.repo_path)
        auth = AuthService(settings, index)
        lookups = Lookups(index, repo)
        views = Views(index, repo, lookups)
        file_grants = FileGrants()
        return cls(
            settings=settings,
            index=index,
            repo=repo,
            auth=auth,
            lookups=lookups,
            views=views,
            manager=ManagerService(settings, index, repo, lookups, views),
            executor=ExecutionService(settings, repo, file_grants),
            files=FileService(settings, index, FileStore.from_settings(settings)),
            file_grants=file_grants,
            git=GitService(settings, index, repo, auth, lookups),
            history=HistoryService(index, repo, lookups),
        )


def services_of(request: Request) -> Services:
    return request.app.state.services  # type: ignore[no-any-return]
