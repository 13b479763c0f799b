"""What folders, scripts and the whole tree look like to a caller: the API's shapes, and the tree's
cache.

One shape for each object, used by single reads and by the whole tree alike; `can_edit` and
`can_delete` come from `gitscripts.access`. The shapes are TypedDicts written as dict literals:
calling a TypedDict builds the dict through keyword arguments, which costs a tree of 10,000
scripts a third more. The tree passes lookups it has already made, so that
10,000 scripts do not mean 10,000 index queries, and its serialized body is cached per commit,
index state and caller. Reads only: every write is the manager's.
"""

from __future__ import annotations

import threading
from collections import OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TypedDict

import orjson

from gitscripts import access
from gitscripts.index import Entry, Index, Person
from gitscripts.index.lookups import Lookups
from gitscripts.index.sync import folder_moves
from gitscripts.repo import Commit, Repository, layout
from gitscripts.timestamps import iso_moment

_TREE_CACHE_SIZE = 32


class FolderView(TypedDict):
    id: int | None  # None only in a tree of the past, for a folder gone since
    name: str
    path: str
    parent_id: int | None
    created_by: Person | None
    created_at: str
    updated_at: str
    can_edit: bool
    can_delete: bool


class ScriptView(TypedDict):
    id: int | None  # None only in a tree of the past, for a script gone since
    filename: str
    logical_path: str
    display_name: str
    description: str | None
    folder_id: int | None
    created_by: Person | None
    created_at: str
    updated_at: str
    can_edit: bool
    can_delete: bool


class RestoredScript(ScriptView):
    """A script after POST .../restore: the commit made (or `main`, when nothing changed), and
    the one whose version it took."""

    revision: str
    restored_from: str


class TreeFolder(TypedDict):
    folder: FolderView
    scripts: list[ScriptView]
    subfolders: list[TreeFolder]


class TreeView(TypedDict):
    root_scripts: list[ScriptView]
    root_folders: list[TreeFolder]


Creator = Callable[[int | None], Person | None]


@dataclass(frozen=True)
class _Known:
    """Lookups the tree makes once for all its items: folder ids by path, and each owner."""

    folder_ids: dict[str, int]
    creator: Creator


