"""The one facade over the bare Git repository: every Git read and write goes through here.

Writes are commits on `main` made without a work tree: the new tree is built from the parent's tree by
editing only the directories on the changed paths, and `main` is moved with a compare-and-swap, so a
concurrent writer (another API call, a `git push`) is never overwritten: the change is planned again on
top of whatever won, or refused by the plan when it no longer applies.

It answers in plain values (`Commit`, `Tree`, `TreeEntry`, `Listing`, `Change`, ids as hex text) and
takes them back: no caller outside `gitscripts.repo` holds a pygit2 object, so what git is asked, and
how, is decided here once. Loops over many entries or commits stay on pygit2's objects inside and
make a value only of what they hand out.
"""

from __future__ import annotations

import contextlib
import heapq
import itertools
import os
import re
import shutil
import tempfile
import threading
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

import pygit2
from pygit2.enums import SortMode

from gitscripts import errors
from gitscripts.repo import layout, modes, rules
from gitscripts.repo.commits import Commit, Signature, Tree
from gitscripts.repo.housekeeping import Housekeeping
from gitscripts.repo.trees import TreeEntry

MAIN_REF = "refs/heads/main"
COMMITTER_NAME = "gitscripts"
COMMITTER_EMAIL = "gitscripts@gitscripts.invalid"
_MAX_COMMIT_ATTEMPTS = 50
TAG_PREFIX = "refs/tags/"
BRANCH_PREFIX = "refs/heads/"
# What `set_target` raises when it did not move the ref: GitError when the ref moved since it was
# read, OSError when another process holds its lock file (git's own `gc --auto` after a push packs
# refs and expires reflogs, locking `main` for a moment).
_REF_NOT_MOVED = (pygit2.GitError, OSError)
_DELTA_STATUS = {pygit2.GIT_DELTA_ADDED: "added", pygit2.GIT_DELTA_DELETED: "deleted"}


def committer() -> pygit2.Signature:
    """The service as committer, stamped now: a Signature made without a time keeps the time
    it was made at, so one made at import would date every commit to the service's start."""
    return pygit2.Signature(COMMITTER_NAME, COMMITTER_EMAIL)


@dataclass(frozen=True)
class Existing:
    """An edit that places an object already in the repository (a moved file or folder)."""

    id: str
    mode: int  # `modes`


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
    def user_id_of(email: str) -> int | None:
        """The user whose id `signature` wrote into an author's (or tagger's) address."""
        match = re.fullmatch(r"(\d+)\+[^@]*@users\.gitscripts\.invalid", email)
        return int(match.group(1)) if match else None


@dataclass(frozen=True)
class Listing:
    """The folders and scripts of one tree: what `/tree` and the index need, nothing more."""

    tree_id: str
    folders: frozenset[str]
    # script path -> (content blob id, metadata blob id or None)
    scripts: dict[str, tuple[str, str | None]]


@dataclass(frozen=True)
class CommitResult:
    parent: Commit
    commit: Commit


T = TypeVar("T")


@dataclass(frozen=True)
class Plan(Generic[T]):
    """What one change does to a tree: its edits, the message that says so, and what the planner
    found on the way (the entry it replaces, say), handed back with the commit it became."""

    edits: Edits
    message: str
    found: T


@dataclass(frozen=True)
class Landing:
    """How a push reached `main`: from `old` to `new`, over `merged_over` commits that `main`
    gained after the push's base (0: a fast-forward, or the commits were already there)."""

    old: str
    new: str
    merged_over: int


@dataclass(frozen=True)
class Change:
    """One file that differs between two commits: `added`, `modified`, `renamed` or `deleted`."""

    status: str
    old_path: str | None
    new_path: str | None
    old_id: str | None
    new_id: str | None

    @property
    def path(self) -> str:
        return self.new_path or self.old_path or ""


@dataclass(frozen=True)
class Version:
    """A commit that changed a followed script: its content, its metadata sidecar, or its path."""

    commit: Commit
    path: str
    old_path: str | None  # where it was in the parent, when this commit renamed or moved it
    change: str  # "added", "modified" or "renamed"


@dataclass(frozen=True)
class Step:
    """What one commit did to its first parent's tree, for replaying history (`replay`): the
    moves `detected_moves` finds, and each file path it added or deleted, in the diff's order."""

    commit: Commit
    moves: dict[str, str]
    added_or_deleted: list[tuple[str, bool]]  # (path, whether it was added)


@dataclass(frozen=True)
class Blamed:
    """Lines of a file that one commit last changed (`blame`): `lines` lines from `start` (1-based)
    in the blamed file, which were `path`'s lines from `original_start` in `commit`."""

    start: int
    lines: int
    commit: Commit
    path: str
    original_start: int


@dataclass(frozen=True)
class TagInfo:
    name: str
    # What the ref holds: the tag object's id, or the commit's of a lightweight tag (a symbolic
    # ref, which only git itself makes, holds the name of the ref it points at).
    target: str
    commit: Commit
    # The user an API-made (annotated) tag names as its tagger; None for tags pushed by git
    # without a gitscripts tagger, and for lightweight tags.
    tagger_id: int | None
    tagged_at: int | None
    message: str | None


