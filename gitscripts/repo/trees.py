"""Reading trees by id, entry by entry: what a checkout writes out, as plain values.

A checkout (`gitscripts.executor.checkout`) walks one tree and the trees under it and writes their
files; it needs each entry's name, object id and kind, and a file's bytes, nothing else. A
`TreeEntry` is also what the facade answers for one path (`Repository.entry`).
"""

from __future__ import annotations

from collections.abc import Set
from dataclasses import dataclass
from typing import TypeAlias

import pygit2

from gitscripts.repo import modes

# The repository handle the executor holds today (`Repository.git`): the one thing a TreeReader is
# opened on.
RawRepository: TypeAlias = pygit2.Repository


@dataclass(frozen=True)
class TreeEntry:
    name: str
    id: str
    mode: int  # `modes`: FOLDER, FILE, EXECUTABLE, SYMLINK or SUBMODULE

    @property
    def is_folder(self) -> bool:
        return self.mode == modes.FOLDER

    @property
    def is_file(self) -> bool:
        """A file with bytes (plain or executable): never a symlink or a submodule."""
        return self.mode in modes.FILE_MODES

    @property
    def is_blob(self) -> bool:
        """A file, or a symlink: what git stores as bytes (a folder and a submodule are not)."""
        return self.mode in modes.BLOB_MODES


class TreeReader:
    def __init__(self, git: RawRepository) -> None:
        self._git = git

    def gather(self, tree_id: str, present: Set[str]) -> None:
        """Nothing to fetch: every tree of the repository is here already."""

    def entries(self, tree_id: str) -> list[TreeEntry]:
        tree = self._git[tree_id]
        assert isinstance(tree, pygit2.Tree), tree_id
        return [TreeEntry(entry.name or "", str(entry.id), entry.filemode) for entry in tree]

    def blob(self, blob_id: str) -> bytes:
        return bytes(self._git[blob_id].read_raw())
