"""Commits and trees as the rest of the package sees them: plain values, ids as hex text.

A `Commit` is read once from git and carries everything callers show or follow (its tree, parents,
author, committer, message); a `Tree` names a commit's tree by id, and the repository facade reads
paths in it (`Repository.entry`, `read_file`, ...). Nothing here holds a pygit2 object.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Tree:
    id: str


@dataclass(frozen=True)
class Signature:
    """Who and when, as git records an author or a committer (time: Unix seconds)."""

    name: str
    email: str
    time: int


@dataclass(frozen=True)
class Commit:
    id: str
    short_id: str  # the shortest abbreviation of `id` unique in the repository (7 or more)
    tree: Tree
    parent_ids: tuple[str, ...]  # in the commit's parent order
    author: Signature
    committer: Signature
    message: str

    @property
    def commit_time(self) -> int:
        return self.committer.time
