"""One index table: its records in memory, indexed by what callers look up.

Each table of the index (users, tokens, scripts, files...) is a small class on this base. Its
records are frozen values built from the stored documents; the in-memory maps are built when the
storage (re)loaded its data (another process wrote the file, or a failed transaction dropped its
changes) and are patched by every change made through the class, so a lookup by id or by a key a
table keeps (a login, a token hash, a path, a file key) is a dictionary access, and a write never
rebuilds the maps. Writes go through the class only: a change made behind its back in the same
process would not be seen. The storage itself (one atomic JSON file, re-read only when it changed)
is `gitscripts.index.storage`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, MutableMapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from tinydb import TinyDB
from tinydb.table import Document
from tinydb.table import Table as TinyTable

from gitscripts.index.storage import AtomicJSONStorage

Doc = Mapping[str, Any]


class _Record(Protocol):
    @property
    def id(self) -> int: ...


R = TypeVar("R", bound=_Record)


class Meta:
    """The index's own bookkeeping: id counters, and which commit the entries describe."""

    _ID = 1

    def __init__(self, storage: AtomicJSONStorage, db: TinyDB) -> None:
        self._storage = storage
        self._table = db.table("meta", cache_size=0)

    def _doc(self) -> dict[str, Any]:
        doc = self._table.get(doc_id=self._ID)
        return dict(doc) if isinstance(doc, Document) else {}

    def _set(self, **fields: object) -> None:
        if self._table.contains(doc_id=self._ID):
            self._table.update(fields, doc_ids=[self._ID])
        else:
            self._table.insert(Document(fields, doc_id=self._ID))

    def next_ids(self, table: str, count: int = 1) -> range:
        """Ids are never reused, so a deleted script's id can never point at another script."""
        with self._storage.transaction():
            counters = dict(self._doc().get("next_ids", {}))
            if table not in counters:  # an index written before counters existed
                existing = (self._storage.read() or {}).get(table, {})
                counters[table] = max((int(key) for key in existing), default=0) + 1
            first: int = counters[table]
            counters[table] = first + count
            self._set(next_ids=counters)
            return range(first, first + count)

    @property
    def synced_head(self) -> str | None:
        head = self._doc().get("synced_head")
        return head if isinstance(head, str) else None

    def set_synced_head(self, commit_id: str) -> None:
        with self._storage.transaction():
            self._set(synced_head=commit_id)


class Table(Generic[R]):
    """The base of every table class: records by id, plus the maps a subclass keeps."""

    name: str

    def __init__(self, storage: AtomicJSONStorage, db: TinyDB, meta: Meta) -> None:
        self._storage = storage
        self._meta = meta
        self._tiny: TinyTable = db.table(self.name, cache_size=0)
        self._loads = -1
        self._by_id: dict[int, R] = {}

    # -- what a subclass says ------------------------------------------------------------------
    def _record(self, doc_id: int, doc: Doc) -> R:
        """The record a stored document stands for."""
        raise NotImplementedError

    def _index(self, record: R) -> None:
        """Add `record` to the subclass's own maps (the id map is the base's)."""

    def _unindex(self, record: R) -> None:
        """Take `record` out of the subclass's own maps."""

    def _clear(self) -> None:
        """Empty the subclass's own maps."""

    # -- reading -------------------------------------------------------------------------------
    def _records(self) -> dict[int, R]:
        """Records by id, current: rebuilt only when the storage loaded new data."""
        data = self._storage.read() or {}
        if self._loads != self._storage.loads:
            self._by_id.clear()
            self._clear()
            for key, doc in data.get(self.name, {}).items():
                self._remember(self._record(int(key), doc))
            self._loads = self._storage.loads
        return self._by_id

    def get(self, record_id: int) -> R | None:
        return self._records().get(record_id)

    def all(self) -> list[R]:
        """Every record, oldest first."""
        return list(self._records().values())

    # -- writing (always inside a transaction) -------------------------------------------------
    def _remember(self, record: R) -> None:
        self._by_id[record.id] = record
        self._index(record)

    def _forget(self, record_id: int) -> R | None:
        record = self._by_id.pop(record_id, None)
        if record is not None:
            self._unindex(record)
        return record

    def _insert(self, docs: list[dict[str, Any]], ids: Sequence[int] | None = None) -> list[R]:
        """Store new documents under fresh ids (or under `ids`, which a record kept when it moved
        between tables: a deleted script's), in one write however many there are."""
        with self._storage.transaction():
            self._records()
            if ids is None:
                ids = self._meta.next_ids(self.name, len(docs))
            documents = [
                Document(doc, doc_id=doc_id) for doc_id, doc in zip(ids, docs, strict=True)
            ]
            self._tiny.insert_multiple(documents)
            added = [self._record(document.doc_id, document) for document in documents]
            for record in added:
                self._remember(record)
        return added

    def _update(self, record_ids: list[int], fields: dict[str, Any]) -> None:
        """Set the same fields on records, in one write (TinyDB rewrites the table per call)."""
        self._change(record_ids, lambda doc: doc.update(fields))

    def _change(
        self, record_ids: list[int], change: Callable[[MutableMapping[str, Any]], None]
    ) -> None:
        """Apply `change(doc)` to each record's document, in one write."""
        if not record_ids:
            return
        with self._storage.transaction():
            self._records()
            self._tiny.update(change, doc_ids=record_ids)
            for record_id in record_ids:
                self._forget(record_id)
                doc = self._tiny.get(doc_id=record_id)
                if isinstance(doc, Document):
                    self._remember(self._record(record_id, doc))

    def _remove(self, record_ids: list[int]) -> None:
        if not record_ids:
            return
        with self._storage.transaction():
            self._records()
            self._tiny.remove(doc_ids=record_ids)
            for record_id in record_ids:
                self._forget(record_id)
