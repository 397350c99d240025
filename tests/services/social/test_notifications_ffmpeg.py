"""A real ffmpeg publisher going live notifies its follower, whose playback URL then plays."""

from __future__ import annotations

import dataclasses
import subprocess
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from streamscale.config import MediaConfig
from streamscale.testing import make_config, running_platform

from ..helpers import signed_in
from ..media.test_media_e2e import _publish_cmd, _wait_for
from .sse import open_events

pytestmark = pytest.mark.slow


async def test_ffmpeg_publish_notifies_the_follower(tmp_path: Path) -> None:
    config = dataclasses.replace(make_config(tmp_path), media=MediaConfig(
        rtmp_port=0, ladder="source,160p", segment_s=1.0, part_s=0.25, reconnect_grace_s=0.5))
    async with running_platform(config, ("gateway", "media", "origin")) as platform:
        base = platform.api_url.removesuffix("/api")
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            caster = await signed_in(api, "caster")
            caster_id = (await api.get("/api/users/me", headers=caster)).json()["id"]
            fan = await signed_in(api, "fan")
            assert (await api.put(f"/api/users/{caster_id}/follow", headers=fan)).is_success
            r = await api.post("/api/streams/start", headers=caster,
                               json={"title": "ffmpeg live", "category": "test"})
            stream_id, key = r.json()["stream"]["id"], r.json()["stream_key"]
            async with open_events(api, fan) as events, trio.open_nursery() as nursery:
                publisher: trio.Process = await nursery.start(partial(
                    trio.run_process, _publish_cmd(f"{platform.url('media', 'rtmp')}/{key}", 30),
                    check=False, stderr=subprocess.DEVNULL))
                event = await events.next(timeout_s=30)
                assert event is not None and event.event == "live"
                assert (event.data["stream_id"], event.data["title"]) == (stream_id, "ffmpeg live")
                assert event.data["streamer"]["username"] == "caster"
                playback_url = event.data["playback_url"]
                origin = platform.url("origin", "hls")
                assert playback_url == f"{origin}/live/{stream_id}/master.m3u8"
                live = (await api.get("/api/me/following/live", headers=fan)).json()["items"]
                assert [s["id"] for s in live] == [stream_id]
                # The master appears once the ladder has packaged the first parts.
                async with httpx.AsyncClient(timeout=30) as player:

                    async def master_ready() -> bool:
                        r = await player.get(playback_url)
                        return r.status_code == 200 and r.text.startswith("#EXTM3U")

                    await _wait_for(master_ready, timeout_s=30)
                publisher.terminate()
