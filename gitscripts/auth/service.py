"""Users, sign-in, sessions and personal API tokens."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool

from gitscripts import errors
from gitscripts.auth.passwords import Passwords
from gitscripts.auth.throttle import LoginThrottle
from gitscripts.auth.tokens import (
    SessionTokens,
    hash_personal_token,
    is_personal_token,
    new_personal_token,
)
from gitscripts.config import Settings
from gitscripts.index import Index, utc_now

log = structlog.get_logger("gitscripts.auth")


class AuthService:
    def __init__(self, settings: Settings, index: Index) -> None:
        self.index = index
        self.passwords = Passwords(
            settings.password_hash_time_cost, settings.password_hash_memory_kib
        )
        self.sessions = SessionTokens(settings.secret_key, settings.jwt_access_token_expire_minutes)
        self.throttle = LoginThrottle(
            settings.login_throttle_free_attempts,
            settings.login_throttle_base_delay,
            settings.login_throttle_max_delay,
        )

    # -- accounts -----------------------------------------------------------------------------
    def register(self, login: str, password: str, is_admin: bool = False) -> dict[str, Any]:
        password_hash = self.passwords.hash(password)
        with self.index.transaction():
            if self.index.user_by_login(login) is not None:
                raise errors.ValidationError(
                    f"User with login '{login}' already exists", login=login
                )
            user = self.index.add_user(login, password_hash, is_admin=is_admin)
        log.info("user_registered", login=login, is_admin=is_admin)
        return user

    def set_admin(self, login: str, password: str | None) -> dict[str, Any]:
        """Make `login` an admin, creating the account when it does not exist yet."""
        with self.index.transaction():
            user = self.index.user_by_login(login)
            if user is None:
                if not password:
                    raise errors.ValidationError("A password is needed to create a new admin")
                return self.register(login, password, is_admin=True)
            fields: dict[str, Any] = {"is_admin": True}
            if password:
                fields["password_hash"] = self.passwords.hash(password)
            return self.index.update_user(user["id"], **fields)

    def set_onboarding(self, user: dict[str, Any], needs_onboarding: bool) -> dict[str, Any]:
        return self.index.update_user(user["id"], needs_onboarding=needs_onboarding)

    # -- passwords ----------------------------------------------------------------------------
    async def check_password(self, login: str, password: str) -> dict[str, Any]:
        """The user when the password is right; slowed down after repeated failures for `login`."""
        async with self.throttle.lock(login):
            delay = self.throttle.delay_for(login)
            if delay:
                await asyncio.sleep(delay)
            user = self.index.user_by_login(login)
            ok = await run_in_threadpool(
                self.passwords.verify, user["password_hash"] if user else None, password
            )
            if not ok or user is None:
                self.throttle.failed(login)
                log.info("login_failed", login=login, delayed_s=delay)
                raise errors.InvalidCredentials("Incorrect login or password")
            self.throttle.succeeded(login)
            return user

    async def login(self, login: str, password: str) -> str:
        user = await self.check_password(login, password)
        log.info("login", login=user["login"])
        return self.sessions.issue(user["id"])

    def logout(self, bearer: str) -> None:
        claims = self.sessions.verify(bearer)
        if claims is not None:  # a personal token is revoked through its own endpoint
            self.index.revoke_session(claims.jti, claims.expires_at)

    # -- bearer credentials -------------------------------------------------------------------
    def user_for_bearer(self, bearer: str) -> dict[str, Any]:
        if is_personal_token(bearer):
            token = self.index.token_by_hash(hash_personal_token(bearer))
            if token is None:
                raise errors.InvalidToken("Invalid API token")
            if token["expires_at"] and token["expires_at"] <= utc_now():
                raise errors.InvalidToken("API token has expired")
            user_id = token["user_id"]
        else:
            claims = self.sessions.verify(bearer)
            if claims is None:
                raise errors.InvalidToken("Invalid or expired token")
            if self.index.is_session_revoked(claims.jti):
                raise errors.InvalidToken("This session has been logged out")
            user_id = claims.user_id
        user = self.index.user(user_id)
        if user is None:
            raise errors.InvalidToken("The user of this token no longer exists")
        return user

    # -- personal API tokens ------------------------------------------------------------------
    def create_token(
        self, user: dict[str, Any], name: str, expires_in_days: int | None
    ) -> dict[str, Any]:
        secret = new_personal_token()
        expires_at = None
        if expires_in_days is not None:
            expiry = datetime.now(UTC) + timedelta(days=expires_in_days)
            expires_at = expiry.strftime("%Y-%m-%dT%H:%M:%S.%fZ")
        token = self.index.add_token(
            user["id"], name, hash_personal_token(secret), secret[:8], expires_at
        )
        log.info("api_token_created", token_id=token["id"], name=name)
        return {**token, "token": secret}

    def tokens(self, user: dict[str, Any]) -> list[dict[str, Any]]:
        return self.index.tokens_of(user["id"])

    def delete_token(self, user: dict[str, Any], token_id: int) -> None:
        with self.index.transaction():
            token = self.index.token(token_id)
            # Someone else's token is "not found": its existence is none of the caller's business.
            if token is None or (token["user_id"] != user["id"] and not user["is_admin"]):
                raise errors.TokenNotFound(
                    f"API token with id {token_id} not found", token_id=str(token_id)
                )
            self.index.delete_token(token_id)
        log.info("api_token_revoked", token_id=token_id)
