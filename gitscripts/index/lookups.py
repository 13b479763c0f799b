"""Questions about ids and paths, asked of an index kept in step with `main`.

"Which folder is id 7", "where is script 12 now", "where was it at revision X", "what did it hold
then": the manager (before it writes), the views, history and the git doors all ask here. Before it
answers about `main`, the index is brought up to date with it (`ensure_synced`): a push may have
moved `main` since the index last looked. This module only reads (the sync aside); writes are the
manager's.
"""

from __future__ import annotations

from gitscripts import errors
from gitscripts.index.entries import Entry
from gitscripts.index.store import Index
from gitscripts.index.sync import last_version, sync_index
from gitscripts.index.tombstones import Tombstone
from gitscripts.repo import Commit, Repository


class Lookups:
    def __init__(self, index: Index, repo: Repository) -> None:
        self.index = index
        self.repo = repo

    def ensure_synced(self) -> None:
        """Make the index describe the current `main` (a push may have moved it)."""
        if self.index.meta.synced_head != str(self.repo.head().id):
            sync_index(self.index, self.repo)

    # -- ids on `main` (callers ensure the sync first) -----------------------------------------
    def folder(self, folder_id: int) -> Entry:
        entry = self.index.folders.get(folder_id)
        if entry is None:
            raise errors.FolderNotFound(
                f"Folder with id {folder_id} not found", folder_id=str(folder_id)
            )
        return entry

    def folder_path(self, folder_id: int | None) -> str | None:
        """Where the folder is (None: the root)."""
        return None if folder_id is None else self.folder(folder_id).path

    def script(self, script_id: int) -> Entry:
        entry = self.index.scripts.get(script_id)
        if entry is None:
            raise errors.ScriptNotFound(
                f"Script with id {script_id} not found", script_id=str(script_id)
            )
        return entry

    # -- scripts through history ---------------------------------------------------------------
    def script_path(self, script_id: int) -> str:
        """Where the script is on `main` now (404 when there is no such script)."""
        self.ensure_synced()
        return self.script(script_id).path

    def script_path_at(self, script_id: int, commit: Commit, revision: str) -> str:
        """Where the script was in `commit`: followed back from where it is now through renames
        and moves (the history of the id, not of whatever is at its path now); 404 when it did not
        exist then."""
        path = self.repo.path_at(self.repo.head(), self.script_path(script_id), commit)
        if path is None or not self.repo.is_file(commit.tree, path):
            raise errors.ScriptNotFound(
                f"Script with id {script_id} did not exist at revision {revision}",
                script_id=str(script_id),
                revision=revision,
            )
        return path

    def script_content(self, script_id: int, revision: str | None = None) -> tuple[bytes, str, str]:
        """The script's bytes on `main`, or as they were at `revision`, the id of the commit they
        were read from, and the script's path in that commit."""
        commit = self.repo.head() if revision is None else self.repo.resolve(revision)
        path = self.script_path_at(script_id, commit, revision or "main")
        return self.repo.read_file(commit.tree, path) or b"", str(commit.id), path

    # -- deleted scripts (callers ensure the sync first) ---------------------------------------
    def tombstone(self, script_id: int) -> Tombstone:
        stone = self.index.deleted.get(script_id)
        if stone is None:
            raise errors.ScriptNotFound(
                f"Deleted script with id {script_id} not found", script_id=str(script_id)
            )
        return stone

    def last_version(self, stone: Tombstone) -> Commit:
        """The commit holding a deleted script's last version (see `sync.last_version`)."""
        last = last_version(self.repo, stone)
        if last is None:
            raise errors.ScriptNotFound(
                f"Deleted script with id {stone.id} has no version in the history",
                script_id=str(stone.id),
            )
        return last

    def tombstone_of(self, path: str, commit: Commit) -> Tombstone | None:
        """The deleted script whose history holds the script at `path` in `commit` (the most
        recently deleted, when several do); None when the index remembers none."""
        for stone in reversed(self.index.deleted.all()):
            if path not in (stone.path, stone.deleted_path):
                continue
            last = self.last_version(stone)
            if self.repo.path_at(last, stone.deleted_path, commit) == path:
                return stone
        return None
