"""The index's folders and scripts: stable integer ids for the paths Git holds, and their owners."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping
from dataclasses import dataclass, replace
from typing import Any, Literal

from tinydb import TinyDB

from gitscripts.index.storage import AtomicJSONStorage
from gitscripts.index.table import Doc, Meta, Table
from gitscripts.timestamps import utc_now

EntryKind = Literal["folders", "scripts"]


@dataclass(frozen=True)
class Entry:
    """A folder or script as the index knows it: its id, where it is in Git, and who owns it."""

    id: int
    path: str
    owner_id: int | None
    created_at: str
    updated_at: str


class Entries(Table[Entry]):
    """The folders, or the scripts: by id and by path, kept in memory (what /tree and every
    id/path question reads)."""

    def __init__(self, storage: AtomicJSONStorage, db: TinyDB, meta: Meta, kind: EntryKind) -> None:
        self.name = kind
        super().__init__(storage, db, meta)

    def _record(self, doc_id: int, doc: Doc) -> Entry:
        return Entry(
            id=doc_id,
            path=doc["path"],
            owner_id=doc.get("owner_id"),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
        )

    def _clear(self) -> None:
        self._by_path: dict[str, Entry] = {}

    def _index(self, record: Entry) -> None:
        self._by_path[record.path] = record

    def _unindex(self, record: Entry) -> None:
        if self._by_path.get(record.path) == record:
            del self._by_path[record.path]

    # -- reading -------------------------------------------------------------------------------
    def at(self, path: str) -> Entry | None:
        self._records()
        return self._by_path.get(path)

    def id_at(self, path: str) -> int | None:
        entry = self.at(path)
        return entry.id if entry else None

    def by_path(self) -> dict[str, Entry]:
        """Every entry, by path (a copy: callers may keep it while the table changes)."""
        self._records()
        return dict(self._by_path)

    def under(self, path: str) -> list[Entry]:
        """The entry at `path` and every entry inside it."""
        self._records()
        inside = path + "/"
        return [
            entry
            for entry_path, entry in self._by_path.items()
            if entry_path == path or entry_path.startswith(inside)
        ]

    # -- writing -------------------------------------------------------------------------------
    def add(self, path: str, owner_id: int | None) -> Entry:
        return self.add_many({path: owner_id})[0]

    def add_many(self, owners: Mapping[str, int | None]) -> list[Entry]:
        """New entries for paths (each with its owner), in one write however many there are."""
        if not owners:
            return []
        now = utc_now()
        return self._insert(
            [
                {"path": path, "owner_id": owner, "created_at": now, "updated_at": now}
                for path, owner in owners.items()
            ]
        )

    def revive(self, entry_id: int, path: str, owner_id: int | None, created_at: str) -> Entry:
        """A deleted script's entry again, under its old id, owner and creation time."""
        doc = {"path": path, "owner_id": owner_id, "created_at": created_at}
        return self._insert([{**doc, "updated_at": utc_now()}], ids=[entry_id])[0]

    def touch(self, entry_id: int) -> None:
        """Record that the folder or script changed now (paths change only by `move`)."""
        self._update([entry_id], {"updated_at": utc_now()})

    def move(self, moves: Mapping[str, str]) -> None:
        """Re-point entries from old to new paths, keeping ids, owners and times."""
        if not moves:
            return
        with self._storage.transaction():
            self._records()
            moving = [self._by_path[old] for old in moves if old in self._by_path]

            def repoint(doc: MutableMapping[str, Any]) -> None:
                doc["path"] = moves[doc["path"]]

            # One update for all of them: TinyDB rewrites the whole table per call.
            self._tiny.update(repoint, doc_ids=[entry.id for entry in moving])
            for entry in moving:
                self._forget(entry.id)
            for entry in moving:
                self._remember(replace(entry, path=moves[entry.path]))

    def move_under(self, old: str, new: str) -> None:
        """Re-point the entry at `old` and everything inside it to `new`."""
        self.move({entry.path: new + entry.path[len(old) :] for entry in self.under(old)})

    def remove(self, entry_ids: list[int]) -> None:
        self._remove(entry_ids)
