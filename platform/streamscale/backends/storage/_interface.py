"""The storage interface every service uses (`Store`); its records are in `_records`.

Implementations run blocking driver calls in worker threads behind a CapacityLimiter,
never on the trio loop. The same contract suites (tests/backends/test_storage_*contract.py)
run against SQLite (embedded default) and PostgreSQL (scale-out).

Ids are opaque strings made by the application (uuid4 hex), so rows can be created on any
node without a round trip. Times are timezone-aware UTC datetimes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Protocol

from ._interface_accounts import AccountStore
from ._interface_analytics import AnalyticsStore
from ._interface_chat import ChatStore, ModerationStore
from ._interface_search import SearchStore
from ._interface_social import SocialStore
from ._records import (
    AnalyticsSample,
    Follow,
    Page,
    RefreshToken,
    SigningKey,
    Stream,
    User,
    ViewerSample,
)


class Store(ChatStore, ModerationStore, AccountStore, SocialStore, AnalyticsStore,
            SearchStore, Protocol):
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

    async def set_viewer_count(
        self,
        stream_id: str,
        viewers: int,
        *,
        unique_viewers: int | None = None,
        by_rendition: Mapping[str, int] | None = None,
    ) -> bool:
        """Set viewer_count (and viewers_by_rendition when given); raise peak_viewers and
        unique_viewers (when given) if exceeded: unique since live never falls, so a
        counter that restarts (another worker took the stream over) cannot lower it.
        False, writing nothing, if the stream is missing or has ended (ending a stream
        zeroes viewer_count and viewers_by_rendition)."""

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

    async def get_follow(self, user_id: str, follower_id: str) -> Follow | None:
        """Whether `follower_id` follows `user_id`, and since when."""

    async def count_followers(self, user_id: str) -> int: ...

    async def count_following(self, follower_id: str) -> int: ...

    # analytics (chat and moderation: `ChatStore`, `ModerationStore`) -----------------
    async def add_analytics_sample(self, sample: AnalyticsSample) -> None: ...

    async def list_analytics_samples(
        self, stream_id: str, *, since: datetime | None = None, limit: int = 1000
    ) -> list[AnalyticsSample]:
        """Oldest first."""

    async def add_viewer_samples(self, samples: Sequence[ViewerSample]) -> None:
        """Insert; a sample already stored (same stream_id and at) is left as it is."""

    async def list_viewer_samples(
        self,
        stream_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[ViewerSample]:
        """Samples with since <= at < until, oldest first, at most `limit`."""

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
