"""The chat and moderation part of the `Store` contract, on every backend.

Parametrised by `store_url` / `file_url` (conftest): SQLite file, SQLite in memory,
PostgreSQL in a fresh schema per test.
"""

from __future__ import annotations

import base64
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone
from typing import Any

import pytest
import sqlalchemy as sa
import trio
from alembic import command
from hypothesis import given
from hypothesis import strategies as st

from streamscale.backends.storage import (
    Appeal,
    AuditEntry,
    Ban,
    BannedWord,
    ChatMessage,
    ChatTimeout,
    Conflict,
    NotFound,
    RoomSettings,
    SqlStore,
    User,
    migrate,
    open_store,
)
from streamscale.backends.storage._cursor import (
    MAX_SEQ,
    decode_seq_cursor,
    encode_cursor,
    encode_seq_cursor,
)
from streamscale.backends.storage._engine import alembic_config, make_engine
from streamscale.backends.storage._tables import UTCDateTime, chat_messages, chat_rooms

T0 = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def _id() -> str:
    return uuid.uuid4().hex


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def msg(stream_id: str, user_id: str = "u1", **overrides: Any) -> ChatMessage:
    message = ChatMessage(
        id=_id(),
        stream_id=stream_id,
        user_id=user_id,
        client_msg_id=_id()[:8],
        message="hi 👋",
        created_at=T0,
    )
    return replace(message, **overrides)


def audit(channel_id: str | None, action: str, **overrides: Any) -> AuditEntry:
    entry = AuditEntry(
        id=_id(), channel_id=channel_id, actor_id="mod", action=action, created_at=T0
    )
    return replace(entry, **overrides)


async def users(store: SqlStore, count: int) -> list[str]:
    made = []
    for _ in range(count):
        name = f"user_{_id()[:12]}"
        user = User(
            id=_id(),
            username=name,
            email=f"{name}@example.com",
            password_hash="x",
            display_name=name,
            bio="",
            created_at=T0,
            updated_at=T0,
        )
        await store.create_user(user)
        made.append(user.id)
    return made


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[SqlStore]:
    async with await open_store(store_url) as opened:
        yield opened


async def every_page(fetch: Any, limit: int) -> tuple[list[Any], int]:
    items: list[Any] = []
    cursor: str | None = None
    pages = 0
    while True:
        page = await fetch(cursor=cursor, limit=limit)
        items.extend(page.items)
        pages += 1
        if page.next_cursor is None:
            return items, pages
        cursor = page.next_cursor


# chat messages --------------------------------------------------------------------------
async def test_add_assigns_seq_per_room_and_is_idempotent_by_client_id(store: SqlStore) -> None:
    room, other = _id(), _id()
    first = msg(room, moderation={"reasons": ["link"], "score": 0.25}, seq=99)
    stored, created = await store.add_chat_message(first)
    assert (stored, created) == (replace(first, seq=1), True)  # the caller's seq is ignored
    assert stored.created_at.tzinfo is UTC
    assert await store.get_chat_message(first.id) == stored

    # a retry (new server id, same client id) gets the original back, nothing written
    retry = replace(first, id=_id(), message="edited?", created_at=at(5))
    assert await store.add_chat_message(retry) == (stored, False)
    assert await store.get_chat_message(retry.id) is None
    # the same client id from another user or room is another message
    assert (await store.add_chat_message(replace(first, id=_id(), user_id="u2")))[0].seq == 2
    assert (await store.add_chat_message(replace(first, id=_id(), stream_id=other)))[0].seq == 1
    assert (await store.add_chat_message(msg(room)))[0].seq == 3  # no gap left by the retry

    with pytest.raises(Conflict) as info:  # a server id reused for a different message
        await store.add_chat_message(msg(room, id=first.id))
    assert info.value.field == "id"
    assert (await store.add_chat_message(msg(room)))[0].seq == 4
    with pytest.raises(ValueError, match="visible or held"):
        await store.add_chat_message(msg(room, status="deleted"))
    zoned = at(1).astimezone(timezone(timedelta(hours=-3)))
    got, _ = await store.add_chat_message(msg(room, created_at=zoned))
    assert got.created_at == at(1)
    assert got.created_at.utcoffset() == timedelta(0)


