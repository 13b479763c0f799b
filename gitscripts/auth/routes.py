from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from gitscripts.auth.deps import CurrentUser, bearer_of
from gitscripts.auth.schemas import (
    AccessToken,
    InviteCreate,
    InviteCreated,
    InviteOut,
    LoginRequest,
    Message,
    OnboardingStatus,
    Registration,
    RegistrationPolicy,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserCreate,
    UserOut,
)
from gitscripts.auth.service import InviteView, NewInvite, NewToken
from gitscripts.auth.throttle import client_address
from gitscripts.index import TokenRecord, UserRecord
from gitscripts.services import Auth

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])
admin_router = APIRouter(prefix="/api/v1/admin", tags=["admin"])


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=UserOut)
def register(body: Registration, auth: Auth) -> UserRecord:
    return auth.register_self(body.login, body.password, body.invite_code)


@router.get("/registration", response_model=RegistrationPolicy)
def registration(auth: Auth) -> RegistrationPolicy:
    """Who may register (no token needed): what the sign-up screen offers depends on it."""
    return RegistrationPolicy(policy=auth.registration)


@router.post("/login", response_model=AccessToken)
async def login(body: LoginRequest, request: Request, auth: Auth) -> AccessToken:
    token = await auth.login(body.login, body.password, client_address(request))
    return AccessToken(access_token=token)


@router.get("/me", response_model=UserOut)
def me(user: CurrentUser) -> UserRecord:
    return user


@router.post("/logout", response_model=Message)
def logout(request: Request, user: CurrentUser, auth: Auth) -> Message:
    auth.logout(bearer_of(request) or "")
    return Message(message="Successfully logged out")


@router.patch("/onboarding-status", response_model=UserOut)
def onboarding_status(body: OnboardingStatus, user: CurrentUser, auth: Auth) -> UserRecord:
    return auth.set_onboarding(user, body.needs_onboarding)


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(body: TokenCreate, user: CurrentUser, auth: Auth) -> NewToken:
    return auth.create_token(user, body.name, body.expires_in_days)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(user: CurrentUser, auth: Auth) -> list[TokenRecord]:
    return auth.tokens(user)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_token(token_id: int, user: CurrentUser, auth: Auth) -> Response:
    auth.delete_token(user, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


# -- administrators: accounts and invite codes ------------------------------------------------
@admin_router.post("/users", status_code=status.HTTP_201_CREATED, response_model=UserOut)
def create_user(body: UserCreate, user: CurrentUser, auth: Auth) -> UserRecord:
    """Create an account (whatever REGISTRATION says)."""
    return auth.create_user(user, body.login, body.password, body.is_admin)


@admin_router.post("/invites", status_code=status.HTTP_201_CREATED, response_model=InviteCreated)
def create_invite(body: InviteCreate, user: CurrentUser, auth: Auth) -> NewInvite:
    """A single-use invite code for REGISTRATION=invite, shown only in this answer."""
    return auth.create_invite(user, body.expires_in_days)


@admin_router.get("/invites", response_model=list[InviteOut])
def list_invites(user: CurrentUser, auth: Auth) -> list[InviteView]:
    return auth.invites(user)


@admin_router.delete("/invites/{invite_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_invite(invite_id: int, user: CurrentUser, auth: Auth) -> Response:
    auth.delete_invite(user, invite_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