class Views:
    def __init__(self, index: Index, repo: Repository, lookups: Lookups) -> None:
        self.index = index
        self.repo = repo
        self.lookups = lookups
        self._tree_cache: OrderedDict[tuple[str, str | None, int, int, bool], bytes] = OrderedDict()
        self._tree_lock = threading.Lock()

    # -- one folder or script -------------------------------------------------------------------
    def folder(self, user: access.User, folder_id: int) -> FolderView:
        self.lookups.ensure_synced()
        return self.folder_view(user, self.lookups.folder(folder_id))

    def script(self, user: access.User, script_id: int) -> ScriptView:
        self.lookups.ensure_synced()
        return self.script_view(user, self.lookups.script(script_id))

    def _folder_id_of(self, path: str | None, known: _Known | None) -> int | None:
        if path is None:
            return None
        if known is not None:
            return known.folder_ids.get(path)
        return self.index.folders.id_at(path)

    def folder_view(
        self,
        user: access.User,
        entry: Entry,
        known: _Known | None = None,
        read_only: bool = False,
    ) -> FolderView:
        may_change = not read_only and access.may_change_folder(user, entry.owner_id)
        view: FolderView = {
            "id": entry.id,
            "name": entry.path.rsplit("/", 1)[-1],
            "path": entry.path,
            "parent_id": self._folder_id_of(layout.parent_of(entry.path), known),
            "created_by": (known.creator if known else self.index.users.person)(entry.owner_id),
            "created_at": entry.created_at,
            "updated_at": entry.updated_at,
            "can_edit": may_change,
            "can_delete": may_change,
        }
        return view

    def script_view(
        self,
        user: access.User,
        entry: Entry,
        metadata: layout.ScriptMetadata | None = None,
        known: _Known | None = None,
        read_only: bool = False,
    ) -> ScriptView:
        if metadata is None:
            metadata = self.repo.script_metadata(self.repo.head().tree, entry.path)
        may_change = not read_only and access.may_change_script(user, entry.owner_id)
        view: ScriptView = {
            "id": entry.id,
            "filename": entry.path.rsplit("/", 1)[-1],
            "logical_path": entry.path,
            "display_name": metadata.display_name,
            "description": metadata.description,
            "folder_id": self._folder_id_of(layout.parent_of(entry.path), known),
            "created_by": (known.creator if known else self.index.users.person)(entry.owner_id),
            "created_at": entry.created_at,
            "updated_at": entry.updated_at,
            "can_edit": may_change,
            "can_delete": may_change,
        }
        return view

    # -- the whole tree -------------------------------------------------------------------------
    def tree_json(self, user: access.User, revision: str | None = None) -> bytes:
        """GET /tree's body, serialized: the same commit, index state and caller give the same
        bytes, so repeated reads of a 10,000-script tree cost a lookup, not a rebuild."""
        self.lookups.ensure_synced()
        key = (
            self.repo.head().id,
            None if revision is None else self.repo.resolve(revision).id,
            self.index.storage.generation,
            user.id,
            user.is_admin,
        )
        with self._tree_lock:
            cached = self._tree_cache.get(key)
            if cached is not None:
                self._tree_cache.move_to_end(key)
                return cached
        body = orjson.dumps(self.tree(user, revision))
        with self._tree_lock:
            self._tree_cache[key] = body
            while len(self._tree_cache) > _TREE_CACHE_SIZE:
                self._tree_cache.popitem(last=False)
        return body

    def tree(self, user: access.User, revision: str | None = None) -> TreeView:
        """Every folder and script on `main`; or, read-only, as they were at `revision`."""
        self.lookups.ensure_synced()
        head = self.repo.head()
        commit = head if revision is None else self.repo.resolve(revision)
        listing = self.repo.listing(commit)
        folders = self.index.folders.by_path()
        scripts = self.index.scripts.by_path()
        read_only = revision is not None
        unindexed: set[str] = set()
        if commit.id != head.id:
            folders, scripts, unindexed = self._entries_at(commit, head, folders, scripts)
        creators: dict[int | None, Person | None] = {}

        def creator(owner_id: int | None) -> Person | None:
            if owner_id not in creators:
                creators[owner_id] = self.index.users.person(owner_id)
            return creators[owner_id]

        known = _Known(
            folder_ids={path: entry.id for path, entry in folders.items() if path not in unindexed},
            creator=creator,
        )
        folder_items: dict[str, TreeFolder] = {}
        root_folders: list[TreeFolder] = []
        root_scripts: list[ScriptView] = []
        for path in sorted(listing.folders):
            entry = folders.get(path)
            if entry is None:
                continue
            parent = layout.parent_of(path)
            item: TreeFolder = {
                "folder": self.folder_view(user, entry, known, read_only),
                "scripts": [],
                "subfolders": [],
            }
            if path in unindexed:
                item["folder"]["id"] = None
            folder_items[path] = item
            siblings = (
                folder_items[parent]["subfolders"]
                if parent is not None and parent in folder_items
                else root_folders
            )
            siblings.append(item)
        for path in sorted(listing.scripts):
            entry = scripts.get(path)
            if entry is None:
                continue
            metadata = self.repo.metadata_from_blob(path, listing.scripts[path][1])
            script = self.script_view(user, entry, metadata, known, read_only)
            if path in unindexed:
                script["id"] = None
            parent = layout.parent_of(path)
            if parent is None:
                root_scripts.append(script)
            elif parent in folder_items:
                folder_items[parent]["scripts"].append(script)
        return TreeView(root_scripts=root_scripts, root_folders=root_folders)

    def _entries_at(
        self,
        commit: Commit,
        head: Commit,
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
        when = iso_moment(datetime.fromtimestamp(commit.commit_time, UTC))

        def at(
            current: dict[str, Entry], paths: Iterable[str], moves: dict[str, str]
        ) -> tuple[dict[str, Entry], set[str]]:
            found: dict[str, Entry] = {}
            missing: set[str] = set()
            for path in paths:
                entry = current.get(moves.get(path, path))
                if entry is None:
                    missing.add(path)
                    entry = Entry(id=0, path=path, owner_id=None, created_at=when, updated_at=when)
                found[path] = replace(entry, path=path)
            return found, missing

        folders_then, folders_missing = at(folders, listing.folders, folder_moves(script_moves))
        scripts_then, scripts_missing = at(scripts, listing.scripts, script_moves)
        return folders_then, scripts_then, folders_missing | scripts_missing
