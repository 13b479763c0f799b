"""Deleted scripts: what the index keeps of a script's entry once Git no longer holds its file.

A deleted script's integer id and owner are what Git cannot hold; without them a script brought
back would come back as a new one (invariant 5). A tombstone keeps them, with where the script was
when it went (`deleted_path`, fixed) and the commit that deleted it (`deleted_in`): Git answers
everything else (who deleted it, when, its last content). `path` is where it would come back: its
old path, re-pointed when the folder it was in is renamed or moved. Restoring turns the tombstone
back into the script's entry under the same id; ids are never reused (`Meta.next_ids`), so a
tombstone's id never names a live script.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from gitscripts.index.entries import Entry
from gitscripts.index.table import Doc, Table


@dataclass(frozen=True)
class Tombstone:
    id: int  # the deleted script's id
    path: str
    deleted_path: str
    deleted_in: str
    owner_id: int | None
    created_at: str


class Tombstones(Table[Tombstone]):
    name = "deleted_scripts"

    def _record(self, doc_id: int, doc: Doc) -> Tombstone:
        return Tombstone(
            id=doc_id,
            path=doc["path"],
            deleted_path=doc["deleted_path"],
            deleted_in=doc["deleted_in"],
            owner_id=doc.get("owner_id"),
            created_at=doc["created_at"],
        )

    def under(self, folder: str | None) -> list[Tombstone]:
        """The tombstones of scripts that would come back inside `folder` (None: anywhere),
        newest deletion last (in the order they were buried)."""
        inside = "" if folder is None else folder + "/"
        return [stone for stone in self.all() if stone.path.startswith(inside)]

    def bury(self, entries: list[Entry], deleted_in: Mapping[str, str]) -> None:
        """Keep the entries of scripts that were deleted (each by the commit `deleted_in` names
        for its path), under their own ids."""
        if entries:
            self._insert(
                [
                    {
                        "path": entry.path,
                        "deleted_path": entry.path,
                        "deleted_in": deleted_in[entry.path],
                        "owner_id": entry.owner_id,
                        "created_at": entry.created_at,
                    }
                    for entry in entries
                ],
                ids=[entry.id for entry in entries],
            )

    def move_folders(self, moves: Mapping[str, str]) -> None:
        """Re-point tombstones inside folders that moved (old folder path -> new)."""

        def moved(path: str) -> str | None:
            # The innermost folder that moved decides: `a -> x` and `a/b -> y` put a/b/c at y/c.
            for folder in sorted(moves, key=len, reverse=True):
                if path.startswith(folder + "/"):
                    return moves[folder] + path[len(folder) :]
            return None

        if moves:
            changing = [stone.id for stone in self.all() if moved(stone.path) is not None]
            self._change(changing, lambda doc: doc.update(path=moved(doc["path"])))

    def remove(self, ids: list[int]) -> None:
        self._remove(ids)
