"""The records the storage interface takes and returns, and its errors.

Ids are opaque strings made by the application (uuid4 hex), so rows can be created on any
node without a round trip. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")


class StorageError(Exception):
    """Base of the storage errors callers are expected to handle."""


class Conflict(StorageError):
    """A unique constraint was violated; `field` names it (e.g. "username", "email")."""

    def __init__(self, field: str) -> None:
        super().__init__(f"{field} already exists")
        self.field = field


class NotFound(StorageError):
    """The row to update does not exist."""


class InvalidCursor(StorageError, ValueError):
    """A page cursor this store did not make (also a ValueError, as documented)."""

    def __init__(self) -> None:
        super().__init__("invalid cursor")


@dataclass(frozen=True, kw_only=True)
class User:
    id: str
    username: str  # as the user typed it; unique case-insensitively (username_key)
    email: str  # stored lower-cased; unique
    password_hash: str
    display_name: str
    bio: str
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True, kw_only=True)
class Stream:
    id: str
    user_id: str
    title: str
    category: str
    tags: tuple[str, ...]
    quality: str  # the highest rung offered, e.g. "source", "720p"
    status: str  # "created" | "live" | "ended"
    key_hash: str  # sha256 hex of the current stream key; the key itself is never stored
    key_rotated_at: datetime
    created_at: datetime
    started_at: datetime | None
    ended_at: datetime | None
    viewer_count: int  # concurrent viewers as of the last sample (services/analytics)
    peak_viewers: int
    unique_viewers: int = 0  # distinct viewer sessions since it went live (an estimate)
    viewers_by_rendition: Mapping[str, int] = field(default_factory=dict)  # concurrent


@dataclass(frozen=True, kw_only=True)
class Follow:
    user_id: str  # the one followed
    follower_id: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class ChatMessage:
    id: str
    stream_id: str  # the room
    user_id: str
    client_msg_id: str  # the client's id: a retry carries the same one (idempotency key)
    message: str
    created_at: datetime
    status: str = "visible"  # "visible" | "held" (awaiting review) | "deleted"
    # why it was held or flagged, a JSON object: e.g. {"reasons": ["link"], "score": 0.7}
    moderation: Mapping[str, Any] | None = None
    seq: int = 0  # per-room order, assigned by the store on insert (1, 2, ...); 0 until stored
    deleted_by: str | None = None
    deleted_at: datetime | None = None


@dataclass(frozen=True, kw_only=True)
class AnalyticsSample:
    stream_id: str
    ts: datetime
    viewers: int
    chat_messages: int
    ingest_kbps: int


@dataclass(frozen=True, kw_only=True)
class ViewerSample:
    """A stream's viewer counts at `at` (services/analytics writes one per sample tick)."""

    stream_id: str
    at: datetime
    interval_s: float  # the span before `at` that `bytes` and `watch_s` cover
    concurrent: int  # sessions seen within cdn.viewer_idle_s
    unique_viewers: int  # distinct sessions since the stream went live (estimate)
    by_rendition: Mapping[str, int]  # concurrent sessions by their latest rendition
    bytes: int  # bytes served to viewers in the interval
    watch_s: float  # viewer-seconds watched in the interval


@dataclass(frozen=True, kw_only=True)
class SigningKey:
    kid: str
    secret: bytes = field(repr=False)  # HMAC key (HS256), 32 random bytes; sealed at rest
    created_at: datetime
    retires_at: datetime | None  # None while it is the newest key


@dataclass(frozen=True, kw_only=True)
class RefreshToken:
    token_hash: str  # sha256 hex of the opaque token
    user_id: str
    family_id: str  # all tokens rotated from one login share a family
    created_at: datetime
    expires_at: datetime
    used_at: datetime | None  # set when rotated; a reuse revokes the family
    revoked_at: datetime | None


@dataclass(frozen=True, kw_only=True)
class Page(Generic[T]):
    items: list[T]
    next_cursor: str | None  # opaque; pass back to get the next page


# moderation: per channel (the streamer's user id), so it outlives any one stream ----------
@dataclass(frozen=True, kw_only=True)
class ChannelRole:
    channel_id: str
    user_id: str
    role: str  # "owner" | "moderator"
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class Ban:
    id: str
    channel_id: str
    user_id: str
    reason: str
    banned_by: str
    created_at: datetime
    lifted_at: datetime | None = None  # None while the ban is active
    lifted_by: str | None = None


@dataclass(frozen=True, kw_only=True)
class ChatTimeout:
    channel_id: str
    user_id: str
    until: datetime
    reason: str
    created_by: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class RoomSettings:
    """A channel's chat rules; the defaults are what a channel that never set any gets."""

    channel_id: str
    slow_mode_s: int = 0  # 0: off
    followers_only_min_age_s: int | None = None  # None: off; 0: any follower may post
    link_policy: str = "allow"  # "allow" | "hold" (for review) | "block"
    regex_filters: tuple[str, ...] = ()
    updated_at: datetime | None = None  # None: never set
    updated_by: str | None = None


@dataclass(frozen=True, kw_only=True)
class BannedWord:
    channel_id: str | None  # None: the global list, applied in every channel
    word: str  # as the caller normalised it; unique per list
    created_by: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class AuditEntry:
    """One moderator action; the log is append-only."""

    id: str
    channel_id: str | None  # None: a platform-wide action (e.g. the global word list)
    actor_id: str
    action: str  # e.g. "ban", "lift_ban", "timeout", "delete_message", "decide_appeal"
    created_at: datetime
    target_user_id: str | None = None
    target_message_id: str | None = None
    reason: str | None = None
    details: Mapping[str, Any] | None = None  # JSON object


@dataclass(frozen=True, kw_only=True)
class Appeal:
    id: str
    ban_id: str  # one appeal per ban
    channel_id: str
    user_id: str  # the banned user, who appeals
    text: str
    created_at: datetime
    status: str = "pending"  # "pending" | "upheld" | "lifted"
    decided_by: str | None = None
    decided_at: datetime | None = None
    decision_reason: str | None = None
