"""Who may fetch and push, and what the hooks of a push are told."""

from __future__ import annotations

import base64
import binascii
import hmac
import os
import secrets
from typing import Any

import structlog
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request

from gitscripts import errors
from gitscripts.auth.logins import login_key
from gitscripts.auth.service import AuthService
from gitscripts.auth.throttle import client_address
from gitscripts.auth.tokens import is_personal_token
from gitscripts.config import Settings
from gitscripts.githttp.policy import PushPolicy, RefUpdate
from gitscripts.index import Index
from gitscripts.manager.service import ManagerService
from gitscripts.repo import MAIN_REF, Repository

log = structlog.get_logger("gitscripts.git")

REPOSITORY_NAME = "scripts.git"
_HOOKS_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(__file__))), "hooks")


class GitAuthRequired(errors.NotAuthenticated):
    # Basic, so that the git client asks for a login and password (or token).
    headers = {"WWW-Authenticate": 'Basic realm="gitscripts"'}  # noqa: RUF012


class GitService:
    def __init__(
        self,
        settings: Settings,
        index: Index,
        repo: Repository,
        auth: AuthService,
        manager: ManagerService,
    ) -> None:
        self.settings = settings
        self.index = index
        self.repo = repo
        self.auth = auth
        self.manager = manager
        self.policy = PushPolicy(settings, index, repo)
        # Known only to this process and the git processes it starts: proves a hook call is ours.
        self.hook_secret = secrets.token_urlsafe(32)
        repo.install_hooks(_HOOKS_DIR)
        # git skips a hook it cannot find, so without ours a push would go in unchecked (an
        # install that left the top-level hooks/ folder behind): then pushing is off.
        self.pushes_enabled = all(
            os.access(os.path.join(_HOOKS_DIR, hook), os.X_OK)
            for hook in ("pre-receive", "post-receive")
        )
        if not self.pushes_enabled:
            log.error("git_hooks_missing", hooks_dir=_HOOKS_DIR, effect="git push refused")

    # -- authentication ----------------------------------------------------------------------
    async def caller(self, request: Request, writing: bool) -> dict[str, Any] | None:
        """The authenticated user; None for an anonymous read when that is allowed."""
        if writing and not self.pushes_enabled:
            raise errors.PermissionDenied(
                f"Pushing is disabled: the service's git hooks are missing from {_HOOKS_DIR}"
            )
        header = request.headers.get("authorization", "")
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "basic":
            try:
                login, _, secret = base64.b64decode(value.strip()).decode("utf-8").partition(":")
            except (binascii.Error, UnicodeDecodeError):
                raise GitAuthRequired("Malformed Basic credentials") from None
            return await self._basic(login, secret, client_address(request))
        if scheme.lower() == "bearer" and value.strip():
            return self.auth.user_for_bearer(value.strip())
        if not writing and self.settings.git_anonymous_read:
            return None
        raise GitAuthRequired("Authentication required: use your login and a personal API token")

    async def _basic(self, login: str, secret: str, client: str) -> dict[str, Any]:
        if is_personal_token(secret):
            try:
                user = self.auth.user_for_bearer(secret)
            except errors.NotAuthenticated:
                user = None
            if user is None or login_key(user["login"]) != login_key(login):
                raise GitAuthRequired("Invalid login or API token")
            return user
        try:
            return await self.auth.check_password(login, secret, client)
        except errors.InvalidCredentials:
            raise GitAuthRequired("Invalid login or password") from None

    def backend_environment(self, user: dict[str, Any] | None) -> dict[str, str]:
        env = {
            "PATH": os.environ.get("PATH", "/usr/local/bin:/usr/bin:/bin"),
            "HOME": str(self.settings.data_dir.resolve()),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GITSCRIPTS_HOOK_URL": f"{self.settings.internal_url}/internal/git-hooks",
            "GITSCRIPTS_HOOK_SECRET": self.hook_secret,
        }
        if user is not None:
            # The pusher's identity, for the hooks: set here, after authentication, never
            # taken from anything the client sends.
            env["REMOTE_USER"] = user["login"]
            env["GITSCRIPTS_PUSHER_ID"] = str(user["id"])
        return env

    # -- hooks -------------------------------------------------------------------------------
    def check_hook_secret(self, request: Request) -> None:
        presented = request.headers.get("authorization", "").removeprefix("Bearer ")
        if not hmac.compare_digest(presented.encode(), self.hook_secret.encode()):
            raise errors.PermissionDenied("Not a hook of this service")

    async def pre_receive(self, payload: dict[str, Any]) -> dict[str, Any]:
        pusher = self._pusher(payload)
        updates = [RefUpdate(**update) for update in payload.get("updates", [])]
        if pusher is None:
            return {"accepted": False, "messages": ["gitscripts: push rejected: unknown pusher"]}
        # Owners are looked up in the index: it must know every path on `main`, also those of a
        # push whose post-receive has not run yet.
        await run_in_threadpool(self.manager.ensure_synced)
        problems, new_commits = await run_in_threadpool(
            self.policy.check, pusher, updates, payload.get("quarantine")
        )
        log.info(
            "push_checked",
            user=pusher["login"],
            refs=[update.ref for update in updates],
            accepted=not problems,
            problems=len(problems),
        )
        if problems:
            return {
                "accepted": False,
                "messages": [
                    "gitscripts: push rejected, nothing was changed:",
                    *(f"  - {problem}" for problem in problems),
                ],
            }
        await run_in_threadpool(self.index.record_push, new_commits, pusher["id"])
        return {"accepted": True, "messages": []}

    async def post_receive(self, payload: dict[str, Any]) -> dict[str, Any]:
        pusher = self._pusher(payload)
        touches_main = any(update.get("ref") == MAIN_REF for update in payload.get("updates", []))
        if touches_main:
            await run_in_threadpool(self.manager.ensure_synced)
        head = str(self.repo.head().id)
        log.info(
            "push_received",
            user=pusher["login"] if pusher else None,
            refs=[update.get("ref") for update in payload.get("updates", [])],
            revision=head,
        )
        messages = [f"gitscripts: main is at {head[:12]}"] if touches_main else []
        return {"accepted": True, "messages": messages}

    def _pusher(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        pusher_id = payload.get("pusher_id")
        return self.index.user(int(pusher_id)) if pusher_id and str(pusher_id).isdigit() else None
