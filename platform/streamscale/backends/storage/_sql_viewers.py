"""Viewer counts on SQL: the stream row's current counts and the samples kept over time."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from sqlalchemy import case, select, update

from . import _rows
from ._cursor import check_limit
from ._records import ViewerSample
from ._runner import SqlRunner
from ._tables import streams, viewer_samples


class ViewersMixin(SqlRunner):
    async def set_viewer_count(
        self,
        stream_id: str,
        viewers: int,
        *,
        unique_viewers: int | None = None,
        by_rendition: Mapping[str, int] | None = None,
    ) -> bool:
        """A missing or ended stream is left alone (False): counts race with nothing worth
        failing over, and ending a stream zeroes its counts, which a late sample must not
        undo."""
        if viewers < 0 or (unique_viewers is not None and unique_viewers < 0):
            raise ValueError("viewers must not be negative")
        if by_rendition is not None and any(n < 0 for n in by_rendition.values()):
            raise ValueError("viewers by rendition must not be negative")
        peak = case((streams.c.peak_viewers < viewers, viewers), else_=streams.c.peak_viewers)
        values: dict[str, object] = {"viewer_count": viewers, "peak_viewers": peak}
        if unique_viewers is not None:  # since live: only rises (a new counter starts at 0)
            values["unique_viewers"] = case(
                (streams.c.unique_viewers < unique_viewers, unique_viewers),
                else_=streams.c.unique_viewers)
        if by_rendition is not None:
            values["viewers_by_rendition"] = _rows.rendition_json(by_rendition)
        stmt = (
            update(streams)
            .where(streams.c.id == stream_id, streams.c.status != "ended")
            .values(values)
            .returning(streams.c.id)  # rowcount of an UPDATE ... RETURNING is not portable
        )
        return await self._write(lambda conn: conn.execute(stmt).first() is not None)

    async def add_viewer_samples(self, samples: Sequence[ViewerSample]) -> None:
        """Insert; a sample already stored (same stream and `at`) is kept as it is, so a
        retried write never fails or doubles."""
        await self._insert_new(viewer_samples,
                               [_rows.viewer_sample_values(s) for s in samples],
                               ("stream_id", "at"))

    async def list_viewer_samples(
        self,
        stream_id: str,
        *,
        since: datetime | None = None,
        until: datetime | None = None,
        limit: int = 1000,
    ) -> list[ViewerSample]:
        """Samples with since <= at < until, oldest first."""
        check_limit(limit)
        v = viewer_samples
        stmt = select(v).where(v.c.stream_id == stream_id)
        if since is not None:
            stmt = stmt.where(v.c.at >= since)
        if until is not None:
            stmt = stmt.where(v.c.at < until)
        stmt = stmt.order_by(v.c.at).limit(limit)
        return [_rows.to_viewer_sample(row) for row in await self._all(stmt)]
