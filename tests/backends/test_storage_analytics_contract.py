"""The analytics part of the `Store` contract (issue 14), on every backend: ingest health
samples, chat counts from chat_messages, rollups and their progress, retention.

Parametrised by `store_url` (conftest): SQLite file, SQLite in memory, PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import pytest

from streamscale.backends.storage import (
    ChatMessage,
    HealthSample,
    Rollup,
    SqlStore,
    ViewerSample,
    open_store,
)

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    async with await open_store(store_url) as opened:
        yield opened


def health(stream_id: str, seconds: float, **overrides: object) -> HealthSample:
    values: dict[str, object] = dict(
        stream_id=stream_id, at=at(seconds), interval_s=2.0, ingest_kbps=2500.0,
        frame_rate_fps=30.0, keyframe_interval_s=2.0, frames=60, dropped_frames=1,
        transcoder_behind_s=0.1, transcoder_load=0.6, shed_rungs=("720p",))
    values.update(overrides)
    return HealthSample(**values)  # type: ignore[arg-type]


def viewers(stream_id: str, seconds: float, concurrent: int) -> ViewerSample:
    return ViewerSample(stream_id=stream_id, at=at(seconds), interval_s=5.0,
                        concurrent=concurrent, unique_viewers=concurrent, by_rendition={},
                        bytes=1000, watch_s=5.0 * concurrent)


async def test_health_samples_round_trip_idempotent_and_by_range(store: SqlStore) -> None:
    samples = [health("s1", t) for t in (0, 2, 4)] + [health("s2", 2, shed_rungs=())]
    await store.add_health_samples(samples)
    await store.add_health_samples([health("s1", 2, ingest_kbps=1.0)])  # a retry: kept as is
    got = await store.list_health_samples("s1")
    assert got == samples[:3]
    assert await store.list_health_samples("s1", since=at(2), until=at(4)) == [samples[1]]
    assert await store.list_health_samples("s1", limit=1) == [samples[0]]
    scanned = await store.scan_health_samples(since=at(2), until=at(3))
    assert {(s.stream_id, s.at) for s in scanned} == {("s1", at(2)), ("s2", at(2))}
    assert next(s for s in scanned if s.stream_id == "s2").shed_rungs == ()


async def test_scan_viewer_samples_across_streams(store: SqlStore) -> None:
    await store.add_viewer_samples([viewers("a", 5, 1), viewers("b", 5, 2), viewers("a", 65, 3)])
    got = await store.scan_viewer_samples(since=at(0), until=at(60))
    assert sorted((s.stream_id, s.concurrent) for s in got) == [("a", 1), ("b", 2)]


async def test_chat_activity_counts_posted_held_and_removed_per_bucket(
    store: SqlStore,
) -> None:
    def msg(room: str, seconds: float, **kw: object) -> ChatMessage:
        return ChatMessage(id=uuid.uuid4().hex, stream_id=room, user_id="u1",
                           client_msg_id=uuid.uuid4().hex[:8], message="hi",
                           created_at=at(seconds), **kw)  # type: ignore[arg-type]

    for seconds in (1, 2, 61):
        await store.add_chat_message(msg("r1", seconds))
    held, _ = await store.add_chat_message(msg("r1", 3, status="held",
                                               moderation={"reasons": ["link"]}))
    approved, _ = await store.add_chat_message(msg("r1", 4, status="held",
                                                   moderation={"reasons": ["link"]}))
    await store.add_chat_message(msg("r2", 5))
    await store.set_chat_message_status(approved.id, status="visible", expected=("held",))
    # a message posted in the first minute, removed in the second
    await store.set_chat_message_status(held.id, status="deleted", expected=("held",),
                                        by="u1", at=at(70))
    got = await store.chat_activity(since=at(0), until=at(120), bucket_s=60)
    table = {(a.stream_id, a.at): (a.messages, a.held, a.removed) for a in got}
    assert table == {("r1", at(0)): (4, 2, 0), ("r1", at(60)): (1, 0, 1),
                     ("r2", at(0)): (1, 0, 0)}
    only = await store.chat_activity(since=at(0), until=at(60), bucket_s=60, stream_id="r2")
    assert [(a.stream_id, a.messages) for a in only] == [("r2", 1)]


async def test_rollups_upsert_list_scan(store: SqlStore) -> None:
    first = Rollup(stream_id="s1", resolution_s=60, at=at(0), viewer_samples=12,
                   concurrent_avg=2.5, concurrent_max=3, by_rendition={"360p": 3},
                   chat_messages=4, health_samples=30, frame_rate_fps=29.9,
                   shed_rungs=("480p", "720p"))
    await store.upsert_rollups([first, Rollup(stream_id="s1", resolution_s=60, at=at(60)),
                                Rollup(stream_id="s1", resolution_s=3600, at=at(0)),
                                Rollup(stream_id="s2", resolution_s=60, at=at(0))])
    again = Rollup(stream_id="s1", resolution_s=60, at=at(0), concurrent_max=9,
                   by_rendition={"160p": 1})
    await store.upsert_rollups([again])  # replaced, not doubled
    got = await store.list_rollups("s1", resolution_s=60)
    assert [r.at for r in got] == [at(0), at(60)]
    assert got[0] == again
    assert await store.list_rollups("s1", resolution_s=60, since=at(30)) == [got[1]]
    await store.upsert_rollups([first])
    assert (await store.list_rollups("s1", resolution_s=60, limit=1)) == [first]
    scanned = await store.scan_rollups(resolution_s=60, since=at(0), until=at(60))
    assert sorted(r.stream_id for r in scanned) == ["s1", "s2"]


async def test_rolled_until_only_moves_forward(store: SqlStore) -> None:
    assert await store.get_rolled_until(60) is None
    await store.set_rolled_until(60, at(120))
    await store.set_rolled_until(60, at(60))
    assert await store.get_rolled_until(60) == at(120)
    await store.set_rolled_until(60, at(180))
    assert await store.get_rolled_until(60) == at(180)
    assert await store.get_rolled_until(3600) is None


async def test_delete_analytics_before(store: SqlStore) -> None:
    await store.add_viewer_samples([viewers("s", 0, 1), viewers("s", 100, 1)])
    await store.add_health_samples([health("s", 0), health("s", 100)])
    await store.upsert_rollups([Rollup(stream_id="s", resolution_s=60, at=at(0)),
                                Rollup(stream_id="s", resolution_s=60, at=at(120)),
                                Rollup(stream_id="s", resolution_s=3600, at=at(0))])
    deleted = await store.delete_analytics_before(raw_before=at(50),
                                                  rollups_before={60: at(60)})
    assert deleted == 3
    assert [s.at for s in await store.list_viewer_samples("s")] == [at(100)]
    assert [s.at for s in await store.list_health_samples("s")] == [at(100)]
    assert [r.at for r in await store.list_rollups("s", resolution_s=60)] == [at(120)]
    assert [r.at for r in await store.list_rollups("s", resolution_s=3600)] == [at(0)]
