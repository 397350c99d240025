"""The social part of the `Store` contract (issue 14: followers, recommendations), on every
backend: watch history, followed streamers live now, categories watched and followed, and
the went-live fan-out's "which of these users follow X".

Parametrised by `store_url` (conftest): SQLite file, SQLite in memory, PostgreSQL.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from test_storage_contract import T0, _id, make_stream, make_user

from streamscale.backends.storage import NotFound, SqlStore, Stream, User, open_store


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    async with await open_store(store_url) as opened:
        yield opened


async def _user(store: SqlStore, name: str) -> User:
    user = make_user(f"{name}_{_id()[:6]}")
    await store.create_user(user)
    return user


async def _stream(store: SqlStore, user: User, *, category: str = "games", status: str = "live",
                  viewers: int = 0, minute: int = 0, title: str = "s") -> Stream:
    at = T0 + timedelta(minutes=minute)
    stream = make_stream(user.id, category=category, status=status, viewer_count=viewers,
                         created_at=at, title=title,
                         started_at=at if status != "created" else None)
    await store.create_stream(stream)
    return stream


async def test_record_watch_counts_and_lists_newest_first(store: SqlStore) -> None:
    viewer = await _user(store, "viewer")
    owner = await _user(store, "owner")
    a = await _stream(store, owner, category="music")
    b = await _stream(store, owner, category="chess")
    first = await store.record_watch(user_id=viewer.id, stream_id=a.id, at=T0)
    assert (first.watches, first.category, first.first_at, first.last_at) == (1, "music", T0, T0)
    await store.record_watch(user_id=viewer.id, stream_id=b.id, at=T0 + timedelta(seconds=1))
    again = await store.record_watch(user_id=viewer.id, stream_id=a.id,
                                     at=T0 + timedelta(seconds=2))
    assert (again.watches, again.first_at, again.last_at) == (2, T0, T0 + timedelta(seconds=2))

    page = await store.list_watches(viewer.id, limit=1)
    assert [w.stream_id for w in page.items] == [a.id] and page.next_cursor
    rest = await store.list_watches(viewer.id, cursor=page.next_cursor)
    assert [(w.stream_id, w.category, w.watches) for w in rest.items] == [(b.id, "chess", 1)]
    assert rest.next_cursor is None
    assert (await store.list_watches(owner.id)).items == []


async def test_record_watch_of_unknown_stream_or_user_is_not_found(store: SqlStore) -> None:
    viewer = await _user(store, "viewer")
    stream = await _stream(store, await _user(store, "owner"))
    with pytest.raises(NotFound):
        await store.record_watch(user_id=viewer.id, stream_id=_id(), at=T0)
    with pytest.raises(NotFound):
        await store.record_watch(user_id=_id(), stream_id=stream.id, at=T0)


async def test_account_deletion_erases_watch_history(store: SqlStore) -> None:
    viewer = await _user(store, "viewer")
    stream = await _stream(store, await _user(store, "owner"))
    await store.record_watch(user_id=viewer.id, stream_id=stream.id, at=T0)
    assert await store.delete_user(viewer.id, at=T0)
    assert (await store.list_watches(viewer.id)).items == []
    assert await store.watched_categories(viewer.id) == []
    with pytest.raises(NotFound):  # a tombstone gathers no new history
        await store.record_watch(user_id=viewer.id, stream_id=stream.id, at=T0)


async def test_watched_categories_rank_by_streams_then_recency(store: SqlStore) -> None:
    viewer = await _user(store, "viewer")
    owner = await _user(store, "owner")
    streams = [await _stream(store, owner, category=c)
               for c in ("music", "music", "chess", "art", "games")]
    for minute, s in enumerate(streams):
        await store.record_watch(user_id=viewer.id, stream_id=s.id,
                                 at=T0 + timedelta(minutes=minute))
    # watching one stream again does not make its category count twice
    await store.record_watch(user_id=viewer.id, stream_id=streams[2].id,
                             at=T0 + timedelta(minutes=9))
    got = await store.watched_categories(viewer.id, limit=3)
    assert [(c.category, c.streams, c.last_at) for c in got] == [
        ("music", 2, T0 + timedelta(minutes=1)),
        ("chess", 1, T0 + timedelta(minutes=9)),
        ("games", 1, T0 + timedelta(minutes=4)),
    ]


async def test_following_live_ranks_by_viewers_and_skips_the_rest(store: SqlStore) -> None:
    fan = await _user(store, "fan")
    big, small, offline, unfollowed = [await _user(store, n)
                                       for n in ("big", "small", "offline", "unfollowed")]
    for star in (big, small, offline):
        await store.follow(user_id=star.id, follower_id=fan.id, at=T0)
    big_live = await _stream(store, big, viewers=50)
    small_live = await _stream(store, small, viewers=5, minute=1)
    small_tie = await _stream(store, small, viewers=5, minute=2)  # newer start first on a tie
    await _stream(store, offline, status="ended", viewers=0)
    await _stream(store, offline, status="created")
    await _stream(store, unfollowed, viewers=500)
    got = await store.following_live(fan.id)
    assert [c.stream.id for c in got] == [big_live.id, small_tie.id, small_live.id]
    assert (got[0].username, got[0].display_name) == (big.username, big.display_name)
    assert [c.stream.id for c in await store.following_live(fan.id, limit=1)] == [big_live.id]
    assert await store.following_live(big.id) == []


async def test_followed_categories_newest_first_one_streamer_each(store: SqlStore) -> None:
    fan = await _user(store, "fan")
    a, b = await _user(store, "a"), await _user(store, "b")
    for star in (a, b):
        await store.follow(user_id=star.id, follower_id=fan.id, at=T0)
    await _stream(store, a, category="chess", status="ended", minute=1)
    await _stream(store, b, category="chess", status="ended", minute=5)
    await _stream(store, a, category="music", status="created", minute=3)
    await _stream(store, await _user(store, "stranger"), category="art", minute=9)
    got = await store.followed_categories(fan.id)
    assert [(c.category, c.user_id, c.username, c.latest_at) for c in got] == [
        ("chess", b.id, b.username, T0 + timedelta(minutes=5)),
        ("music", a.id, a.username, T0 + timedelta(minutes=3)),
    ]
    assert [c.category for c in await store.followed_categories(fan.id, limit=1)] == ["chess"]


async def test_live_in_categories_leaves_out_the_viewer_and_followed(store: SqlStore) -> None:
    viewer = await _user(store, "viewer")
    followed, x, y = [await _user(store, n) for n in ("followed", "x", "y")]
    await store.follow(user_id=followed.id, follower_id=viewer.id, at=T0)
    own = await _stream(store, viewer, category="chess", viewers=99)
    await _stream(store, followed, category="chess", viewers=80)
    x_chess = await _stream(store, x, category="chess", viewers=10)
    y_music = await _stream(store, y, category="music", viewers=20)
    await _stream(store, y, category="art", viewers=30)
    await _stream(store, x, category="music", status="ended", viewers=0)
    got = await store.live_in_categories(["chess", "music"], viewer_id=viewer.id)
    assert [c.stream.id for c in got] == [y_music.id, x_chess.id]
    everyone = await store.live_in_categories(["chess"])
    assert [c.stream.id for c in everyone][:1] == [own.id] and len(everyone) == 3
    assert await store.live_in_categories([], viewer_id=viewer.id) == []


async def test_followers_among(store: SqlStore) -> None:
    star = await _user(store, "star")
    fans = [await _user(store, f"fan{i}") for i in range(3)]
    for fan in fans[:2]:
        await store.follow(user_id=star.id, follower_id=fan.id, at=T0)
    candidates = [f.id for f in fans] + [_id() for _ in range(1200)]  # past one IN chunk
    assert await store.followers_among(star.id, candidates) == {fans[0].id, fans[1].id}
    assert await store.followers_among(star.id, []) == set()
    assert await store.followers_among(fans[0].id, candidates) == set()
