"""Followers live now, watch history and recommendations: simple, explainable rules.

Recommendations come in two groups, each at most `limit` long, every item with the
`reason` it is there:

1. **because you follow**: live streams of the streamers you follow (most viewers first),
   then live streams in the categories those streamers stream in, by streamers you do
   not follow ("because you follow X, who streams chess").
2. **popular in categories you watch**: live streams ranked by viewers in the categories
   of the streams you watched (`POST /api/streams/{id}/watch`), leaving out everything
   group 1 already has.

Your own streams are never recommended. Categories considered: the `CATEGORIES` most
recently streamed by those you follow, and the `CATEGORIES` you watched most.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from ...backends.storage import NotFound, Page, Store, StreamCard, Watch
from ..clock import utcnow
from ..errors import ConflictError, NotFoundError
from .events import WentLive

CATEGORIES = 5
REPLAY_MAX = 100  # went-live events replayed to a reconnecting client (Last-Event-ID)


@dataclass(frozen=True, kw_only=True)
class Recommendation:
    card: StreamCard
    basis: str  # "followed_streamer_live" | "followed_streamer_category" | "watched_category"
    reason: str


@dataclass(frozen=True, kw_only=True)
class Recommendations:
    because_you_follow: list[Recommendation]
    popular_in_categories_you_watch: list[Recommendation]


def _plural(n: int, word: str) -> str:
    return f"{n} {word}" + ("" if n == 1 else "s")


class SocialService:
    def __init__(self, store: Store) -> None:
        self._store = store

    async def following_live(self, user_id: str, *, limit: int) -> list[StreamCard]:
        return await self._store.following_live(user_id, limit=limit)

    async def record_watch(self, *, user_id: str, stream_id: str) -> Watch:
        """Count that `user_id` watched the stream: live or ended (a recording), not one
        that has not started."""
        stream = await self._store.get_stream(stream_id)
        if stream is None:
            raise NotFoundError("no such stream", code="stream_not_found")
        if stream.status == "created":
            raise ConflictError("the stream has not started yet", code="stream_not_started")
        try:
            return await self._store.record_watch(user_id=user_id, stream_id=stream_id,
                                                  at=utcnow())
        except NotFound:  # the stream or the account vanished in between
            raise NotFoundError("no such stream", code="stream_not_found") from None

    async def history(self, user_id: str, *, cursor: str | None, limit: int) -> Page[Watch]:
        return await self._store.list_watches(user_id, cursor=cursor, limit=limit)

    async def missed(self, user_id: str, *, since: datetime, last_stream_id: str
                     ) -> list[WentLive]:
        """Went-live events of followed streamers that started at or after `since` and are
        still live, oldest first: what a reconnecting client missed and can still watch."""
        cards = await self._store.following_live(user_id, limit=REPLAY_MAX)
        missed = [c for c in cards if c.stream.started_at is not None
                  and c.stream.started_at >= since and c.stream.id != last_stream_id]
        missed.sort(key=lambda c: (c.stream.started_at, c.stream.id))
        return [WentLive(stream_id=c.stream.id, user_id=c.stream.user_id, username=c.username,
                         display_name=c.display_name, title=c.stream.title,
                         category=c.stream.category, started_at=c.stream.started_at)
                for c in missed if c.stream.started_at is not None]

    async def recommend(self, user_id: str, *, limit: int) -> Recommendations:
        first: list[Recommendation] = [
            Recommendation(card=c, basis="followed_streamer_live",
                           reason=f"because you follow {c.username}, who is live now")
            for c in await self._store.following_live(user_id, limit=limit)
        ]
        if len(first) < limit:
            followed = await self._store.followed_categories(user_id, limit=CATEGORIES)
            by_category = {f.category: f for f in followed}
            for c in await self._store.live_in_categories(
                    list(by_category), viewer_id=user_id, limit=limit - len(first)):
                f = by_category[c.stream.category]
                first.append(Recommendation(
                    card=c, basis="followed_streamer_category",
                    reason=f"because you follow {f.username}, who streams {f.category}"))
        taken = {r.card.stream.id for r in first}
        watched = await self._store.watched_categories(user_id, limit=CATEGORIES)
        counts = {w.category: w.streams for w in watched}
        second = [
            Recommendation(
                card=c, basis="watched_category",
                reason=(f"popular in {c.stream.category}, which you watch "
                        f"({_plural(counts[c.stream.category], 'stream')} watched)"))
            for c in await self._store.live_in_categories(
                list(counts), limit=limit + len(taken) + 3)
            if c.stream.id not in taken and c.stream.user_id != user_id
        ][:limit]
        return Recommendations(because_you_follow=first, popular_in_categories_you_watch=second)