async def test_fifty_concurrent_adds_of_one_client_id_make_one_row(store: SqlStore) -> None:
    room = _id()
    template = msg(room)
    results: list[tuple[ChatMessage, bool]] = []

    async def add(i: int) -> None:  # each attempt has its own server id, as a retry would
        results.append(await store.add_chat_message(replace(template, id=f"{i}-{_id()}")))

    async with trio.open_nursery() as nursery:
        for i in range(50):
            nursery.start_soon(add, i)
    assert sum(created for _, created in results) == 1
    assert len({stored for stored, _ in results}) == 1
    assert results[0][0].seq == 1
    page = await store.list_chat_messages(room, limit=100)
    assert [m.client_msg_id for m in page.items] == [template.client_msg_id]
    assert (await store.add_chat_message(msg(room)))[0].seq == 2  # the losers left no gap


async def _senders(targets: list[SqlStore], room: str, tasks: int, each: int) -> list[list[int]]:
    """`tasks` senders, each adding `each` messages in order; the seqs each one got."""
    seqs: list[list[int]] = [[] for _ in range(tasks)]

    async def send(task: int) -> None:
        target = targets[task % len(targets)]
        for i in range(each):
            stored, created = await target.add_chat_message(
                msg(room, user_id=f"sender{task}", client_msg_id=f"{task}-{i}")
            )
            assert created
            seqs[task].append(stored.seq)

    async with trio.open_nursery() as nursery:
        for task in range(tasks):
            nursery.start_soon(send, task)
    return seqs


def _check_room_order(seqs: list[list[int]]) -> None:
    for one_sender in seqs:  # each sender's messages in the order it sent them
        assert one_sender == sorted(one_sender)
    every = sorted(s for one_sender in seqs for s in one_sender)
    assert every == list(range(1, len(every) + 1))  # unique, gap-free


async def test_seq_strictly_increases_under_concurrent_adds(store: SqlStore) -> None:
    room, quiet = _id(), _id()
    seqs = await _senders([store], room, tasks=6, each=8)
    _check_room_order(seqs)
    history, _ = await every_page(lambda **kw: store.list_chat_messages(room, **kw), limit=100)
    assert [m.seq for m in history] == list(range(48, 0, -1))
    assert (await store.add_chat_message(msg(quiet)))[0].seq == 1


async def test_seq_strictly_increases_across_two_stores(file_url: str) -> None:
    """Two pools (two worker processes) on one database: the room's counter row decides."""
    room = _id()
    async with await open_store(file_url) as one, await open_store(file_url) as two:
        seqs = await _senders([one, two], room, tasks=6, each=6)
    _check_room_order(seqs)


async def test_history_pages_newest_first_and_refuses_bad_cursors(store: SqlStore) -> None:
    room = _id()
    sent = [(await store.add_chat_message(msg(room, created_at=at(i % 3))))[0] for i in range(7)]
    await store.add_chat_message(msg(_id()))
    history, pages = await every_page(lambda **kw: store.list_chat_messages(room, **kw), limit=3)
    assert (history, pages) == (sent[::-1], 3)  # by seq, whatever the clocks said
    first = await store.list_chat_messages(room, limit=3)
    await store.add_chat_message(msg(room))  # arrives while the client pages back
    assert first.next_cursor is not None
    rest = await store.list_chat_messages(room, cursor=first.next_cursor, limit=10)
    assert first.items + rest.items == sent[::-1]

    junk = [
        "",
        "%%%",
        "ä",
        encode_cursor(T0, "abc"),  # a (created_at, id) cursor is not a seq cursor
        base64.urlsafe_b64encode(b"seq:-1").decode(),
        base64.urlsafe_b64encode(b"seq:01").decode(),
        base64.urlsafe_b64encode(b"seq:\xd9\xa1").decode(),  # an Arabic-Indic digit
        encode_seq_cursor(MAX_SEQ + 1),
        "A" * 100,
    ]
    for cursor in junk:
        with pytest.raises(ValueError, match="invalid cursor"):
            await store.list_chat_messages(room, cursor=cursor)
    with pytest.raises(ValueError, match="limit"):
        await store.list_chat_messages(room, limit=0)
    with pytest.raises(ValueError, match="invalid cursor"):
        await store.list_held_messages(room, cursor=encode_seq_cursor(5))


