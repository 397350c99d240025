"""Followers' live view and watch history: the part of `Store` behind services/social.

The social queries answer "who that I follow is live", "which of these users follow X"
(the went-live fan-out of one gateway) and "which categories does this user watch"
(recommendations). Each is one bounded statement; none scans all streams or all follows.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from ._records import Page, Stream


@dataclass(frozen=True, kw_only=True)
class StreamCard:
    """A stream with its streamer's public names: what a list of live streams shows."""

    stream: Stream
    username: str
    display_name: str


@dataclass(frozen=True, kw_only=True)
class Watch:
    """A signed-in user watched a stream: one row per (user, stream), counted."""

    user_id: str
    stream_id: str
    category: str  # the stream's, as of now (a stream's category does not change)
    first_at: datetime
    last_at: datetime
    watches: int  # how many times it was recorded


@dataclass(frozen=True, kw_only=True)
class WatchedCategory:
    category: str
    streams: int  # distinct streams of this category the user watched
    last_at: datetime  # the latest of those watches


@dataclass(frozen=True, kw_only=True)
class FollowedCategory:
    """A category a followed streamer streams in; `user_id` is the followed streamer with
    the newest stream in it (the "because you follow X" of a recommendation)."""

    category: str
    user_id: str
    username: str
    latest_at: datetime  # created_at of that streamer's newest stream in the category


class SocialStore(Protocol):
    async def record_watch(self, *, user_id: str, stream_id: str, at: datetime) -> Watch:
        """Insert the (user, stream) row or count one more watch (last_at = at; first_at
        stays). NotFound if the user or the stream does not exist."""

    async def list_watches(
        self, user_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Watch]:
        """The user's watch history, most recently watched first."""

    async def watched_categories(self, user_id: str, *, limit: int = 5) -> list[WatchedCategory]:
        """Categories of the streams the user watched: most distinct streams first, then
        the most recently watched, then by name."""

    async def followed_categories(
        self, follower_id: str, *, limit: int = 5
    ) -> list[FollowedCategory]:
        """Categories the streamers `follower_id` follows have streamed in (any status),
        the category with the newest such stream first; one followed streamer each."""

    async def following_live(self, follower_id: str, *, limit: int = 50) -> list[StreamCard]:
        """Live streams of the users `follower_id` follows: most viewers first, then the
        most recently started, then by id."""

    async def live_in_categories(
        self,
        categories: Collection[str],
        *,
        viewer_id: str | None = None,
        limit: int = 50,
    ) -> list[StreamCard]:
        """Live streams in any of `categories`, ranked like `following_live`. With
        `viewer_id`, the viewer's own streams and those of streamers the viewer follows are
        left out (they are what `following_live` lists)."""

    async def followers_among(self, user_id: str, candidate_ids: Collection[str]) -> set[str]:
        """Those of `candidate_ids` that follow `user_id` (any number of candidates)."""
