"""Request and response bodies of the moderation API (`_moderation_api`)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, Field
from pydantic.json_schema import SkipJsonSchema

from ...backends.storage import Appeal, AuditEntry, Ban, ChatTimeout, RoomSettings
from ..api import Model, PageQuery
from ._api import ChatMessageOut
from .moderation.rules import MAX_REASON_CHARS, MAX_SLOW_MODE_S, MAX_TIMEOUT_S

UserId = Annotated[str, Field(min_length=1, max_length=64)]
Reason = Annotated[str, Field(max_length=MAX_REASON_CHARS)]
MAX_FOLLOW_AGE_S = 90 * 24 * 3600



class ReasonQuery(Model):
    model_config = Model.model_config | {"strict": False}
    reason: Reason = ""


class BanQuery(PageQuery):
    active: bool = Field(True, description="only bans in force (false: lifted ones too)")


class ReviewQuery(PageQuery):
    stream_id: Annotated[str, Field(max_length=64)] | None = Field(
        None, description="only this stream's queue")


class AuditQuery(PageQuery):
    target_user_id: Annotated[str, Field(max_length=64)] | None = None


class AppealQuery(PageQuery):
    status: Literal["pending", "upheld", "lifted", "any"] = "pending"


# -- roles -------------------------------------------------------------------------------

class RoleOut(BaseModel):
    channel_id: str
    user_id: str
    role: Literal["moderator"] | None = Field(description="null once removed")
    created_at: datetime | None


class RoleListOut(BaseModel):
    items: list[RoleOut]


# -- bans and timeouts -------------------------------------------------------------------

class BanIn(Model):
    user_id: UserId
    reason: Reason = ""


class BanOut(BaseModel):
    id: str
    channel_id: str
    user_id: str
    reason: str
    banned_by: str
    created_at: datetime
    lifted_at: datetime | None
    lifted_by: str | None

    @classmethod
    def of(cls, ban: Ban) -> BanOut:
        return cls(id=ban.id, channel_id=ban.channel_id, user_id=ban.user_id,
                   reason=ban.reason, banned_by=ban.banned_by, created_at=ban.created_at,
                   lifted_at=ban.lifted_at, lifted_by=ban.lifted_by)


class BanPageOut(BaseModel):
    items: list[BanOut]
    next_cursor: str | None


class TimeoutIn(Model):
    user_id: UserId
    duration_s: Annotated[int, Field(ge=1, le=int(MAX_TIMEOUT_S))]
    reason: Reason = ""


class TimeoutOut(BaseModel):
    channel_id: str
    user_id: str
    until: datetime
    reason: str
    created_by: str
    created_at: datetime

    @classmethod
    def of(cls, t: ChatTimeout) -> TimeoutOut:
        return cls(channel_id=t.channel_id, user_id=t.user_id, until=t.until, reason=t.reason,
                   created_by=t.created_by, created_at=t.created_at)


class TimeoutListOut(BaseModel):
    items: list[TimeoutOut]


class TimeoutClearedOut(BaseModel):
    channel_id: str
    user_id: str
    timed_out: bool


# -- settings and words ------------------------------------------------------------------

class SettingsPatch(Model):
    """Only the fields sent change; followers_only_min_age_s null turns the mode off. The
    others may be left out but not sent as null: `SkipJsonSchema[None]` keeps null out of
    the published schema, and the route refuses it (400)."""

    slow_mode_s: Annotated[int, Field(ge=0, le=int(MAX_SLOW_MODE_S))] | SkipJsonSchema[
        None] = Field(None, description="seconds between one user's messages; 0: off")
    followers_only_min_age_s: Annotated[int, Field(ge=0, le=MAX_FOLLOW_AGE_S)] | None = Field(
        None, description="null: off; 0: any follower; N: followers of at least N s")
    link_policy: Literal["allow", "hold", "block"] | SkipJsonSchema[None] = None
    regex_filters: Annotated[list[Annotated[str, Field(min_length=1, max_length=200)]],
                             Field(max_length=20)] | SkipJsonSchema[None] = Field(
        None, description="replaces the list; each pattern is checked for cost (400 names it)")


class SettingsOut(BaseModel):
    channel_id: str
    slow_mode_s: int
    followers_only_min_age_s: int | None
    link_policy: str
    regex_filters: list[str]
    updated_at: datetime | None
    updated_by: str | None

    @classmethod
    def of(cls, s: RoomSettings) -> SettingsOut:
        return cls(channel_id=s.channel_id, slow_mode_s=s.slow_mode_s,
                   followers_only_min_age_s=s.followers_only_min_age_s,
                   link_policy=s.link_policy, regex_filters=list(s.regex_filters),
                   updated_at=s.updated_at, updated_by=s.updated_by)


class WordIn(Model):
    word: Annotated[str, Field(min_length=1, max_length=65,
                               description="a word, or prefix* for words starting with it")]


class WordOut(BaseModel):
    word: str = Field(description="normalised: folded letters, runs of at most two")
    scope: Literal["channel", "global"]


class WordListOut(BaseModel):
    items: list[WordOut]


# -- messages, audit, appeals ------------------------------------------------------------

class MessageStatusOut(BaseModel):
    id: str
    status: Literal["visible", "held", "deleted"]


class ReviewIn(Model):
    approve: bool
    reason: Reason = ""


class HeldMessageOut(ChatMessageOut):
    moderation: dict[str, Any] | None = Field(description="why it was held (reasons, score)")


class HeldPageOut(BaseModel):
    items: list[HeldMessageOut]
    next_cursor: str | None


class AuditOut(BaseModel):
    id: str
    channel_id: str | None
    actor_id: str
    action: str
    created_at: datetime
    target_user_id: str | None
    target_message_id: str | None
    reason: str | None
    details: dict[str, Any] | None

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        return cls(id=e.id, channel_id=e.channel_id, actor_id=e.actor_id, action=e.action,
                   created_at=e.created_at, target_user_id=e.target_user_id,
                   target_message_id=e.target_message_id, reason=e.reason,
                   details=dict(e.details) if e.details is not None else None)


class AuditPageOut(BaseModel):
    items: list[AuditOut]
    next_cursor: str | None


class AppealIn(Model):
    text: Annotated[str, Field(min_length=1, max_length=MAX_REASON_CHARS)]


class DecisionIn(Model):
    decision: Literal["uphold", "lift"]
    reason: Reason = ""


class AppealOut(BaseModel):
    id: str
    ban_id: str
    channel_id: str
    user_id: str
    text: str
    created_at: datetime
    status: Literal["pending", "upheld", "lifted"]
    decided_by: str | None
    decided_at: datetime | None
    decision_reason: str | None

    @classmethod
    def of(cls, a: Appeal) -> AppealOut:
        return cls(id=a.id, ban_id=a.ban_id, channel_id=a.channel_id, user_id=a.user_id,
                   text=a.text, created_at=a.created_at, status=a.status,  # type: ignore[arg-type]
                   decided_by=a.decided_by, decided_at=a.decided_at,
                   decision_reason=a.decision_reason)


class AppealPageOut(BaseModel):
    items: list[AppealOut]
    next_cursor: str | None
