"""Stream analytics on SQL (`AnalyticsStore`): health samples, chat counts, rollups.

Chat counts come from `chat_messages` itself, where the chat workers already record every
message, so nothing is added to the chat path. Posted and held messages are read by
`created_at` through the (status, created_at, id) index (one range per status); removed
ones by `deleted_at` through a partial index of the deleted rows (migration 0006), then
bucketed here: SQLite and PostgreSQL truncate times differently, Python does it once.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import Connection, and_, delete, or_, select

from . import _rows
from ._cursor import check_limit
from ._interface_analytics import ChatActivity, HealthSample, Rollup
from ._records import ViewerSample
from ._runner import _ROWS_PER_INSERT, SqlRunner
from ._tables import (
    CHAT_STATUSES,
    analytics_rollup_state,
    analytics_rollups,
    chat_messages,
    ingest_health,
    viewer_samples,
)


def _health_values(s: HealthSample) -> dict[str, Any]:
    values = asdict(s)
    values["shed_rungs"] = json.dumps(list(s.shed_rungs), separators=(",", ":"))
    return values


def _to_health(row: Any) -> HealthSample:
    m = dict(row._mapping)
    m["shed_rungs"] = tuple(json.loads(m["shed_rungs"]))
    return HealthSample(**m)


def _rollup_values(r: Rollup) -> dict[str, Any]:
    values = asdict(r)
    values["by_rendition"] = _rows.rendition_json(r.by_rendition)
    values["shed_rungs"] = json.dumps(sorted(r.shed_rungs), separators=(",", ":"))
    return values


def _to_rollup(row: Any) -> Rollup:
    m = dict(row._mapping)
    m["by_rendition"] = json.loads(m["by_rendition"])
    m["shed_rungs"] = tuple(json.loads(m["shed_rungs"]))
    return Rollup(**m)


def bucket_start(at: datetime, bucket_s: int) -> datetime:
    """The start of the `bucket_s` bucket holding `at` (aligned to the epoch)."""
    seconds = at.timestamp()
    return datetime.fromtimestamp(seconds - seconds % bucket_s, UTC)


class AnalyticsMixin(SqlRunner):
    async def add_health_samples(self, samples: Sequence[HealthSample]) -> None:
        await self._insert_new(ingest_health, [_health_values(s) for s in samples],
                               ("stream_id", "at"))

    async def list_health_samples(
        self, stream_id: str, *, since: datetime | None = None,
        until: datetime | None = None, limit: int = 1000,
    ) -> list[HealthSample]:
        check_limit(limit)
        h = ingest_health
        stmt = select(h).where(h.c.stream_id == stream_id)
        if since is not None:
            stmt = stmt.where(h.c.at >= since)
        if until is not None:
            stmt = stmt.where(h.c.at < until)
        return [_to_health(r) for r in await self._all(stmt.order_by(h.c.at).limit(limit))]

    async def scan_viewer_samples(
        self, *, since: datetime, until: datetime
    ) -> list[ViewerSample]:
        v = viewer_samples
        stmt = select(v).where(v.c.at >= since, v.c.at < until).order_by(v.c.stream_id, v.c.at)
        return [_rows.to_viewer_sample(r) for r in await self._all(stmt)]

    async def scan_health_samples(
        self, *, since: datetime, until: datetime
    ) -> list[HealthSample]:
        h = ingest_health
        stmt = select(h).where(h.c.at >= since, h.c.at < until).order_by(h.c.stream_id, h.c.at)
        return [_to_health(r) for r in await self._all(stmt)]

    async def chat_activity(
        self, *, since: datetime, until: datetime, bucket_s: int,
        stream_id: str | None = None,
    ) -> list[ChatActivity]:
        if bucket_s < 1:
            raise ValueError("bucket_s must be at least 1")
        m = chat_messages
        posted = select(m.c.stream_id, m.c.created_at,
                        or_(m.c.status == "held", m.c.moderation.is_not(None))).where(
            m.c.status.in_(CHAT_STATUSES), m.c.created_at >= since, m.c.created_at < until)
        # deleted_at is set exactly while a message is deleted (set_chat_message_status)
        removed = select(m.c.stream_id, m.c.deleted_at).where(
            and_(m.c.deleted_at >= since, m.c.deleted_at < until))
        if stream_id is not None:
            posted = posted.where(m.c.stream_id == stream_id)
            removed = removed.where(m.c.stream_id == stream_id)

        def work(conn: Connection) -> tuple[list[Any], list[Any]]:
            return list(conn.execute(posted).all()), list(conn.execute(removed).all())

        posted_rows, removed_rows = await self._read(work)
        counts: dict[tuple[str, datetime], list[int]] = {}
        for sid, created_at, held in posted_rows:
            entry = counts.setdefault((sid, bucket_start(created_at, bucket_s)), [0, 0, 0])
            entry[0] += 1
            entry[1] += bool(held)
        for sid, deleted_at in removed_rows:
            counts.setdefault((sid, bucket_start(deleted_at, bucket_s)), [0, 0, 0])[2] += 1
        return [ChatActivity(stream_id=sid, at=at, messages=n, held=h, removed=r)
                for (sid, at), (n, h, r) in sorted(counts.items())]

    async def upsert_rollups(self, rollups: Sequence[Rollup]) -> None:
        if not rollups:
            return
        rows = [_rollup_values(r) for r in rollups]
        key = ["stream_id", "resolution_s", "at"]

        def work(conn: Connection) -> None:
            for i in range(0, len(rows), _ROWS_PER_INSERT):
                stmt = self._insert(analytics_rollups).values(rows[i:i + _ROWS_PER_INSERT])
                stmt = stmt.on_conflict_do_update(
                    index_elements=key,
                    set_={c.name: stmt.excluded[c.name] for c in analytics_rollups.c
                          if c.name not in key})
                conn.execute(stmt)

        await self._write(work)

    async def list_rollups(
        self, stream_id: str, *, resolution_s: int, since: datetime | None = None,
        until: datetime | None = None, limit: int = 1000,
    ) -> list[Rollup]:
        check_limit(limit)
        r = analytics_rollups
        stmt = select(r).where(r.c.stream_id == stream_id, r.c.resolution_s == resolution_s)
        if since is not None:
            stmt = stmt.where(r.c.at >= since)
        if until is not None:
            stmt = stmt.where(r.c.at < until)
        return [_to_rollup(row) for row in await self._all(stmt.order_by(r.c.at).limit(limit))]

    async def scan_rollups(
        self, *, resolution_s: int, since: datetime, until: datetime
    ) -> list[Rollup]:
        r = analytics_rollups
        stmt = (select(r).where(r.c.resolution_s == resolution_s, r.c.at >= since,
                                r.c.at < until).order_by(r.c.stream_id, r.c.at))
        return [_to_rollup(row) for row in await self._all(stmt)]

    async def get_rolled_until(self, resolution_s: int) -> datetime | None:
        s = analytics_rollup_state
        row = await self._read(lambda conn: conn.execute(
            select(s.c.rolled_until).where(s.c.resolution_s == resolution_s)).first())
        return None if row is None else row[0]

    async def set_rolled_until(self, resolution_s: int, until: datetime) -> None:
        s = analytics_rollup_state
        stmt = self._insert(s).values(resolution_s=resolution_s, rolled_until=until)
        stmt = stmt.on_conflict_do_update(
            index_elements=["resolution_s"], set_={"rolled_until": stmt.excluded.rolled_until},
            where=s.c.rolled_until < stmt.excluded.rolled_until)
        await self._write(lambda conn: conn.execute(stmt))

    async def delete_analytics_before(
        self, *, raw_before: datetime, rollups_before: Mapping[int, datetime]
    ) -> int:
        r = analytics_rollups
        statements = [delete(viewer_samples).where(viewer_samples.c.at < raw_before),
                      delete(ingest_health).where(ingest_health.c.at < raw_before)]
        statements += [delete(r).where(r.c.resolution_s == res, r.c.at < before)
                       for res, before in rollups_before.items()]

        def work(conn: Connection) -> int:
            return sum(conn.execute(stmt).rowcount for stmt in statements)

        return await self._write(work)
