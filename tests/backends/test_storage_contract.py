"""The `Store` contract, run against every implementation over real connections.

Parametrised by `store_url` (conftest): SQLite file, SQLite in memory, PostgreSQL.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from functools import partial
from typing import Any

import pytest
import trio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Select, func, select

from streamscale.backends.storage import (
    AnalyticsSample,
    ChatMessage,
    Conflict,
    NotFound,
    RefreshToken,
    SigningKey,
    SqlStore,
    Store,
    Stream,
    User,
    open_store,
)
from streamscale.backends.storage._tables import refresh_tokens, users

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _id() -> str:
    return uuid.uuid4().hex


def make_user(username: str | None = None, **overrides: object) -> User:
    name = username or f"user_{_id()[:12]}"
    user = User(
        id=_id(),
        username=name,
        email=f"{_id()[:12]}@example.com",
        password_hash="argon2id$hash",
        display_name=name.title(),
        bio="",
        created_at=T0,
        updated_at=T0,
    )
    return replace(user, **overrides)  # type: ignore[arg-type]


def make_stream(user_id: str, **overrides: object) -> Stream:
    stream = Stream(
        id=_id(),
        user_id=user_id,
        title="Speedrun",
        category="games",
        tags=("any%", "pb"),
        quality="720p",
        status="created",
        key_hash=_id() + _id(),
        key_rotated_at=T0,
        created_at=T0,
        started_at=None,
        ended_at=None,
        viewer_count=0,
        peak_viewers=0,
    )
    return replace(stream, **overrides)  # type: ignore[arg-type]


def make_token(user_id: str, family_id: str | None = None, **overrides: object) -> RefreshToken:
    token = RefreshToken(
        token_hash=_id() + _id(),
        user_id=user_id,
        family_id=family_id or _id(),
        created_at=T0,
        expires_at=T0 + timedelta(days=30),
        used_at=None,
        revoked_at=None,
    )
    return replace(token, **overrides)  # type: ignore[arg-type]


async def scalar(store: SqlStore, stmt: Select[Any]) -> Any:
    """Peek at the tables directly (in a thread, as the store itself does)."""

    def work() -> Any:
        with store.engine.connect() as conn:
            return conn.execute(stmt).scalar_one()

    return await trio.to_thread.run_sync(work)


SECRETS_KEY = bytes(range(100, 132))  # seals signing keys (test_storage_sealing.py)


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    async with await open_store(store_url, secrets_key=SECRETS_KEY) as opened:
        yield opened


async def test_sql_store_satisfies_protocol(store: SqlStore) -> None:
    checked: Store = store  # mypy checks the signatures; this checks it runs
    assert await checked.get_user("nobody") is None


# users ----------------------------------------------------------------------------------
async def test_user_round_trip_and_case_insensitive_lookups(store: SqlStore) -> None:
    user = make_user("Alice", email="Alice@Example.COM", bio="héllo ✓")
    await store.create_user(user)
    expected = replace(user, email="alice@example.com")
    assert await store.get_user(user.id) == expected
    assert await store.get_user_by_username("aLICE") == expected
    assert await store.get_user_by_email("ALICE@example.com") == expected
    assert await store.get_user_by_username("bob") is None
    assert await store.get_user_by_email("bob@example.com") is None
    got = await store.get_user(user.id)
    assert got is not None
    assert got.created_at.tzinfo is UTC


async def test_times_come_back_as_utc_whatever_zone_went_in(store: SqlStore) -> None:
    zoned = T0.astimezone(timezone(timedelta(hours=5)))
    user = make_user(created_at=zoned, updated_at=zoned)
    await store.create_user(user)
    got = await store.get_user(user.id)
    assert got is not None
    assert got.created_at == T0
    assert got.created_at.utcoffset() == timedelta(0)


async def test_username_conflict_is_case_insensitive(store: SqlStore) -> None:
    await store.create_user(make_user("Alice"))
    with pytest.raises(Conflict) as info:
        await store.create_user(make_user("aLiCe"))
    assert info.value.field == "username"


async def test_email_conflict_is_case_insensitive(store: SqlStore) -> None:
    await store.create_user(make_user("alice", email="a@example.com"))
    with pytest.raises(Conflict) as info:
        await store.create_user(make_user("bob", email="A@EXAMPLE.com"))
    assert info.value.field == "email"


async def test_username_conflict_is_reported_before_email(store: SqlStore) -> None:
    """Both taken: every backend names the username, whatever order it checks in."""
    alice = make_user("alice")
    await store.create_user(alice)
    with pytest.raises(Conflict) as info:
        await store.create_user(make_user("ALICE", email=alice.email))
    assert info.value.field == "username"


async def test_duplicate_user_id_conflicts(store: SqlStore) -> None:
    user = make_user("alice")
    await store.create_user(user)
    with pytest.raises(Conflict) as info:
        await store.create_user(replace(user, username="bob", email="bob@example.com"))
    assert info.value.field == "id"


async def test_update_user(store: SqlStore) -> None:
    alice, bob = make_user("alice"), make_user("bob")
    await store.create_user(alice)
    await store.create_user(bob)
    later = T0 + timedelta(minutes=5)
    updated = await store.update_user(
        alice.id, email="New@Example.com", bio="streams daily", updated_at=later
    )
    assert updated == replace(alice, email="new@example.com", bio="streams daily", updated_at=later)
    assert await store.get_user(alice.id) == updated
    only_time = await store.update_user(alice.id, updated_at=later + timedelta(seconds=1))
    assert only_time.bio == "streams daily"
    with pytest.raises(Conflict) as info:
        await store.update_user(alice.id, email=bob.email.upper(), updated_at=later)
    assert info.value.field == "email"
    assert await store.get_user(alice.id) == only_time  # nothing written
    with pytest.raises(NotFound):
        await store.update_user("missing", bio="x", updated_at=later)


async def test_same_username_from_200_tasks_makes_one_user(store: SqlStore) -> None:
    outcomes: list[str] = []

    async def register(i: int) -> None:
        user = make_user("Racer" if i % 2 else "racer", email=f"racer{i}@example.com")
        try:
            await store.create_user(user)
        except Conflict as exc:
            outcomes.append(exc.field)
        else:
            outcomes.append("created")

    async with trio.open_nursery() as nursery:
        for i in range(200):
            nursery.start_soon(register, i)
    assert sorted(outcomes) == ["created"] + ["username"] * 199
    count = select(func.count()).select_from(users).where(users.c.username_key == "racer")
    assert await scalar(store, count) == 1


async def test_same_username_from_two_stores_on_one_database(file_url: str) -> None:
    """Writers in different pools contend in the database itself (file lock, row lock)."""
    outcomes: list[str] = []
    async with await open_store(file_url) as one, await open_store(file_url) as two:

        async def register(target: SqlStore, i: int) -> None:
            try:
                await target.create_user(make_user("twin", email=f"twin{i}@example.com"))
            except Conflict as exc:
                outcomes.append(exc.field)
            else:
                outcomes.append("created")

        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(register, one if i % 2 else two, i)
    assert sorted(outcomes) == ["created"] + ["username"] * 99


@settings(
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture],
)
@given(
    username=st.text(
        st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00"),
        min_size=1,
        max_size=40,
    ),
    bio=st.text(st.characters(blacklist_categories=["Cs"], blacklist_characters="\x00")),
)
async def test_unicode_username_and_bio_round_trip(store_url: str, username: str, bio: str) -> None:
    async with await open_store(store_url, threads=2) as store:
        user = make_user(username, bio=bio)
        if await store.get_user_by_username(username) is not None:
            with pytest.raises(Conflict, match="username"):  # an earlier example's name
                await store.create_user(user)
            return
        await store.create_user(user)
        assert await store.get_user(user.id) == user
        assert await store.get_user_by_username(username) == user


# streams --------------------------------------------------------------------------------
async def test_stream_round_trip_and_constraints(store: SqlStore) -> None:
    owner = make_user()
    await store.create_user(owner)
    stream = make_stream(owner.id, tags=("ünï", "co,de", ""))
    await store.create_stream(stream)
    assert await store.get_stream(stream.id) == stream
    assert await store.get_stream_by_key_hash(stream.key_hash) == stream
    assert await store.get_stream("missing") is None
    assert await store.get_stream_by_key_hash("missing") is None
    with pytest.raises(Conflict) as info:
        await store.create_stream(make_stream(owner.id, key_hash=stream.key_hash))
    assert info.value.field == "key_hash"
    with pytest.raises(NotFound):
        await store.create_stream(make_stream("no-such-user"))
    with pytest.raises(ValueError, match="status"):
        await store.create_stream(make_stream(owner.id, status="paused"))


async def test_set_stream_status_is_compare_and_set(store: SqlStore) -> None:
    owner = make_user()
    await store.create_user(owner)
    stream = make_stream(owner.id)
    await store.create_stream(stream)
    t1, t2, t3 = (T0 + timedelta(minutes=m) for m in (1, 2, 3))

    live = await store.set_stream_status(stream.id, status="live", expected=("created",), at=t1)
    assert live is not None
    assert (live.status, live.started_at, live.ended_at) == ("live", t1, None)
    again = await store.set_stream_status(stream.id, status="live", expected=("created",), at=t2)
    assert again is None
    assert await store.get_stream(stream.id) == live  # nothing written
    relive = await store.set_stream_status(stream.id, status="live", expected=("live",), at=t2)
    assert relive is not None
    assert relive.started_at == t1  # first time only
    ended = await store.set_stream_status(
        stream.id, status="ended", expected=("created", "live"), at=t3
    )
    assert ended is not None
    assert (ended.status, ended.started_at, ended.ended_at) == ("ended", t1, t3)
    assert await store.set_stream_status(stream.id, status="live", expected=(), at=t3) is None
    assert (
        await store.set_stream_status("missing", status="live", expected=("created",), at=t3)
        is None
    )
    with pytest.raises(ValueError, match="status"):
        await store.set_stream_status(stream.id, status="paused", expected=("ended",), at=t3)


async def test_concurrent_go_live_has_one_winner(store: SqlStore) -> None:
    owner = make_user()
    await store.create_user(owner)
    stream = make_stream(owner.id)
    await store.create_stream(stream)
    winners: list[Stream] = []

    async def go_live(minute: int) -> None:
        at = T0 + timedelta(minutes=minute)
        result = await store.set_stream_status(
            stream.id, status="live", expected=("created",), at=at
        )
        if result is not None:
            winners.append(result)

    async with trio.open_nursery() as nursery:
        for minute in range(20):
            nursery.start_soon(go_live, minute)
    assert len(winners) == 1
    assert await store.get_stream(stream.id) == winners[0]


async def test_stream_key_rotation(store: SqlStore) -> None:
    owner = make_user()
    await store.create_user(owner)
    first, second = make_stream(owner.id), make_stream(owner.id)
    await store.create_stream(first)
    await store.create_stream(second)
    rotated_at = T0 + timedelta(hours=1)
    rotated = await store.set_stream_key(first.id, key_hash="f" * 64, at=rotated_at)
    assert (rotated.key_hash, rotated.key_rotated_at) == ("f" * 64, rotated_at)
    assert await store.get_stream_by_key_hash(first.key_hash) is None
    assert await store.get_stream_by_key_hash("f" * 64) == rotated
    with pytest.raises(Conflict) as info:
        await store.set_stream_key(second.id, key_hash="f" * 64, at=rotated_at)
    assert info.value.field == "key_hash"
    with pytest.raises(NotFound):
        await store.set_stream_key("missing", key_hash="e" * 64, at=rotated_at)


async def test_viewer_count_raises_peak_only(store: SqlStore) -> None:
    owner = make_user()
    await store.create_user(owner)
    stream = make_stream(owner.id)
    await store.create_stream(stream)
    for viewers, peak in ((10, 10), (5, 10), (20, 20), (0, 20)):
        await store.set_viewer_count(stream.id, viewers)
        got = await store.get_stream(stream.id)
        assert got is not None
        assert (got.viewer_count, got.peak_viewers) == (viewers, peak)
    await store.set_viewer_count("missing", 3)  # ignored
    with pytest.raises(ValueError, match="negative"):
        await store.set_viewer_count(stream.id, -1)


async def test_list_streams_pages_newest_first_with_filters(store: SqlStore) -> None:
    alice, bob = make_user(), make_user()
    await store.create_user(alice)
    await store.create_user(bob)
    made: list[Stream] = []
    for i in range(7):  # pairs share a created_at: the id breaks the tie
        stream = make_stream(
            alice.id if i % 3 else bob.id,
            created_at=T0 + timedelta(seconds=i // 2),
            category="music" if i % 2 else "games",
        )
        await store.create_stream(stream)
        made.append(stream)
    newest_first = sorted(made, key=lambda s: (s.created_at, s.id), reverse=True)

    seen: list[Stream] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await store.list_streams(cursor=cursor, limit=3)
        seen.extend(page.items)
        pages += 1
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert pages == 3
    assert seen == newest_first

    exact = await store.list_streams(limit=7)
    assert (exact.items, exact.next_cursor) == (newest_first, None)
    mine = await store.list_streams(user_id=alice.id)
    assert mine.items == [s for s in newest_first if s.user_id == alice.id]
    music = await store.list_streams(category="music", status="created", limit=2)
    assert music.items == [s for s in newest_first if s.category == "music"][:2]
    assert (await store.list_streams(status="live")).items == []

    # a row inserted while paging is not returned twice and shifts nothing
    first = await store.list_streams(limit=3)
    await store.create_stream(make_stream(bob.id, created_at=T0 + timedelta(hours=1)))
    assert first.next_cursor is not None
    rest = await store.list_streams(cursor=first.next_cursor, limit=10)
    assert first.items + rest.items == newest_first


@pytest.mark.parametrize("cursor", ["", "%%%", "bm90LWEtY3Vyc29y", "MjAyNnxhYmM", "ä"])
async def test_bad_cursor_is_a_value_error(store: SqlStore, cursor: str) -> None:
    with pytest.raises(ValueError, match="invalid cursor"):
        await store.list_streams(cursor=cursor)
    with pytest.raises(ValueError, match="invalid cursor"):
        await store.list_followers("someone", cursor=cursor)
    with pytest.raises(ValueError, match="invalid cursor"):
        await store.list_chat_messages("stream", cursor=cursor)


async def test_limit_must_be_positive(store: SqlStore) -> None:
    with pytest.raises(ValueError, match="limit"):
        await store.list_streams(limit=0)
    with pytest.raises(ValueError, match="limit"):
        await store.list_analytics_samples("stream", limit=0)


# followers ------------------------------------------------------------------------------
async def test_follow_is_idempotent_and_pages(store: SqlStore) -> None:
    star = make_user()
    fans = [make_user() for _ in range(5)]
    for user in (star, *fans):
        await store.create_user(user)
    for i, fan in enumerate(fans):
        at = T0 + timedelta(seconds=i)
        assert await store.follow(user_id=star.id, follower_id=fan.id, at=at) is True
        assert await store.follow(user_id=star.id, follower_id=fan.id, at=at) is False
    assert await store.follow(user_id=fans[0].id, follower_id=star.id, at=T0) is True
    assert await store.count_followers(star.id) == 5
    assert await store.count_following(star.id) == 1
    assert await store.count_following(fans[1].id) == 1

    page1 = await store.list_followers(star.id, limit=3)
    assert page1.next_cursor is not None
    page2 = await store.list_followers(star.id, cursor=page1.next_cursor, limit=3)
    assert page2.next_cursor is None
    assert [f.follower_id for f in page1.items + page2.items] == [f.id for f in reversed(fans)]
    assert page1.items[0].created_at == T0 + timedelta(seconds=4)
    following = await store.list_following(star.id)
    assert [(f.user_id, f.follower_id) for f in following.items] == [(fans[0].id, star.id)]

    assert await store.unfollow(user_id=star.id, follower_id=fans[0].id) is True
    assert await store.unfollow(user_id=star.id, follower_id=fans[0].id) is False
    assert await store.count_followers(star.id) == 4
    with pytest.raises(NotFound):
        await store.follow(user_id="missing", follower_id=star.id, at=T0)


# chat and analytics ---------------------------------------------------------------------
async def test_chat_insert_is_idempotent_by_id_and_pages(store: SqlStore) -> None:
    stream_id = _id()
    messages = [
        ChatMessage(
            id=f"m{i:02d}",
            stream_id=stream_id,
            user_id="u1",
            client_msg_id=f"c{i}",
            message=f"hello {i} 👋",
            created_at=T0 + timedelta(milliseconds=i // 2),
        )
        for i in range(5)
    ]
    stored = []
    for seq, message in enumerate(messages, start=1):
        assert await store.add_chat_message(message) == (replace(message, seq=seq), True)
        stored.append(replace(message, seq=seq))
    assert await store.add_chat_message(replace(messages[0], message="changed")) == (
        stored[0],
        False,
    )
    await store.add_chat_message(replace(messages[0], id=_id(), stream_id="other"))

    page1 = await store.list_chat_messages(stream_id, limit=4)
    assert page1.next_cursor is not None
    page2 = await store.list_chat_messages(stream_id, cursor=page1.next_cursor, limit=4)
    assert (page1.items + page2.items, page2.next_cursor) == (stored[::-1], None)


async def test_analytics_oldest_first_since_and_limit(store: SqlStore) -> None:
    stream_id = _id()
    samples = [
        AnalyticsSample(
            stream_id=stream_id,
            ts=T0 + timedelta(seconds=s),
            viewers=s * 10,
            chat_messages=s,
            ingest_kbps=4500,
        )
        for s in (3, 0, 4, 1, 2)
    ]
    for sample in samples:
        await store.add_analytics_sample(sample)
    await store.add_analytics_sample(replace(samples[0], stream_id="other"))
    ordered = sorted(samples, key=lambda s: s.ts)
    assert await store.list_analytics_samples(stream_id) == ordered
    since = T0 + timedelta(seconds=2)
    assert await store.list_analytics_samples(stream_id, since=since) == ordered[2:]
    assert await store.list_analytics_samples(stream_id, limit=2) == ordered[:2]
    assert await store.list_analytics_samples("nothing") == []


# auth -----------------------------------------------------------------------------------
async def test_signing_keys_retire_atomically(store: SqlStore) -> None:
    first = SigningKey(kid="k1", secret=bytes(range(32)), created_at=T0, retires_at=None)
    await store.add_signing_key(first, retire_others_at=T0)
    assert await store.list_signing_keys(now=T0) == [first]

    t1 = T0 + timedelta(hours=1)
    second = SigningKey(kid="k2", secret=b"\x00\xff" * 16, created_at=t1, retires_at=None)
    retire_at = t1 + timedelta(minutes=30)
    await store.add_signing_key(second, retire_others_at=retire_at)
    assert await store.list_signing_keys(now=t1) == [second, replace(first, retires_at=retire_at)]
    assert await store.list_signing_keys(now=retire_at) == [second]

    with pytest.raises(Conflict) as info:
        await store.add_signing_key(replace(second, secret=b"x" * 32), retire_others_at=t1)
    assert info.value.field == "kid"
    assert await store.list_signing_keys(now=retire_at) == [second]  # nothing retired


async def test_concurrent_signing_keys_leave_one_newest(store: SqlStore) -> None:
    async with trio.open_nursery() as nursery:
        for i in range(6):
            key = SigningKey(kid=f"k{i}", secret=b"s" * 32, created_at=T0, retires_at=None)
            nursery.start_soon(partial(store.add_signing_key, key, retire_others_at=T0))
    keys = await store.list_signing_keys(now=T0)
    assert len(keys) == 1


async def test_refresh_rotation_and_reuse_revokes_family(store: SqlStore) -> None:
    user = make_user()
    await store.create_user(user)
    first = make_token(user.id)
    await store.add_refresh_token(first)
    with pytest.raises(Conflict) as info:
        await store.add_refresh_token(first)
    assert info.value.field == "token_hash"

    now = T0 + timedelta(minutes=10)
    # the new token's user and family come from the old one
    second = make_token("ignored", family_id="ignored", created_at=now)
    old = await store.rotate_refresh_token(first.token_hash, second, now=now)
    assert old == replace(first, used_at=now)
    later = now + timedelta(minutes=10)
    third = make_token(user.id, created_at=later)
    assert await store.rotate_refresh_token(second.token_hash, third, now=later) is not None

    # first is replayed: the whole family is revoked, third included
    reuse_at = later + timedelta(minutes=1)
    fourth = make_token(user.id, created_at=reuse_at)
    assert await store.rotate_refresh_token(first.token_hash, fourth, now=reuse_at) is None
    assert await store.rotate_refresh_token(third.token_hash, fourth, now=reuse_at) is None
    for token in (first, second, third):
        got = await store.get_refresh_token(token.token_hash)
        assert got is not None
        assert (got.family_id, got.user_id, got.revoked_at) == (first.family_id, user.id, reuse_at)
    assert await store.get_refresh_token(fourth.token_hash) is None  # nothing inserted


async def test_refresh_rotation_refuses_unknown_expired_and_revoked(store: SqlStore) -> None:
    user = make_user()
    await store.create_user(user)
    expired = make_token(user.id, expires_at=T0 + timedelta(minutes=1))
    revoked = make_token(user.id)
    await store.add_refresh_token(expired)
    await store.add_refresh_token(revoked)
    await store.revoke_refresh_family(revoked.family_id, now=T0)
    now = T0 + timedelta(minutes=1)
    new = make_token(user.id)
    assert await store.rotate_refresh_token("unknown", new, now=now) is None
    assert await store.rotate_refresh_token(expired.token_hash, new, now=now) is None
    assert await store.rotate_refresh_token(revoked.token_hash, new, now=now) is None
    assert await store.get_refresh_token(new.token_hash) is None
    assert await store.get_refresh_token("unknown") is None
    assert await store.get_refresh_token(expired.token_hash) == expired


async def test_concurrent_rotation_has_one_winner_and_revokes_family(store: SqlStore) -> None:
    user = make_user()
    await store.create_user(user)
    token = make_token(user.id)
    await store.add_refresh_token(token)
    now = T0 + timedelta(minutes=1)
    results: list[RefreshToken | None] = []
    issued = [make_token(user.id, created_at=now) for _ in range(10)]

    async def rotate(new: RefreshToken) -> None:
        results.append(await store.rotate_refresh_token(token.token_hash, new, now=now))

    async with trio.open_nursery() as nursery:
        for new in issued:
            nursery.start_soon(rotate, new)
    assert sum(r is not None for r in results) == 1
    live = select(func.count()).where(
        refresh_tokens.c.family_id == token.family_id, refresh_tokens.c.revoked_at.is_(None)
    )
    assert await scalar(store, live) == 0  # the losers saw a reuse


async def test_naive_datetimes_are_refused(store: SqlStore) -> None:
    with pytest.raises(Exception, match="naive datetime"):
        await store.create_user(make_user(created_at=datetime(2026, 1, 1)))