@given(seq=st.integers(min_value=1, max_value=MAX_SEQ))
def test_seq_cursor_round_trip(seq: int) -> None:
    assert decode_seq_cursor(encode_seq_cursor(seq)) == seq


@given(cursor=st.text(max_size=80))
def test_seq_cursor_junk_is_only_a_value_error(cursor: str) -> None:
    try:
        seq = decode_seq_cursor(cursor)
    except ValueError as exc:
        assert str(exc) == "invalid cursor"
    else:
        assert encode_seq_cursor(seq) == cursor.rstrip("=")


async def test_held_and_deleted_messages_and_the_review_queue(store: SqlStore) -> None:
    room, other = _id(), _id()
    shown, _ = await store.add_chat_message(msg(room, created_at=at(0)))
    held, _ = await store.add_chat_message(
        msg(room, status="held", moderation={"score": 0.8}, created_at=at(1))
    )
    gone, _ = await store.add_chat_message(msg(room, created_at=at(2)))
    elsewhere, _ = await store.add_chat_message(msg(other, status="held", created_at=at(3)))
    removal = audit("chan", "delete_message", target_message_id=gone.id)
    deleted = await store.set_chat_message_status(
        gone.id,
        status="deleted",
        expected=("visible", "held"),
        by="mod",
        at=at(9),
        audit=removal,
    )
    assert deleted == replace(gone, status="deleted", deleted_by="mod", deleted_at=at(9))
    assert await store.get_chat_message(gone.id) == deleted  # kept for the owner and audit

    assert (await store.list_chat_messages(room)).items == [shown]
    assert (await store.list_chat_messages(room, include_held=True)).items == [held, shown]
    assert (await store.list_held_messages(room)).items == [held]
    queue, pages = await every_page(store.list_held_messages, limit=1)
    assert (queue, pages) == ([elsewhere, held], 2)

    # compare-and-set: a second delete, or approving what is not held, writes nothing
    again = await store.set_chat_message_status(
        gone.id,
        status="deleted",
        expected=("visible", "held"),
        by="mod2",
        at=at(10),
        audit=audit("chan", "delete_message"),
    )
    assert again is None
    not_held = await store.set_chat_message_status(
        shown.id, status="visible", expected=("held",), audit=audit("chan", "approve")
    )
    assert not_held is None
    assert (
        await store.set_chat_message_status("missing", status="visible", expected=("held",)) is None
    )
    approved = await store.set_chat_message_status(held.id, status="visible", expected=("held",))
    assert approved == replace(held, status="visible")
    assert (await store.list_chat_messages(room)).items == [approved, shown]
    assert (await store.list_held_messages(room)).items == []
    assert (await store.list_audit_entries("chan")).items == [removal]  # the winners only

    with pytest.raises(ValueError, match="by"):
        await store.set_chat_message_status(shown.id, status="deleted", expected=("visible",))
    with pytest.raises(ValueError, match="status"):
        await store.set_chat_message_status(shown.id, status="gone", expected=("visible",))
    assert await store.set_chat_message_status(shown.id, status="held", expected=()) is None


# roles, follows -------------------------------------------------------------------------
async def test_channel_roles(store: SqlStore) -> None:
    channel, mod, other = await users(store, 3)
    assert await store.get_channel_role(channel, mod) is None
    grant = audit(channel, "add_moderator", target_user_id=mod)
    assert await store.set_channel_role(channel, mod, "moderator", at=at(1), audit=grant)
    assert not await store.set_channel_role(
        channel, mod, "moderator", at=at(2), audit=audit(channel, "add_moderator")
    )
    assert await store.set_channel_role(channel, channel, "owner", at=at(3))
    assert await store.get_channel_role(channel, mod) == "moderator"
    roles = await store.list_channel_roles(channel)
    assert [(r.user_id, r.role, r.created_at) for r in roles] == [
        (channel, "owner", at(3)),
        (mod, "moderator", at(1)),
    ]
    assert await store.set_channel_role(channel, mod, None, at=at(4))
    assert not await store.set_channel_role(channel, mod, None, at=at(4))
    assert await store.get_channel_role(channel, mod) is None
    assert (await store.list_audit_entries(channel)).items == [grant]
    with pytest.raises(ValueError, match="role"):
        await store.set_channel_role(channel, other, "admin", at=T0)
    with pytest.raises(NotFound):
        await store.set_channel_role(channel, "nobody", "moderator", at=T0)


