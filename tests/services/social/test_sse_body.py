"""The notification stream's body on its own, on a MockClock: heartbeats, event framing,
a resync, the end when the queue closes, and a dropped (overflowing) listener."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import pytest
import trio
import trio.testing

from streamscale.backends.bus import Bus
from streamscale.backends.storage import Store
from streamscale.services.social import LiveFeed, SocialService, WentLive
from streamscale.services.social._api import HEARTBEAT_S, _events, _Social
from streamscale.services.social.feed import RESYNC
from streamscale.services.streaming import StreamService
from streamscale.testing import make_config

EVENT = WentLive(stream_id="ab" * 16, user_id="cd" * 16, username="star", display_name="Star",
                 title="Live: \u00e9t\u00e9\ndeux lignes", category="chess",
                 started_at=datetime(2026, 12, 4, 12, 0, 0, 123456, tzinfo=UTC))


@pytest.fixture
def clock() -> trio.testing.MockClock:
    return trio.testing.MockClock(autojump_threshold=0)


def _parts(chunk: bytes) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    for line in chunk.decode().strip("\n").split("\n"):
        name, _, value = line.partition(": ")
        fields[name] = value
    return fields


async def test_heartbeats_events_and_the_end(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    store = cast(Store, None)
    feed = _subscribed(LiveFeed(store, cast(Bus, None), queue_events=4))
    streams = StreamService(store, make_config(tmp_path))
    aborted: list[bool] = []
    body = _events(_Social(SocialService(store)), feed, streams, "u1", None,
                   lambda: aborted.append(True), 3600.0)
    assert await body.__anext__() == b"retry: 3000\n: connected\n\n"
    assert feed.connections == 1
    start = trio.current_time()
    assert await body.__anext__() == b": keepalive\n\n"
    assert trio.current_time() - start == pytest.approx(HEARTBEAT_S)
    (listener,) = feed._listeners["u1"]
    listener.offer(EVENT)
    chunk = await body.__anext__()
    assert chunk.endswith(b"\n\n") and chunk.count(b"\n") == 4  # one data line, escaped
    fields = _parts(chunk)
    assert fields["id"] == f"1796385600123456-{'ab' * 16}" and fields["event"] == "live"
    data = json.loads(fields["data"])
    assert data["title"] == "Live: \u00e9t\u00e9\ndeux lignes"
    assert data["started_at"].startswith("2026-12-04T12:00:00.123456")
    assert data["playback_url"].endswith(f"/live/{'ab' * 16}/master.m3u8")
    listener.offer(RESYNC)
    assert await body.__anext__() == b"event: resync\ndata: {}\n\n"
    listener.close()
    with pytest.raises(StopAsyncIteration):
        await body.__anext__()
    assert feed.connections == 0 and not aborted


async def test_an_overflowing_listener_is_dropped_not_waited_for() -> None:
    feed = _subscribed(LiveFeed(cast(Store, None), cast(Bus, None), queue_events=2))
    with feed.listen("u1") as listener:
        for _ in range(3):
            listener.offer(EVENT)  # never blocks
        assert listener.dropped
        assert [await listener.next() for _ in range(3)] == [EVENT, EVENT, _closed()]


async def test_a_connection_to_a_feed_that_stopped_ends_at_once() -> None:
    feed = LiveFeed(cast(Store, None), cast(Bus, None))  # never subscribed, or lost it
    with feed.listen("u1") as listener:
        assert await listener.next() is _closed()


async def test_the_stream_ends_when_its_token_expires(
    tmp_path: Path, clock: trio.testing.MockClock
) -> None:
    store = cast(Store, None)
    feed = _subscribed(LiveFeed(store, cast(Bus, None)))
    body = _events(_Social(SocialService(store)), feed, StreamService(store, make_config(
        tmp_path)), "u1", None, lambda: None, 40.0)
    start = trio.current_time()
    chunks = [chunk async for chunk in body]
    assert chunks == [b"retry: 3000\n: connected\n\n", b": keepalive\n\n", b": keepalive\n\n",
                      b"event: expired\ndata: {}\n\n"]
    assert trio.current_time() - start == pytest.approx(40.0)
    assert feed.connections == 0


def _subscribed(feed: LiveFeed) -> LiveFeed:
    """As if its bus subscription were running (these tests feed listeners by hand)."""
    feed._running = True
    return feed


def _closed() -> object:
    from streamscale.services.social.feed import CLOSED

    return CLOSED


def test_events_and_their_ids_round_trip() -> None:
    from streamscale.services.social.events import parse_event_id

    assert parse_event_id(EVENT.event_id) == (EVENT.started_at, EVENT.stream_id)
    assert WentLive.decode(EVENT.encode()) == EVENT
    good = json.loads(EVENT.encode())
    for bad in (b"", b"\xff", b"[]", b"{}", json.dumps({**good, "title": 5}).encode(),
                json.dumps({**good, "started_at": "2026-12-04T12:00:00"}).encode(),
                json.dumps({**good, "started_at": "yesterday"}).encode()):
        with pytest.raises(ValueError, match="not a went-live event"):
            WentLive.decode(bad)
