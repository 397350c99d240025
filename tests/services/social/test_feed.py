"""The went-live feed on its own: a real store (SQLite in memory) and the in-process bus."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import cast

import pytest
import trio

from streamscale.backends.bus import MemoryBus
from streamscale.backends.storage import SqlStore, Store, User, open_store
from streamscale.services.social import TOPIC, LiveFeed, WentLive
from streamscale.services.social.feed import CLOSED, RESYNC

T0 = datetime(2026, 12, 4, 12, tzinfo=UTC)


@pytest.fixture
async def store() -> AsyncIterator[SqlStore]:
    async with await open_store("sqlite://") as opened:
        yield opened


async def _users(store: SqlStore, n: int) -> list[str]:
    ids = []
    for i in range(n):
        uid = f"{i:032x}"
        await store.create_user(User(id=uid, username=f"user{i}", email=f"u{i}@example.com",
                                     password_hash="x", display_name=f"U{i}", bio="",
                                     created_at=T0, updated_at=T0))
        ids.append(uid)
    return ids


def _event(user_id: str, title: str = "t") -> bytes:
    return WentLive(stream_id="e" * 32, user_id=user_id, username="star", display_name="Star",
                    title=title, category="chess", started_at=T0).encode()


@pytest.mark.parametrize("side", ["followers", "connected"])
async def test_only_connected_followers_get_the_event(
    store: SqlStore, side: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    star, *fans = await _users(store, 6)
    for fan in (fans[0], fans[1], fans[4]):  # 2 and 3 connect but do not follow; 4 is away
        await store.follow(user_id=star, follower_id=fan, at=T0)

    async def unused(*args: object, **kwargs: object) -> None:
        raise AssertionError("looked up from the other side")

    # 4 users connected (besides the star), 3 followers: past the threshold, the feed
    # reads the followers (the smaller side); under it, it asks about the connected ones.
    follower_side_from = 0 if side == "followers" else 1000
    other = "followers_among" if side == "followers" else "list_followers"
    monkeypatch.setattr(store, other, unused)
    bus = MemoryBus()
    feed = LiveFeed(store, bus, follower_side_from=follower_side_from)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        await feed.ensure_running(nursery, shutdown)
        with feed.listen(fans[0]) as a, feed.listen(fans[0]) as a2, \
                feed.listen(fans[1]) as b, feed.listen(fans[2]) as c, \
                feed.listen(fans[3]) as d, feed.listen(star) as s:
            await bus.publish(TOPIC, b"not an event")  # ignored, logged
            await bus.publish(TOPIC, _event(star, "first"))
            await bus.publish(TOPIC, _event(fans[3], "fan 3 live"))  # nobody follows fan 3
            await bus.publish(TOPIC, _event(star, "last"))
            got: dict[str, list[object]] = {n: [] for n in ("a", "a2", "b", "c", "d", "s")}
            while "last" not in got["a"]:  # the feed handles events in order
                item = await a.next()
                got["a"].append(item.title if isinstance(item, WentLive) else item)
            shutdown.set()  # the feed closes every connection on the way out
            for name, listener in (("a", a), ("a2", a2), ("b", b), ("c", c), ("d", d),
                                   ("s", s)):
                while (item := await listener.next()) is not CLOSED:
                    got[name].append(item.title if isinstance(item, WentLive) else item)
    assert got == {"a": ["first", "last"], "a2": ["first", "last"], "b": ["first", "last"],
                   "c": [], "d": [], "s": []}
    assert feed.delivered == 6 and feed.dropped == 0 and feed.connections == 0


class _GatedStore:
    """Holds the feed inside its first lookup until the test lets it go."""

    def __init__(self) -> None:
        self.entered = trio.Event()
        self.gate = trio.Event()

    async def followers_among(self, user_id: str, candidate_ids: object) -> set[str]:
        self.entered.set()
        await self.gate.wait()
        return set()


async def test_a_lagging_subscription_asks_everyone_to_resync() -> None:
    store = _GatedStore()
    bus = MemoryBus(subscriber_buffer=1)
    feed = LiveFeed(cast(Store, store), bus)
    shutdown = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as nursery:
            await feed.ensure_running(nursery, shutdown)
            with feed.listen("f" * 32) as listener:
                await bus.publish(TOPIC, _event("a" * 32, "e0"))
                await store.entered.wait()  # the feed is busy with e0
                for i in range(1, 4):  # more than its subscription buffers meanwhile
                    await bus.publish(TOPIC, _event("a" * 32, f"e{i}"))
                store.gate.set()
                assert await listener.next() is RESYNC
                shutdown.set()
                assert await listener.next() is CLOSED
