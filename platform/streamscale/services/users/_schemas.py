"""Request and response bodies of the users API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, Field

from .. import validation
from ..api import Model

Username = Annotated[str, AfterValidator(validation.username)]
Email = Annotated[str, AfterValidator(validation.email)]
Password = Annotated[str, AfterValidator(validation.password)]
DisplayName = Annotated[
    str, AfterValidator(lambda v: validation.text(v, min_len=1, max_len=50))
]
Bio = Annotated[
    str, AfterValidator(lambda v: validation.text(v, min_len=0, max_len=500, multiline=True))
]


class RegisterIn(Model):
    username: Username = Field(description="3-30 of A-Z a-z 0-9 _; unique ignoring case")
    email: Email = Field(description="stored lower-cased; unique")
    password: Password = Field(description="8-128 characters")
    display_name: DisplayName | None = None


class LoginIn(Model):
    login: Annotated[str, Field(min_length=1, max_length=254)] = Field(
        description="username or email, either case"
    )
    password: Annotated[str, Field(min_length=1, max_length=128)]


class RefreshIn(Model):
    refresh_token: Annotated[str, Field(min_length=1, max_length=200)]


class ProfileUpdateIn(Model):
    display_name: DisplayName | None = None
    bio: Bio | None = None
    email: Email | None = None
    password: Password | None = Field(default=None, description="needs current_password")
    current_password: Annotated[str, Field(min_length=1, max_length=128)] | None = None


class UserOut(BaseModel):
    id: str
    username: str
    display_name: str
    bio: str
    created_at: datetime
    followers: int
    following: int
    email: str | None = Field(default=None, description="only in your own profile")


class RegisterOut(BaseModel):
    user: UserOut


class TokensOut(BaseModel):
    access_token: str
    token_type: str = "Bearer"
    expires_in: int = Field(description="access token lifetime, seconds")
    refresh_token: str
    refresh_expires_in: int
    user: UserOut


class SignedOut(BaseModel):
    signed_out: bool


class FollowOut(BaseModel):
    user_id: str
    follower_id: str
    created_at: datetime


class FollowPageOut(BaseModel):
    items: list[FollowOut]
    next_cursor: str | None


class FollowStateOut(BaseModel):
    user_id: str
    following: bool
    followers: int

