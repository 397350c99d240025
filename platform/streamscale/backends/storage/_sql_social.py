"""Followers' live view and watch history on SQL (`SocialStore`)."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Select, and_, func, select

from . import _rows
from ._cursor import check_limit, keyset, page
from ._interface_social import FollowedCategory, StreamCard, Watch, WatchedCategory
from ._records import NotFound, Page
from ._runner import SqlRunner
from ._tables import followers, streams, users, watch_history

_IN_CHUNK = 500  # ids per IN (...): well under SQLite's 32,766 parameters a statement
_FOLLOWED_PAIRS = 200  # (category, streamer) pairs read to find the newest categories

_PRESENT = users.c.deleted_at.is_(None)
# Live first by viewers (the edge counts), then the newest start, then id: a total order,
# so equal counts never shuffle between two reads.
_BY_VIEWERS = (streams.c.viewer_count.desc(), streams.c.started_at.desc(), streams.c.id)


def _cards() -> Select[Any]:
    return (select(streams, users.c.username.label("card_username"),
                   users.c.display_name.label("card_display_name"))
            .join(users, and_(users.c.id == streams.c.user_id, _PRESENT)))


def _to_card(row: Any) -> StreamCard:
    m = row._mapping
    return StreamCard(stream=_rows.to_stream(row), username=m["card_username"],
                      display_name=m["card_display_name"])


def _to_watch(row: Any) -> Watch:
    m = row._mapping
    return Watch(user_id=m["user_id"], stream_id=m["stream_id"], category=m["category"],
                 first_at=m["first_at"], last_at=m["last_at"], watches=m["watches"])


class SocialMixin(SqlRunner):
    async def record_watch(self, *, user_id: str, stream_id: str, at: datetime) -> Watch:
        w = watch_history
        insert = self._insert(w).values(user_id=user_id, stream_id=stream_id, first_at=at,
                                        last_at=at, watches=1)
        upsert = insert.on_conflict_do_update(
            index_elements=[w.c.user_id, w.c.stream_id],
            set_={"last_at": insert.excluded.last_at, "watches": w.c.watches + 1},
        ).returning(*w.c)
        category = select(streams.c.category).where(streams.c.id == stream_id)
        present = select(users.c.id).where(users.c.id == user_id, _PRESENT)

        def work(conn: Connection) -> Watch:
            found = conn.execute(category).first()
            if found is None:
                raise NotFound(f"stream {stream_id}")
            if conn.execute(present).first() is None:  # a tombstone has no history
                raise NotFound(f"user {user_id}")
            row = conn.execute(upsert).one()
            m = row._mapping
            return Watch(user_id=user_id, stream_id=stream_id, category=found.category,
                         first_at=m["first_at"], last_at=m["last_at"], watches=m["watches"])

        return await self._write(work)

    async def list_watches(
        self, user_id: str, *, cursor: str | None = None, limit: int = 50
    ) -> Page[Watch]:
        w = watch_history
        stmt = (select(w, streams.c.category).join(streams, streams.c.id == w.c.stream_id)
                .where(w.c.user_id == user_id))
        stmt = keyset(stmt, w.c.last_at, w.c.stream_id, cursor, limit)
        rows = await self._all(stmt)
        return page(rows, limit, _to_watch, lambda x: (x.last_at, x.stream_id))

    async def watched_categories(self, user_id: str, *, limit: int = 5) -> list[WatchedCategory]:
        check_limit(limit)
        w = watch_history
        n = func.count().label("n")
        last = func.max(w.c.last_at).label("last")
        stmt = (select(streams.c.category, n, last)
                .join(streams, streams.c.id == w.c.stream_id)
                .where(w.c.user_id == user_id)
                .group_by(streams.c.category)
                .order_by(n.desc(), last.desc(), streams.c.category)
                .limit(limit))
        return [WatchedCategory(category=row.category, streams=int(row.n),
                                last_at=row.last)
                for row in await self._all(stmt)]

    async def followed_categories(
        self, follower_id: str, *, limit: int = 5
    ) -> list[FollowedCategory]:
        """Reads the newest `_FOLLOWED_PAIRS` (category, streamer) pairs: categories past
        those (a follower of hundreds of prolific streamers) are not considered."""
        check_limit(limit)
        latest = func.max(streams.c.created_at).label("latest")
        stmt = (select(streams.c.category, streams.c.user_id, users.c.username, latest)
                .join(followers, and_(followers.c.user_id == streams.c.user_id,
                                      followers.c.follower_id == follower_id))
                .join(users, and_(users.c.id == streams.c.user_id, _PRESENT))
                .group_by(streams.c.category, streams.c.user_id, users.c.username)
                .order_by(latest.desc(), streams.c.category, streams.c.user_id)
                .limit(_FOLLOWED_PAIRS))
        out: dict[str, FollowedCategory] = {}
        for row in await self._all(stmt):
            if row.category not in out:
                out[row.category] = FollowedCategory(
                    category=row.category, user_id=row.user_id, username=row.username,
                    latest_at=row.latest)
                if len(out) == limit:
                    break
        return list(out.values())

    async def following_live(self, follower_id: str, *, limit: int = 50) -> list[StreamCard]:
        check_limit(limit)
        stmt = (_cards()
                .join(followers, and_(followers.c.user_id == streams.c.user_id,
                                      followers.c.follower_id == follower_id))
                .where(streams.c.status == "live")
                .order_by(*_BY_VIEWERS).limit(limit))
        return [_to_card(row) for row in await self._all(stmt)]

    async def live_in_categories(
        self,
        categories: Collection[str],
        *,
        viewer_id: str | None = None,
        limit: int = 50,
    ) -> list[StreamCard]:
        check_limit(limit)
        if not categories:
            return []
        stmt = _cards().where(streams.c.status == "live",
                              streams.c.category.in_(sorted(set(categories))))
        if viewer_id is not None:
            followed = select(followers.c.user_id).where(followers.c.follower_id == viewer_id)
            stmt = stmt.where(streams.c.user_id != viewer_id, streams.c.user_id.not_in(followed))
        stmt = stmt.order_by(*_BY_VIEWERS).limit(limit)
        return [_to_card(row) for row in await self._all(stmt)]

    async def followers_among(self, user_id: str, candidate_ids: Collection[str]) -> set[str]:
        ids = sorted(set(candidate_ids))
        if not ids:
            return set()
        f = followers

        def work(conn: Connection) -> set[str]:
            found: set[str] = set()
            for i in range(0, len(ids), _IN_CHUNK):
                stmt = select(f.c.follower_id).where(
                    f.c.user_id == user_id, f.c.follower_id.in_(ids[i:i + _IN_CHUNK]))
                found.update(row.follower_id for row in conn.execute(stmt))
            return found

        return await self._read(work)