class Repository:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.git = self._open(path)
        # Held across a commit and the index update that records it, so the index learns about
        # commits in the order they were made. Re-entrant: services hold it around `commit`.
        self.write_lock = threading.RLock()
        self._listings: OrderedDict[str, Listing] = OrderedDict()
        self._metadata: dict[str, layout.ScriptMetadata | None] = {}
        self._contents: dict[pygit2.Oid, tuple[list[str], list[tuple[str, str]]]] = {}
        self._cache_lock = threading.Lock()
        # The trees callers name most (main's, a revision's), parsed: libgit2 caches no tree over
        # 4 KiB, so a root of a few hundred folders would be read again for every path looked up.
        self._trees: OrderedDict[str, pygit2.Tree] = OrderedDict()
        # Commits never change: each is made a value once (see `_value`).
        self._commits: dict[pygit2.Oid, Commit] = {}
        # Facts about commits, which never change: see `_follow`.
        self._graph: dict[pygit2.Oid, list[tuple[int, pygit2.Oid]]] = {}
        self._idents: dict[tuple[pygit2.Oid, str], tuple[pygit2.Oid | None, pygit2.Oid | None]] = {}
        # Packs the loose objects the commits below write (the service sets it; see housekeeping).
        self.housekeeping: Housekeeping | None = None

    @classmethod
    def _open(cls, path: Path) -> pygit2.Repository:
        """The repository at `path`, made whole whatever an interrupted start left behind.

        A new repository is built beside its place and renamed into it, so a start killed half way
        leaves nothing at `path` (only a `.<name>.new-*` folder that `leftovers` sweeps). One that
        an older version or an operator left incomplete is repaired: git's init adds only what is
        missing (HEAD, objects/, refs/, config) and changes nothing that exists, and a repository
        without `main` gets the initial commit. So every start after any interrupted one succeeds.
        """
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            building = Path(tempfile.mkdtemp(prefix=f".{path.name}.new-", dir=path.parent))
            cls._initialize(pygit2.init_repository(str(building), bare=True, initial_head="main"))
            try:
                building.rename(path)
            except OSError:  # another process created it meanwhile: theirs is as good
                shutil.rmtree(building, ignore_errors=True)
        try:
            git = pygit2.Repository(str(path))
        except pygit2.GitError:
            git = pygit2.init_repository(str(path), bare=True, initial_head="main")
        cls._initialize(git)
        return git

    @staticmethod
    def _initialize(git: pygit2.Repository) -> None:
        """Give a repository without `main` its first commit (the empty tree)."""
        if MAIN_REF in git.references:
            return
        empty_tree = git.TreeBuilder().write()
        first = git.create_commit(
            None, committer(), committer(), "Initialize script repository", empty_tree, []
        )
        with contextlib.suppress(pygit2.AlreadyExistsError):  # a concurrent start made it
            git.references.create(MAIN_REF, first)

    def install_hooks(self, hook: bytes, names: Iterable[str]) -> Path:
        """Route every push through the service's hooks, and keep git's own safety checks on.

        `hook` is written, executable, under each of `names` into the repository's own `hooks`
        folder (returned), replacing what is there: the hooks are always the running version's,
        wherever it is installed. Each file is replaced whole, so a push running the old one
        while another process starts is never handed a half-written hook.
        """
        hooks_dir = self.path / "hooks"
        hooks_dir.mkdir(exist_ok=True)
        for name in names:
            temp = hooks_dir / f".{name}.{os.getpid()}.{threading.get_ident()}.tmp"
            try:
                temp.write_bytes(hook)
                temp.chmod(0o755)
                os.replace(temp, hooks_dir / name)
            except BaseException:
                temp.unlink(missing_ok=True)
                raise
        config = self.git.config
        settings = {
            # Said explicitly: a repository made by an older version points elsewhere.
            "core.hooksPath": str(hooks_dir.resolve()),
            "http.receivepack": "true",  # pushing over HTTP (the service authenticates)
            "receive.fsckObjects": "true",  # malformed objects never enter the repository
            "core.logAllRefUpdates": "always",  # a reflog of main, for the record
        }
        for key, value in settings.items():
            if key not in config or config[key] != value:
                config[key] = value
        return hooks_dir

    # -- reading ------------------------------------------------------------------------------
    def head(self) -> Commit:
        return self._value(self._head())

    def _head(self) -> pygit2.Commit:
        return self.git[self.git.references[MAIN_REF].target]  # type: ignore[return-value]  # main holds commits

    def _value(self, commit: pygit2.Commit) -> Commit:
        """`commit` as the value the rest of the package sees."""
        known = self._commits.get(commit.id)
        if known is not None:
            return known
        author, committer = commit.author, commit.committer
        value = Commit(
            id=str(commit.id),
            tree=Tree(str(commit.tree_id)),
            parent_ids=tuple(str(parent_id) for parent_id in commit.parent_ids),
            author=Signature(author.name, author.email, author.time),
            committer=Signature(committer.name, committer.email, committer.time),
            message=commit.message,
        )
        if len(self._commits) > 100_000:
            self._commits.clear()
        self._commits[commit.id] = value
        return value

    def short_id(self, commit: Commit) -> str:
        """The shortest abbreviation of the commit's id that no other object in the repository
        shares (7 characters or more). Asked only where shown: it looks at the objects' names."""
        return self.git[pygit2.Oid(hex=commit.id)].short_id

    def find_commit(self, commit_id: str) -> Commit | None:
        """The commit with this full id, or None when there is none (or it is another object)."""
        found = self.git.get(pygit2.Oid(hex=commit_id))
        return self._value(found) if isinstance(found, pygit2.Commit) else None

    def resolve(self, revision: str) -> Commit:
        """The commit a revision names, looked up in one fixed order:

        1. 4 to 40 hex digits are a commit id, full or abbreviated (one only one commit's id
           starts with), never a ref: no branch or tag may have such a name.
        2. `main`, and `HEAD`, git's name for it: the live tree. No ref may be named `HEAD`.
        3. A tag (`refs/tags/<name>`).
        4. Another branch (`refs/heads/<name>`). A branch cannot be created with a tag's name nor a
           tag with a branch's, so 3 and 4 never compete; where a repository from before these
           rules has both, the tag wins, and the start-up report (`ambiguous_refs`) names them.

        So nothing a user pushes can stand in for a commit id, `main` or someone else's tag.
        """
        problem = rules.revision_problem(revision)
        if problem:
            raise errors.InvalidRevision(
                f"'{revision}' is not a valid revision: give a commit id, a tag or a branch name",
                revision=revision,
            )
        if rules.COMMIT_ID.fullmatch(revision):
            found: object
            try:
                found = self.git.get(revision)
            except (ValueError, KeyError, pygit2.GitError):
                found = None  # ambiguous or unknown abbreviation
            if isinstance(found, pygit2.Tag):
                found = found.peel(pygit2.Commit)
            if isinstance(found, pygit2.Commit):
                return self._value(found)
        elif revision in ("main", "HEAD"):
            return self.head()
        else:
            for ref_name in (TAG_PREFIX + revision, BRANCH_PREFIX + revision):
                ref = self.git.references.get(ref_name)
                if ref is not None:
                    try:
                        return self._value(ref.peel(pygit2.Commit))
                    except (pygit2.InvalidSpecError, ValueError, KeyError):
                        break
        raise errors.RevisionNotFound(f"Revision '{revision}' not found", revision=revision)

    def _tree(self, tree: Tree) -> pygit2.Tree:
        with self._cache_lock:
            known = self._trees.get(tree.id)
            if known is not None:
                self._trees.move_to_end(tree.id)
                return known
        # By Oid: a hex string is looked up as a prefix, which lists loose objects' folders.
        found: pygit2.Tree = self.git[pygit2.Oid(hex=tree.id)]  # type: ignore[assignment]  # a Tree names a tree
        with self._cache_lock:
            self._trees[tree.id] = found
            while len(self._trees) > 16:
                self._trees.popitem(last=False)
        return found

    def entry(self, tree: Tree, path: str) -> TreeEntry | None:
        """What `tree` holds at `path` (a file, a folder, a link...), or None."""
        found = _object_at(self._tree(tree), path)
        return None if found is None else TreeEntry(found.name or "", str(found.id), found.filemode)

    def entry_id(self, tree: Tree, path: str) -> str | None:
        """The object id at `path`: equal ids mean equal content, without reading any of it."""
        found = _object_at(self._tree(tree), path)
        return None if found is None else str(found.id)

    def is_folder(self, tree: Tree, path: str) -> bool:
        return _is_folder(self._tree(tree), path)

    def is_file(self, tree: Tree, path: str) -> bool:
        """Whether `path` holds a blob: a file's bytes (or a link's target, which no listing
        shows and no rule lets in)."""
        found = _object_at(self._tree(tree), path)
        return found is not None and found.type == pygit2.GIT_OBJECT_BLOB

    def read_file(self, tree: Tree, path: str) -> bytes | None:
        found = _object_at(self._tree(tree), path)
        return found.data if isinstance(found, pygit2.Blob) else None

    def names_in(self, tree: Tree, path: str) -> list[str] | None:
        """The names of what the folder at `path` holds; None when no folder is there."""
        found = _object_at(self._tree(tree), path)
        if not isinstance(found, pygit2.Tree):
            return None
        return [entry.name or "" for entry in found]

    def script_metadata(self, tree: Tree, script_path: str) -> layout.ScriptMetadata:
        found = _object_at(self._tree(tree), layout.metadata_path(script_path))
        metadata = self._parsed_metadata(str(found.id)) if found is not None else None
        return metadata or layout.default_metadata(script_path)

    def metadata_from_blob(self, script_path: str, blob_id: str | None) -> layout.ScriptMetadata:
        metadata = self._parsed_metadata(blob_id) if blob_id is not None else None
        return metadata or layout.default_metadata(script_path)

    def _parsed_metadata(self, blob_id: str) -> layout.ScriptMetadata | None:
        # Blob ids name content, so a parsed sidecar never goes stale.
        try:
            return self._metadata[blob_id]
        except KeyError:
            pass
        blob = self.git.get(pygit2.Oid(hex=blob_id))
        try:
            metadata = layout.parse_metadata(blob.data) if isinstance(blob, pygit2.Blob) else None
        except layout.MetadataError:
            metadata = None
        if len(self._metadata) > 200_000:
            self._metadata.clear()
        self._metadata[blob_id] = metadata
        return metadata

    def listing(self, commit: Commit) -> Listing:
        """Every listed folder and script in a commit's tree, cached by tree id."""
        key = commit.tree.id
        with self._cache_lock:
            cached = self._listings.get(key)
            if cached is not None:
                self._listings.move_to_end(key)
                return cached
        listing = self._walk(self._tree(commit.tree), key)
        with self._cache_lock:
            self._listings[key] = listing
            while len(self._listings) > 8:
                self._listings.popitem(last=False)
        return listing

    def _walk(self, root: pygit2.Tree, tree_id: str) -> Listing:
        folders, files = self._folder_contents(root)
        file_ids = dict(files)
        scripts = {
            path: (blob_id, file_ids.get(layout.metadata_path(path)))
            for path, blob_id in files
            if path.endswith(layout.SCRIPT_SUFFIX)
        }
        return Listing(tree_id=tree_id, folders=frozenset(folders), scripts=scripts)

    def _folder_contents(self, tree: pygit2.Tree) -> tuple[list[str], list[tuple[str, str]]]:
        """Listed folders and files (with their blob ids) under `tree`, relative to it; memoized
        per tree id.

        After a commit only the folders on the changed path have new tree ids, so listing the new
        `main` re-reads those and reuses every other folder's contents.
        """
        cached = self._contents.get(tree.id)
        if cached is not None:
            return cached
        folders: list[str] = []
        files: list[tuple[str, str]] = []
        for entry in tree:
            name = entry.name or ""  # never None in a tree
            if name.startswith("."):
                continue
            if entry.filemode == modes.FOLDER:
                sub_folders, sub_files = self._folder_contents(self.git[entry.id])  # type: ignore[arg-type]  # a folder's id
                prefix = name + "/"
                folders.append(name)
                folders.extend(prefix + path for path in sub_folders)
                files.extend((prefix + path, blob_id) for path, blob_id in sub_files)
            elif entry.filemode in modes.FILE_MODES:
                files.append((name, str(entry.id)))
        if len(self._contents) > 100_000:
            self._contents.clear()
        self._contents[tree.id] = (folders, files)
        return folders, files

    # -- writing ------------------------------------------------------------------------------
    def commit(self, author: Author, message: str, plan: Callable[[Commit], Edits]) -> CommitResult:
        """Commit the edits `plan` makes to the current tree of `main`, as `author`.

        `plan` sees the commit whose tree it edits and raises (an AppError) when the change does
        not apply to it.
        If `main` moved between planning and the ref update, the change is planned again on top.
        """
        result, _ = self.commit_plan(author, lambda parent: Plan(plan(parent), message, None))
        return result

    def commit_plan(
        self, author: Author, plan: Callable[[Commit], Plan[T]]
    ) -> tuple[CommitResult, Plan[T]]:
        """`commit`, for a change whose message (and whatever else its planner finds) depends on
        the tree it is planned on: the plan that was committed comes back with the commit."""
        signature = author.signature()
        for attempt in range(_MAX_COMMIT_ATTEMPTS):
            with self.write_lock:
                # The reference object remembers the value it was read with: `set_target` on it
                # is the compare-and-swap (libgit2 refuses when `main` has moved since).
                main = self.git.references[MAIN_REF]
                parent = self.git[main.target]
                assert isinstance(parent, pygit2.Commit)  # `main` only ever holds commits
                seen = self._value(parent)
                planned = plan(seen)
                tree_id = self._apply(parent.tree, planned.edits)
                commit_id = self.git.create_commit(
                    None, signature, committer(), planned.message + "\n", tree_id, [parent.id]
                )
                try:
                    main.set_target(commit_id, planned.message)
                except _REF_NOT_MOVED:
                    pass  # lost a race (or git holds the ref's lock): plan again on top
                else:
                    made = self._value(self._commit_at(commit_id))
                    if self.housekeeping is not None:
                        self.housekeeping.after_commit()
                    return CommitResult(parent=seen, commit=made), planned
                # Compare-and-swap failed: only compare what we planned against.
                if str(self.head().id) == str(parent.id):
                    time.sleep(0.005 * (attempt + 1))  # `main` is locked, not moved: wait a bit
        raise errors.ConcurrentUpdate(
            "The script repository kept changing while this change was applied; try again"
        )

    def land(
        self,
        tip: str,
        author: Author,
        check: Callable[[str, str], None],
    ) -> Landing:
        """Put the pushed commit `tip` on `main`, under the write lock that API commits take.

        A fast-forward when `main` is an ancestor of `tip`. When `main` has moved on since the
        commit the push was built on (their merge base), the push lands as a merge commit on top
        of `main`, authored by `author`, provided nothing `main` gained since touches a script,
        sidecar or folder the push changed (PushConflict otherwise: the pusher has to look).
        The pushed commits keep their ids, so the pusher's clone only has to fast-forward.

        `check(main, candidate)` (their commit ids) raises to refuse moving `main` to
        `candidate`. It runs under the lock, so what it approves is exactly what lands: no API
        commit can move `main` between the check and the ref update.
        """
        pushed = self._commit_at(tip)
        with self.write_lock:
            for attempt in range(_MAX_COMMIT_ATTEMPTS):
                main = self.git.references[MAIN_REF]
                head: pygit2.Commit = self.git[main.target]  # type: ignore[assignment]  # main: commits
                if head.id == pushed.id or self.git.descendant_of(head.id, pushed.id):
                    return Landing(old=str(head.id), new=str(head.id), merged_over=0)
                base_id = self.git.merge_base(head.id, pushed.id)
                if base_id is None:
                    raise errors.PushConflict("The pushed commits share no history with main")
                if base_id == head.id:
                    candidate, merged_over = pushed, 0
                else:
                    base = self._commit_at(base_id)
                    clashes = self._clashes(base, head, pushed)
                    if clashes:
                        raise errors.PushConflict(
                            "main has newer commits that change what this push changes",
                            paths=clashes,
                        )
                    merged_over = sum(1 for _ in self._walk_between(base_id, head.id))
                    tree_id = self._apply(head.tree, self._edits_between(base, pushed))
                    message = (
                        f"Land a push by {author.login} on top of {merged_over} newer "
                        f"commit{'s' if merged_over != 1 else ''} on main\n"
                    )
                    merge_id = self.git.create_commit(
                        None,
                        author.signature(),
                        committer(),
                        message,
                        tree_id,
                        [head.id, pushed.id],
                    )
                    candidate = self._commit_at(merge_id)
                check(str(head.id), str(candidate.id))
                try:
                    main.set_target(candidate.id, f"push: {author.login}")
                except _REF_NOT_MOVED:
                    # Only a process outside the service can hold `main` now: wait, look again.
                    time.sleep(0.005 * (attempt + 1))
                    continue
                return Landing(old=str(head.id), new=str(candidate.id), merged_over=merged_over)
        raise errors.ConcurrentUpdate("main stayed locked while this push was landed; try again")

    def _commit_at(self, oid: pygit2.Oid | str) -> pygit2.Commit:
        commit = self.git.get(oid)
        if not isinstance(commit, pygit2.Commit):
            raise errors.PushConflict(f"{oid} is not a commit")
        return commit

    def _walk_between(self, base: pygit2.Oid, tip: pygit2.Oid) -> Iterator[pygit2.Commit]:
        walker = self.git.walk(tip, SortMode.NONE)
        walker.hide(base)
        return iter(walker)

    @staticmethod
    def _edits_between(base: pygit2.Commit, tip: pygit2.Commit) -> Edits:
        """What `tip` changed since `base`, as edits that replay it on another tree."""
        edits: Edits = {}
        for delta in base.tree.diff_to_tree(tip.tree).deltas:
            if delta.status == pygit2.GIT_DELTA_DELETED:
                edits[delta.old_file.path] = None
            else:
                edits[delta.new_file.path] = Existing(str(delta.new_file.id), delta.new_file.mode)
        return edits

    def _clashes(
        self, base: pygit2.Commit, head: pygit2.Commit, pushed: pygit2.Commit
    ) -> list[str]:
        """What both sides changed since `base`: the same script (its file or its sidecar), or a
        path inside a folder that the other side removed (or renamed): landing it would bring the
        folder back. Files added to a folder on both sides are no clash, as in the API."""

        def touched(tip: pygit2.Commit) -> set[str]:
            paths: set[str] = set()
            for delta in base.tree.diff_to_tree(tip.tree).deltas:
                paths.update((delta.old_file.path, delta.new_file.path))
            # A lock is not its script here: a push that changed `tool.py` lands over a commit
            # that only locked it, and what the push needs of its locks is settled apart
            # (`PushPolicy.locks`, then the commit the service makes on top).
            return {path.removesuffix(layout.METADATA_SUFFIX) for path in paths}

        ours, theirs = touched(pushed), touched(head)
        clashes = ours & theirs
        for paths, other in ((ours, head), (theirs, pushed)):
            for path in paths:
                folder = layout.parent_of(path)
                while folder is not None:
                    if _is_folder(base.tree, folder) and not _is_folder(other.tree, folder):
                        clashes.add(folder + "/")
                    folder = layout.parent_of(folder)
        return sorted(clashes)

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
                builder.insert(name, pygit2.Oid(hex=edit.id), edit.mode)
            else:
                builder.insert(name, self.git.create_blob(edit), modes.FILE)
        for name, sub_edits in nested.items():
            current = builder.get(name)
            subtree = (
                self.git[current.id]
                if current is not None and current.type == pygit2.GIT_OBJECT_TREE
                else None
            )
            new_subtree = self._edit_tree(subtree, sub_edits)  # type: ignore[arg-type]  # a tree, above
            if new_subtree is None:
                if current is not None:
                    builder.remove(name)
            else:
                builder.insert(name, new_subtree, modes.FOLDER)
        if len(builder) == 0:
            return None
        return builder.write()

    # -- history ------------------------------------------------------------------------------
    def blob(self, blob_id: str) -> bytes:
        return self.git[pygit2.Oid(hex=blob_id)].data  # type: ignore[attr-defined,no-any-return]  # a blob's id

    @staticmethod
    def api_author_id(commit: Commit) -> int | None:
        """The user who made `commit` through the API; None for commits that came by `git push`,
        whose author is whatever the pusher typed and so names nobody reliably."""
        if commit.committer.email != COMMITTER_EMAIL:
            return None
        return Author.user_id_of(commit.author.email)

    def log(
        self, start: Commit, path: str | None = None, *, after_start: bool = False
    ) -> Iterator[Commit]:
        """Commits reachable from `start`, newest first; with `path`, only those that changed the
        file or folder there (merges only when they differ from every parent, as `git log
        --full-history` shows them). `after_start` leaves `start` itself out: a page cursor.

        The walk is libgit2's incremental one, so a first page costs a page, not the whole history.
        """
        walker = self.git.walk(None, SortMode.NONE)
        if after_start:
            for parent_id in start.parent_ids:
                walker.push(pygit2.Oid(hex=parent_id))
        else:
            walker.push(pygit2.Oid(hex=start.id))
        for commit in walker:
            if path is None:
                yield self._value(commit)
                continue
            mine = _entry_id(commit.tree, path)
            parents = [_entry_id(parent.tree, path) for parent in commit.parents]
            if (parents and mine not in parents) or (not parents and mine is not None):
                yield self._value(commit)

    def versions(
        self, start: Commit, path: str, *, after: Commit | None = None
    ) -> Iterator[Version]:
        """The commits that changed the script at `path` in `start`, newest first, following it
        back through renames and moves (see `_follow`). With `after` (a page cursor), only those
        the walk meets after that commit."""
        after_id = None if after is None else pygit2.Oid(hex=after.id)
        passed = after is None
        for commit_id, current, change in self._follow(pygit2.Oid(hex=start.id), path):
            if change is not None and passed:
                commit = self._value(self.git[commit_id])  # type: ignore[arg-type]  # a commit id
                yield Version(commit=commit, path=current, old_path=change[1], change=change[0])
            passed = passed or commit_id == after_id

    def path_at(self, start: Commit, path: str, target: Commit) -> str | None:
        """Where the script at `path` in `start` was in `target`; None when it did not exist there
        (or `target` is not in its history)."""
        if target.id == start.id:
            return path if self.is_file(start.tree, path) else None
        target_id = pygit2.Oid(hex=target.id)
        for commit_id, commit_path, _ in self._follow(pygit2.Oid(hex=start.id), path):
            if commit_id == target_id:
                return commit_path
        return None

    def paths_at(self, start: Commit, path: str, targets: Iterable[Commit]) -> dict[str, str]:
        """Where the script at `path` in `start` was in each of `targets` that is in its history,
        by commit id, in one walk (the rest are left out: it did not exist there)."""
        wanted = {pygit2.Oid(hex=target.id) for target in targets}
        found: dict[str, str] = {}
        if not wanted:
            return found
        for commit_id, commit_path, _ in self._follow(pygit2.Oid(hex=start.id), path):
            if commit_id in wanted:
                found[str(commit_id)] = commit_path
                wanted.discard(commit_id)
                if not wanted:
                    break
        return found

    def _follow(
        self, start: pygit2.Oid, path: str
    ) -> Iterator[tuple[pygit2.Oid, str, tuple[str, str | None] | None]]:
        """Every commit in the history of one script, newest first, with its path there and, when
        that commit changed it, how (`Version.change`) and from where (`Version.old_path`).

        A script is its file plus its metadata sidecar, compared by object id: no content is read.
        As in `git log -- path`, a merge identical to one of its parents there changed nothing, and
        only the identical parents are followed (so a side branch whose version the merge dropped
        is left out). Where the path is missing in a parent, git's rename detection between the
        two commits says where the script came from, and the walk goes on from there; only those
        commits pay for a tree diff.

        Commits are visited newest first by commit time, each once (a priority queue, as `git log`
        does). libgit2's topological sort would order merges strictly but reads the whole history
        before yielding anything, which a first page of 50 cannot afford at 10,000 commits. What
        the walk learns (a commit's parents, a path's object ids in a commit) never changes, so it
        is kept: walking the same history again costs dictionary lookups, not object reads.
        """
        if self._ident(start, path)[0] is None:
            return
        order = itertools.count()
        paths = {start: path}
        start_commit: pygit2.Commit = self.git[start]  # type: ignore[assignment]  # a commit id
        queue = [(-start_commit.commit_time, next(order), start)]
        while queue:
            commit_id = heapq.heappop(queue)[2]
            current = paths[commit_id]
            mine = self._ident(commit_id, current)
            parents = self._parents(commit_id)
            follow = [(p, current) for _, p in parents if self._ident(p, current) == mine]
            change = None
            if not follow:
                kinds: list[tuple[str, str | None]] = []
                for _, parent_id in parents:
                    if self._ident(parent_id, current)[0] is not None:
                        kinds.append(("modified", None))
                        follow.append((parent_id, current))
                        continue
                    parent_tree = self.git[parent_id].tree
                    moves = _moves_in(parent_tree.diff_to_tree(self.git[commit_id].tree))
                    source = next((old for old, new in moves.items() if new == current), None)
                    kinds.append(("renamed", source) if source else ("added", None))
                    if source:
                        follow.append((parent_id, source))
                change = kinds[0] if kinds else ("added", None)
            yield commit_id, current, change
            times = {parent_id: when for when, parent_id in parents}
            for parent_id, parent_path in follow:
                if parent_id not in paths:
                    paths[parent_id] = parent_path
                    heapq.heappush(queue, (-times[parent_id], next(order), parent_id))

    def _parents(self, commit_id: pygit2.Oid) -> list[tuple[int, pygit2.Oid]]:
        """(commit time, id) of each parent, from memory after the first time."""
        known = self._graph.get(commit_id)
        if known is None:
            commit: pygit2.Commit = self.git[commit_id]  # type: ignore[assignment]  # a commit id
            known = [(parent.commit_time, parent.id) for parent in commit.parents]
            if len(self._graph) > 1_000_000:
                self._graph.clear()
            self._graph[commit_id] = known
        return known

    def _ident(
        self, commit_id: pygit2.Oid, path: str
    ) -> tuple[pygit2.Oid | None, pygit2.Oid | None]:
        """The object ids of a script and of its sidecar in one commit: what its version is."""
        key = (commit_id, path)
        known = self._idents.get(key)
        if known is None:
            tree = self.git[commit_id].tree
            known = (_entry_id(tree, path), _entry_id(tree, layout.metadata_path(path)))
            if len(self._idents) > 300_000:
                self._idents.clear()
            self._idents[key] = known
        return known

    def blame(self, commit: Commit, path: str) -> list[Blamed]:
        """Which commit last changed each line of the file at `path` in `commit`, in line order,
        following the file back through renames (libgit2's blame, as `git blame` answers)."""
        hunks = self.git.blame(path, newest_commit=pygit2.Oid(hex=commit.id))
        return [
            Blamed(
                start=hunk.final_start_line_number,
                lines=hunk.lines_in_hunk,
                commit=self._value(self.git[hunk.final_commit_id]),  # type: ignore[arg-type]  # a commit id
                path=hunk.orig_path or path,
                original_start=hunk.orig_start_line_number,
            )
            for hunk in hunks
        ]

    def detected_moves(self, previous: Commit, head: Commit) -> dict[str, str]:
        """Old path -> new path for every file that moved between two commits.

        Identical content is paired first, preferring the candidate that keeps the most of the
        path's tail (same file name, then same folder name): scripts made from one template share
        content, and a moved script must not be mistaken for its twin. Moves that also changed the
        content come from git's similarity detection.
        """
        return _moves_in(self._tree(previous.tree).diff_to_tree(self._tree(head.tree)))

    def changes(self, commit: Commit) -> list[Change]:
        """The files that differ from `commit`'s first parent (a root commit: from the empty
        tree) to `commit`, by path, with moves paired as renames (`detected_moves`)."""
        new = self._tree(commit.tree)
        if commit.parent_ids:
            first_parent = pygit2.Oid(hex=commit.parent_ids[0])
            parent: pygit2.Commit = self.git[first_parent]  # type: ignore[assignment]  # a commit id
            diff = parent.tree.diff_to_tree(new)
        else:
            diff = new.diff_to_tree(swap=True)
        # Plain values first: rename detection rewrites the diff's deltas in place.
        deltas = [
            (d.status, d.old_file.path, d.new_file.path, str(d.old_file.id), str(d.new_file.id))
            for d in diff.deltas
        ]
        moves = _moves_in(diff) if commit.parent_ids else {}
        moved_to = set(moves.values())
        added = {
            new_path: new_id
            for status, _, new_path, _, new_id in deltas
            if status == pygit2.GIT_DELTA_ADDED
        }
        found: list[Change] = []
        for status, old_path, new_path, old_id, new_id in deltas:
            kind = _DELTA_STATUS.get(status, "modified")
            if kind == "added" and new_path in moved_to:
                continue  # reported with its source, as a rename
            if kind == "deleted" and old_path in moves:
                target = moves[old_path]
                found.append(Change("renamed", old_path, target, old_id, added[target]))
            elif kind == "added":
                found.append(Change(kind, None, new_path, None, new_id))
            elif kind == "deleted":
                found.append(Change(kind, old_path, None, old_id, None))
            else:
                found.append(Change(kind, old_path, new_path, old_id, new_id))
        return sorted(found, key=lambda change: change.path)

    def replay(self, head: Commit, since: Commit | None) -> Iterator[Step]:
        """The commits `head` has and `since` has not (all of its history when None), oldest
        first (parents before children), each with what it did to its first parent's tree. Root
        commits, with no parent to compare with, are left out."""
        walker = self.git.walk(pygit2.Oid(hex=head.id), SortMode.TOPOLOGICAL | SortMode.REVERSE)
        if since is not None:
            walker.hide(pygit2.Oid(hex=since.id))
        for commit in walker:
            if not commit.parents:
                continue
            base = commit.parents[0]
            diff = base.tree.diff_to_tree(commit.tree)
            # Plain values first, as in `changes`: rename detection rewrites the deltas.
            added_or_deleted = [
                (delta.old_file.path, False)
                if delta.status == pygit2.GIT_DELTA_DELETED
                else (delta.new_file.path, True)
                for delta in diff.deltas
                if delta.status in (pygit2.GIT_DELTA_DELETED, pygit2.GIT_DELTA_ADDED)
            ]
            yield Step(self._value(commit), _moves_in(diff), added_or_deleted)

    # -- tags -----------------------------------------------------------------------------------
    def ref_name_problem(self, ref: str) -> str | None:
        """Why the branch or tag `ref` (`refs/heads/...`, `refs/tags/...`) cannot be created, or
        None when it can: a valid git ref name, a name `resolve` reaches and reads as nothing
        else (`rules.ref_name_problem`), and no other branch's or tag's name, also not in
        another case (a tag named like a branch would change what `?rev=` runs, and the reverse)."""
        return self._ref_name_problem(ref, self._refs_by_folded_name())

    def ambiguous_refs(self) -> dict[str, str]:
        """Branches and tags, other than `main`, whose names `ref_name_problem` would refuse
        today (made before its rules, or behind the service), with the reason."""
        named = self._refs_by_folded_name()
        found = {}
        for ref in sorted(itertools.chain.from_iterable(named.values())):
            problem = self._ref_name_problem(ref, named) if ref != MAIN_REF else None
            if problem:
                found[ref] = problem
        return found

    def _refs_by_folded_name(self) -> dict[str, list[str]]:
        """Every branch and tag, by its name in one case."""
        named: dict[str, list[str]] = {}
        for ref in self.git.references:
            kind_and_name = _kind_and_name(ref)
            if kind_and_name is not None:
                named.setdefault(kind_and_name[1].casefold(), []).append(ref)
        return named

    def _ref_name_problem(self, ref: str, named: dict[str, list[str]]) -> str | None:
        kind, name = _kind_and_name(ref) or ("ref", ref)
        if not pygit2.reference_is_valid_name(ref):
            return f"not a valid git {kind} name"
        problem = rules.ref_name_problem(name, kind)
        if problem:
            return problem
        for other in named.get(name.casefold(), []):
            if other != ref:
                other_kind = (_kind_and_name(other) or ("ref", other))[0]
                return f"a {kind} name cannot be a {other_kind} name ({other} exists)"
        return None

    def tags(self) -> list[TagInfo]:
        names = [
            ref[len(TAG_PREFIX) :] for ref in self.git.references if ref.startswith(TAG_PREFIX)
        ]
        found = (self.tag(name) for name in sorted(names))
        return [tag for tag in found if tag is not None]

    def tag(self, name: str) -> TagInfo | None:
        """The tag `name` when it names a commit (tags on other objects are not versions)."""
        ref = self.git.references.get(TAG_PREFIX + name)
        if ref is None:
            return None
        try:
            commit = self._value(ref.peel(pygit2.Commit))
        except (pygit2.InvalidSpecError, ValueError, KeyError):
            return None
        target = self.git.get(ref.target)
        if isinstance(target, pygit2.Tag) and target.tagger is not None:
            return TagInfo(
                name=name,
                target=str(ref.target),
                commit=commit,
                tagger_id=Author.user_id_of(target.tagger.email),
                tagged_at=target.tagger.time,
                message=target.message,
            )
        return TagInfo(
            name=name,
            target=str(ref.target),
            commit=commit,
            tagger_id=None,
            tagged_at=None,
            message=None,
        )

    def set_tag(
        self,
        name: str,
        commit: Commit,
        tagger: Author,
        message: str,
        *,
        expected: str | None,
    ) -> TagInfo:
        """Point `refs/tags/<name>` at a new annotated tag object for `commit`.

        `expected` is what the ref must hold now (None: it must not exist), checked under the
        write lock, so two API callers never both win; the object is written before the ref moves,
        so a fetch sees the old tag or the new one, never a missing one.
        """
        signature = tagger.signature()
        raw = (
            f"object {commit.id}\ntype commit\ntag {name}\n"
            f"tagger {signature.name} <{signature.email}> {int(time.time())} +0000\n\n"
            f"{message.rstrip()}\n"
        ).encode()
        ref_name = TAG_PREFIX + name
        with self.write_lock:
            current = self.git.references.get(ref_name)
            if current is not None and expected is None:
                raise errors.TagAlreadyExists(f"Tag '{name}' already exists", tag=name)
            if (str(current.target) if current is not None else None) != expected:
                raise errors.ConcurrentUpdate(
                    f"Tag '{name}' changed meanwhile; try again", tag=name
                )
            tag_id = self.git.odb.write(pygit2.GIT_OBJECT_TAG, raw)
            try:
                self.git.references.create(ref_name, tag_id, force=expected is not None)
            except pygit2.AlreadyExistsError:  # a push made it since the check above
                raise errors.TagAlreadyExists(f"Tag '{name}' already exists", tag=name) from None
        found = self.tag(name)
        assert found is not None
        return found

    def delete_tag(self, name: str, *, expected: str) -> None:
        ref_name = TAG_PREFIX + name
        with self.write_lock:
            current = self.git.references.get(ref_name)
            if current is None or str(current.target) != expected:
                raise errors.ConcurrentUpdate(
                    f"Tag '{name}' changed meanwhile; try again", tag=name
                )
            self.git.references.delete(ref_name)


