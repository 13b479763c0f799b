"""Folders and scripts: the original Scripts Manager's writes, each one commit on `main`.

Every write follows one shape (`_commit`): validate the input, plan the edits against the tree they
will be applied to (so checks always see the state being changed), commit with compare-and-swap, then
record ids and owners in the index, all under the repository's write lock so the index learns of
commits in order. A plan hands what it found (the entry a save replaces) and the commit message it
worded to the recording step as values (`repo.Plan`). Who may change what is `gitscripts.access`'s;
ids and paths are looked up through `gitscripts.index.lookups`; answers are shaped by
`gitscripts.manager.views`.

A script that declares dependencies gets its lock in the same commit (`_lock_edits`). Resolving
one can take seconds, so a write first plans against `main` before it takes the write lock, and
the commit's plan reuses what that resolved (`_Resolver`): other writers do not wait for uv.
"""

from __future__ import annotations

import dataclasses
import enum
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import TypeVar

import structlog

from gitscripts import access, errors
from gitscripts.config import Settings
from gitscripts.deps import locks, metadata
from gitscripts.deps.environments import EnvironmentBuilds
from gitscripts.index import Entry, Index
from gitscripts.index.lookups import Lookups
from gitscripts.index.sync import sync_index
from gitscripts.index.tombstones import Tombstone
from gitscripts.manager.views import FolderView, RestoredScript, ScriptView, Views
from gitscripts.repo import (
    Author,
    Commit,
    Edit,
    Edits,
    Existing,
    Plan,
    Repository,
    Tree,
    layout,
    modes,
    rules,
)

log = structlog.get_logger("gitscripts.manager")

T = TypeVar("T")
R = TypeVar("R")


class _Unset(enum.Enum):
    UNSET = "unset"


# "Field not given", as opposed to an explicit null.
Unset = _Unset.UNSET


@dataclass(frozen=True)
class ScriptChange:
    """What PUT /scripts/{id} asks for; fields left as `Unset` stay as they are (a null
    `display_name` or `filename` too; a null `description` clears it, a null `folder_id` is the
    root)."""

    display_name: str | _Unset | None = Unset
    description: str | _Unset | None = Unset
    filename: str | _Unset = Unset
    content: bytes | _Unset = Unset
    folder_id: int | _Unset | None = Unset
    base_revision: str | _Unset | None = Unset


@dataclass(frozen=True)
class _Locked:
    """A version of a script and the lock it had (None: none): a new version whose block reads
    the same keeps that lock."""

    source: bytes | None
    lock: Edit


