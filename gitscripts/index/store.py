"""The index: what Git cannot hold (users, tokens, owners, integer ids) plus the id <-> path mapping.

Git is the truth for content and layout; the index maps stable integer ids to the paths Git holds and
remembers who owns each. It can be rebuilt from Git (see `gitscripts.index.sync`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

from tinydb import TinyDB
from tinydb.table import Document, Table

from gitscripts.auth.logins import login_key
from gitscripts.index.storage import AtomicJSONStorage

EntryKind = Literal["folders", "scripts"]
_META_ID = 1


def utc_now() -> str:
    """Timestamps are ISO 8601 in UTC with a `Z`, as the original API wrote them."""
    return datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def iso_time(seconds: float) -> str:
    """A Unix time in the same form, to the second (git's resolution)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


@dataclass(frozen=True)
class Entry:
    """A folder or script as the index knows it: its id, where it is in Git, and who owns it."""

    id: int
    path: str
    owner_id: int | None
    created_at: str
    updated_at: str


@dataclass
class _Lookups:
    generation: int
    user_by_login: dict[str, int]  # exactly as stored
    user_by_key: dict[str, int]  # by `login_key`; the oldest account when old logins collide
    token_by_hash: dict[str, int]
    invite_by_hash: dict[str, int]
    revoked_sessions: set[str]


@dataclass
class _Entries:
    """kind -> path -> entry: what /tree and every id/path question reads, kept in memory.

    Rebuilt only when the storage was reloaded; every change this process makes patches it.
    """

    loads: int
    by_path: dict[str, dict[str, Entry]]


class Index:
    def __init__(self, path: Path) -> None:
        self.storage = AtomicJSONStorage(path)
        self.db = TinyDB(storage=lambda: self.storage)
        self._lookups: _Lookups | None = None
        self._entry_maps: _Entries | None = None
        self._pushes_map: tuple[int, dict[str, int]] | None = None

    # -- plumbing -----------------------------------------------------------------------------
    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.storage.transaction():
            yield

    def _table(self, name: str) -> Table:
        table = self.db.table(name, cache_size=0)
        return table

    def _lookup(self) -> _Lookups:
        data = self.storage.read() or {}
        current = self._lookups
        if current is not None and current.generation == self.storage.generation:
            return current
        generation = self.storage.generation
        users = data.get("users", {})
        tokens = data.get("tokens", {})
        revoked = data.get("revoked_sessions", {})
        by_key: dict[str, int] = {}
        for key, doc in sorted(users.items(), key=lambda item: int(item[0])):
            by_key.setdefault(login_key(doc["login"]), int(key))
        lookups = _Lookups(
            generation=generation,
            user_by_login={doc["login"]: int(key) for key, doc in users.items()},
            user_by_key=by_key,
            token_by_hash={doc["token_hash"]: int(key) for key, doc in tokens.items()},
            invite_by_hash={
                doc["code_hash"]: int(key) for key, doc in data.get("invites", {}).items()
            },
            revoked_sessions={doc["jti"] for doc in revoked.values()},
        )
        self._lookups = lookups
        return lookups

    def _entries(self) -> dict[str, dict[str, Entry]]:
        data = self.storage.read() or {}
        current = self._entry_maps
        if current is not None and current.loads == self.storage.loads:
            return current.by_path
        by_path = {
            kind: {doc["path"]: _entry(int(key), doc) for key, doc in data.get(kind, {}).items()}
            for kind in ("folders", "scripts")
        }
        self._entry_maps = _Entries(loads=self.storage.loads, by_path=by_path)
        return by_path

    @contextmanager
    def _patching_entries(self) -> Iterator[dict[str, dict[str, Entry]]]:
        """Change entries in a transaction and patch the in-memory maps to match."""
        with self.transaction():
            yield self._entries()

    def _meta(self) -> dict[str, Any]:
        return self._table("meta").get(doc_id=_META_ID) or {}

    def _set_meta(self, **fields: Any) -> None:
        meta = self._table("meta")
        if meta.contains(doc_id=_META_ID):
            meta.update(fields, doc_ids=[_META_ID])
        else:
            meta.insert(Document(fields, doc_id=_META_ID))

    def _next_ids(self, kind: str, count: int = 1) -> range:
        """Ids are never reused, so a deleted script's id can never point at another script."""
        with self.transaction():
            counters = dict(self._meta().get("next_ids", {}))
            if kind not in counters:  # an index written before counters existed
                existing = (self.storage.read() or {}).get(kind, {})
                counters[kind] = max((int(key) for key in existing), default=0) + 1
            first = counters[kind]
            counters[kind] = first + count
            self._set_meta(next_ids=counters)
            return range(first, first + count)

    def _next_id(self, kind: str) -> int:
        return self._next_ids(kind)[0]

    # -- users --------------------------------------------------------------------------------
    def user(self, user_id: int) -> dict[str, Any] | None:
        doc = self._table("users").get(doc_id=user_id)
        return {**doc, "id": doc.doc_id} if doc else None

    def user_by_login(self, login: str) -> dict[str, Any] | None:
        """The account of `login`: the one stored as exactly that, else the one it folds to."""
        lookups = self._lookup()
        user_id = lookups.user_by_login.get(login)
        if user_id is None:
            user_id = lookups.user_by_key.get(login_key(login))
        return self.user(user_id) if user_id is not None else None

    def users(self) -> list[dict[str, Any]]:
        return [{**doc, "id": doc.doc_id} for doc in self._table("users").all()]

    def add_user(self, login: str, password_hash: str, is_admin: bool) -> dict[str, Any]:
        now = utc_now()
        with self.transaction():
            user_id = self._next_id("users")
            self._table("users").insert(
                Document(
                    {
                        "login": login,
                        "password_hash": password_hash,
                        "is_admin": is_admin,
                        "needs_onboarding": True,
                        "created_at": now,
                        "updated_at": now,
                    },
                    doc_id=user_id,
                )
            )
        user = self.user(user_id)
        assert user is not None
        return user

    def update_user(self, user_id: int, **fields: Any) -> dict[str, Any]:
        with self.transaction():
            self._table("users").update({**fields, "updated_at": utc_now()}, doc_ids=[user_id])
        user = self.user(user_id)
        assert user is not None
        return user

    # -- personal API tokens ------------------------------------------------------------------
    def add_token(
        self, user_id: int, name: str, token_hash: str, prefix: str, expires_at: str | None
    ) -> dict[str, Any]:
        with self.transaction():
            token_id = self._next_id("tokens")
            fields = {
                "user_id": user_id,
                "name": name,
                "token_hash": token_hash,
                "prefix": prefix,
                "created_at": utc_now(),
                "expires_at": expires_at,
            }
            self._table("tokens").insert(Document(fields, doc_id=token_id))
        return {**fields, "id": token_id}

    def token(self, token_id: int) -> dict[str, Any] | None:
        doc = self._table("tokens").get(doc_id=token_id)
        return {**doc, "id": doc.doc_id} if doc else None

    def token_by_hash(self, token_hash: str) -> dict[str, Any] | None:
        token_id = self._lookup().token_by_hash.get(token_hash)
        return self.token(token_id) if token_id is not None else None

    def tokens_of(self, user_id: int) -> list[dict[str, Any]]:
        docs = self._table("tokens").all()
        return [{**doc, "id": doc.doc_id} for doc in docs if doc["user_id"] == user_id]

    def delete_token(self, token_id: int) -> None:
        with self.transaction():
            self._table("tokens").remove(doc_ids=[token_id])

    # -- invite codes -------------------------------------------------------------------------
    def add_invite(
        self, code_hash: str, prefix: str, created_by: int, expires_at: str
    ) -> dict[str, Any]:
        with self.transaction():
            invite_id = self._next_id("invites")
            fields = {
                "code_hash": code_hash,
                "prefix": prefix,
                "created_by": created_by,
                "created_at": utc_now(),
                "expires_at": expires_at,
                "used_by": None,
                "used_at": None,
            }
            self._table("invites").insert(Document(fields, doc_id=invite_id))
        return {**fields, "id": invite_id}

    def invite(self, invite_id: int) -> dict[str, Any] | None:
        doc = self._table("invites").get(doc_id=invite_id)
        return {**doc, "id": doc.doc_id} if doc else None

    def invite_by_hash(self, code_hash: str) -> dict[str, Any] | None:
        invite_id = self._lookup().invite_by_hash.get(code_hash)
        return self.invite(invite_id) if invite_id is not None else None

    def invites(self) -> list[dict[str, Any]]:
        return [{**doc, "id": doc.doc_id} for doc in self._table("invites").all()]

    def use_invite(self, invite_id: int, user_id: int) -> None:
        with self.transaction():
            self._table("invites").update(
                {"used_by": user_id, "used_at": utc_now()}, doc_ids=[invite_id]
            )

    def delete_invite(self, invite_id: int) -> None:
        with self.transaction():
            self._table("invites").remove(doc_ids=[invite_id])

    # -- signed-out sessions ------------------------------------------------------------------
    def revoke_session(self, jti: str, expires_at: int) -> None:
        with self.transaction():
            table = self._table("revoked_sessions")
            # Entries past their token's expiry can go: such a token is refused anyway.
            now = int(datetime.now(UTC).timestamp())
            stale = [doc.doc_id for doc in table.all() if doc["expires_at"] < now]
            if stale:
                table.remove(doc_ids=stale)
            table.insert({"jti": jti, "expires_at": expires_at})

    def is_session_revoked(self, jti: str) -> bool:
        return jti in self._lookup().revoked_sessions

    # -- folders and scripts ------------------------------------------------------------------
    def entry(self, kind: EntryKind, entry_id: int) -> Entry | None:
        doc = self._table(kind).get(doc_id=entry_id)
        return _entry(doc.doc_id, doc) if doc else None

    def entry_id(self, kind: EntryKind, path: str) -> int | None:
        entry = self._entries()[kind].get(path)
        return entry.id if entry else None

    def entry_by_path(self, kind: EntryKind, path: str) -> Entry | None:
        return self._entries()[kind].get(path)

    def entries(self, kind: EntryKind) -> dict[str, Entry]:
        """Every entry of a kind, by path, from memory (a copy: callers may keep it)."""
        return dict(self._entries()[kind])

    def add_entry(self, kind: EntryKind, path: str, owner_id: int | None) -> Entry:
        return self.add_entries(kind, {path: owner_id})[0]

    def add_entries(self, kind: EntryKind, owners: dict[str, int | None]) -> list[Entry]:
        """New entries for paths (each with its owner), in one write however many there are."""
        if not owners:
            return []
        now = utc_now()
        with self._patching_entries() as entries:
            ids = self._next_ids(kind, len(owners))
            documents = [
                Document(
                    {"path": path, "owner_id": owner, "created_at": now, "updated_at": now},
                    doc_id=entry_id,
                )
                for entry_id, (path, owner) in zip(ids, owners.items(), strict=True)
            ]
            self._table(kind).insert_multiple(documents)
            added = [_entry(doc.doc_id, doc) for doc in documents]
            entries[kind].update((entry.path, entry) for entry in added)
        return added

    def touch_entry(self, kind: EntryKind, entry_id: int) -> None:
        """Record that the folder or script changed now (paths change only by `move_entries`)."""
        with self._patching_entries() as entries:
            self._table(kind).update({"updated_at": utc_now()}, doc_ids=[entry_id])
            updated = self.entry(kind, entry_id)
            if updated is not None:
                entries[kind][updated.path] = updated

    def move_entries(self, kind: EntryKind, moves: dict[str, str]) -> None:
        """Re-point entries from old to new paths, keeping ids, owners and times."""
        if not moves:
            return

        def repoint(doc: dict[str, Any]) -> None:
            doc["path"] = moves[doc["path"]]

        with self._patching_entries() as entries:
            by_path = entries[kind]
            moving = {old: by_path[old] for old in moves if old in by_path}
            # One update for all of them: TinyDB rewrites the whole table per call.
            self._table(kind).update(repoint, doc_ids=[entry.id for entry in moving.values()])
            for old in moving:
                del by_path[old]
            for old, entry in moving.items():
                by_path[moves[old]] = replace(entry, path=moves[old])

    def remove_entries(self, kind: EntryKind, entry_ids: list[int]) -> None:
        if not entry_ids:
            return
        with self._patching_entries() as entries:
            self._table(kind).remove(doc_ids=entry_ids)
            gone = set(entry_ids)
            by_path = entries[kind]
            for path in [p for p, e in by_path.items() if e.id in gone]:
                del by_path[path]

    # -- who pushed which commits -------------------------------------------------------------
    def record_push(self, commit_ids: list[str], pusher_id: int) -> None:
        """Remember who pushed these commits: their authors are whatever the pusher typed, so this
        is what gives the files they add an owner, now and when the index is rebuilt."""
        if not commit_ids:
            return
        with self.transaction():
            table = self._table("pushes")
            known = self._pushes()
            table.insert_multiple(
                {"commit": commit_id, "pusher_id": pusher_id}
                for commit_id in commit_ids
                if commit_id not in known
            )

    def pusher_of(self, commit_id: str) -> int | None:
        return self._pushes().get(commit_id)

    def _pushes(self) -> dict[str, int]:
        """commit id -> pusher id, rebuilt only when the index changed: replaying history asks
        this once per commit."""
        raw = (self.storage.read() or {}).get("pushes", {})
        cached = self._pushes_map
        if cached is not None and cached[0] == self.storage.generation:
            return cached[1]
        pushes = {doc["commit"]: doc["pusher_id"] for doc in raw.values()}
        self._pushes_map = (self.storage.generation, pushes)
        return pushes

    # -- files in the file store: who uploaded each -----------------------------------------
    def file(self, key: str) -> dict[str, Any] | None:
        """The record of a stored file (`key`, `owner_id`, `created_at`), or None when unknown."""
        for doc in self._file_docs().values():
            if doc["key"] == key:
                return dict(doc)
        return None

    def files(self) -> list[dict[str, Any]]:
        """Every file record."""
        return [dict(doc) for doc in self._file_docs().values()]

    def add_file(self, key: str, owner_id: int | None) -> None:
        """Record who stored `key` (replacing an earlier record of the same key)."""
        with self.transaction():
            table = self._table("files")
            table.remove(doc_ids=self._file_doc_ids(key))
            table.insert({"key": key, "owner_id": owner_id, "created_at": utc_now()})

    def claim_file(
        self, key: str, claimant_id: int | None, may_change: Callable[[int | None], bool]
    ) -> tuple[str, int | None]:
        """Before new content appears at `key`, checked and written in one transaction (so two
        writers of one new key cannot both become its owner), with the owner it then has:
        "refused" when `may_change(owner)` says no; "new" when the claimant now owns it (there
        was no record, or one without an owner); "kept" when it stays its owner's."""
        with self.transaction():
            record = self.file(key)
            owner_id = record["owner_id"] if record else None
            if not may_change(owner_id):
                return "refused", owner_id
            if owner_id is None:
                self.add_file(key, claimant_id)
                return "new", claimant_id
            return "kept", owner_id

    def keep_file_record(self, key: str, owner_id: int | None) -> None:
        """Content was just stored at `key`: if a delete racing it dropped the record, the record
        comes back, so the file is never left without its owner."""
        with self.transaction():
            if self.file(key) is None:
                self.add_file(key, owner_id)

    def remove_file(self, key: str) -> None:
        with self.transaction():
            doc_ids = self._file_doc_ids(key)
            if doc_ids:
                self._table("files").remove(doc_ids=doc_ids)

    def _file_doc_ids(self, key: str) -> list[int]:
        return [int(doc_id) for doc_id, doc in self._file_docs().items() if doc["key"] == key]

    def _file_docs(self) -> dict[str, dict[str, Any]]:
        return (self.storage.read() or {}).get("files") or {}

    # -- which commit the entries describe ----------------------------------------------------
    @property
    def synced_head(self) -> str | None:
        return self._meta().get("synced_head")

    def set_synced_head(self, commit_id: str) -> None:
        with self.transaction():
            self._set_meta(synced_head=commit_id)


def _entry(entry_id: int, doc: dict[str, Any]) -> Entry:
    return Entry(
        id=entry_id,
        path=doc["path"],
        owner_id=doc.get("owner_id"),
        created_at=doc["created_at"],
        updated_at=doc["updated_at"],
    )
