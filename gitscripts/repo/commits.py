"""Commits and trees as the rest of the package sees them: plain values, ids as hex text.

A `Commit` is read once from git and carries what callers show or follow: its tree, parents,
author, committer and message. Its abbreviated id is not in it: that depends on every other
object's id, so the repository says it where one is shown (`Repository.short_id`). A `Tree` names a
commit's tree by id; the repository facade reads paths in it (`Repository.entry`, `read_file`, ...).
Nothing here holds a pygit2 object.
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
    tree: Tree
    parent_ids: tuple[str, ...]  # in the commit's parent order
    author: Signature
    committer: Signature
    message: str

    @property
    def commit_time(self) -> int:
        return self.committer.time
