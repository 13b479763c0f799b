"""Credentials a running script uses to reach the file store, and nothing else.

Each execution gets a fresh random token that stands for the user who ran the script (or for nobody,
on an anonymous run). It is accepted only by the file endpoints, lives in this process's memory
only, and is revoked the moment the execution ends (with a hard expiry as a backstop), so a script
can neither keep it nor use it to act as its user anywhere else.
"""

from __future__ import annotations

import hashlib
import secrets
import time
from dataclasses import dataclass

PREFIX = "gsf_"
# Past its execution's timeout a token is refused even if, by a bug, it was never revoked.
_GRACE_SECONDS = 30.0


@dataclass(frozen=True)
class Grant:
    user_id: int | None
    expires: float  # time.monotonic()


def is_file_token(bearer: str) -> bool:
    return bearer.startswith(PREFIX)


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class FileGrants:
    def __init__(self) -> None:
        self._grants: dict[str, Grant] = {}

    def issue(self, user_id: int | None, timeout: float) -> str:
        token = PREFIX + secrets.token_urlsafe(32)
        self._grants[_digest(token)] = Grant(user_id, time.monotonic() + timeout + _GRACE_SECONDS)
        return token

    def revoke(self, token: str) -> None:
        self._grants.pop(_digest(token), None)

    def grant_for(self, token: str) -> Grant | None:
        grant = self._grants.get(_digest(token))
        if grant is None:
            return None
        if grant.expires <= time.monotonic():
            self.revoke(token)
            return None
        return grant
