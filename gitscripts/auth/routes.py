from __future__ import annotations

from fastapi import APIRouter, Request, Response, status

from gitscripts.auth.deps import Auth, CurrentUser, bearer_of
from gitscripts.auth.schemas import (
    AccessToken,
    Credentials,
    LoginRequest,
    Message,
    OnboardingStatus,
    TokenCreate,
    TokenCreated,
    TokenOut,
    UserOut,
)

router = APIRouter(prefix="/api/v1/auth", tags=["auth"])


@router.post("/register", status_code=status.HTTP_201_CREATED, response_model=UserOut)
def register(body: Credentials, auth: Auth) -> dict:
    return auth.register(body.login, body.password)


@router.post("/login", response_model=AccessToken)
async def login(body: LoginRequest, auth: Auth) -> AccessToken:
    return AccessToken(access_token=await auth.login(body.login, body.password))


@router.get("/me", response_model=UserOut)
def me(user: CurrentUser) -> dict:
    return user


@router.post("/logout", response_model=Message)
def logout(request: Request, user: CurrentUser, auth: Auth) -> Message:
    auth.logout(bearer_of(request) or "")
    return Message(message="Successfully logged out")


@router.patch("/onboarding-status", response_model=UserOut)
def onboarding_status(body: OnboardingStatus, user: CurrentUser, auth: Auth) -> dict:
    return auth.set_onboarding(user, body.needs_onboarding)


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=TokenCreated)
def create_token(body: TokenCreate, user: CurrentUser, auth: Auth) -> dict:
    return auth.create_token(user, body.name, body.expires_in_days)


@router.get("/tokens", response_model=list[TokenOut])
def list_tokens(user: CurrentUser, auth: Auth) -> list[dict]:
    return auth.tokens(user)


@router.delete("/tokens/{token_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_token(token_id: int, user: CurrentUser, auth: Auth) -> Response:
    auth.delete_token(user, token_id)
    return Response(status_code=status.HTTP_204_NO_CONTENT)