async def test_get_follow(store: SqlStore) -> None:
    star, fan = await users(store, 2)
    assert await store.get_follow(star, fan) is None
    await store.follow(user_id=star, follower_id=fan, at=at(7))
    follow = await store.get_follow(star, fan)
    assert follow is not None
    assert (follow.user_id, follow.follower_id, follow.created_at) == (star, fan, at(7))
    assert await store.get_follow(fan, star) is None


# bans and timeouts ----------------------------------------------------------------------
def ban(channel: str, user: str, **overrides: Any) -> Ban:
    made = Ban(
        id=_id(), channel_id=channel, user_id=user, reason="spam", banned_by="mod", created_at=T0
    )
    return replace(made, **overrides)


async def test_ban_lift_and_reban(store: SqlStore) -> None:
    channel, troll, other, unbanned = await users(store, 4)
    first = ban(channel, troll, lifted_at=at(1), lifted_by="ignored")
    banned, created = await store.add_ban(first, audit=audit(channel, "ban"))
    assert (banned, created) == (replace(first, lifted_at=None, lifted_by=None), True)
    assert await store.add_ban(ban(channel, troll), audit=audit(channel, "ban")) == (banned, False)
    assert await store.get_active_ban(channel, troll) == banned
    assert await store.get_active_ban(channel, other) is None
    assert await store.get_ban(first.id) == banned

    lifted = await store.lift_ban(first.id, by="mod2", at=at(5), audit=audit(channel, "unban"))
    assert lifted == replace(banned, lifted_at=at(5), lifted_by="mod2")
    assert await store.lift_ban(first.id, by="mod3", at=at(6)) is None  # already lifted
    assert await store.lift_ban("missing", by="mod3", at=at(6)) is None
    assert await store.get_active_ban(channel, troll) is None
    second, created = await store.add_ban(ban(channel, troll, created_at=at(7)))
    assert created
    third, _ = await store.add_ban(ban(channel, other, created_at=at(8)))
    assert (await store.list_bans(channel)).items == [third, second]
    every, pages = await every_page(
        lambda **kw: store.list_bans(channel, active_only=False, **kw), limit=2
    )
    assert (every, pages) == ([third, second, lifted], 2)
    actions = sorted(e.action for e in (await store.list_audit_entries(channel)).items)
    assert actions == ["ban", "unban"]  # the no-op ban wrote nothing

    with pytest.raises(Conflict) as info:
        await store.add_ban(ban(channel, unbanned, id=first.id))
    assert info.value.field == "id"
    with pytest.raises(NotFound):
        await store.add_ban(ban(channel, "nobody"))


async def test_concurrent_bans_and_lifts_have_one_winner(store: SqlStore) -> None:
    channel, troll = await users(store, 2)
    bans: list[tuple[Ban, bool]] = []
    lifts: list[Ban | None] = []

    async def add(i: int) -> None:
        bans.append(await store.add_ban(ban(channel, troll), audit=audit(channel, f"ban{i}")))

    async def lift(ban_id: str, i: int) -> None:
        lifts.append(
            await store.lift_ban(ban_id, by=f"mod{i}", at=at(i), audit=audit(channel, "unban"))
        )

    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(add, i)
    assert sum(created for _, created in bans) == 1
    assert len({b for b, _ in bans}) == 1
    async with trio.open_nursery() as nursery:
        for i in range(20):
            nursery.start_soon(lift, bans[0][0].id, i)
    winners = [b for b in lifts if b is not None]
    assert len(winners) == 1
    assert await store.get_ban(bans[0][0].id) == winners[0]
    log = (await store.list_audit_entries(channel, limit=100)).items
    assert sorted(e.action[:3] for e in log) == ["ban", "unb"]


