"""Browser tests: the platform in-process, ffmpeg publishing, hls.js in Chromium playing.

Every test here drives Debian's Chromium through Playwright (streamscale.testing.browser);
`./dev test` installs both.
"""

from __future__ import annotations

import dataclasses
import shutil
import subprocess
from collections.abc import AsyncIterator
from functools import partial
from pathlib import Path

import httpx
import pytest
import trio

from streamscale.config import MediaConfig
from streamscale.services.media import MediaHub
from streamscale.testing import RunningPlatform, make_config, running_platform
from streamscale.testing.browser import Browser, open_browser

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"


@dataclasses.dataclass
class Stream:
    platform: RunningPlatform
    hub: MediaHub
    stream_id: str
    key: str
    publish_url: str
    master_url: str


def publish_cmd(url: str, seconds: float) -> list[str]:
    """A 720p30 test pattern with a tone, x264 veryfast, a keyframe every 2 s exactly."""
    return [FFMPEG, "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=1280x720:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=48000",
            "-t", f"{seconds:g}", "-c:v", "libx264", "-preset", "veryfast",
            "-tune", "zerolatency", "-g", "60", "-keyint_min", "60", "-sc_threshold", "0",
            "-b:v", "2500k", "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", url]


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with open_browser() as running:
        yield running


@pytest.fixture
async def stream(tmp_path: Path) -> AsyncIterator[Stream]:
    """A started stream (not yet published) on a platform with a small ladder: the source
    rung plus two encoded rungs, the LL-HLS defaults (2 s segments, 0.334 s parts). The
    overload policy waits an hour before acting on its own: the tests force sheds and
    restores, and a shared CI machine must not add its own in between."""
    config = make_config(tmp_path)
    config = dataclasses.replace(config, media=MediaConfig(
        rtmp_port=0, reconnect_grace_s=1.0, ladder="source,360p,160p",
        shed_sustain_s=3600.0, restore_after_s=3600.0))
    async with running_platform(config, ("gateway", "media", "origin")) as platform:
        hub = platform.handle("media", "hub")
        assert isinstance(hub, MediaHub)
        yield await _started(platform, hub)


async def _started(platform: RunningPlatform, hub: MediaHub) -> Stream:
    base = platform.api_url.removesuffix("/api")
    async with httpx.AsyncClient(base_url=base, timeout=30) as api:
        await api.post("/api/users/register", json={
            "username": "caster", "email": "c@example.com", "password": "pass word 1"})
        token = (await api.post("/api/users/login", json={
            "login": "caster", "password": "pass word 1"})).json()["access_token"]
        body = (await api.post("/api/streams/start", json={
            "title": "browser", "category": "test"},
            headers={"Authorization": f"Bearer {token}"})).json()
    stream_id, key = body["stream"]["id"], body["stream_key"]
    return Stream(platform, hub, stream_id, key, f"{platform.url('media', 'rtmp')}/{key}",
                  f"{platform.url('origin', 'hls')}/live/{stream_id}/master.m3u8")


async def wait_for_master(url: str, *, rungs: int, timeout_s: float = 30) -> str:
    """Poll the origin (another task's progress over HTTP) until the master lists `rungs`
    variants and the last of them has at least two segments."""
    async with httpx.AsyncClient(timeout=10) as client:
        with trio.fail_after(timeout_s):
            while True:
                r = await client.get(url)
                if r.status_code == 200:
                    uris = [ln for ln in r.text.splitlines() if ln and not ln.startswith("#")]
                    if len(uris) >= rungs:
                        media = await client.get(httpx.URL(url).join(uris[-1]))
                        if media.status_code == 200 and media.text.count("#EXTINF") >= 2:
                            return r.text
                await trio.sleep(0.2)


async def master_rungs(url: str) -> list[str]:
    """The rung names the master lists now (`<rung>/index.m3u8` URIs)."""
    async with httpx.AsyncClient(timeout=10) as client:
        r = await client.get(url)
    r.raise_for_status()
    return [ln.split("/")[0] for ln in r.text.splitlines() if ln and not ln.startswith("#")]


async def start_publisher(nursery: trio.Nursery, url: str, seconds: float) -> trio.Process:
    process: trio.Process = await nursery.start(partial(
        trio.run_process, publish_cmd(url, seconds), check=False, stderr=subprocess.DEVNULL))
    return process
