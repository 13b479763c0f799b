"""The one facade over the bare Git repository: every Git read and write goes through here.

Writes are commits on `main` made without a work tree: the new tree is built from the parent's tree by
editing only the directories on the changed paths, and `main` is moved with a compare-and-swap, so a
concurrent writer (another API call, a `git push`) is never overwritten: the change is planned again on
top of whatever won, or refused by the plan when it no longer applies.
"""

from __future__ import annotations

import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pygit2

from gitscripts import errors
from gitscripts.repo import layout

MAIN_REF = "refs/heads/main"
COMMITTER = pygit2.Signature("gitscripts", "gitscripts@gitscripts.invalid")
_MAX_COMMIT_ATTEMPTS = 50
_FILE_MODES = (pygit2.GIT_FILEMODE_BLOB, pygit2.GIT_FILEMODE_BLOB_EXECUTABLE)
_REVISION = re.compile(r"[A-Za-z0-9][A-Za-z0-9._/-]{0,254}")
_HEX = re.compile(r"[0-9a-fA-F]{4,40}")


@dataclass(frozen=True)
class Existing:
    """An edit that places an object already in the repository (a moved file or folder)."""

    oid: pygit2.Oid
    filemode: int


# What to put at a path: new file bytes, an existing object, or None to remove whatever is there.
Edit = bytes | Existing | None
Edits = dict[str, Edit]


@dataclass(frozen=True)
class Author:
    user_id: int
    login: str

    def signature(self) -> pygit2.Signature:
        # Login is the name; the id in the address lets the index map commits back to users.
        # Git refuses "<", ">", newlines and all-blank names; the id keeps it unique anyway.
        name = re.sub(r"[<>\x00-\x1f]", "", self.login).strip() or f"user {self.user_id}"
        slug = re.sub(r"[^A-Za-z0-9._-]", "-", self.login).strip("-.") or "user"
        return pygit2.Signature(name, f"{self.user_id}+{slug}@users.gitscripts.invalid")

    @staticmethod
    def user_id_of(signature: pygit2.Signature) -> int | None:
        match = re.fullmatch(r"(\d+)\+[^@]*@users\.gitscripts\.invalid", signature.email)
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Listing:
    """The folders and scripts of one tree: what `/tree` and the index need, nothing more."""

    tree_id: str
    folders: frozenset[str]
    # script path -> (content blob id, metadata blob id or None)
    scripts: dict[str, tuple[pygit2.Oid, pygit2.Oid | None]]


@dataclass(frozen=True)
class CommitResult:
    parent: pygit2.Commit
    commit: pygit2.Commit


