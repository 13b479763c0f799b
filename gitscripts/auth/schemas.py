from __future__ import annotations

from pydantic import BaseModel, Field


class Credentials(BaseModel):
    login: str = Field(min_length=3, max_length=50)
    password: str = Field(min_length=8, max_length=1024)


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
