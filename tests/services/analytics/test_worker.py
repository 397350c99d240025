"""The analytics worker over a real bus (in-process and Redis at 127.0.0.1:6379) into a
real store (SQLite file): records in, counts and samples out.

Real time with short intervals (the store works in threads, which MockClock's autojump
would race); every wait is on the worker's `wrote` event with a deadline.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import trio

from streamscale.backends.bus import Bus, open_bus
from streamscale.backends.storage import SqlStore, Store, Stream, User, open_store
from streamscale.services.analytics import AnalyticsWorker
from streamscale.services.cdn.records import RECORDS_QUEUE, SessionUsage, UsageBatch
from streamscale.testing.redis_keys import redis_key_prefix

REDIS = "redis://127.0.0.1:6379/0"
IDLE_S = 1.0
SAMPLE_S = 0.1
T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.redis)])
def bus_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def prefix() -> Iterator[str]:
    yield from redis_key_prefix("analytics")


@pytest.fixture
async def bus(bus_kind: str, prefix: str) -> AsyncIterator[Bus]:
    url = "memory://" if bus_kind == "memory" else f"{REDIS}?prefix={prefix}"
    options: dict[str, Any] = {} if bus_kind == "memory" else {"lease_s": 1.0, "block_s": 0.1}
    opened = await open_bus(url, shards=8, **options)
    yield opened
    await opened.close()


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlStore]:
    async with await open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        yield opened


async def live_stream(store: Store) -> str:
    user_id, stream_id = uuid.uuid4().hex, uuid.uuid4().hex
    await store.create_user(User(id=user_id, username=f"u{user_id[:10]}",
                                 email=f"{user_id[:10]}@example.com", password_hash="x",
                                 display_name="U", bio="", created_at=T0, updated_at=T0))
    await store.create_stream(Stream(
        id=stream_id, user_id=user_id, title="t", category="c", tags=(), quality="source",
        status="live", key_hash=uuid.uuid4().hex, key_rotated_at=T0, created_at=T0,
        started_at=T0, ended_at=None, viewer_count=0, peak_viewers=0))
    return stream_id


def records(stream_id: str, sessions: dict[str, str], *, source: str = "a1",
            nbytes: int = 1000) -> bytes:
    now = time.time()
    return UsageBatch(
        source=source, cdn=source[:1], stream_id=stream_id, start_s=now - SAMPLE_S, end_s=now,
        sessions=tuple(SessionUsage(session=sid, rendition=rendition, requests=2,
                                    bytes=nbytes, last_s=now)
                       for sid, rendition in sessions.items()),
    ).encode()


@asynccontextmanager
async def running(worker: AnalyticsWorker) -> AsyncIterator[AnalyticsWorker]:
    async with trio.open_nursery() as nursery:
        await nursery.start(worker.run)
        yield worker
        nursery.cancel_scope.cancel()


def make_worker(store: Store, bus: Bus, name: str = "w1") -> AnalyticsWorker:
    return AnalyticsWorker(store, bus, worker_id=name, idle_s=IDLE_S, sample_s=SAMPLE_S)


async def until(worker: AnalyticsWorker, check: Callable[[], Awaitable[bool]],
                *, timeout_s: float = 15.0, feed: Callable[[], Awaitable[None]] | None = None,
                on_tick: bool = False) -> None:
    """Wait, write by write (or tick by tick), until `check()`; `feed` runs before each
    wait (viewers that keep fetching)."""
    with trio.fail_after(timeout_s):
        while True:
            if feed is not None:
                await feed()
            if await check():
                return
            await (worker.ticked if on_tick else worker.wrote).wait()


async def viewers(store: Store, stream_id: str) -> Stream:
    stream = await store.get_stream(stream_id)
    assert stream is not None
    return stream


async def test_records_become_counts_then_zero_when_viewers_stop(
    store: SqlStore, bus: Bus
) -> None:
    stream_id = await live_stream(store)
    a1 = {f"sid-{n}": "720p" if n < 3 else "360p" for n in range(5)}
    b1 = {"sid-0": "720p", "sid-5": "160p"}  # sid-0 also fetches from the other CDN

    async def feed() -> None:
        await bus.enqueue(RECORDS_QUEUE, stream_id, records(stream_id, a1))
        await bus.enqueue(RECORDS_QUEUE, stream_id, records(stream_id, b1, source="b1"))

    async with running(make_worker(store, bus)) as worker:
        await bus.enqueue(RECORDS_QUEUE, stream_id, b"not a batch")
        await bus.enqueue(RECORDS_QUEUE, stream_id, b'{"v": 1, "sessions": [[1]]}')

        async def six() -> bool:
            s = await viewers(store, stream_id)
            return s.viewer_count == 6 and worker.stats.batches >= 4

        await until(worker, six, feed=feed)
        stream = await viewers(store, stream_id)
        assert (stream.viewer_count, stream.peak_viewers, stream.unique_viewers) == (6, 6, 6)
        assert dict(stream.viewers_by_rendition) == {"720p": 3, "360p": 2, "160p": 1}
        assert worker.stats.bad_batches == 2  # logged, acked, and the worker goes on

        async def zero() -> bool:
            return (await viewers(store, stream_id)).viewer_count == 0

        await until(worker, zero)  # nobody fetches any more: idle after IDLE_S
        stream = await viewers(store, stream_id)
        assert (stream.viewer_count, stream.peak_viewers, stream.unique_viewers) == (0, 6, 6)
        assert dict(stream.viewers_by_rendition) == {}

    samples = await store.list_viewer_samples(stream_id)
    assert max(s.concurrent for s in samples) == 6
    assert samples[-1].concurrent == 0
    assert sum(s.bytes for s in samples) == 7_000 * worker.stats.batches // 2
    assert all(s.unique_viewers == 6 for s in samples if s.concurrent == 6)


async def test_an_ended_stream_drops_to_zero_and_its_late_records_are_ignored(
    store: SqlStore, bus: Bus
) -> None:
    stream_id = await live_stream(store)
    sessions = {f"sid-{n}": "720p" for n in range(3)}

    async def feed() -> None:
        await bus.enqueue(RECORDS_QUEUE, stream_id, records(stream_id, sessions))

    async with running(make_worker(store, bus)) as worker:
        async def three() -> bool:
            return (await viewers(store, stream_id)).viewer_count == 3

        await until(worker, three, feed=feed)
        await store.set_stream_status(stream_id, status="ended", expected=("live",), at=T0)

        async def ignored() -> bool:
            return worker.stats.ignored_batches > 0

        # viewers still fetching the last parts: their records are skipped
        await until(worker, ignored, feed=feed, on_tick=True)
        assert stream_id not in worker.counts
        stream = await viewers(store, stream_id)
        assert (stream.status, stream.viewer_count, stream.peak_viewers) == ("ended", 0, 3)


class FlakyStore:
    """The real store, whose viewer writes fail while `failing` is set."""

    def __init__(self, store: SqlStore) -> None:
        self.store = store
        self.failing = False
        self.refused = 0

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    async def set_viewer_count(self, stream_id: str, viewers: int, **kw: Any) -> bool:
        if self.failing:
            self.refused += 1
            raise ConnectionError("database down")
        return await self.store.set_viewer_count(stream_id, viewers, **kw)

    async def add_viewer_samples(self, samples: Any) -> None:
        if self.failing:
            self.refused += 1
            raise ConnectionError("database down")
        await self.store.add_viewer_samples(samples)


@pytest.mark.parametrize("bus_kind", ["memory"])
async def test_a_store_outage_loses_neither_counts_nor_samples(
    store: SqlStore, bus: Bus
) -> None:
    flaky = FlakyStore(store)
    stream_id = await live_stream(store)
    sessions = {f"sid-{n}": "480p" for n in range(4)}

    async def feed() -> None:
        await bus.enqueue(RECORDS_QUEUE, stream_id, records(stream_id, sessions))

    worker = AnalyticsWorker(cast(Store, flaky), bus, worker_id="w1", idle_s=IDLE_S,
                             sample_s=SAMPLE_S, retry_s=SAMPLE_S)
    async with running(worker):
        flaky.failing = True
        with trio.fail_after(15):
            while worker.stats.store_failures < 3:  # several ticks fail to store
                await feed()
                await worker.ticked.wait()
        ticks_during_outage = worker.stats.ticks
        flaky.failing = False

        async def four() -> bool:
            return (await viewers(store, stream_id)).viewer_count == 4

        await until(worker, four, feed=feed)
    samples = await store.list_viewer_samples(stream_id)
    # the samples taken while the store was down were kept and written afterwards
    assert len(samples) >= ticks_during_outage - 1
    assert [s.at for s in samples] == sorted({s.at for s in samples})
    assert samples[0].concurrent == 4


@pytest.mark.parametrize("bus_kind", ["memory"])
async def test_two_workers_share_streams_and_each_stream_is_counted_whole(
    store: SqlStore, bus: Bus
) -> None:
    streams = [await live_stream(store) for _ in range(6)]
    audience = {sid: {f"{sid}-v{n}": "720p" for n in range(i + 1)}
                for i, sid in enumerate(streams)}

    async def feed() -> None:
        for sid in streams:
            half = dict(list(audience[sid].items())[::2])
            await bus.enqueue(RECORDS_QUEUE, sid, records(sid, audience[sid]))
            await bus.enqueue(RECORDS_QUEUE, sid, records(sid, half, source="b1"))

    one, two = make_worker(store, bus, "w1"), make_worker(store, bus, "w2")
    async with running(one), running(two):
        async def counted() -> bool:
            got = [(await viewers(store, sid)).viewer_count for sid in streams]
            return got == [len(audience[sid]) for sid in streams]

        await until(one, counted, feed=feed)
    assert one.stats.batches and two.stats.batches  # the work was shared


async def test_streams_move_between_workers_without_losing_their_counts(
    store: SqlStore, bus: Bus
) -> None:
    """A second worker joins, then the first leaves: each stream's shard moves, its new
    owner counts it from its next records, and unique_viewers never falls."""
    streams = [await live_stream(store) for _ in range(8)]
    audience = {sid: {f"{sid}-v{n}": "720p" for n in range(3)} for sid in streams}

    async def feed() -> None:
        for sid in streams:
            await bus.enqueue(RECORDS_QUEUE, sid, records(sid, audience[sid]))

    async def counted() -> bool:
        got = [await viewers(store, sid) for sid in streams]
        return all((s.viewer_count, s.unique_viewers) == (3, 3) for s in got)

    one, two = make_worker(store, bus, "w1"), make_worker(store, bus, "w2")
    async with trio.open_nursery() as nursery:
        one_scope = trio.CancelScope()

        async def run_one() -> None:
            with one_scope:
                await one.run()

        nursery.start_soon(run_one)
        await until(one, counted, feed=feed)
        async with running(two):
            async def shared() -> bool:
                return two.stats.batches > 0 and len(list(one.counts.streams())) < 8

            await until(two, shared, feed=feed, on_tick=True)
            await until(two, counted, feed=feed)
            one_scope.cancel()  # the first worker leaves: the second gets every shard

            async def alone() -> bool:
                return len(list(two.counts.streams())) == 8

            await until(two, alone, feed=feed, on_tick=True)
            await until(two, counted, feed=feed)
    for sid in streams:
        assert (await viewers(store, sid)).peak_viewers == 3
        # the worker a stream left never wrote it down to 0: every sample saw all three
        assert {s.concurrent for s in await store.list_viewer_samples(sid)} == {3}
