"""Request and response bodies of the users API."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, BaseModel, Field, WithJsonSchema

from .. import validation as v
from ..api import Model


def _text(min_len: int, max_len: int, *, multiline: bool = False) -> WithJsonSchema:
    return WithJsonSchema({
        "type": "string", "minLength": min_len, "maxLength": max_len,
        "pattern": v.text_pattern(min_len=min_len, multiline=multiline),
    })


# Each rule once, in validation.py; the schema beside it states it for the OpenAPI document.
Username = Annotated[str, AfterValidator(v.username), WithJsonSchema({
    "type": "string", "minLength": v.USERNAME_MIN, "maxLength": v.USERNAME_MAX,
    "pattern": v.USERNAME_PATTERN,
})]
Email = Annotated[str, AfterValidator(v.email), WithJsonSchema({
    "type": "string", "maxLength": v.EMAIL_MAX, "pattern": v.EMAIL_PATTERN,
    "allOf": [{"pattern": v.EMAIL_LOCAL_PATTERN}],
})]
Password = Annotated[str, AfterValidator(v.password), WithJsonSchema({
    "type": "string", "minLength": v.PASSWORD_MIN, "maxLength": v.PASSWORD_MAX,
    "pattern": v.PASSWORD_PATTERN,
})]
DisplayName = Annotated[
    str, AfterValidator(lambda s: v.text(s, min_len=1, max_len=50)), _text(1, 50)
]
Bio = Annotated[
    str, AfterValidator(lambda s: v.text(s, min_len=0, max_len=500, multiline=True)),
    _text(0, 500, multiline=True),
]


class RegisterIn(Model):
    username: Username = Field(description="3-30 of A-Z a-z 0-9 _, starting with a letter; "
                               "unique ignoring case; a few names are reserved")
    email: Email = Field(description="trimmed, stored lower-cased; unique; at most 64 "
                         "characters before the @")
    password: Password = Field(description="8-128 characters")
    display_name: DisplayName | None = None


class LoginIn(Model):
    login: Annotated[str, Field(min_length=1, max_length=254)] = Field(
        description="username or email, either case"
    )
    password: Annotated[str, Field(min_length=1, max_length=128)]


class RefreshIn(Model):
    refresh_token: Annotated[str, Field(min_length=1, max_length=200)]


def _needs_current_password(field: str) -> dict[str, Any]:
    return {"if": {"required": [field], "properties": {field: {"type": "string"}}},
            "then": {"required": ["current_password"],
                     "properties": {"current_password": {"type": "string"}}}}


class ProfileUpdateIn(Model):
    model_config = Model.model_config | {"json_schema_extra": {"allOf": [
        _needs_current_password("email"), _needs_current_password("password"),
    ]}}

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


class DeleteAccountIn(Model):
    password: Annotated[str, Field(min_length=1, max_length=128,
                                   description="your current password, to confirm")]


class AccountDeletedOut(BaseModel):
    deleted: bool
    streams_ended: list[str] = Field(description="ids of your streams that this ended")


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