def _kind_and_name(ref: str) -> tuple[str, str] | None:
    """("branch" or "tag", its short name) for a branch's or tag's full ref name; else None."""
    for prefix, kind in ((BRANCH_PREFIX, "branch"), (TAG_PREFIX, "tag")):
        if ref.startswith(prefix):
            return kind, ref[len(prefix) :]
    return None


def _object_at(tree: pygit2.Tree, path: str) -> pygit2.Object | None:
    try:
        return tree[path]
    except KeyError:
        return None


def _entry_id(tree: pygit2.Tree, path: str) -> pygit2.Oid | None:
    found = _object_at(tree, path)
    return None if found is None else found.id


def _is_folder(tree: pygit2.Tree, path: str) -> bool:
    found = _object_at(tree, path)
    return found is not None and found.type == pygit2.GIT_OBJECT_TREE


def _moves_in(diff: pygit2.Diff) -> dict[str, str]:
    """The pairing behind `Repository.detected_moves`, on a tree diff not yet rename-detected."""
    deleted = {
        d.old_file.path: d.old_file.id for d in diff.deltas if d.status == pygit2.GIT_DELTA_DELETED
    }
    added = {
        d.new_file.path: d.new_file.id for d in diff.deltas if d.status == pygit2.GIT_DELTA_ADDED
    }
    moves: dict[str, str] = {}
    unpaired = dict(added)
    for old in sorted(deleted):
        candidates = [new for new, oid in unpaired.items() if oid == deleted[old]]
        if candidates:
            best = max(candidates, key=lambda new: (_shared_tail(old, new), new))
            moves[old] = best
            del unpaired[best]
    if len(moves) < len(deleted) and unpaired:  # similarity needs both sides; most have neither
        diff.find_similar()
        for delta in diff.deltas:
            old, new = delta.old_file.path, delta.new_file.path
            if delta.status == pygit2.GIT_DELTA_RENAMED and old not in moves and new in unpaired:
                moves[old] = new
                del unpaired[new]
    return moves


def _shared_tail(old: str, new: str) -> int:
    shared = 0
    for a, b in zip(reversed(old.split("/")), reversed(new.split("/")), strict=False):
        if a != b:
            break
        shared += 1
    return shared