async def test_timeouts(store: SqlStore) -> None:
    channel, a, b = await users(store, 3)
    first = ChatTimeout(
        channel_id=channel, user_id=a, until=at(60), reason="caps", created_by="mod", created_at=T0
    )
    await store.set_timeout(first, audit=audit(channel, "timeout", target_user_id=a))
    assert await store.get_timeout(channel, a, now=at(59)) == first
    assert await store.get_timeout(channel, a, now=at(60)) is None  # over at `until`
    longer = replace(first, until=at(600), reason="again", created_at=at(30))
    await store.set_timeout(longer)  # replaces
    other = replace(first, user_id=b, until=at(120))
    await store.set_timeout(other)
    assert await store.list_timeouts(channel, now=at(100)) == [other, longer]
    assert await store.list_timeouts(channel, now=at(200)) == [longer]
    assert not await store.clear_timeout(channel, b, now=at(200))  # already over
    assert await store.clear_timeout(channel, a, now=at(200), audit=audit(channel, "untimeout"))
    assert await store.get_timeout(channel, a, now=at(200)) is None
    actions = sorted(e.action for e in (await store.list_audit_entries(channel)).items)
    assert actions == ["timeout", "untimeout"]
    with pytest.raises(NotFound):
        await store.set_timeout(replace(first, user_id="nobody"))


# room settings and banned words ---------------------------------------------------------
async def test_room_settings(store: SqlStore) -> None:
    (channel,) = await users(store, 1)
    assert await store.get_room_settings(channel) == RoomSettings(channel_id=channel)
    settings = RoomSettings(
        channel_id=channel,
        slow_mode_s=30,
        followers_only_min_age_s=600,
        link_policy="hold",
        regex_filters=(r"\bfree\s+v-?bucks\b", "ünï(code)?"),
        updated_at=at(1),
        updated_by="mod",
    )
    await store.set_room_settings(settings, audit=audit(channel, "settings"))
    assert await store.get_room_settings(channel) == settings
    relaxed = replace(settings, slow_mode_s=0, followers_only_min_age_s=None, regex_filters=())
    await store.set_room_settings(relaxed)
    assert await store.get_room_settings(channel) == relaxed
    for bad, match in (
        (replace(settings, updated_at=None), "updated"),
        (replace(settings, slow_mode_s=-1), "negative"),
        (replace(settings, followers_only_min_age_s=-5), "negative"),
        (replace(settings, link_policy="maybe"), "link policy"),
    ):
        with pytest.raises(ValueError, match=match):
            await store.set_room_settings(bad)
    with pytest.raises(NotFound):
        await store.set_room_settings(replace(settings, channel_id="nobody"))


async def test_global_and_channel_banned_words(store: SqlStore) -> None:
    chan_a, chan_b = _id(), _id()

    def word(channel: str | None, text: str) -> BannedWord:
        return BannedWord(channel_id=channel, word=text, created_by="mod", created_at=T0)

    assert await store.add_banned_word(word(None, "spam"), audit=audit(None, "add_word"))
    assert not await store.add_banned_word(word(None, "spam"))  # the global list is a set
    assert await store.add_banned_word(word(chan_a, "spam"))  # on a channel list as well
    assert not await store.add_banned_word(word(chan_a, "spam"))
    assert await store.add_banned_word(word(chan_a, "egg"))
    assert await store.add_banned_word(word(chan_b, "ham"))
    assert await store.add_banned_word(word(None, "aardvark"))

    assert await store.list_banned_words(None) == [word(None, "aardvark"), word(None, "spam")]
    assert await store.list_banned_words(chan_a) == [
        word(None, "aardvark"),
        word(chan_a, "egg"),
        word(None, "spam"),
        word(chan_a, "spam"),
    ]
    assert [w.word for w in await store.list_banned_words(chan_b)] == ["aardvark", "ham", "spam"]

    assert await store.remove_banned_word(None, "spam", audit=audit(None, "remove_word"))
    assert not await store.remove_banned_word(None, "spam")
    assert not await store.remove_banned_word(chan_b, "egg")  # not on that list
    assert [w.word for w in await store.list_banned_words(chan_a)] == ["aardvark", "egg", "spam"]
    global_log = (await store.list_audit_entries(None)).items
    assert sorted(e.action for e in global_log) == ["add_word", "remove_word"]


