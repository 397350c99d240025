"""Went-live notifications (issue 14): GET /api/me/notifications through the real gateway.

Streams go live the way the media path makes them: a real RTMP publish to the ingest
(`publish_session`, a scripted client over a socket) moves the stream to live, and the
ingest's go-live is what notifies. `test_ffmpeg_publish_notifies_the_follower` does the
same with a real ffmpeg publisher through the whole ladder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import httpx
import pytest

from streamscale.config import MediaConfig
from streamscale.testing import RunningPlatform, make_config, running_platform
from streamscale.testing.rtmp_session import PublishSession, publish_session

from ..helpers import signed_in
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
        rtmp_port=0, ladder="source", reconnect_grace_s=0.5))
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
