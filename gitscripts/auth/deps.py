"""Who is calling: every door's caller, as an annotated dependency every router declares.

This is the one place that reads credentials off a request and binds the caller to the request's
log lines. Each kind of door has its type:

- `CurrentUser`: a signed-in user (a session or personal token as `Authorization: Bearer`).
- `OptionalUser`: the same, or nobody when ALLOW_ANONYMOUS_EXECUTION lets the token-less
  simulator client in (a token that is sent is still checked).
- `FilesUser`: as `OptionalUser`, and a running script's file token stands for the user who ran it.
- `FileReader`: as `FilesUser`, or a download link made for exactly the file asked for.
- `GitUser`: git's smart HTTP: Basic (a login with its password or a personal token) or Bearer;
  nobody for a read when GIT_ANONYMOUS_READ allows.
- `HookCaller`: the service's own git hooks, proving themselves with the per-process secret.

The dependencies are async on purpose: they then run in the request's own context, so the log
binding sticks.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated

from fastapi import Depends, Request

from gitscripts import errors
from gitscripts.auth.throttle import client_address
from gitscripts.files.grants import is_file_token
from gitscripts.githttp.protocol import RECEIVE_PACK, smart_service
from gitscripts.index import UserRecord
from gitscripts.logging import bind_user
from gitscripts.services import services_of


def _credentials(request: Request) -> tuple[str, str]:
    """(scheme in lower case, credentials) of the Authorization header; ("", "") without one."""
    scheme, _, value = request.headers.get("authorization", "").partition(" ")
    return scheme.lower(), value.strip()


def bearer_of(request: Request) -> str | None:
    scheme, value = _credentials(request)
    return value if scheme == "bearer" and value else None


def _signed_in(request: Request, user: UserRecord) -> UserRecord:
    bind_user(request.scope, user.login)
    return user


async def current_user(request: Request) -> UserRecord:
    # async on purpose: it then runs in the request's own context, so the log binding sticks.
    bearer = bearer_of(request)
    if bearer is None:
        raise errors.NotAuthenticated("Not authenticated")
    return _signed_in(request, services_of(request).auth.user_for_bearer(bearer))


async def user_or_anonymous(request: Request) -> UserRecord | None:
    """A signed-in caller; or nobody, when ALLOW_ANONYMOUS_EXECUTION lets the token-less simulator
    client in (a token that is sent is still checked)."""
    if services_of(request).settings.allow_anonymous_execution and not request.headers.get(
        "authorization"
    ):
        return None
    return await current_user(request)


async def files_user(request: Request) -> UserRecord | None:
    bearer = bearer_of(request)
    if bearer is None or not is_file_token(bearer):
        return await user_or_anonymous(request)
    services = services_of(request)
    grant = services.file_grants.grant_for(bearer)
    if grant is None:
        raise errors.InvalidToken("This execution's file token has expired")
    if grant.user_id is None:  # an anonymous run
        return None
    user = services.index.users.get(grant.user_id)
    if user is None:
        raise errors.InvalidToken("The user who ran this script no longer exists")
    return _signed_in(request, user)


async def file_reader(request: Request) -> None:
    """A caller who sent credentials is judged by them: a stale link in their URL does not sign
    them out."""
    link = request.query_params.get("link")
    if link is None or bearer_of(request) is not None:
        await files_user(request)
    elif not services_of(request).files.link_allows(link, request.path_params["key"]):
        raise errors.InvalidToken("This download link is not valid (or no longer): make a new one")


async def git_user(request: Request) -> UserRecord | None:
    """Which protocol service is asked for is checked first (404, 400), then whether pushing is
    served at all, then the credentials."""
    service = smart_service(
        request.method,
        request.path_params["path"],
        request.query_params.get("service"),
        request.url.path,
    )
    services = services_of(request)
    writing = service == RECEIVE_PACK
    services.git.check_served(writing)
    scheme, value = _credentials(request)
    if scheme == "basic":
        try:
            login, _, secret = base64.b64decode(value).decode("utf-8").partition(":")
        except (binascii.Error, UnicodeDecodeError):
            raise errors.GitAuthRequired("Malformed Basic credentials") from None
        try:
            user = await services.auth.user_for_login_secret(login, secret, client_address(request))
        except errors.InvalidCredentials as exc:
            raise errors.GitAuthRequired(exc.message) from None
        return _signed_in(request, user)
    if scheme == "bearer" and value:
        return _signed_in(request, services.auth.user_for_bearer(value))
    if not writing and services.settings.git_anonymous_read:
        return None
    raise errors.GitAuthRequired("Authentication required: use your login and a personal API token")


async def hook_caller(request: Request) -> None:
    presented = request.headers.get("authorization", "").removeprefix("Bearer ")
    services_of(request).git.check_hook_secret(presented)


CurrentUser = Annotated[UserRecord, Depends(current_user)]
OptionalUser = Annotated[UserRecord | None, Depends(user_or_anonymous)]
FilesUser = Annotated[UserRecord | None, Depends(files_user)]
FileReader = Annotated[None, Depends(file_reader)]
GitUser = Annotated[UserRecord | None, Depends(git_user)]
HookCaller = Annotated[None, Depends(hook_caller)]