# audit log ------------------------------------------------------------------------------
async def test_audit_log_newest_first_with_pages_and_filters(store: SqlStore) -> None:
    channel = _id()
    entries = [
        audit(
            channel,
            "ban" if i % 2 else "delete_message",
            created_at=at(i // 2),  # pairs share a time: the id breaks the tie
            target_user_id=f"u{i % 3}",
            reason=None if i % 4 else "rule 3",
            details={"n": i, "words": ["ü"]} if i % 2 else None,
        )
        for i in range(7)
    ]
    for entry in entries:
        await store.add_audit_entry(entry)
    await store.add_audit_entry(audit(_id(), "ban"))
    newest_first = sorted(entries, key=lambda e: (e.created_at, e.id), reverse=True)
    log, pages = await every_page(lambda **kw: store.list_audit_entries(channel, **kw), limit=3)
    assert (log, pages) == (newest_first, 3)
    about_u1 = await store.list_audit_entries(channel, target_user_id="u1")
    assert about_u1.items == [e for e in newest_first if e.target_user_id == "u1"]
    assert (await store.list_audit_entries(None)).items == []
    with pytest.raises(Conflict) as info:
        await store.add_audit_entry(entries[0])
    assert info.value.field == "id"
    with pytest.raises(ValueError, match="invalid cursor"):
        await store.list_audit_entries(channel, cursor=encode_seq_cursor(3))


# appeals --------------------------------------------------------------------------------
def appeal_for(banned: Ban, **overrides: Any) -> Appeal:
    made = Appeal(
        id=_id(),
        ban_id=banned.id,
        channel_id=banned.channel_id,
        user_id=banned.user_id,
        text="it was a joke",
        created_at=at(10),
    )
    return replace(made, **overrides)


async def test_appeals_one_per_ban_and_decisions(store: SqlStore) -> None:
    channel, troll, other = await users(store, 3)
    troll_ban, _ = await store.add_ban(ban(channel, troll))
    other_ban, _ = await store.add_ban(ban(channel, other))
    appeal = appeal_for(troll_ban)
    await store.add_appeal(appeal)
    assert await store.get_appeal(appeal.id) == appeal
    with pytest.raises(Conflict) as info:
        await store.add_appeal(appeal_for(troll_ban, text="please"))
    assert info.value.field == "ban_id"
    with pytest.raises(NotFound):
        await store.add_appeal(appeal_for(replace(troll_ban, id="missing")))
    with pytest.raises(ValueError, match="ban"):
        await store.add_appeal(appeal_for(other_ban, user_id=troll))
    with pytest.raises(ValueError, match="pending"):
        await store.add_appeal(appeal_for(other_ban, status="lifted"))
    other_appeal = appeal_for(other_ban, created_at=at(20))
    await store.add_appeal(other_appeal)
    assert (await store.list_appeals(channel)).items == [other_appeal, appeal]

    upheld = await store.decide_appeal(
        other_appeal.id,
        status="upheld",
        by="mod",
        at=at(30),
        reason="no",
        audit=audit(channel, "uphold"),
    )
    assert upheld == replace(
        other_appeal, status="upheld", decided_by="mod", decided_at=at(30), decision_reason="no"
    )
    assert await store.get_active_ban(channel, other) == other_ban  # the ban stands
    lifted = await store.decide_appeal(appeal.id, status="lifted", by="owner", at=at(40))
    assert lifted is not None
    assert lifted.status == "lifted"
    assert await store.get_ban(troll_ban.id) == replace(
        troll_ban, lifted_at=at(40), lifted_by="owner"
    )
    assert await store.decide_appeal(appeal.id, status="upheld", by="mod", at=at(50)) is None
    assert await store.decide_appeal("missing", status="upheld", by="mod", at=at(50)) is None
    with pytest.raises(ValueError, match="upheld or lifted"):
        await store.decide_appeal(appeal.id, status="pending", by="mod", at=at(50))
    assert (await store.list_appeals(channel)).items == []
    assert (await store.list_appeals(channel, status="lifted")).items == [lifted]
    assert (await store.list_appeals(channel, status=None)).items == [upheld, lifted]
    assert [e.action for e in (await store.list_audit_entries(channel)).items] == ["uphold"]


async def test_concurrent_appeal_deciders_have_one_winner(store: SqlStore) -> None:
    channel, troll = await users(store, 2)
    banned, _ = await store.add_ban(ban(channel, troll))
    appeal = appeal_for(banned)
    await store.add_appeal(appeal)
    decisions: list[Appeal | None] = []

    async def decide(i: int) -> None:
        status = "lifted" if i % 2 else "upheld"
        decisions.append(
            await store.decide_appeal(
                appeal.id, status=status, by=f"mod{i}", at=at(i), audit=audit(channel, status)
            )
        )

    async with trio.open_nursery() as nursery:
        for i in range(16):
            nursery.start_soon(decide, i)
    winners = [d for d in decisions if d is not None]
    assert len(winners) == 1
    assert await store.get_appeal(appeal.id) == winners[0]
    log = (await store.list_audit_entries(channel)).items
    assert [e.action for e in log] == [winners[0].status]
    still_banned = await store.get_active_ban(channel, troll)
    assert (still_banned is None) == (winners[0].status == "lifted")


# migration 0002 over existing chat rows -------------------------------------------------
def _upgrade_to(url: str, revision: str) -> None:
    engine = make_engine(url, threads=1)
    try:
        with engine.begin() as conn:
            config = alembic_config()
            config.attributes["connection"] = conn
            command.upgrade(config, revision)
    finally:
        engine.dispose()


def _insert_0001_chat_rows(url: str, rows: list[dict[str, Any]]) -> None:
    old = sa.Table(  # chat_messages as 0001 made it
        "chat_messages",
        sa.MetaData(),
        sa.Column("id", sa.Text),
        sa.Column("stream_id", sa.Text),
        sa.Column("user_id", sa.Text),
        sa.Column("message", sa.Text),
        sa.Column("created_at", UTCDateTime),
    )
    engine = make_engine(url, threads=1)
    try:
        with engine.begin() as conn:
            conn.execute(sa.insert(old), rows)
    finally:
        engine.dispose()


async def test_migration_0002_backfills_existing_chat_rows(file_url: str) -> None:
    room_a, room_b = _id(), _id()
    rows = [  # inserted out of order; within a room seq follows (created_at, id)
        {"id": "m3", "stream_id": room_a, "user_id": "u", "message": "c", "created_at": at(2)},
        {"id": "m1", "stream_id": room_a, "user_id": "u", "message": "a", "created_at": at(1)},
        {"id": "m2", "stream_id": room_a, "user_id": "v", "message": "b", "created_at": at(1)},
        {"id": "m4", "stream_id": room_b, "user_id": "u", "message": "d", "created_at": at(0)},
    ]
    await trio.to_thread.run_sync(_upgrade_to, file_url, "0001")
    await trio.to_thread.run_sync(_insert_0001_chat_rows, file_url, rows)
    await trio.to_thread.run_sync(migrate, file_url)

    async with await open_store(file_url) as store:
        history = (await store.list_chat_messages(room_a)).items
        assert [(m.id, m.seq, m.status, m.client_msg_id) for m in history] == [
            ("m3", 3, "visible", "m3"),
            ("m2", 2, "visible", "m2"),
            ("m1", 1, "visible", "m1"),
        ]
        assert history[-1].created_at == at(1)
        assert [m.seq for m in (await store.list_chat_messages(room_b)).items] == [1]
        # the counters carry on from the backfill, and old rows stay idempotent
        assert (await store.add_chat_message(msg(room_a)))[0].seq == 4
        assert (await store.add_chat_message(msg(room_b)))[0].seq == 2
        retry = msg(room_a, user_id="u", client_msg_id="m1")
        assert await store.add_chat_message(retry) == (history[-1], False)

        def counters() -> dict[str, int]:
            with store.engine.connect() as conn:
                return dict(
                    conn.execute(sa.select(chat_rooms.c.stream_id, chat_rooms.c.last_seq)).all()
                )

        assert await trio.to_thread.run_sync(counters) == {room_a: 4, room_b: 2}
        count = sa.select(sa.func.count()).select_from(chat_messages)

        def total() -> int:
            with store.engine.connect() as conn:
                return int(conn.execute(count).scalar_one())

        assert await trio.to_thread.run_sync(total) == 6
