"""Who is calling: the `CurrentUser` dependency shared by every protected route."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request

from gitscripts import errors
from gitscripts.auth.service import AuthService
from gitscripts.index import UserRecord
from gitscripts.logging import bind_user
from gitscripts.services import services_of


def bearer_of(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


def auth_service(request: Request) -> AuthService:
    return services_of(request).auth


async def current_user(request: Request) -> UserRecord:
    # async on purpose: it then runs in the request's own context, so the log binding sticks.
    bearer = bearer_of(request)
    if bearer is None:
        raise errors.NotAuthenticated("Not authenticated")
    user = services_of(request).auth.user_for_bearer(bearer)
    bind_user(request.scope, user.login)
    return user


async def user_or_anonymous(request: Request) -> UserRecord | None:
    """A signed-in caller; or nobody, when ALLOW_ANONYMOUS_EXECUTION lets the token-less simulator
    client in (a token that is sent is still checked)."""
    if services_of(request).settings.allow_anonymous_execution and not request.headers.get(
        "authorization"
    ):
        return None
    return await current_user(request)


CurrentUser = Annotated[UserRecord, Depends(current_user)]
Auth = Annotated[AuthService, Depends(auth_service)]