class _Resolver:
    """The locks one write resolves, each once (by block): planned against `main` before the
    write lock is taken, planned again under it (compare-and-swap), resolved only the first time."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self._resolved: dict[str | None, bytes] = {}

    def lock_of(self, filename: str, content: bytes) -> bytes:
        key = metadata.block(content)
        if key not in self._resolved:
            self._resolved[key] = locks.resolve(self.settings, filename, content)
        return self._resolved[key]


class ManagerService:
    def __init__(
        self,
        settings: Settings,
        index: Index,
        repo: Repository,
        lookups: Lookups,
        views: Views,
        environments: EnvironmentBuilds,
    ) -> None:
        self.settings = settings
        self.index = index
        self.repo = repo
        self.lookups = lookups
        self.views = views
        self.environments = environments

    def _commit(
        self,
        user: access.User,
        plan: Callable[[Tree], Plan[T]],
        record: Callable[[T, Commit], R],
        message: str | None = None,
    ) -> tuple[R, Commit]:
        """Commit what `plan` makes of the tree on `main`, then let `record` update the index
        from what the committed plan found (and the commit made); what `record` returns, and the
        new commit. The caller's `message`, when given, replaces the one the plan words."""
        own_message = rules.commit_message(message)

        def planned(parent: Commit) -> Plan[T]:
            # Whatever landed on `main` meanwhile (a push) is indexed before this change is
            # checked against it, so ownership checks see every path.
            sync_index(self.index, self.repo, target=parent)
            done = plan(parent.tree)
            return done if own_message is None else dataclasses.replace(done, message=own_message)

        with self.repo.write_lock, self.index.transaction():
            result, done = self.repo.commit_plan(Author(user.id, user.login), planned)
            recorded = record(done.found, result.commit)
            self.index.meta.set_synced_head(result.commit.id)
        log.info("commit", message=done.message, revision=result.commit.id)
        # A lock this commit wrote has its environment built now, in the background, so the
        # script's first run finds it ready.
        for path, edit in done.edits.items():
            if isinstance(edit, bytes) and rules.is_lock_file(path):
                self.environments.prepare(edit)
        return recorded, result.commit

    # -- helpers ------------------------------------------------------------------------------
    def _bury(self, scripts: list[Entry], commit: Commit) -> None:
        """Scripts `commit` deleted leave their entries as tombstones: restorable, ids kept."""
        self.index.scripts.remove([entry.id for entry in scripts])
        self.index.deleted.bury(scripts, {entry.path: commit.id for entry in scripts})

    @staticmethod
    def _require_script_owner(user: access.User, entry: Entry) -> None:
        if not access.may_change_script(user, entry.owner_id):
            raise errors.NotScriptOwner(
                "Only the script's owner or an admin can change it", script_id=str(entry.id)
            )

    def _require_folder_parent(
        self,
        tree: Tree,
        path: str | None,
        folder_id: int | None,
        error: type[errors.NotFound],
    ) -> None:
        if path is not None and not self.repo.is_folder(tree, path):
            key = "parent_id" if error is errors.ParentFolderNotFound else "folder_id"
            raise error(f"Folder with id {folder_id} not found", **{key: str(folder_id)})

    def _parent_entry(self, parent_id: int) -> Entry:
        parent = self.index.folders.get(parent_id)
        if parent is None:
            raise errors.ParentFolderNotFound(
                f"Parent folder with id {parent_id} not found", parent_id=str(parent_id)
            )
        return parent

    def _keep_folder_alive(self, tree: Tree, folder: str | None, leaving: str) -> Edits:
        """When `leaving` is the last thing in `folder`, mark the folder so Git keeps it."""
        if folder is None:
            return {}
        names = self.repo.names_in(tree, folder)
        if names is None:
            return {}
        leaving_name = leaving.rsplit("/", 1)[-1]
        others = [name for name in names if layout.script_of(name) != leaving_name]
        return {} if others else {layout.marker_path(folder): b""}

    def _check_content(self, filename: str, content: bytes) -> None:
        """What every version of a script must pass: the content rules, and a valid block."""
        rules.check_script_content(filename, content, self.settings.max_script_size)
        rules.script_dependencies(filename, content, self.settings.packages_allow_direct_references)

    def _locked(self, tree: Tree, path: str) -> _Locked:
        """The script at `path` in `tree` and its lock, as they are."""
        lock = self.repo.entry(tree, layout.lock_path(path))
        return _Locked(
            self.repo.read_file(tree, path), Existing(lock.id, lock.mode) if lock else None
        )

    def _lock_edits(
        self,
        tree: Tree,
        path: str,
        content: bytes,
        locked: _Locked,
        resolver: _Resolver,
        old_path: str | None = None,
    ) -> Edits:
        """The edits that leave the script saved at `path` with `content` the lock it needs:
        `locked`'s lock when its block reads the same, a new one when the block changed, none
        without a block (or for a helper). A lock left at `old_path` (a move) goes."""
        edits: Edits = {}
        if old_path is not None and old_path != path:
            old_lock = layout.lock_path(old_path)
            if self.repo.entry(tree, old_lock) is not None:
                edits[old_lock] = None
        filename = path.rsplit("/", 1)[-1]
        wanted: Edit
        if rules.is_helper_module(filename) or metadata.block(content) is None:
            wanted = None
        elif locked.lock is not None and rules.lock_still_fits(locked.source, content):
            wanted = locked.lock
        else:
            wanted = resolver.lock_of(filename, content)
        lock_path = layout.lock_path(path)
        current = self.repo.entry(tree, lock_path)
        if isinstance(wanted, Existing):
            unchanged = current is not None and current.id == wanted.id
        elif wanted is None:
            unchanged = current is None
        else:
            unchanged = current is not None and self.repo.read_file(tree, lock_path) == wanted
        if not unchanged:
            edits[lock_path] = wanted
        return edits

    # -- folders ------------------------------------------------------------------------------
    def create_folder(
        self, user: access.User, name: str, parent_id: int | None, message: str | None = None
    ) -> FolderView:
        rules.check_folder_name(name)
        self.lookups.ensure_synced()
        parent_path = self._parent_entry(parent_id).path if parent_id is not None else None
        path = layout.join(parent_path, name)

        def plan(tree: Tree) -> Plan[None]:
            self._require_folder_parent(tree, parent_path, parent_id, errors.ParentFolderNotFound)
            if self.repo.entry(tree, path) is not None:
                raise errors.FolderAlreadyExists(f"Folder '{path}' already exists", path=path)
            return Plan({layout.marker_path(path): b""}, f"Create folder {path}", None)

        created, _ = self._commit(
            user, plan, lambda _, __: self.index.folders.add(path, user.id), message
        )
        return self.views.folder_view(user, created)

    def update_folder(
        self,
        user: access.User,
        folder_id: int,
        name: str | None,
        parent_id: int | _Unset | None = Unset,
        message: str | None = None,
    ) -> FolderView:
        """Rename a folder and/or move it under another parent (`parent_id` None = the root)."""
        self.lookups.ensure_synced()
        entry = self.lookups.folder(folder_id)
        if not access.may_change_folder(user, entry.owner_id):
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
            parent_path = self._parent_entry(parent_id).path
        new_path = layout.join(parent_path, new_name)
        if new_path == old_path:
            return self.views.folder_view(user, entry)
        if new_path.startswith(old_path + "/"):
            raise errors.ValidationError(
                "A folder cannot be moved into itself", folder_id=str(folder_id), path=new_path
            )
        verb = "Rename" if layout.parent_of(old_path) == parent_path else "Move"

        def plan(tree: Tree) -> Plan[None]:
            current = self.repo.entry(tree, old_path)
            if current is None or not current.is_folder:
                raise errors.FolderNotFound(
                    f"Folder with id {folder_id} not found", folder_id=str(folder_id)
                )
            if parent_path is not None and not self.repo.is_folder(tree, parent_path):
                raise errors.ParentFolderNotFound(
                    f"Parent folder with id {parent_id} not found", parent_id=str(parent_id)
                )
            if self.repo.entry(tree, new_path) is not None:
                raise errors.FolderAlreadyExists(
                    f"Folder '{new_path}' already exists", path=new_path
                )
            edits: Edits = {
                old_path: None,
                new_path: Existing(current.id, modes.FOLDER),
            }
            edits.update(self._keep_folder_alive(tree, layout.parent_of(old_path), old_path))
            return Plan(edits, f"{verb} folder {old_path} -> {new_path}", None)

        def record(_: None, __: Commit) -> None:
            self.index.folders.move_under(old_path, new_path)
            self.index.scripts.move_under(old_path, new_path)
            self.index.deleted.move_folders({old_path: new_path})
            self.index.folders.touch(folder_id)

        self._commit(user, plan, record, message)
        return self.views.folder_view(user, self.lookups.folder(folder_id))

    def delete_folder(self, user: access.User, folder_id: int, message: str | None = None) -> None:
        self.lookups.ensure_synced()
        path = self.lookups.folder(folder_id).path

        def plan(tree: Tree) -> Plan[None]:
            if not self.repo.is_folder(tree, path):
                raise errors.FolderNotFound(
                    f"Folder with id {folder_id} not found", folder_id=str(folder_id)
                )
            # Deleting a folder changes everything inside it.
            foreign = [
                item.path
                for item in self.index.folders.under(path)
                if not access.may_change_folder(user, item.owner_id)
            ] + [
                item.path
                for item in self.index.scripts.under(path)
                if not access.may_change_script(user, item.owner_id)
            ]
            if foreign:
                raise errors.NotAllOwner(
                    "Only an admin or the owner of everything inside can delete this folder",
                    folder_id=str(folder_id),
                    not_owned=sorted(foreign)[:20],
                )
            edits: Edits = {path: None}
            edits.update(self._keep_folder_alive(tree, layout.parent_of(path), path))
            return Plan(edits, f"Delete folder {path}", None)

        def record(_: None, commit: Commit) -> None:
            self.index.folders.remove([item.id for item in self.index.folders.under(path)])
            self._bury(self.index.scripts.under(path), commit)

        self._commit(user, plan, record, message)

    # -- scripts ------------------------------------------------------------------------------
    def validate_script(
        self, filename: str, content: bytes, display_name: str | None = None
    ) -> None:
        """What an upload checks before it touches the repository, in the same order, so that
        asking without saving (no `display_name`) always gets the answer a save would."""
        rules.check_script_filename(filename)
        if display_name is not None:
            rules.check_display_name(display_name)
        self._check_content(filename, content)

    def save_script(
        self,
        user: access.User,
        *,
        filename: str,
        content: bytes,
        display_name: str,
        description: str | None,
        folder_id: int | None,
        replace: bool,
        message: str | None = None,
    ) -> ScriptView:
        """Upload a script (multipart or text); with `replace`, overwrite one keeping its id."""
        self.validate_script(filename, content, display_name)
        self.lookups.ensure_synced()
        folder_path = self.lookups.folder_path(folder_id)
        path = layout.join(folder_path, filename)
        sidecar = layout.ScriptMetadata(display_name=display_name, description=description)
        resolver = _Resolver(self.settings)

        def plan(tree: Tree) -> Plan[Entry | None]:
            """The edits, and the entry of the script they replace (None: a new script)."""
            self._require_folder_parent(tree, folder_path, folder_id, errors.FolderNotFound)
            existing = self.repo.entry(tree, path)
            edits: Edits = {path: content, layout.metadata_path(path): sidecar.to_bytes()}
            if existing is None:
                edits.update(self._lock_edits(tree, path, content, _Locked(None, None), resolver))
                return Plan(edits, f"Create script {path}", None)
            if not existing.is_blob:
                raise errors.ScriptAlreadyExists(
                    f"A folder named '{path}' is in the way", logical_path=path
                )
            entry = self.index.scripts.at(path)
            if not replace:
                raise errors.ScriptExistsReplaceRequired(
                    f"Script '{path}' already exists; upload again with replace=true to replace it",
                    logical_path=path,
                    script_id=str(entry.id) if entry else None,
                )
            if entry is not None:
                self._require_script_owner(user, entry)
            # The upload names the display name and description; what else a person wrote in
            # the sidecar (input_schema, resources) is kept.
            kept = dataclasses.replace(
                self.repo.script_metadata(tree, path),
                display_name=display_name,
                description=description,
            )
            edits[layout.metadata_path(path)] = kept.to_bytes()
            edits.update(self._lock_edits(tree, path, content, self._locked(tree, path), resolver))
            return Plan(edits, f"Replace script {path}", entry)

        def record(replaced: Entry | None, _: Commit) -> Entry:
            if replaced is None:
                return self.index.scripts.add(path, user.id)
            self.index.scripts.touch(replaced.id)
            return self.lookups.script(replaced.id)

        # Planned once outside the write lock: a lock is resolved there (it can take seconds),
        # and a refusal comes before anything is written.
        plan(self.repo.head().tree)
        saved, _ = self._commit(user, plan, record, message)
        return self.views.script_view(user, saved, sidecar)

    def update_script(
        self,
        user: access.User,
        script_id: int,
        change: ScriptChange,
        message: str | None = None,
    ) -> ScriptView:
        self.lookups.ensure_synced()
        entry = self.lookups.script(script_id)
        self._require_script_owner(user, entry)
        old_path = entry.path
        old_name = old_path.rsplit("/", 1)[-1]
        new_name = old_name if isinstance(change.filename, _Unset) else change.filename
        if not new_name.endswith(layout.SCRIPT_SUFFIX):
            # The original checks a new name's suffix as part of the request (its schema), so a
            # rename to `a.txt` is VALIDATION_ERROR there, not INVALID_FILENAME as for an upload.
            raise errors.ValidationError(
                "Invalid filename: a script's filename must end with .py", filename=new_name
            )
        rules.check_script_filename(new_name)
        new_display_name = None if isinstance(change.display_name, _Unset) else change.display_name
        if new_display_name is not None:
            rules.check_display_name(new_display_name)
        if isinstance(change.folder_id, _Unset):
            folder_id = None
            folder_path = layout.parent_of(old_path)
        else:
            folder_id = change.folder_id
            folder_path = self.lookups.folder_path(folder_id)
        new_path = layout.join(folder_path, new_name)
        content = None if isinstance(change.content, _Unset) else change.content
        if content is not None:
            self._check_content(new_name, content)
        elif new_name != old_name:
            # Renaming can turn a helper into a runnable script: it must then have main().
            current = self.repo.read_file(self.repo.head().tree, old_path) or b""
            self._check_content(new_name, current)
        resolver = _Resolver(self.settings)
        base_revision = None if isinstance(change.base_revision, _Unset) else change.base_revision
        # The source a new content was edited from (its blob), when the caller says which.
        base = None
        if content is not None and base_revision is not None:
            base_commit = self.repo.resolve(base_revision)
            base_path = self.lookups.script_path_at(script_id, base_commit, base_revision)
            base = self.repo.entry_id(base_commit.tree, base_path)

        def plan(tree: Tree) -> Plan[None]:
            current = self.repo.entry(tree, old_path)
            if current is None or not current.is_blob:
                raise errors.ScriptNotFound(
                    f"Script with id {script_id} not found", script_id=str(script_id)
                )
            # Checked against the very tree this commit is planned on: a save that landed in
            # between is seen, never overwritten.
            if base is not None and current.id != base:
                raise errors.ScriptChanged(
                    f"Script '{old_path}' has changed since revision {base_revision}; "
                    "nothing was saved",
                    script_id=str(script_id),
                    base_revision=base_revision,
                )
            old_metadata = self.repo.script_metadata(tree, old_path)
            metadata = replace(
                old_metadata,
                display_name=old_metadata.display_name
                if new_display_name is None
                else new_display_name,
                description=old_metadata.description
                if isinstance(change.description, _Unset)
                else change.description,
            )
            actions: list[str] = []
            edits: Edits = {}
            if new_path != old_path:
                self._require_folder_parent(tree, folder_path, folder_id, errors.FolderNotFound)
                if self.repo.entry(tree, new_path) is not None:
                    raise errors.ScriptAlreadyExists(
                        f"Script '{new_path}' already exists", logical_path=new_path
                    )
                verb = "Rename" if layout.parent_of(old_path) == folder_path else "Move"
                actions.append(f"{verb} script {old_path} -> {new_path}")
                edits[old_path] = None
                edits[layout.metadata_path(old_path)] = None
                edits.update(self._keep_folder_alive(tree, layout.parent_of(old_path), old_path))
                edits[new_path] = (
                    content if content is not None else Existing(current.id, current.mode)
                )
                edits[layout.metadata_path(new_path)] = metadata.to_bytes()
            else:
                if content is not None:
                    edits[new_path] = content
                if (
                    metadata != old_metadata
                    or self.repo.entry(tree, layout.metadata_path(new_path)) is None
                ):
                    edits[layout.metadata_path(new_path)] = metadata.to_bytes()
            # After every check: nothing is resolved for a change that is refused anyway.
            locked = self._locked(tree, old_path)
            new_content = content if content is not None else locked.source or b""
            edits.update(self._lock_edits(tree, new_path, new_content, locked, resolver, old_path))
            if content is not None:
                actions.append(f"Update script {new_path}")
            if metadata != old_metadata:
                actions.append(f"Update metadata of {new_path}")
            return Plan(edits, "; ".join(actions) or f"Update script {new_path}", None)

        def record(_: None, __: Commit) -> None:
            if new_path != old_path:
                self.index.scripts.move({old_path: new_path})
            self.index.scripts.touch(script_id)

        # A change that changes nothing is no commit at all (its message is still checked).
        if not plan(self.repo.head().tree).edits:
            rules.commit_message(message)
            return self.views.script_view(user, entry)
        self._commit(user, plan, record, message)
        return self.views.script_view(user, self.lookups.script(script_id))

    def delete_script(self, user: access.User, script_id: int, message: str | None = None) -> None:
        self.lookups.ensure_synced()
        entry = self.lookups.script(script_id)
        self._require_script_owner(user, entry)
        path = entry.path

        def plan(tree: Tree) -> Plan[None]:
            if not self.repo.is_file(tree, path):
                raise errors.ScriptNotFound(
                    f"Script with id {script_id} not found", script_id=str(script_id)
                )
            edits: Edits = {
                path: None,
                layout.metadata_path(path): None,
                layout.lock_path(path): None,
            }
            edits.update(self._keep_folder_alive(tree, layout.parent_of(path), path))
            return Plan(edits, f"Delete script {path}", None)

        self._commit(user, plan, lambda _, commit: self._bury([entry], commit), message)

    def restore_script(
        self, user: access.User, script_id: int, revision: str, message: str | None = None
    ) -> RestoredScript:
        """One new commit making the script's content and metadata what they were at `revision`;
        it keeps its id and current path. History is never rewritten; restoring what is already
        there makes no commit."""
        self.lookups.ensure_synced()
        entry = self.lookups.script(script_id)
        self._require_script_owner(user, entry)
        head = self.repo.head()
        commit = self.repo.resolve(revision)
        old_path = self.lookups.script_path_at(script_id, commit, revision)
        path = entry.path
        content = self.repo.read_file(commit.tree, old_path) or b""
        # The sidecar as it was, byte for byte; none then means none now (the filename shows).
        sidecar = self.repo.read_file(commit.tree, layout.metadata_path(old_path))
        self._check_content(path.rsplit("/", 1)[-1], content)
        # The lock it had then comes back with it (the environment it ran in), if it fits.
        then = self._locked(commit.tree, old_path)
        resolver = _Resolver(self.settings)

        def plan(tree: Tree) -> Plan[None]:
            if not self.repo.is_file(tree, path):
                raise errors.ScriptNotFound(
                    f"Script with id {script_id} not found", script_id=str(script_id)
                )
            edits: Edits = {path: content, layout.metadata_path(path): sidecar}
            edits.update(self._lock_edits(tree, path, content, then, resolver))
            return Plan(edits, f"Restore script {path} to {self.repo.short_id(commit)}", None)

        now = head
        rules.commit_message(message)  # checked even when there is nothing to restore
        if (
            self.repo.read_file(head.tree, path) != content
            or self.repo.read_file(head.tree, layout.metadata_path(path)) != sidecar
            or self._lock_edits(head.tree, path, content, then, resolver)
        ):
            _, now = self._commit(
                user, plan, lambda _, __: self.index.scripts.touch(script_id), message
            )
        return RestoredScript(
            **self.views.script_view(user, self.lookups.script(script_id)),
            revision=now.id,
            restored_from=commit.id,
        )

    # -- deleted scripts ------------------------------------------------------------------------
    def restore_deleted(
        self, user: access.User, script_id: int, message: str | None = None
    ) -> RestoredScript:
        """Bring a deleted script back as it was just before it was deleted: under its old id,
        owner and creation time, where its tombstone says (its folder may have moved since)."""
        self.lookups.ensure_synced()
        stone = self.lookups.tombstone(script_id)
        last = self.lookups.last_version(stone)
        return self._bring_back(user, stone, last, stone.deleted_path, message)

    def restore_deleted_at(
        self, user: access.User, path: str, revision: str, message: str | None = None
    ) -> RestoredScript:
        """Bring back the script that was at `path` in `revision`, as it was there: under its
        old id when the index remembers it deleted, else as a new script of the caller's."""
        self.lookups.ensure_synced()
        commit = self.repo.resolve(revision)
        if not layout.is_script_path(path) or not self.repo.is_file(commit.tree, path):
            raise errors.ScriptNotFound(
                f"No script at '{path}' in revision {revision}",
                logical_path=path,
                revision=revision,
            )
        stone = self.lookups.tombstone_of(path, commit)
        return self._bring_back(user, stone, commit, path, message)

    def _bring_back(
        self,
        user: access.User,
        stone: Tombstone | None,
        source: Commit,
        source_path: str,
        message: str | None,
    ) -> RestoredScript:
        """One commit putting the script at `source_path` in `source` back on `main`, at its
        tombstone's path (or its own, for a script the index does not remember); folders on the
        way that are gone are made again. Restoring is creating a script there (which anyone
        may) that takes back a deleted script's id, which is its owner's or an admin's to do."""
        path = stone.path if stone is not None else source_path
        if stone is not None and not access.may_change_script(user, stone.owner_id):
            raise errors.NotScriptOwner(
                "Only the deleted script's owner or an admin can restore it",
                script_id=str(stone.id),
            )
        content = self.repo.read_file(source.tree, source_path) or b""
        sidecar = self.repo.read_file(source.tree, layout.metadata_path(source_path))
        self._check_content(path.rsplit("/", 1)[-1], content)
        # The lock it had comes back with it, as for any restore; resolved (if it must be)
        # here, before the write lock is taken.
        then = self._locked(source.tree, source_path)
        resolver = _Resolver(self.settings)
        self._lock_edits(self.repo.head().tree, path, content, then, resolver)

        def plan(tree: Tree) -> Plan[list[str]]:
            """The edits, and the folders on the way that are made again."""
            if self.repo.entry(tree, path) is not None:
                taken = self.index.scripts.at(path)
                raise errors.ScriptAlreadyExists(
                    f"'{path}' is taken now: rename or move what is there to restore this script",
                    logical_path=path,
                    **({"script_id": str(taken.id)} if taken else {}),
                )
            missing: list[str] = []
            folder = layout.parent_of(path)
            while folder is not None:
                found = self.repo.entry(tree, folder)
                if found is not None and not found.is_folder:
                    raise errors.ScriptAlreadyExists(
                        f"A file named '{folder}' is in the way", logical_path=path
                    )
                if found is None:
                    missing.append(folder)
                folder = layout.parent_of(folder)
            edits: Edits = {path: content}
            if sidecar is not None:
                edits[layout.metadata_path(path)] = sidecar
            edits.update(self._lock_edits(tree, path, content, then, resolver))
            restored = f"Restore deleted script {path} from {self.repo.short_id(source)}"
            return Plan(edits, restored, missing)

        def record(missing: list[str], _: Commit) -> Entry:
            self.index.folders.add_many({folder: user.id for folder in reversed(missing)})
            if stone is None:
                return self.index.scripts.add(path, user.id)
            self.index.deleted.remove([stone.id])
            return self.index.scripts.revive(stone.id, path, stone.owner_id, stone.created_at)

        entry, commit = self._commit(user, plan, record, message)
        return RestoredScript(
            **self.views.script_view(user, entry),
            revision=commit.id,
            restored_from=source.id,
        )
