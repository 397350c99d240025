"""The storage interface every service uses, and the records it returns.

Implementations run blocking driver calls in worker threads behind a CapacityLimiter,
never on the trio loop. The same contract suite (tests/backends/test_storage_contract.py)
runs against SQLite (embedded default) and PostgreSQL (scale-out).

Ids are opaque strings made by the application (uuid4 hex), so rows can be created on any
node without a round trip. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Generic, Protocol, TypeVar

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
    viewer_count: int
    peak_viewers: int


@dataclass(frozen=True, kw_only=True)
class Follow:
    user_id: str  # the one followed
    follower_id: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class ChatMessage:
    id: str
    stream_id: str
    user_id: str
    message: str
    created_at: datetime


@dataclass(frozen=True, kw_only=True)
class AnalyticsSample:
    stream_id: str
    ts: datetime
    viewers: int
    chat_messages: int
    ingest_kbps: int


@dataclass(frozen=True, kw_only=True)
class SigningKey:
    kid: str
    secret: bytes  # HMAC key (HS256), 32 random bytes
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


class Store(Protocol):
    """Async storage. Every method is safe to call concurrently from many tasks."""

    async def close(self) -> None: ...

    # users --------------------------------------------------------------------------
    async def create_user(self, user: User) -> None:
        """Insert; raises Conflict("username") or Conflict("email")."""

    async def get_user(self, user_id: str) -> User | None: ...

    async def get_user_by_username(self, username: str) -> User | None:
        """Case-insensitive lookup."""

    async def get_user_by_email(self, email: str) -> User | None:
        """Case-insensitive lookup."""

    async def update_user(
        self,
        user_id: str,
        *,
        email: str | None = None,
        display_name: str | None = None,
        bio: str | None = None,
        password_hash: str | None = None,
        updated_at: datetime,
    ) -> User:
        """Update the given fields; raises NotFound, or Conflict("email")."""

    # streams ------------------------------------------------------------------------
    async def create_stream(self, stream: Stream) -> None: ...

    async def get_stream(self, stream_id: str) -> Stream | None: ...

    async def get_stream_by_key_hash(self, key_hash: str) -> Stream | None: ...

    async def set_stream_status(
        self, stream_id: str, *, status: str, expected: tuple[str, ...], at: datetime
    ) -> Stream | None:
        """Compare-and-set: move to `status` only if the current status is in `expected`.

        Sets started_at when moving to "live" (first time only) and ended_at when moving
        to "ended". Returns the updated stream, or None if the stream is missing or its
        status was not in `expected` (nothing written).
        """

    async def set_stream_key(self, stream_id: str, *, key_hash: str, at: datetime) -> Stream:
        """Replace the key hash (rotation); raises NotFound."""

    async def set_viewer_count(self, stream_id: str, viewers: int) -> None:
        """Set viewer_count and raise peak_viewers if exceeded."""

    async def list_streams(
        self,
        *,
        user_id: str | None = None,
        status: str | None = None,
        category: str | None = None,
        cursor: str | None = None,
        limit: int = 50,
    ) -> Page[Stream]:
        """Newest first (created_at, id)."""

    # followers ----------------------------------------------------------------------
    async def follow(self, *, user_id: str, follower_id: str, at: datetime) -> bool:
        """True if a new follow was made, False if it already existed."""

    async def unfollow(self, *, user_id: str, follower_id: str) -> bool:
        """True if a follow was removed."""

    async def list_followers(
        self, user_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Follow]:
        """Follows whose user_id is `user_id`, newest first."""

    async def list_following(
        self, follower_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Follow]:
        """Follows whose follower_id is `follower_id`, newest first."""

    async def count_followers(self, user_id: str) -> int: ...

    async def count_following(self, follower_id: str) -> int: ...

    # chat and analytics (used from the chat and analytics issues on) -----------------
    async def add_chat_message(self, message: ChatMessage) -> bool:
        """Insert; False (nothing written) if a message with that id already exists."""

    async def list_chat_messages(
        self, stream_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[ChatMessage]:
        """Newest first."""

    async def add_analytics_sample(self, sample: AnalyticsSample) -> None: ...

    async def list_analytics_samples(
        self, stream_id: str, *, since: datetime | None = None, limit: int = 1000
    ) -> list[AnalyticsSample]:
        """Oldest first."""

    # auth ---------------------------------------------------------------------------
    async def add_signing_key(self, key: SigningKey, *, retire_others_at: datetime) -> None:
        """Insert `key` as the newest and set retires_at on keys that had none, atomically."""

    async def list_signing_keys(self, *, now: datetime) -> list[SigningKey]:
        """Keys not yet retired at `now`, newest first."""

    async def add_refresh_token(self, token: RefreshToken) -> None: ...

    async def rotate_refresh_token(
        self, token_hash: str, new: RefreshToken, *, now: datetime
    ) -> RefreshToken | None:
        """Atomically mark `token_hash` used and insert `new` in the same family.

        The stored new row takes the old token's user_id and family_id (the caller does
        not know them yet); `new`'s own user_id and family_id are ignored.

        Returns the old token if it was valid (unused, unrevoked, unexpired at `now`).
        If it had already been used, revokes its whole family (reuse means theft) and
        returns None; None too if it is unknown, expired or revoked. Nothing is inserted
        unless the old token was valid.
        """

    async def get_refresh_token(self, token_hash: str) -> RefreshToken | None: ...

    async def revoke_refresh_family(self, family_id: str, *, now: datetime) -> None: ...
