"""Went-live notifications (issue 14): GET /api/me/notifications through the real gateway.

Streams go live the way the media path makes them: a real RTMP publish to the ingest
(`publish_session`, a scripted client over a socket) moves the stream to live, and the
ingest's go-live is what notifies. `test_ffmpeg_publish_notifies_the_follower` does the
same with a real ffmpeg publisher through the whole ladder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest
import trio

from streamscale.config import MediaConfig
from streamscale.services.social._api import CONNECTIONS_PER_USER
from streamscale.testing import RunningPlatform, make_config, running_platform
from streamscale.testing.rtmp_session import PublishSession, publish_session

from ..helpers import assert_error, signed_in
from .sse import open_events


@dataclasses.dataclass
class Live:
    platform: RunningPlatform
    api: httpx.AsyncClient

    async def user(self, name: str) -> tuple[dict[str, str], dict[str, Any]]:
        auth = await signed_in(self.api, name)
        me: dict[str, Any] = (await self.api.get("/api/users/me", headers=auth)).json()
        return auth, me

    async def start(self, auth: dict[str, str], title: str, category: str = "chess"
                    ) -> tuple[str, str]:
        r = await self.api.post("/api/streams/start", headers=auth,
                                json={"title": title, "category": category})
        assert r.status_code == 201, r.text
        return r.json()["stream"]["id"], r.json()["stream_key"]

    async def go_live(self, key: str) -> PublishSession:
        """Publish over RTMP: the ingest accepts and marks the stream live."""
        rtmp = urlsplit(self.platform.url("media", "rtmp"))
        assert rtmp.hostname is not None and rtmp.port is not None
        return await publish_session(rtmp.hostname, rtmp.port, key)


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    config = dataclasses.replace(make_config(tmp_path), media=MediaConfig(
        rtmp_port=0, ladder="source", reconnect_grace_s=30.0))
    async with running_platform(config, ("gateway", "media")) as platform:
        base = platform.api_url.removesuffix("/api")
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            yield Live(platform, api)


async def test_follower_is_told_and_a_non_follower_is_not(live: Live) -> None:
    caster, caster_me = await live.user("caster")
    other, other_me = await live.user("other")
    fan, _ = await live.user("fan")
    stranger, _ = await live.user("stranger")
    assert (await live.api.put(f"/api/users/{caster_me['id']}/follow", headers=fan)).is_success
    r = await live.api.put(f"/api/users/{other_me['id']}/follow", headers=stranger)
    assert r.is_success
    stream_id, key = await live.start(caster, "Opening prep")
    other_id, other_key = await live.start(other, "Endgames", "chess")

    async with open_events(live.api, fan) as fan_events, \
            open_events(live.api, stranger) as stranger_events, await live.go_live(key):
        event = await fan_events.next()
        assert event is not None and event.event == "live"
        assert event.data == {
            "stream_id": stream_id, "title": "Opening prep", "category": "chess",
            "started_at": event.data["started_at"],
            "playback_url": (await live.api.get(f"/api/streams/{stream_id}")).json()[
                "playback_url"],
            "streamer": {"id": caster_me["id"], "username": "caster",
                         "display_name": caster_me["display_name"]},
        }
        assert event.id is not None and event.id.endswith(f"-{stream_id}")
        # The stranger follows `other` only: the first event it gets is other's going
        # live, not the caster's (the feed handles events in order).
        async with await live.go_live(other_key):
            got = await stranger_events.next()
            assert got is not None and got.data["stream_id"] == other_id


async def test_unauthenticated_or_bad_last_event_id_is_a_json_error(live: Live) -> None:
    r = await live.api.get("/api/me/notifications")
    assert_error(r, 401, "unauthorized")
    r = await live.api.get("/api/me/notifications", headers={"Authorization": "Bearer nope"})
    assert r.status_code == 401 and r.json()["error"]["code"]
    fan, _ = await live.user("fan")
    for bad in ("nope", "12-", "-abc", "1" * 40 + "-abc", "12-a b"):
        r = await live.api.get("/api/me/notifications",
                               headers={**fan, "Last-Event-ID": bad})
        assert_error(r, 400, "invalid_last_event_id")


async def test_reconnecting_with_last_event_id_replays_what_is_still_live(live: Live) -> None:
    a, a_me = await live.user("aaa")
    b, b_me = await live.user("bbb")
    c, c_me = await live.user("ccc")
    fan, _ = await live.user("fan")
    for me in (a_me, b_me, c_me):
        assert (await live.api.put(f"/api/users/{me['id']}/follow", headers=fan)).is_success
    a_id, a_key = await live.start(a, "first")
    b_id, b_key = await live.start(b, "missed, still live")
    c_id, c_key = await live.start(c, "missed, ended")
    async with open_events(live.api, fan) as events, await live.go_live(a_key):
        seen = await events.next()
        assert seen is not None and seen.data["stream_id"] == a_id and seen.id
    # disconnected: c goes live and ends, b goes live and stays
    async with await live.go_live(c_key):
        pass
    r = await live.api.post(f"/api/streams/{c_id}/stop", headers=c)
    assert r.json()["status"] == "ended"
    async with await live.go_live(b_key), \
            open_events(live.api, fan, last_event_id=seen.id) as events:
        replayed = await events.next()
        assert replayed is not None and replayed.event == "live"
        assert replayed.data["stream_id"] == b_id
        assert replayed.data["title"] == "missed, still live"
        # then live events as usual: d goes live now
        d, d_me = await live.user("ddd")
        assert (await live.api.put(f"/api/users/{d_me['id']}/follow", headers=fan)).is_success
        d_id, d_key = await live.start(d, "now")
        async with await live.go_live(d_key):
            now = await events.next()
            assert now is not None and now.data["stream_id"] == d_id


async def test_a_reconnect_within_the_grace_is_not_a_new_go_live(live: Live) -> None:
    caster, caster_me = await live.user("caster")
    fan, _ = await live.user("fan")
    assert (await live.api.put(f"/api/users/{caster_me['id']}/follow", headers=fan)).is_success
    first_id, key = await live.start(caster, "flaky uplink")
    second_id, second_key = await live.start(caster, "second stream")
    async with open_events(live.api, fan) as events:
        async with await live.go_live(key):
            got = await events.next()
            assert got is not None and got.data["stream_id"] == first_id
        # the publisher comes back (still the same stream), then the second stream starts
        async with await live.go_live(key), await live.go_live(second_key):
            got = await events.next()
            assert got is not None and got.data["stream_id"] == second_id


async def test_streams_per_user_are_bounded(live: Live) -> None:
    fan, _ = await live.user("fan")
    async with AsyncExitStack() as stack:
        for _ in range(CONNECTIONS_PER_USER):
            await stack.enter_async_context(open_events(live.api, fan))
        r = await live.api.get("/api/me/notifications", headers=fan)
        assert_error(r, 429, "too_many_streams")

    async def accepted() -> bool:  # the server lets go of closed ones as it sees them close
        async with live.api.stream("GET", "/api/me/notifications", headers=fan) as r:
            return r.status_code == 200

    with trio.fail_after(10):
        while not await accepted():  # noqa: ASYNC110 - polls the server over HTTP
            await trio.sleep(0.05)
