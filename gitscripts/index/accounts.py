"""The index's account tables: users, personal API tokens, invite codes, signed-out sessions."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TypedDict

from gitscripts.access import User
from gitscripts.auth.logins import login_key
from gitscripts.index.table import Doc, Table
from gitscripts.timestamps import utc_now


@dataclass(frozen=True)
class UserRecord(User):
    """An account as stored: the `User` the access rules see, and what only accounts need."""

    password_hash: str
    needs_onboarding: bool
    created_at: str
    updated_at: str


class Person(TypedDict):
    """Someone as the API names them in its answers (`created_by`, `uploaded_by`...)."""

    id: int
    login: str


@dataclass(frozen=True)
class TokenRecord:
    """A personal API token; only the SHA-256 of the secret is stored."""

    id: int
    user_id: int
    name: str
    token_hash: str
    prefix: str
    created_at: str
    expires_at: str | None


@dataclass(frozen=True)
class InviteRecord:
    """A single-use invite code for REGISTRATION=invite; only its SHA-256 is stored."""

    id: int
    code_hash: str
    prefix: str
    created_by: int
    created_at: str
    expires_at: str
    used_by: int | None
    used_at: str | None


@dataclass(frozen=True)
class RevokedSession:
    id: int
    jti: str
    expires_at: int


class Users(Table[UserRecord]):
    """Accounts, by id and by login: exactly as stored, or as it folds (`login_key`)."""

    name = "users"

    def _record(self, doc_id: int, doc: Doc) -> UserRecord:
        return UserRecord(
            id=doc_id,
            login=doc["login"],
            is_admin=bool(doc["is_admin"]),
            password_hash=doc["password_hash"],
            needs_onboarding=bool(doc.get("needs_onboarding", False)),
            created_at=doc["created_at"],
            updated_at=doc["updated_at"],
        )

    def _clear(self) -> None:
        self._by_login: dict[str, int] = {}
        # The oldest account when old logins (made before the rules) fold to the same key.
        self._by_key: dict[str, int] = {}

    def _index(self, record: UserRecord) -> None:
        self._by_login[record.login] = record.id
        key = login_key(record.login)
        if record.id < self._by_key.get(key, record.id + 1):
            self._by_key[key] = record.id

    def _unindex(self, record: UserRecord) -> None:
        # Logins never change and accounts are never deleted: a record leaves only to come back
        # changed, under the same login.
        pass

    def by_login(self, login: str) -> UserRecord | None:
        """The account of `login`: the one stored as exactly that, else the one it folds to."""
        records = self._records()
        user_id = self._by_login.get(login)
        if user_id is None:
            user_id = self._by_key.get(login_key(login))
        return records.get(user_id) if user_id is not None else None

    def person(self, user_id: int | None) -> Person | None:
        """Who `user_id` is, as answers show people; None for nobody or an unknown id."""
        user = self.get(user_id) if user_id is not None else None
        return Person(id=user.id, login=user.login) if user else None

    def add(self, login: str, password_hash: str, is_admin: bool) -> UserRecord:
        now = utc_now()
        doc = {
            "login": login,
            "password_hash": password_hash,
            "is_admin": is_admin,
            "needs_onboarding": True,
            "created_at": now,
            "updated_at": now,
        }
        return self._insert([doc])[0]

    def update(
        self,
        user_id: int,
        *,
        is_admin: bool | None = None,
        password_hash: str | None = None,
        needs_onboarding: bool | None = None,
    ) -> UserRecord:
        """Change the given fields (None: unchanged); the account as it then is."""
        fields = {
            name: value
            for name, value in (
                ("is_admin", is_admin),
                ("password_hash", password_hash),
                ("needs_onboarding", needs_onboarding),
            )
            if value is not None
        }
        self._update([user_id], {**fields, "updated_at": utc_now()})
        user = self.get(user_id)
        assert user is not None, "accounts are never deleted"
        return user


class Tokens(Table[TokenRecord]):
    """Personal API tokens, by the hash of their secret and by their user."""

    name = "tokens"

    def _record(self, doc_id: int, doc: Doc) -> TokenRecord:
        return TokenRecord(
            id=doc_id,
            user_id=doc["user_id"],
            name=doc["name"],
            token_hash=doc["token_hash"],
            prefix=doc["prefix"],
            created_at=doc["created_at"],
            expires_at=doc.get("expires_at"),
        )

    def _clear(self) -> None:
        self._by_hash: dict[str, int] = {}
        self._by_user: dict[int, dict[int, TokenRecord]] = {}

    def _index(self, record: TokenRecord) -> None:
        self._by_hash[record.token_hash] = record.id
        self._by_user.setdefault(record.user_id, {})[record.id] = record

    def _unindex(self, record: TokenRecord) -> None:
        del self._by_hash[record.token_hash]
        del self._by_user[record.user_id][record.id]

    def by_hash(self, token_hash: str) -> TokenRecord | None:
        records = self._records()
        token_id = self._by_hash.get(token_hash)
        return records.get(token_id) if token_id is not None else None

    def of_user(self, user_id: int) -> list[TokenRecord]:
        self._records()
        return list(self._by_user.get(user_id, {}).values())

    def add(
        self, user_id: int, name: str, token_hash: str, prefix: str, expires_at: str | None
    ) -> TokenRecord:
        doc = {
            "user_id": user_id,
            "name": name,
            "token_hash": token_hash,
            "prefix": prefix,
            "created_at": utc_now(),
            "expires_at": expires_at,
        }
        return self._insert([doc])[0]

    def delete(self, token_id: int) -> None:
        self._remove([token_id])


class Invites(Table[InviteRecord]):
    """Invite codes, by the hash of the code."""

    name = "invites"

    def _record(self, doc_id: int, doc: Doc) -> InviteRecord:
        return InviteRecord(
            id=doc_id,
            code_hash=doc["code_hash"],
            prefix=doc["prefix"],
            created_by=doc["created_by"],
            created_at=doc["created_at"],
            expires_at=doc["expires_at"],
            used_by=doc.get("used_by"),
            used_at=doc.get("used_at"),
        )

    def _clear(self) -> None:
        self._by_hash: dict[str, int] = {}

    def _index(self, record: InviteRecord) -> None:
        self._by_hash[record.code_hash] = record.id

    def _unindex(self, record: InviteRecord) -> None:
        del self._by_hash[record.code_hash]

    def by_hash(self, code_hash: str) -> InviteRecord | None:
        records = self._records()
        invite_id = self._by_hash.get(code_hash)
        return records.get(invite_id) if invite_id is not None else None

    def add(self, code_hash: str, prefix: str, created_by: int, expires_at: str) -> InviteRecord:
        doc = {
            "code_hash": code_hash,
            "prefix": prefix,
            "created_by": created_by,
            "created_at": utc_now(),
            "expires_at": expires_at,
            "used_by": None,
            "used_at": None,
        }
        return self._insert([doc])[0]

    def use(self, invite_id: int, user_id: int) -> None:
        self._update([invite_id], {"used_by": user_id, "used_at": utc_now()})

    def delete(self, invite_id: int) -> None:
        self._remove([invite_id])


class RevokedSessions(Table[RevokedSession]):
    """Sessions signed out before their token expired, by the token's id (`jti`)."""

    name = "revoked_sessions"

    def _record(self, doc_id: int, doc: Doc) -> RevokedSession:
        return RevokedSession(id=doc_id, jti=doc["jti"], expires_at=doc["expires_at"])

    def _clear(self) -> None:
        self._jtis: set[str] = set()

    def _index(self, record: RevokedSession) -> None:
        self._jtis.add(record.jti)

    def _unindex(self, record: RevokedSession) -> None:
        self._jtis.discard(record.jti)

    def revoke(self, jti: str, expires_at: int) -> None:
        with self._storage.transaction():
            # Entries past their token's expiry can go: such a token is refused anyway.
            now = int(datetime.now(UTC).timestamp())
            self._remove([record.id for record in self.all() if record.expires_at < now])
            self._insert([{"jti": jti, "expires_at": expires_at}])

    def is_revoked(self, jti: str) -> bool:
        self._records()
        return jti in self._jtis
