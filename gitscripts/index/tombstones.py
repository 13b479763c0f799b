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
from gitscripts.timestamps import utc_now


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

    def add(self, deletions: list[tuple[str, str, str, int | None]]) -> None:
        """Tombstones for deleted scripts whose ids are lost: (path, deleted_path, deleted_in,
        owner) each, under new script ids (never any script's before)."""
        if deletions:
            now = utc_now()
            self._insert(
                [
                    {
                        "path": path,
                        "deleted_path": deleted_path,
                        "deleted_in": deleted_in,
                        "owner_id": owner,
                        "created_at": now,
                    }
                    for path, deleted_path, deleted_in, owner in deletions
                ],
                ids=self._meta.next_ids("scripts", len(deletions)),
            )

    def move_folders(self, moves: Mapping[str, str]) -> None:
        """Re-point tombstones inside folders that moved (old folder path -> new)."""
        if moves:
            changing = [stone.id for stone in self.all() if relocated(stone.path, moves)]
            self._change(changing, lambda doc: doc.update(path=relocated(doc["path"], moves)))

    def remove(self, ids: list[int]) -> None:
        self._remove(ids)


def relocated(path: str, folder_moves: Mapping[str, str]) -> str | None:
    """Where `path` is after folders moved (old folder path -> new); None when none held it.
    The innermost folder that moved decides: `a -> x` and `a/b -> y` put a/b/c at y/c."""
    for folder in sorted(folder_moves, key=len, reverse=True):
        if path.startswith(folder + "/"):
            return folder_moves[folder] + path[len(folder) :]
    return None
