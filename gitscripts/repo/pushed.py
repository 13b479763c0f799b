"""What a push brings, read for the push rules: its commits, their changes and objects, as values.

A push is checked while its objects still sit in git's quarantine (a folder of their own until
pre-receive accepts them), so this view reads the repository with the quarantine added as an
alternate object store: the rules see the push before it exists anywhere else. Objects are named by
their ids as hex text; nothing here returns a pygit2 object.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pygit2
from pygit2.enums import SortMode

from gitscripts.repo import modes
from gitscripts.repo.repository import Author

ZERO = "0" * 40  # git's id for "no object": the old side of a new ref, the new side of a deletion


@dataclass(frozen=True)
class PushedCommit:
    id: str
    tree: str
    parent_trees: tuple[str, ...]  # in the commit's parent order


@dataclass(frozen=True)
class PathChange:
    """One path that differs between two trees (no rename pairing: a move is a deletion plus an
    addition). For a deletion, `mode` and `id` are the old side's; otherwise the new side's."""

    deleted: bool
    path: str  # as text; bytes that are not UTF-8 show as `\\xNN` escapes
    utf8: bool  # whether the name is UTF-8 text (names travel as JSON text through the API)
    mode: int  # `modes`
    id: str


class PushedObjects:
    def __init__(self, repository: Path, quarantine: str | None) -> None:
        self._git = pygit2.Repository(str(repository))
        if quarantine:
            self._git.odb.add_disk_alternate(quarantine)

    # -- objects ------------------------------------------------------------------------------
    def commit_of(self, oid: str) -> str | None:
        """The commit an object is or (through annotated tags) points at; None for anything else
        (a blob, a tree, an unknown id)."""
        commit = self._commit(oid)
        return str(commit.id) if commit is not None else None

    def tagger_id(self, oid: str) -> int | None:
        """The gitscripts user an annotated tag's tagger names; None for anything else."""
        tag = self._git.get(oid)
        if isinstance(tag, pygit2.Tag) and tag.tagger is not None:
            return Author.user_id_of(tag.tagger.email)
        return None

    def size(self, oid: str) -> int | None:
        """An object's size from its header only (a pushed 100 MB file is not read to learn
        that it is too large); None when the object is not there."""
        try:
            return int(self._git.odb.read_header(oid)[1])
        except KeyError:
            return None

    def read(self, oid: str) -> bytes:
        return bytes(self._git[oid].read_raw())

    def tree_of(self, oid: str) -> str:
        """The tree a commit (or a tag of one) has."""
        return str(self._git[oid].peel(pygit2.Tree).id)

    # -- history ------------------------------------------------------------------------------
    def is_descendant(self, new: str, old: str) -> bool:
        return bool(self._git.descendant_of(new, old))

    def merge_base(self, one: str, other: str) -> str | None:
        """The best common ancestor; None when there is none or an id is unknown."""
        try:
            base = self._git.merge_base(one, other)
        except (KeyError, ValueError, pygit2.GitError):
            return None
        return str(base) if base is not None else None

    def new_commits(self, tip: str) -> list[PushedCommit]:
        """The commits `tip` brings that no branch or tag reaches yet, parents after children."""
        target = self._commit(tip)
        if target is None:
            return []
        walker = self._git.walk(target.id, SortMode.TOPOLOGICAL)
        for ref in self._git.references.objects:
            commit = self._commit(ref.resolve().target)
            if commit is not None:
                walker.hide(commit.id)
        return [_pushed(commit) for commit in walker]

    def commits_between(self, old: str, new: str) -> list[PushedCommit]:
        """The commits `new` has and `old` has not (both peeled to commits), children first."""
        walker = self._git.walk(self._git[new].peel(pygit2.Commit).id, SortMode.TOPOLOGICAL)
        walker.hide(self._git[old].peel(pygit2.Commit).id)
        return [_pushed(commit) for commit in walker]

    # -- trees --------------------------------------------------------------------------------
    def changes(self, old_tree: str | None, new_tree: str) -> list[PathChange]:
        """Every path that differs from `old_tree` (None: the empty tree) to `new_tree`."""
        new = self._tree(new_tree)
        diff = self._tree(old_tree).diff_to_tree(new) if old_tree else new.diff_to_tree(swap=True)
        found = []
        for delta in diff.deltas:
            deleted = delta.status == pygit2.GIT_DELTA_DELETED
            side = delta.old_file if deleted else delta.new_file
            try:
                side.raw_path.decode("utf-8")
            except UnicodeDecodeError:
                utf8 = False
            else:
                utf8 = True
            found.append(
                PathChange(
                    deleted=deleted,
                    path=side.raw_path.decode("utf-8", "backslashreplace"),
                    utf8=utf8,
                    mode=side.mode,
                    id=str(side.id),
                )
            )
        return found

    def entry(self, tree: str, path: str) -> tuple[str, int] | None:
        """What `tree` holds at `path` (object id and mode), or None."""
        try:
            found = self._tree(tree)[path]
        except KeyError:
            return None
        return str(found.id), found.filemode

    def is_folder(self, tree: str, path: str) -> bool:
        found = self.entry(tree, path)
        return found is not None and found[1] == modes.FOLDER

    # -----------------------------------------------------------------------------------------
    def _commit(self, oid: str | pygit2.Oid) -> pygit2.Commit | None:
        obj = self._git.get(oid)
        while isinstance(obj, pygit2.Tag):
            obj = self._git.get(obj.target)
        return obj if isinstance(obj, pygit2.Commit) else None

    def _tree(self, tree_id: str) -> pygit2.Tree:
        tree = self._git[tree_id]
        assert isinstance(tree, pygit2.Tree), tree_id
        return tree


def _pushed(commit: pygit2.Commit) -> PushedCommit:
    return PushedCommit(
        id=str(commit.id),
        tree=str(commit.tree_id),
        parent_trees=tuple(str(parent.tree_id) for parent in commit.parents),
    )
