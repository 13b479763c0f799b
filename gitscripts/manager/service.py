"""Folders and scripts: the original Scripts Manager's operations, each one commit on `main`.

Every write follows one shape (`_commit`): validate the input, plan the edits against the tree it will
be applied to (so checks always see the state being changed), commit with compare-and-swap, then record
ids and owners in the index, all under the repository's write lock so the index learns of commits in
order. Reads check first that the index describes the current `main` (a push may have moved it).
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

import orjson
import pygit2
import structlog

from gitscripts import errors
from gitscripts.config import Settings
from gitscripts.index import Entry, Index
from gitscripts.index.sync import folder_moves, sync_index
from gitscripts.repo import Author, CommitResult, Edits, Existing, Repository, layout, rules

log = structlog.get_logger("gitscripts.manager")

User = dict[str, Any]
Unset: Any = object()  # "field not given", as opposed to an explicit null


@dataclass(frozen=True)
class ScriptChange:
    """What PUT /scripts/{id} asks for; fields left as `Unset` stay as they are."""

    display_name: Any = Unset
    description: Any = Unset
    filename: Any = Unset
    content: Any = Unset
    folder_id: Any = Unset
    base_revision: Any = Unset


class ManagerService:
    def __init__(self, settings: Settings, index: Index, repo: Repository) -> None:
        self.settings = settings
        self.index = index
        self.repo = repo
        self._tree_cache: OrderedDict[tuple[str, int, int, bool], bytes] = OrderedDict()
        self._tree_lock = threading.Lock()

    # -- keeping the index on `main` ----------------------------------------------------------
    def ensure_synced(self) -> None:
        if self.index.synced_head != str(self.repo.head().id):
            sync_index(self.index, self.repo)

    def _commit(
        self,
        user: User,
        message: str,
        plan: Callable[[pygit2.Tree], Edits],
        record: Callable[[CommitResult], None],
    ) -> CommitResult:
        def planned(parent: pygit2.Commit) -> Edits:
            # Whatever landed on `main` meanwhile (a push) is indexed before this change is
            # checked against it, so ownership checks see every path.
            sync_index(self.index, self.repo, target=parent)
            return plan(parent.tree)

        with self.repo.write_lock, self.index.transaction():
            result = self.repo.commit(Author(user["id"], user["login"]), message, planned)
            record(result)
            self.index.set_synced_head(str(result.commit.id))
        log.info("commit", message=message, revision=str(result.commit.id))
        return result

    # -- helpers ------------------------------------------------------------------------------
    def _folder_entry(self, folder_id: int) -> Entry:
        entry = self.index.entry("folders", folder_id)
        if entry is None:
            raise errors.FolderNotFound(
                f"Folder with id {folder_id} not found", folder_id=str(folder_id)
            )
        return entry

    def _script_entry(self, script_id: int) -> Entry:
        entry = self.index.entry("scripts", script_id)
        if entry is None:
            raise errors.ScriptNotFound(
                f"Script with id {script_id} not found", script_id=str(script_id)
            )
        return entry

    def _folder_path(self, folder_id: int | None) -> str | None:
        return None if folder_id is None else self._folder_entry(folder_id).path

    @staticmethod
    def _may_change(user: User, entry: Entry) -> bool:
        return bool(user["is_admin"]) or entry.owner_id == user["id"]

    def _require_script_owner(self, user: User, entry: Entry) -> None:
        if not self._may_change(user, entry):
            raise errors.NotScriptOwner(
                "Only the script's owner or an admin can change it", script_id=str(entry.id)
            )

    def _require_folder_parent(
        self,
        tree: pygit2.Tree,
        path: str | None,
        folder_id: int | None,
        error: type[errors.NotFound],
    ) -> None:
        if path is not None and not self.repo.is_folder(tree, path):
            key = "parent_id" if error is errors.ParentFolderNotFound else "folder_id"
            raise error(f"Folder with id {folder_id} not found", **{key: str(folder_id)})

    def _creator(self, owner_id: int | None) -> dict[str, Any] | None:
        user = self.index.user(owner_id) if owner_id is not None else None
        return {"id": user["id"], "login": user["login"]} if user else None

    # -- presenting ---------------------------------------------------------------------------
    # One shape for each object, used by single reads and by the whole tree alike; the tree passes
    # lookups it has already made so that 10,000 scripts do not mean 10,000 index queries.
    def _folder_id_of(self, path: str | None, folder_ids: dict[str, int] | None) -> int | None:
        if path is None:
            return None
        if folder_ids is not None:
            return folder_ids.get(path)
        return self.index.entry_id("folders", path)

    def folder_view(
        self,
        user: User,
        entry: Entry,
        folder_ids: dict[str, int] | None = None,
        creator: Callable[[int | None], dict[str, Any] | None] | None = None,
        read_only: bool = False,
    ) -> dict[str, Any]:
        may_change = not read_only and self._may_change(user, entry)
        return {
            "id": entry.id,
            "name": entry.path.rsplit("/", 1)[-1],
            "path": entry.path,
            "parent_id": self._folder_id_of(layout.parent_of(entry.path), folder_ids),
            "created_by": (creator or self._creator)(entry.owner_id),
            "created_at": entry.created_at,
            "updated_at": entry.updated_at,
            "can_edit": may_change,
            "can_delete": may_change,
        }

    def script_view(
        self,
        user: User,
        entry: Entry,
        metadata: layout.ScriptMetadata | None = None,
        folder_ids: dict[str, int] | None = None,
        creator: Callable[[int | None], dict[str, Any] | None] | None = None,
        read_only: bool = False,
    ) -> dict[str, Any]:
        if metadata is None:
            metadata = self.repo.script_metadata(self.repo.head().tree, entry.path)
        may_change = not read_only and self._may_change(user, entry)
        return {
            "id": entry.id,
            "filename": entry.path.rsplit("/", 1)[-1],
            "logical_path": entry.path,
            "display_name": metadata.display_name,
            "description": metadata.description,
            "folder_id": self._folder_id_of(layout.parent_of(entry.path), folder_ids),
            "created_by": (creator or self._creator)(entry.owner_id),
            "created_at": entry.created_at,
            "updated_at": entry.updated_at,
            "can_edit": may_change,
            "can_delete": may_change,
        }

    # -- folders ------------------------------------------------------------------------------
    def get_folder(self, user: User, folder_id: int) -> dict[str, Any]:
        self.ensure_synced()
        return self.folder_view(user, self._folder_entry(folder_id))

    def create_folder(self, user: User, name: str, parent_id: int | None) -> dict[str, Any]:
        rules.check_folder_name(name)
        self.ensure_synced()
        parent_entry = self.index.entry("folders", parent_id) if parent_id is not None else None
        if parent_id is not None and parent_entry is None:
            raise errors.ParentFolderNotFound(
                f"Parent folder with id {parent_id} not found", parent_id=str(parent_id)
            )
        path = layout.join(parent_entry.path if parent_entry else None, name)

        def plan(tree: pygit2.Tree) -> Edits:
            parent_path = parent_entry.path if parent_entry else None
            self._require_folder_parent(tree, parent_path, parent_id, errors.ParentFolderNotFound)
            if self.repo.object_at(tree, path) is not None:
                raise errors.FolderAlreadyExists(f"Folder '{path}' already exists", path=path)
            return {layout.marker_path(path): b""}

        created: list[Entry] = []

        def record(_: CommitResult) -> None:
            created.append(self.index.add_entry("folders", path, user["id"]))

        self._commit(user, f"Create folder {path}", plan, record)
        return self.folder_view(user, created[0])

    def update_folder(
        self, user: User, folder_id: int, name: str | None, parent_id: Any = Unset
    ) -> dict[str, Any]:
        """Rename a folder and/or move it under another parent (`parent_id` None = the root)."""
        self.ensure_synced()
        entry = self._folder_entry(folder_id)
        if not self._may_change(user, entry):
            raise errors.NotFolderOwner(
                "Only the folder's owner or an admin can change it", folder_id=str(folder_id)
            )
        old_path = entry.path
        new_name = old_path.rsplit("/", 1)[-1] if name is None else name
        rules.check_folder_name(new_name)
        if parent_id is Unset:
            parent_path = layout.parent_of(old_path)
        elif parent_id is None:
            parent_path = None
        else:
            parent_entry = self.index.entry("folders", parent_id)
            if parent_entry is None:
                raise errors.ParentFolderNotFound(
                    f"Parent folder with id {parent_id} not found", parent_id=str(parent_id)
                )
            parent_path = parent_entry.path
        new_path = layout.join(parent_path, new_name)
        if new_path == old_path:
            return self.folder_view(user, entry)
        if new_path.startswith(old_path + "/"):
            raise errors.ValidationError(
                "A folder cannot be moved into itself", folder_id=str(folder_id), path=new_path
            )

        def plan(tree: pygit2.Tree) -> Edits:
            current = self.repo.object_at(tree, old_path)
            if current is None or current.type != pygit2.GIT_OBJECT_TREE:
                raise errors.FolderNotFound(
                    f"Folder with id {folder_id} not found", folder_id=str(folder_id)
                )
            if parent_path is not None and not self.repo.is_folder(tree, parent_path):
                raise errors.ParentFolderNotFound(
                    f"Parent folder with id {parent_id} not found", parent_id=str(parent_id)
                )
            if self.repo.object_at(tree, new_path) is not None:
                raise errors.FolderAlreadyExists(
                    f"Folder '{new_path}' already exists", path=new_path
                )
            edits: Edits = {
                old_path: None,
                new_path: Existing(current.id, pygit2.GIT_FILEMODE_TREE),
            }
            edits.update(self._keep_folder_alive(tree, layout.parent_of(old_path), old_path))
            return edits

        def record(_: CommitResult) -> None:
            for kind in ("folders", "scripts"):
                moves = {
                    path: new_path + path[len(old_path) :]
                    for path in self.index.entries(kind)  # type: ignore[arg-type]
                    if path == old_path or path.startswith(old_path + "/")
                }
                self.index.move_entries(kind, moves)  # type: ignore[arg-type]
            self.index.touch_entry("folders", folder_id)

        verb = "Rename" if layout.parent_of(old_path) == parent_path else "Move"
        self._commit(user, f"{verb} folder {old_path} -> {new_path}", plan, record)
        return self.folder_view(user, self._folder_entry(folder_id))

    def delete_folder(self, user: User, folder_id: int) -> None:
        self.ensure_synced()
        entry = self._folder_entry(folder_id)
        path = entry.path

        def inside(kind: str) -> list[Entry]:
            return [
                item
                for item_path, item in self.index.entries(kind).items()  # type: ignore[arg-type]
                if item_path == path or item_path.startswith(path + "/")
            ]

        def plan(tree: pygit2.Tree) -> Edits:
            if not self.repo.is_folder(tree, path):
                raise errors.FolderNotFound(
                    f"Folder with id {folder_id} not found", folder_id=str(folder_id)
                )
            if not user["is_admin"]:
                foreign = [
                    item
                    for item in inside("folders") + inside("scripts")
                    if item.owner_id != user["id"]
                ]
                if foreign:
                    raise errors.NotAllOwner(
                        "Only an admin or the owner of everything inside can delete this folder",
                        folder_id=str(folder_id),
                        not_owned=sorted(item.path for item in foreign)[:20],
                    )
            edits: Edits = {path: None}
            edits.update(self._keep_folder_alive(tree, layout.parent_of(path), path))
            return edits

        def record(_: CommitResult) -> None:
            for kind in ("folders", "scripts"):
                self.index.remove_entries(kind, [item.id for item in inside(kind)])  # type: ignore[arg-type]

        self._commit(user, f"Delete folder {path}", plan, record)

    def _keep_folder_alive(self, tree: pygit2.Tree, folder: str | None, leaving: str) -> Edits:
        """When `leaving` is the last thing in `folder`, mark the folder so Git keeps it."""
        if folder is None:
            return {}
        current = self.repo.object_at(tree, folder)
        if current is None or current.type != pygit2.GIT_OBJECT_TREE:
            return {}
        leaving_name = leaving.rsplit("/", 1)[-1]
        others = [
            e.name
            for e in current
            if e.name not in (leaving_name, leaving_name + layout.METADATA_SUFFIX)
        ]  # type: ignore[attr-defined]
        return {} if others else {layout.marker_path(folder): b""}

    # -- scripts ------------------------------------------------------------------------------
    def get_script(self, user: User, script_id: int) -> dict[str, Any]:
        self.ensure_synced()
        return self.script_view(user, self._script_entry(script_id))

    def script_path(self, script_id: int) -> str:
        """Where the script is on `main` now (404 when there is no such script)."""
        self.ensure_synced()
        return self._script_entry(script_id).path

    def script_path_at(self, script_id: int, commit: pygit2.Commit, revision: str) -> str:
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

    def restore_script(self, user: User, script_id: int, revision: str) -> dict[str, Any]:
        """One new commit making the script's content and metadata what they were at `revision`;
        it keeps its id and current path. History is never rewritten; restoring what is already
        there makes no commit."""
        self.ensure_synced()
        entry = self._script_entry(script_id)
        self._require_script_owner(user, entry)
        head = self.repo.head()
        commit = self.repo.resolve(revision)
        old_path = self.script_path_at(script_id, commit, revision)
        path = entry.path
        content = self.repo.read_file(commit.tree, old_path) or b""
        # The sidecar as it was, byte for byte; none then means none now (the filename shows).
        sidecar = self.repo.read_file(commit.tree, layout.metadata_path(old_path))
        rules.check_script_content(path.rsplit("/", 1)[-1], content, self.settings.max_script_size)

        def plan(tree: pygit2.Tree) -> Edits:
            if not self.repo.is_file(tree, path):
                raise errors.ScriptNotFound(
                    f"Script with id {script_id} not found", script_id=str(script_id)
                )
            return {path: content, layout.metadata_path(path): sidecar}

        def record(_: CommitResult) -> None:
            self.index.touch_entry("scripts", script_id)

        now = head
        if (
            self.repo.read_file(head.tree, path) != content
            or self.repo.read_file(head.tree, layout.metadata_path(path)) != sidecar
        ):
            message = f"Restore script {path} to {commit.short_id}"
            now = self._commit(user, message, plan, record).commit
        return {
            **self.script_view(user, self._script_entry(script_id)),
            "revision": str(now.id),
            "restored_from": str(commit.id),
        }

    def validate_script(
        self, filename: str, content: bytes, display_name: str | None = None
    ) -> None:
        """What an upload checks before it touches the repository, in the same order, so that
        asking without saving (no `display_name`) always gets the answer a save would."""
        rules.check_script_filename(filename)
        if display_name is not None:
            rules.check_display_name(display_name)
        rules.check_script_content(filename, content, self.settings.max_script_size)

    def save_script(
        self,
        user: User,
        *,
        filename: str,
        content: bytes,
        display_name: str,
        description: str | None,
        folder_id: int | None,
        replace: bool,
    ) -> dict[str, Any]:
        """Upload a script (multipart or text); with `replace`, overwrite one keeping its id."""
        self.validate_script(filename, content, display_name)
        self.ensure_synced()
        folder_path = self._folder_path(folder_id)
        path = layout.join(folder_path, filename)
        metadata = layout.ScriptMetadata(display_name=display_name, description=description)
        replaced: list[Entry | None] = []

        def plan(tree: pygit2.Tree) -> Edits:
            replaced.clear()
            self._require_folder_parent(tree, folder_path, folder_id, errors.FolderNotFound)
            existing = self.repo.object_at(tree, path)
            if existing is not None and existing.type != pygit2.GIT_OBJECT_BLOB:
                raise errors.ScriptAlreadyExists(
                    f"A folder named '{path}' is in the way", logical_path=path
                )
            if existing is not None:
                entry = self.index.entry_by_path("scripts", path)
                if not replace:
                    raise errors.ScriptExistsReplaceRequired(
                        f"Script '{path}' already exists; upload again with replace=true "
                        "to replace it",
                        logical_path=path,
                        script_id=str(entry.id) if entry else None,
                    )
                if entry is not None:
                    self._require_script_owner(user, entry)
                replaced.append(entry)
            return {path: content, layout.metadata_path(path): metadata.to_bytes()}

        saved: list[Entry] = []

        def record(_: CommitResult) -> None:
            entry = replaced[0] if replaced else None
            if entry is None:
                saved.append(self.index.add_entry("scripts", path, user["id"]))
            else:
                self.index.touch_entry("scripts", entry.id)
                saved.append(self._script_entry(entry.id))

        verb = "Replace" if replace and self.repo.is_file(self.repo.head().tree, path) else "Create"
        self._commit(user, f"{verb} script {path}", plan, record)
        return self.script_view(user, saved[0], metadata)

    def update_script(self, user: User, script_id: int, change: ScriptChange) -> dict[str, Any]:
        self.ensure_synced()
        entry = self._script_entry(script_id)
        self._require_script_owner(user, entry)
        old_path = entry.path
        new_name = old_path.rsplit("/", 1)[-1] if change.filename is Unset else change.filename
        if not new_name.endswith(rules.SCRIPT_SUFFIX):
            # The original checks a new name's suffix as part of the request (its schema), so a
            # rename to `a.txt` is VALIDATION_ERROR there, not INVALID_FILENAME as for an upload.
            raise errors.ValidationError(
                "Invalid filename: a script's filename must end with .py", filename=new_name
            )
        rules.check_script_filename(new_name)
        if change.display_name not in (Unset, None):
            rules.check_display_name(change.display_name)
        if change.folder_id is Unset:
            folder_path = layout.parent_of(old_path)
        else:
            folder_path = self._folder_path(change.folder_id)
        new_path = layout.join(folder_path, new_name)
        content: bytes | None = None
        if change.content is not Unset:
            content = change.content
            rules.check_script_content(new_name, content, self.settings.max_script_size)
        elif new_name != old_path.rsplit("/", 1)[-1]:
            # Renaming can turn a helper into a runnable script: it must then have main().
            current = self.repo.read_file(self.repo.head().tree, old_path) or b""
            rules.check_script_content(new_name, current, self.settings.max_script_size)
        actions: list[str] = []
        # The source a new content was edited from (its blob), when the caller says which.
        base = None
        if change.content is not Unset and change.base_revision not in (Unset, None):
            base_commit = self.repo.resolve(change.base_revision)
            base_path = self.script_path_at(script_id, base_commit, change.base_revision)
            base = self.repo.object_at(base_commit.tree, base_path).id  # type: ignore[union-attr]

        def plan(tree: pygit2.Tree) -> Edits:
            actions.clear()
            current = self.repo.object_at(tree, old_path)
            if current is None or current.type != pygit2.GIT_OBJECT_BLOB:
                raise errors.ScriptNotFound(
                    f"Script with id {script_id} not found", script_id=str(script_id)
                )
            # Checked against the very tree this commit is planned on: a save that landed in
            # between is seen, never overwritten.
            if base is not None and current.id != base:
                raise errors.ScriptChanged(
                    f"Script '{old_path}' has changed since revision {change.base_revision}; "
                    "nothing was saved",
                    script_id=str(script_id),
                    base_revision=change.base_revision,
                )
            old_metadata = self.repo.script_metadata(tree, old_path)
            metadata = replace(
                old_metadata,
                display_name=old_metadata.display_name
                if change.display_name in (Unset, None)
                else change.display_name,
                description=old_metadata.description
                if change.description is Unset
                else change.description,
            )
            edits: Edits = {}
            if new_path != old_path:
                self._require_folder_parent(
                    tree, folder_path, change.folder_id, errors.FolderNotFound
                )
                if self.repo.object_at(tree, new_path) is not None:
                    raise errors.ScriptAlreadyExists(
                        f"Script '{new_path}' already exists", logical_path=new_path
                    )
                verb = "Rename" if layout.parent_of(old_path) == folder_path else "Move"
                actions.append(f"{verb} script {old_path} -> {new_path}")
                edits[old_path] = None
                edits[layout.metadata_path(old_path)] = None
                edits.update(self._keep_folder_alive(tree, layout.parent_of(old_path), old_path))
                edits[new_path] = (
                    content
                    if content is not None
                    else Existing(
                        current.id,
                        current.filemode,  # type: ignore[attr-defined]
                    )
                )
                edits[layout.metadata_path(new_path)] = metadata.to_bytes()
            else:
                if content is not None:
                    edits[new_path] = content
                if (
                    metadata != old_metadata
                    or self.repo.object_at(tree, layout.metadata_path(new_path)) is None
                ):
                    edits[layout.metadata_path(new_path)] = metadata.to_bytes()
            if content is not None:
                actions.append(f"Update script {new_path}")
            if metadata != old_metadata:
                actions.append(f"Update metadata of {new_path}")
            return edits

        def record(_: CommitResult) -> None:
            if new_path != old_path:
                self.index.move_entries("scripts", {old_path: new_path})
            self.index.touch_entry("scripts", script_id)

        # The message is known only once planned; plan once against `main` to word it. A change
        # that changes nothing is no commit at all.
        if not plan(self.repo.head().tree):
            return self.script_view(user, entry)
        message = "; ".join(actions) or f"Update script {new_path}"
        self._commit(user, message, plan, record)
        return self.script_view(user, self._script_entry(script_id))

    def delete_script(self, user: User, script_id: int) -> None:
        self.ensure_synced()
        entry = self._script_entry(script_id)
        self._require_script_owner(user, entry)
        path = entry.path

        def plan(tree: pygit2.Tree) -> Edits:
            if not self.repo.is_file(tree, path):
                raise errors.ScriptNotFound(
                    f"Script with id {script_id} not found", script_id=str(script_id)
                )
            edits: Edits = {path: None, layout.metadata_path(path): None}
            edits.update(self._keep_folder_alive(tree, layout.parent_of(path), path))
            return edits

        def record(_: CommitResult) -> None:
            self.index.remove_entries("scripts", [script_id])

        self._commit(user, f"Delete script {path}", plan, record)

    # -- the whole tree -----------------------------------------------------------------------
    def tree_json(self, user: User, revision: str | None = None) -> bytes:
        """GET /tree's body, serialized: the same commit, index state and caller give the same
        bytes, so repeated reads of a 10,000-script tree cost a lookup, not a rebuild."""
        self.ensure_synced()
        key = (
            str(self.repo.head().id),
            None if revision is None else str(self.repo.resolve(revision).id),
            self.index.storage.generation,
            user["id"],
            user["is_admin"],
        )
        with self._tree_lock:
            cached = self._tree_cache.get(key)
            if cached is not None:
                self._tree_cache.move_to_end(key)
                return cached
        body = orjson.dumps(self.tree(user, revision))
        with self._tree_lock:
            self._tree_cache[key] = body
            while len(self._tree_cache) > 32:
                self._tree_cache.popitem(last=False)
        return body

    def tree(self, user: User, revision: str | None = None) -> dict[str, Any]:
        """Every folder and script on `main`; or, read-only, as they were at `revision`."""
        self.ensure_synced()
        head = self.repo.head()
        commit = head if revision is None else self.repo.resolve(revision)
        listing = self.repo.listing(commit)
        folders = self.index.entries("folders")
        scripts = self.index.entries("scripts")
        read_only = revision is not None
        unindexed: set[str] = set()
        if commit.id != head.id:
            folders, scripts, unindexed = self._entries_at(commit, head, folders, scripts)
        folder_items: dict[str, dict[str, Any]] = {}
        root_folders: list[dict[str, Any]] = []
        root_scripts: list[dict[str, Any]] = []
        creators: dict[int | None, dict[str, Any] | None] = {}

        def creator(owner_id: int | None) -> dict[str, Any] | None:
            if owner_id not in creators:
                creators[owner_id] = self._creator(owner_id)
            return creators[owner_id]

        folder_ids = {path: entry.id for path, entry in folders.items() if path not in unindexed}
        for path in sorted(listing.folders):
            entry = folders.get(path)
            if entry is None:
                continue
            parent = layout.parent_of(path)
            item = {
                "folder": self.folder_view(user, entry, folder_ids, creator, read_only),
                "scripts": [],
                "subfolders": [],
            }
            if path in unindexed:
                item["folder"]["id"] = None
            folder_items[path] = item
            siblings = (
                folder_items[parent]["subfolders"] if parent in folder_items else root_folders
            )
            siblings.append(item)
        for path in sorted(listing.scripts):
            entry = scripts.get(path)
            if entry is None:
                continue
            metadata = self.repo.metadata_from_blob(path, listing.scripts[path][1])
            script = self.script_view(user, entry, metadata, folder_ids, creator, read_only)
            if path in unindexed:
                script["id"] = None
            parent = layout.parent_of(path)
            if parent is None:
                root_scripts.append(script)
            elif parent in folder_items:
                folder_items[parent]["scripts"].append(script)
        return {"root_scripts": root_scripts, "root_folders": root_folders}

    def _entries_at(
        self,
        commit: pygit2.Commit,
        head: pygit2.Commit,
        folders: dict[str, Entry],
        scripts: dict[str, Entry],
    ) -> tuple[dict[str, Entry], dict[str, Entry], set[str]]:
        """The index's entries re-pointed at the paths they had in an older `commit`.

        A path there shows the id of what it became on `main`: the same path, or where git's
        rename detection (the one the index itself follows) says it moved. What has no such
        counterpart (deleted since) gets a stand-in dated by the commit, shown with `id` null,
        returned as the third value.
        """
        listing = self.repo.listing(commit)
        script_moves = self.repo.detected_moves(commit, head)
        when = datetime.fromtimestamp(commit.commit_time, UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        unindexed: set[str] = set()

        def at(current: dict[str, Entry], paths: Any, moves: dict[str, str]) -> dict[str, Entry]:
            found: dict[str, Entry] = {}
            for path in paths:
                entry = current.get(moves.get(path, path))
                if entry is None:
                    unindexed.add(path)
                    entry = Entry(id=0, path=path, owner_id=None, created_at=when, updated_at=when)
                found[path] = replace(entry, path=path)
            return found

        return (
            at(folders, listing.folders, folder_moves(script_moves)),
            at(scripts, listing.scripts, script_moves),
            unindexed,
        )
