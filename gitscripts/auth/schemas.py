from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field


class Credentials(BaseModel):
    login: str = Field(min_length=3, max_length=50)
    password: str = Field(min_length=8, max_length=1024)


class Registration(Credentials):
    invite_code: str | None = Field(
        default=None,
        max_length=200,
        description="Needed when REGISTRATION=invite (see GET /auth/registration)",
    )


class RegistrationPolicy(BaseModel):
    policy: Literal["open", "closed", "invite"] = Field(
        description="open: anyone may register; invite: with an invite code; closed: only "
        "administrators create accounts"
    )


class UserCreate(Credentials):
    is_admin: bool = False


class InviteCreate(BaseModel):
    expires_in_days: int = Field(default=7, ge=1, le=365)


class Person(BaseModel):
    id: int
    login: str


class InviteOut(BaseModel):
    id: int
    prefix: str = Field(description="The first characters of the code, to tell codes apart")
    state: Literal["usable", "used", "expired"]
    created_by: Person | None
    created_at: str
    expires_at: str
    used_by: Person | None
    used_at: str | None


class InviteCreated(InviteOut):
    code: str = Field(description="The invite code. It is shown only once: pass it on now.")


class LoginRequest(BaseModel):
    # Not length-checked: a wrong login is "incorrect login or password", not a validation error.
    login: str = Field(max_length=256)
    password: str = Field(max_length=1024)


class UserOut(BaseModel):
    id: int
    login: str
    is_admin: bool
    needs_onboarding: bool
    created_at: str
    updated_at: str


class AccessToken(BaseModel):
    access_token: str
    token_type: str = "bearer"


class Message(BaseModel):
    message: str


class OnboardingStatus(BaseModel):
    needs_onboarding: bool


class TokenCreate(BaseModel):
    name: str = Field(min_length=1, max_length=100)
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class TokenOut(BaseModel):
    id: int
    name: str
    prefix: str = Field(description="The first characters of the token, to tell tokens apart")
    created_at: str
    expires_at: str | None


class TokenCreated(TokenOut):
    token: str = Field(description="The token itself. It is shown only once: store it now.")
