"""Bearer credentials: short-lived JWT sessions and long-lived personal API tokens; invite codes.

JWTs are HS256 only: the algorithm list is fixed when decoding, so `alg: none` or any other
algorithm a client puts in the header is refused. Personal tokens and invite codes are random,
shown once, and only their SHA-256 is stored (they are high-entropy, so a slow hash would add
nothing but latency).
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import OctKey

PERSONAL_TOKEN_PREFIX = "gst_"
INVITE_CODE_PREFIX = "gsi_"
_ALGORITHM = "HS256"


@dataclass(frozen=True)
class SessionClaims:
    user_id: int
    jti: str
    expires_at: int


class SessionTokens:
    def __init__(self, secret: str, lifetime_minutes: int) -> None:
        self._key = OctKey.import_key(secret.encode("utf-8"))
        self._lifetime = lifetime_minutes * 60

    def issue(self, user_id: int) -> str:
        now = int(time.time())
        claims = {
            "sub": str(user_id),
            "iat": now,
            "exp": now + self._lifetime,
            "jti": uuid.uuid4().hex,
        }
        return jwt.encode(
            {"alg": _ALGORITHM, "typ": "JWT"}, claims, self._key, algorithms=[_ALGORITHM]
        )

    def verify(self, token: str) -> SessionClaims | None:
        """The token's claims when it is ours, untampered and unexpired; otherwise None."""
        try:
            decoded = jwt.decode(token, self._key, algorithms=[_ALGORITHM])
            registry = jwt.JWTClaimsRegistry(
                exp={"essential": True}, sub={"essential": True}, jti={"essential": True}
            )
            registry.validate(decoded.claims)
            return SessionClaims(
                user_id=int(decoded.claims["sub"]),
                jti=str(decoded.claims["jti"]),
                expires_at=int(decoded.claims["exp"]),
            )
        except (JoseError, ValueError, TypeError, KeyError):
            return None


def new_personal_token() -> str:
    return PERSONAL_TOKEN_PREFIX + secrets.token_urlsafe(32)


def new_invite_code() -> str:
    return INVITE_CODE_PREFIX + secrets.token_urlsafe(18)


def hash_secret(secret: str) -> str:
    """What is stored of a personal token or an invite code."""
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def is_personal_token(token: str) -> bool:
    return token.startswith(PERSONAL_TOKEN_PREFIX)
