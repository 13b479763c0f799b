"""The index's record of the file store: who stored each file (the store itself knows no owners)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal

from gitscripts.index.table import Doc, Table
from gitscripts.timestamps import utc_now

Claim = Literal["refused", "new", "kept"]


@dataclass(frozen=True)
class FileRecord:
    id: int
    key: str
    owner_id: int | None
    created_at: str
    filename: str | None = None  # the name it was uploaded as; None for one put at its key


class FileRecords(Table[FileRecord]):
    """File records by key and by owner."""

    name = "files"

    def _record(self, doc_id: int, doc: Doc) -> FileRecord:
        return FileRecord(
            id=doc_id,
            key=doc["key"],
            owner_id=doc.get("owner_id"),
            created_at=doc["created_at"],
            filename=doc.get("filename"),
        )

    def _clear(self) -> None:
        self._by_key: dict[str, FileRecord] = {}
        self._by_owner: dict[int | None, dict[str, FileRecord]] = {}

    def _index(self, record: FileRecord) -> None:
        self._by_key[record.key] = record
        self._by_owner.setdefault(record.owner_id, {})[record.key] = record

    def _unindex(self, record: FileRecord) -> None:
        if self._by_key.get(record.key) == record:
            del self._by_key[record.key]
            del self._by_owner[record.owner_id][record.key]

    def at(self, key: str) -> FileRecord | None:
        """The record of a stored file, or None when unknown."""
        self._records()
        return self._by_key.get(key)

    def owned_by(self, owner_id: int) -> list[FileRecord]:
        self._records()
        return list(self._by_owner.get(owner_id, {}).values())

    def add(self, key: str, owner_id: int | None, filename: str | None = None) -> None:
        """Record who stored `key`, and the name it was uploaded as (replacing an earlier record
        of the same key)."""
        doc: dict[str, Any] = {"key": key, "owner_id": owner_id, "created_at": utc_now()}
        if filename is not None:
            doc["filename"] = filename
        with self._storage.transaction():
            self.remove(key)
            self._insert([doc])

    def claim(
        self,
        key: str,
        claimant_id: int | None,
        may_change: Callable[[int | None], bool],
        filename: str | None = None,
    ) -> tuple[Claim, int | None]:
        """Before new content appears at `key`, checked and written in one transaction (so two
        writers of one new key cannot both become its owner), with the owner it then has:
        "refused" when `may_change(owner)` says no; "new" when the claimant now owns it (there
        was no record, or one without an owner); "kept" when it stays its owner's. A new record
        holds `filename`; a kept one keeps the name it has."""
        with self._storage.transaction():
            record = self.at(key)
            owner_id = record.owner_id if record else None
            if not may_change(owner_id):
                return "refused", owner_id
            if owner_id is None:
                self.add(key, claimant_id, filename)
                return "new", claimant_id
            return "kept", owner_id

    def keep(self, key: str, owner_id: int | None, filename: str | None = None) -> None:
        """Content was just stored at `key`: if a delete racing it dropped the record, the record
        comes back, so the file is never left without its owner."""
        with self._storage.transaction():
            if self.at(key) is None:
                self.add(key, owner_id, filename)

    def remove(self, key: str) -> None:
        with self._storage.transaction():
            record = self.at(key)
            if record is not None:
                self._remove([record.id])
