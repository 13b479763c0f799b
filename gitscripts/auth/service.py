"""Users, sign-in, sessions, personal API tokens, and who may register.

Registration follows REGISTRATION: `open` (anyone, the original's behaviour), `closed` (only admins
create accounts, through the CLI or the admin API), or `invite` (anyone holding an unused, unexpired
invite code an admin made; the code is single-use and only its SHA-256 is stored, like a token's).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Literal, TypedDict

import structlog
from starlette.concurrency import run_in_threadpool

from gitscripts import access, errors
from gitscripts.auth.logins import login_key, normalize_new_login
from gitscripts.auth.passwords import Passwords
from gitscripts.auth.throttle import LoginThrottle
from gitscripts.auth.tokens import (
    SessionTokens,
    hash_secret,
    is_personal_token,
    new_invite_code,
    new_personal_token,
)
from gitscripts.config import Settings
from gitscripts.index import Index, InviteRecord, Person, TokenRecord, UserRecord
from gitscripts.timestamps import iso_moment, utc_now

log = structlog.get_logger("gitscripts.auth")


class InviteView(TypedDict):
    id: int
    prefix: str
    state: Literal["usable", "used", "expired"]
    created_by: Person | None
    created_at: str
    expires_at: str
    used_by: Person | None
    used_at: str | None


class NewInvite(InviteView):
    code: str  # shown once, never stored


class NewToken(TypedDict):
    id: int
    name: str
    prefix: str
    created_at: str
    expires_at: str | None
    token: str  # shown once, never stored


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
            settings.login_throttle_client_max_failures,
        )
        self.registration = settings.registration

    # -- accounts -----------------------------------------------------------------------------
    def register(
        self, login: str, password: str, is_admin: bool = False, invite_code: str | None = None
    ) -> UserRecord:
        """A new account. Callers that are not an admin pass through `register_self` first."""
        login = normalize_new_login(login)
        password_hash = self.passwords.hash(password)
        with self.index.transaction():
            invite = self._usable_invite(invite_code) if invite_code is not None else None
            if self.index.users.by_login(login) is not None:
                raise errors.ValidationError(
                    f"User with login '{login}' already exists", login=login
                )
            user = self.index.users.add(login, password_hash, is_admin=is_admin)
            if invite is not None:
                self.index.invites.use(invite.id, user.id)
        log.info(
            "user_registered",
            login=login,
            is_admin=is_admin,
            invite_id=invite.id if invite else None,
        )
        return user

    def register_self(self, login: str, password: str, invite_code: str | None) -> UserRecord:
        """`POST /auth/register`: someone creating their own account, as REGISTRATION allows."""
        if self.registration == "closed":
            raise errors.RegistrationClosed(
                "Registration is closed. Ask an administrator to create an account for you."
            )
        if self.registration == "invite":
            if not invite_code:
                raise errors.InvalidInviteCode(
                    "Registration needs an invite code. Ask an administrator for one."
                )
            return self.register(login, password, invite_code=invite_code)
        return self.register(login, password)

    def _usable_invite(self, code: str) -> InviteRecord:
        invite = self.index.invites.by_hash(hash_secret(code.strip()))
        if invite is None or invite.used_at is not None or invite.expires_at <= utc_now():
            raise errors.InvalidInviteCode(
                "This invite code is not valid: it is wrong, already used or expired. "
                "Ask an administrator for a new one."
            )
        return invite

    def create_user(
        self, admin: access.User, login: str, password: str, is_admin: bool
    ) -> UserRecord:
        """An account made by an admin, whatever REGISTRATION says."""
        self._require_admin(admin)
        return self.register(login, password, is_admin=is_admin)

    def set_admin(self, login: str, password: str | None) -> UserRecord:
        """Make `login` an admin, creating the account when it does not exist yet."""
        with self.index.transaction():
            user = self.index.users.by_login(login)
            if user is None:
                if not password:
                    raise errors.ValidationError("A password is needed to create a new admin")
                return self.register(login, password, is_admin=True)
            password_hash = self.passwords.hash(password) if password else None
            return self.index.users.update(user.id, is_admin=True, password_hash=password_hash)

    def set_onboarding(self, user: access.User, needs_onboarding: bool) -> UserRecord:
        return self.index.users.update(user.id, needs_onboarding=needs_onboarding)

    # -- passwords ----------------------------------------------------------------------------
    async def check_password(self, login: str, password: str, client: str) -> UserRecord:
        """The user when the password is right; throttled per login and client address, and per
        client address (see `LoginThrottle`)."""
        async with self.throttle.attempt(login, client) as attempt:
            user = self.index.users.by_login(login)
            ok = await run_in_threadpool(
                self.passwords.verify, user.password_hash if user else None, password
            )
            if not ok or user is None:
                attempt.failed()
                log.info("login_failed", login=login, client=client, delayed_s=attempt.delay)
                raise errors.InvalidCredentials("Incorrect login or password")
            attempt.succeeded()
            return user

    async def login(self, login: str, password: str, client: str) -> str:
        user = await self.check_password(login, password, client)
        log.info("login", login=user.login)
        return self.sessions.issue(user.id)

    def logout(self, bearer: str) -> None:
        claims = self.sessions.verify(bearer)
        if claims is not None:  # a personal token is revoked through its own endpoint
            self.index.revoked_sessions.revoke(claims.jti, claims.expires_at)

    # -- bearer credentials -------------------------------------------------------------------
    def user_for_bearer(self, bearer: str) -> UserRecord:
        if is_personal_token(bearer):
            token = self.index.tokens.by_hash(hash_secret(bearer))
            if token is None:
                raise errors.InvalidToken("Invalid API token")
            if token.expires_at and token.expires_at <= utc_now():
                raise errors.InvalidToken("API token has expired")
            user_id = token.user_id
        else:
            claims = self.sessions.verify(bearer)
            if claims is None:
                raise errors.InvalidToken("Invalid or expired token")
            if self.index.revoked_sessions.is_revoked(claims.jti):
                raise errors.InvalidToken("This session has been logged out")
            user_id = claims.user_id
        user = self.index.users.get(user_id)
        if user is None:
            raise errors.InvalidToken("The user of this token no longer exists")
        return user

    async def user_for_login_secret(self, login: str, secret: str, client: str) -> UserRecord:
        """The user a login names together with its password or one of its personal API tokens
        (what git's Basic credentials carry); InvalidCredentials when they name nobody."""
        if is_personal_token(secret):
            try:
                user: UserRecord | None = self.user_for_bearer(secret)
            except errors.NotAuthenticated:
                user = None
            if user is None or login_key(user.login) != login_key(login):
                raise errors.InvalidCredentials("Invalid login or API token")
            return user
        try:
            return await self.check_password(login, secret, client)
        except errors.InvalidCredentials:
            raise errors.InvalidCredentials("Invalid login or password") from None

    # -- invite codes -------------------------------------------------------------------------
    def create_invite(self, admin: access.User, expires_in_days: int) -> NewInvite:
        self._require_admin(admin)
        code = new_invite_code()
        expires_at = iso_moment(datetime.now(UTC) + timedelta(days=expires_in_days))
        invite = self.index.invites.add(hash_secret(code), code[:8], admin.id, expires_at)
        log.info("invite_created", invite_id=invite.id, expires_at=expires_at)
        return NewInvite(**self._invite_view(invite), code=code)

    def invites(self, admin: access.User) -> list[InviteView]:
        self._require_admin(admin)
        return [self._invite_view(invite) for invite in self.index.invites.all()]

    def delete_invite(self, admin: access.User, invite_id: int) -> None:
        self._require_admin(admin)
        with self.index.transaction():
            if self.index.invites.get(invite_id) is None:
                raise errors.InviteNotFound(
                    f"Invite with id {invite_id} not found", invite_id=str(invite_id)
                )
            self.index.invites.delete(invite_id)
        log.info("invite_deleted", invite_id=invite_id)

    def _invite_view(self, invite: InviteRecord) -> InviteView:
        state: Literal["usable", "used", "expired"]
        if invite.used_at is not None:
            state = "used"
        elif invite.expires_at <= utc_now():
            state = "expired"
        else:
            state = "usable"
        return InviteView(
            id=invite.id,
            prefix=invite.prefix,
            state=state,
            created_by=self.index.users.person(invite.created_by),
            created_at=invite.created_at,
            expires_at=invite.expires_at,
            used_by=self.index.users.person(invite.used_by),
            used_at=invite.used_at,
        )

    @staticmethod
    def _require_admin(user: access.User) -> None:
        if not access.may_manage_accounts(user):
            raise errors.PermissionDenied("Only an administrator may do this")

    # -- personal API tokens ------------------------------------------------------------------
    def create_token(self, user: access.User, name: str, expires_in_days: int | None) -> NewToken:
        secret = new_personal_token()
        expires_at = None
        if expires_in_days is not None:
            expires_at = iso_moment(datetime.now(UTC) + timedelta(days=expires_in_days))
        token = self.index.tokens.add(user.id, name, hash_secret(secret), secret[:8], expires_at)
        log.info("api_token_created", token_id=token.id, name=name)
        return NewToken(
            id=token.id,
            name=token.name,
            prefix=token.prefix,
            created_at=token.created_at,
            expires_at=token.expires_at,
            token=secret,
        )

    def tokens(self, user: access.User) -> list[TokenRecord]:
        return self.index.tokens.of_user(user.id)

    def delete_token(self, user: access.User, token_id: int) -> None:
        with self.index.transaction():
            token = self.index.tokens.get(token_id)
            # Someone else's token is "not found": its existence is none of the caller's business.
            if token is None or not access.may_revoke_token(user, token.user_id):
                raise errors.TokenNotFound(
                    f"API token with id {token_id} not found", token_id=str(token_id)
                )
            self.index.tokens.delete(token_id)
        log.info("api_token_revoked", token_id=token_id)
