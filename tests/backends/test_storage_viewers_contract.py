"""The viewer-count part of the `Store` contract (issue 12), on every backend.

Parametrised by `store_url` (conftest): SQLite file, SQLite in memory, PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest
from alembic import command
from sqlalchemy import text
from test_storage_contract import T0, _id, make_stream, make_user

from streamscale.backends.storage import SqlStore, ViewerSample, _rows, migrate, open_store
from streamscale.backends.storage._engine import alembic_config, make_engine


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    async with await open_store(store_url) as opened:
        yield opened


async def _live_stream(store: SqlStore) -> str:
    owner = make_user()
    await store.create_user(owner)
    stream = make_stream(owner.id, status="live", started_at=T0)
    await store.create_stream(stream)
    return stream.id


async def test_new_stream_has_no_viewers(store: SqlStore) -> None:
    stream_id = await _live_stream(store)
    got = await store.get_stream(stream_id)
    assert got is not None
    assert (got.viewer_count, got.peak_viewers, got.unique_viewers,
            dict(got.viewers_by_rendition)) == (0, 0, 0, {})


async def test_set_viewer_count_writes_unique_and_renditions_and_raises_peak(
    store: SqlStore,
) -> None:
    stream_id = await _live_stream(store)
    assert await store.set_viewer_count(stream_id, 7, unique_viewers=9,
                                        by_rendition={"720p": 5, "360p": 2})
    got = await store.get_stream(stream_id)
    assert got is not None
    assert (got.viewer_count, got.peak_viewers, got.unique_viewers) == (7, 7, 9)
    assert dict(got.viewers_by_rendition) == {"720p": 5, "360p": 2}
    assert await store.set_viewer_count(stream_id, 3)  # the others are left as they were
    got = await store.get_stream(stream_id)
    assert got is not None
    assert (got.viewer_count, got.peak_viewers, got.unique_viewers) == (3, 7, 9)
    assert dict(got.viewers_by_rendition) == {"720p": 5, "360p": 2}
    # a restarted counter (another worker took the stream over) cannot lower unique
    assert await store.set_viewer_count(stream_id, 4, unique_viewers=4, by_rendition={})
    got = await store.get_stream(stream_id)
    assert got is not None
    assert (got.viewer_count, got.peak_viewers, got.unique_viewers) == (4, 7, 9)
    assert dict(got.viewers_by_rendition) == {}
    assert await store.set_viewer_count(stream_id, 4, unique_viewers=11)
    got = await store.get_stream(stream_id)
    assert got is not None and got.unique_viewers == 11
    page = await store.list_streams(status="live")
    listed = next(s for s in page.items if s.id == stream_id)
    assert listed == got


async def test_set_viewer_count_refuses_negatives(store: SqlStore) -> None:
    stream_id = await _live_stream(store)
    with pytest.raises(ValueError, match="negative"):
        await store.set_viewer_count(stream_id, 1, unique_viewers=-1)
    with pytest.raises(ValueError, match="negative"):
        await store.set_viewer_count(stream_id, 1, by_rendition={"720p": -2})


async def test_ending_a_stream_zeroes_its_counts_and_later_counts_are_ignored(
    store: SqlStore,
) -> None:
    stream_id = await _live_stream(store)
    assert await store.set_viewer_count(stream_id, 12, unique_viewers=20,
                                        by_rendition={"720p": 12})
    ended = await store.set_stream_status(stream_id, status="ended", expected=("live",),
                                          at=T0 + timedelta(hours=1))
    assert ended is not None
    assert (ended.viewer_count, ended.peak_viewers, ended.unique_viewers,
            dict(ended.viewers_by_rendition)) == (0, 12, 20, {})
    # A sample taken before the end but written after it must not bring viewers back.
    assert not await store.set_viewer_count(stream_id, 5, by_rendition={"720p": 5})
    assert await store.get_stream(stream_id) == ended
    assert not await store.set_viewer_count("missing", 3)


def _sample(stream_id: str, second: int, **overrides: object) -> ViewerSample:
    sample = ViewerSample(
        stream_id=stream_id, at=T0 + timedelta(seconds=second), interval_s=5.0,
        concurrent=second, unique_viewers=second * 2, by_rendition={"720p": second, "": 0},
        bytes=second * 1_000_000_000_000,  # past 32 bits: a long stream's bytes
        watch_s=second * 4.5,
    )
    return replace(sample, **overrides)  # type: ignore[arg-type]


async def test_viewer_samples_in_a_time_range_oldest_first(store: SqlStore) -> None:
    stream_id = _id()
    samples = [_sample(stream_id, s) for s in (15, 0, 20, 5, 10)]
    await store.add_viewer_samples(samples)
    await store.add_viewer_samples([_sample("other", 5)])
    await store.add_viewer_samples([])
    ordered = sorted(samples, key=lambda s: s.at)
    assert await store.list_viewer_samples(stream_id) == ordered
    assert await store.list_viewer_samples(
        stream_id, since=T0 + timedelta(seconds=5), until=T0 + timedelta(seconds=15)
    ) == ordered[1:3]
    assert await store.list_viewer_samples(stream_id, until=T0) == []
    assert await store.list_viewer_samples(stream_id, limit=2) == ordered[:2]
    assert await store.list_viewer_samples("nothing") == []
    with pytest.raises(ValueError, match="limit"):
        await store.list_viewer_samples(stream_id, limit=0)


async def test_a_retried_sample_write_is_kept_once(store: SqlStore) -> None:
    stream_id = _id()
    first = _sample(stream_id, 5)
    await store.add_viewer_samples([first])
    await store.add_viewer_samples([replace(first, concurrent=99), _sample(stream_id, 10)])
    got = await store.list_viewer_samples(stream_id)
    assert got == [first, _sample(stream_id, 10)]


async def test_many_samples_in_one_write(store: SqlStore) -> None:
    stream_id = _id()
    samples = [_sample(stream_id, s) for s in range(1_200)]  # more than one INSERT's rows
    await store.add_viewer_samples(samples)
    assert await store.list_viewer_samples(stream_id, limit=2_000) == samples


def test_0004_fills_existing_streams(file_url: str) -> None:
    """Streams made before 0004 read back with no unique viewers and no renditions."""
    engine = make_engine(file_url, threads=1)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, "0003")
            owner = make_user()
            conn.execute(text(
                "INSERT INTO users (id, username, username_key, email, password_hash, "
                "display_name, bio, created_at, updated_at) VALUES "
                "(:id, :u, :u, :e, '', '', '', :t, :t)"),
                {"id": owner.id, "u": owner.username, "e": owner.email, "t": T0})
            old = make_stream(owner.id, viewer_count=4, peak_viewers=6)
            columns = {c: v for c, v in _rows.stream_values(old).items()
                       if c not in ("unique_viewers", "viewers_by_rendition")}
            conn.execute(text(
                f"INSERT INTO streams ({', '.join(columns)}) "
                f"VALUES ({', '.join(':' + c for c in columns)})"), columns)
        migrate(file_url)
        with engine.connect() as conn:
            row = conn.execute(text(
                "SELECT viewer_count, peak_viewers, unique_viewers, viewers_by_rendition "
                "FROM streams WHERE id = :id"), {"id": old.id}).one()
        assert tuple(row) == (4, 6, 0, "{}")
    finally:
        engine.dispose()