class Repository:
    def __init__(self, path: Path) -> None:
        self.path = path
        if (path / "HEAD").exists():
            self.git = pygit2.Repository(str(path))
        else:
            self.git = self._create(path)
        # Held across a commit and the index update that records it, so the index learns about
        # commits in the order they were made. Re-entrant: services hold it around `commit`.
        self.write_lock = threading.RLock()
        self._listings: OrderedDict[str, Listing] = OrderedDict()
        self._metadata: dict[pygit2.Oid, layout.ScriptMetadata | None] = {}
        self._contents: dict[pygit2.Oid, tuple[list[str], list[tuple[str, pygit2.Oid]]]] = {}
        self._cache_lock = threading.Lock()

    @staticmethod
    def _create(path: Path) -> pygit2.Repository:
        path.parent.mkdir(parents=True, exist_ok=True)
        git = pygit2.init_repository(str(path), bare=True, initial_head="main")
        empty_tree = git.TreeBuilder().write()
        git.create_commit(
            MAIN_REF, COMMITTER, COMMITTER, "Initialize script repository", empty_tree, []
        )
        return git

    def install_hooks(self, hooks_dir: str) -> None:
        """Route every push through the service's hooks, and keep git's own safety checks on."""
        config = self.git.config
        settings = {
            "core.hooksPath": hooks_dir,
            "http.receivepack": "true",  # pushing over HTTP (the service authenticates)
            "receive.fsckObjects": "true",  # malformed objects never enter the repository
            "core.logAllRefUpdates": "always",  # a reflog of main, for the record
        }
        for key, value in settings.items():
            if key not in config or config[key] != value:
                config[key] = value

    # -- reading ------------------------------------------------------------------------------
    def head(self) -> pygit2.Commit:
        return self.git[self.git.references[MAIN_REF].target]  # type: ignore[return-value]

    def resolve(self, revision: str) -> pygit2.Commit:
        """The commit a revision names: a tag, a branch, or a full or abbreviated commit id.

        Only plain names are accepted: no range or ancestry expressions, nothing that starts with a
        dash, so user text can never act as an option or select more than one commit.
        """
        if (
            not _REVISION.fullmatch(revision)
            or any(bad in revision for bad in ("..", "//", "/.", "@{"))
            or revision.endswith((".lock", "/", "."))
        ):
            raise errors.InvalidRevision(
                f"'{revision}' is not a valid revision: give a commit id, a tag or a branch name",
                revision=revision,
            )
        for ref_name in (f"refs/tags/{revision}", f"refs/heads/{revision}"):
            ref = self.git.references.get(ref_name)
            if ref is not None:
                try:
                    return ref.peel(pygit2.Commit)
                except (pygit2.InvalidSpecError, ValueError, KeyError):
                    break
        if _HEX.fullmatch(revision):
            try:
                obj = self.git.get(revision)
            except (ValueError, KeyError, pygit2.GitError):
                obj = None  # ambiguous or unknown abbreviation
            if isinstance(obj, pygit2.Tag):
                obj = obj.peel(pygit2.Commit)
            if isinstance(obj, pygit2.Commit):
                return obj
        raise errors.RevisionNotFound(f"Revision '{revision}' not found", revision=revision)

    def object_at(self, tree: pygit2.Tree, path: str) -> pygit2.Object | None:
        try:
            return tree[path]
        except KeyError:
            return None

    def is_folder(self, tree: pygit2.Tree, path: str) -> bool:
        obj = self.object_at(tree, path)
        return obj is not None and obj.type == pygit2.GIT_OBJECT_TREE

    def is_file(self, tree: pygit2.Tree, path: str) -> bool:
        obj = self.object_at(tree, path)
        return obj is not None and obj.type == pygit2.GIT_OBJECT_BLOB

    def read_file(self, tree: pygit2.Tree, path: str) -> bytes | None:
        obj = self.object_at(tree, path)
        if obj is None or obj.type != pygit2.GIT_OBJECT_BLOB:
            return None
        return obj.data  # type: ignore[attr-defined]

    def script_metadata(self, tree: pygit2.Tree, script_path: str) -> layout.ScriptMetadata:
        obj = self.object_at(tree, layout.metadata_path(script_path))
        metadata = self._parsed_metadata(obj.id) if obj is not None else None
        return metadata or layout.default_metadata(script_path)

    def metadata_from_blob(
        self, script_path: str, blob_id: pygit2.Oid | None
    ) -> layout.ScriptMetadata:
        metadata = self._parsed_metadata(blob_id) if blob_id is not None else None
        return metadata or layout.default_metadata(script_path)

    def _parsed_metadata(self, blob_id: pygit2.Oid) -> layout.ScriptMetadata | None:
        # Blob ids name content, so a parsed sidecar never goes stale.
        try:
            return self._metadata[blob_id]
        except KeyError:
            pass
        blob = self.git.get(blob_id)
        try:
            metadata = layout.parse_metadata(blob.data) if blob is not None else None
        except layout.MetadataError:
            metadata = None
        if len(self._metadata) > 200_000:
            self._metadata.clear()
        self._metadata[blob_id] = metadata
        return metadata

    def listing(self, commit: pygit2.Commit) -> Listing:
        """Every listed folder and script in a commit's tree, cached by tree id."""
        key = str(commit.tree_id)
        with self._cache_lock:
            cached = self._listings.get(key)
            if cached is not None:
                self._listings.move_to_end(key)
                return cached
        listing = self._walk(commit.tree, key)
        with self._cache_lock:
            self._listings[key] = listing
            while len(self._listings) > 8:
                self._listings.popitem(last=False)
        return listing

    def _walk(self, root: pygit2.Tree, tree_id: str) -> Listing:
        folders, files = self._folder_contents(root)
        file_ids = dict(files)
        scripts = {
            path: (oid, file_ids.get(layout.metadata_path(path)))
            for path, oid in files
            if path.endswith(".py")
        }
        return Listing(tree_id=tree_id, folders=frozenset(folders), scripts=scripts)

    def _folder_contents(self, tree: pygit2.Tree) -> tuple[list[str], list[tuple[str, pygit2.Oid]]]:
        """Listed folders and files under `tree`, relative to it; memoized per tree id.

        After a commit only the folders on the changed path have new tree ids, so listing the new
        `main` re-reads those and reuses every other folder's contents.
        """
        cached = self._contents.get(tree.id)
        if cached is not None:
            return cached
        folders: list[str] = []
        files: list[tuple[str, pygit2.Oid]] = []
        for entry in tree:
            name = entry.name
            if name.startswith("."):
                continue
            if entry.filemode == pygit2.GIT_FILEMODE_TREE:
                sub_folders, sub_files = self._folder_contents(self.git[entry.id])  # type: ignore[arg-type]
                prefix = name + "/"
                folders.append(name)
                folders.extend(prefix + path for path in sub_folders)
                files.extend((prefix + path, oid) for path, oid in sub_files)
            elif entry.filemode in _FILE_MODES:
                files.append((name, entry.id))
        if len(self._contents) > 100_000:
            self._contents.clear()
        self._contents[tree.id] = (folders, files)
        return folders, files

    # -- writing ------------------------------------------------------------------------------
    def commit(
        self, author: Author, message: str, plan: Callable[[pygit2.Commit], Edits]
    ) -> CommitResult:
        """Commit the edits `plan` makes to the current tree of `main`, as `author`.

        `plan` sees the commit whose tree it edits and raises (an AppError) when the change does
        not apply to it.
        If `main` moved between planning and the ref update, the change is planned again on top.
        """
        signature = author.signature()
        for attempt in range(_MAX_COMMIT_ATTEMPTS):
            with self.write_lock:
                parent = self.head()
                tree_id = self._apply(parent.tree, plan(parent))
                commit_id = self.git.create_commit(
                    None, signature, COMMITTER, message + "\n", tree_id, [parent.id]
                )
                try:
                    self.git.references[MAIN_REF].set_target(commit_id, message)
                except pygit2.GitError:
                    pass  # lost a race (or the ref is locked by a push): plan again on top
                else:
                    return CommitResult(parent=parent, commit=self.git[commit_id])  # type: ignore[arg-type]
                # Compare-and-swap failed: only compare what we planned against.
                if str(self.head().id) == str(parent.id):
                    time.sleep(0.005 * (attempt + 1))  # `main` is locked, not moved: wait a bit
        raise errors.ConcurrentUpdate(
            "The script repository kept changing while this change was applied; try again"
        )

    def _apply(self, tree: pygit2.Tree | None, edits: Edits) -> pygit2.Oid:
        return self._edit_tree(tree, edits) or self.git.TreeBuilder().write()

    def _edit_tree(self, tree: pygit2.Tree | None, edits: Edits) -> pygit2.Oid | None:
        builder = self.git.TreeBuilder(tree) if tree is not None else self.git.TreeBuilder()
        nested: dict[str, Edits] = {}
        for path, edit in edits.items():
            name, _, rest = path.partition("/")
            if rest:
                nested.setdefault(name, {})[rest] = edit
                continue
            if edit is None:
                if builder.get(name) is not None:
                    builder.remove(name)
            elif isinstance(edit, Existing):
                builder.insert(name, edit.oid, edit.filemode)
            else:
                builder.insert(name, self.git.create_blob(edit), pygit2.GIT_FILEMODE_BLOB)
        for name, sub_edits in nested.items():
            current = builder.get(name)
            subtree = (
                self.git[current.id]
                if current is not None and current.type == pygit2.GIT_OBJECT_TREE
                else None
            )
            new_subtree = self._edit_tree(subtree, sub_edits)  # type: ignore[arg-type]
            if new_subtree is None:
                if current is not None:
                    builder.remove(name)
            else:
                builder.insert(name, new_subtree, pygit2.GIT_FILEMODE_TREE)
        if len(builder) == 0:
            return None
        return builder.write()
