"""End to end: FFmpeg plays the origin's live and recorded streams; the service runs."""

from __future__ import annotations

import subprocess
from functools import partial
from pathlib import Path

import httpx
import m3u8
import trio

from streamscale.config import OriginConfig
from streamscale.runtime import ServiceInfo, open_resources
from streamscale.services.media.recording import Recorder
from streamscale.services.origin import run
from streamscale.testing import make_config, running_platform

from .conftest import Origin, origin_client
from .streams import FRAMES, LiveFeeder, RawClient, get

FFPROBE = "/usr/bin/ffprobe"


async def count_frames(url: str) -> int:
    """Decode the first video stream of `url` with ffprobe; the number of frames read."""
    with trio.fail_after(60):
        done = await trio.run_process(
            [FFPROBE, "-v", "error", "-count_frames", "-select_streams", "v:0",
             "-show_entries", "stream=nb_read_frames", "-of", "csv=p=0", url],
            capture_stdout=True, capture_stderr=True, check=False,
        )
    assert done.returncode == 0, done.stderr.decode()
    assert not done.stderr.strip(), done.stderr.decode()
    return int(done.stdout.split()[0])


async def test_ffmpeg_plays_an_ended_live_stream(origin: Origin) -> None:
    feed = LiveFeeder(origin.registry)
    feed.end()
    playlists = ("master.m3u8", "master_classic.m3u8", "lo/index.m3u8", "lo/classic.m3u8")
    async with origin_client(origin.url) as client:  # the strict parser reads them too
        for playlist in playlists:
            r = await client.get(f"/live/s1/{playlist}?_HLS_skip=YES")
            assert r.status_code == 200
            assert "#EXT-X-ENDLIST" in r.text or "master" in playlist
    for playlist in playlists[:3]:
        assert await count_frames(f"{origin.url}/live/s1/{playlist}") == FRAMES
    with trio.fail_after(60):
        done = await trio.run_process(
            ["/usr/bin/ffmpeg", "-nostdin", "-v", "error", "-i",
             f"{origin.url}/live/s1/master.m3u8", "-f", "null", "-"],
            capture_stderr=True, check=False,
        )
    assert done.returncode == 0, done.stderr.decode()


async def test_ffmpeg_plays_a_recording_served_from_disk(origin: Origin) -> None:
    recorder = Recorder(origin.recordings, "s1")
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        feed = LiveFeeder(origin.registry, sink=recorder.record)
        feed.end()
        recorder.end()
    assert recorder.written == 8 and recorder.dropped == 0
    async with origin_client(origin.url) as client:
        master = await client.get("/vod/s1/master.m3u8")
        assert master.status_code == 200
        assert master.headers["content-type"] == "application/vnd.apple.mpegurl"
        assert [p.uri for p in m3u8.loads(master.text).playlists] == [
            "hi/index.m3u8", "lo/index.m3u8"
        ]
        vod = await client.get("/vod/s1/hi/index.m3u8")
        assert "#EXT-X-PLAYLIST-TYPE:VOD" in vod.text and "#EXT-X-ENDLIST" in vod.text
        segment = await client.get("/vod/s1/hi/0.m4s")
        assert segment.headers["cache-control"] == "public, max-age=31536000, immutable"
        for path in ("/vod/s1/hi/0.0.m4s", "/vod/s1/%2e%2e/index.m3u8", "/vod/nope/master.m3u8",
                     "/vod/s1/hi/99.m4s", "/vod/s1/hi/secret.txt"):
            assert (await client.get(path)).status_code == 404, path
    raw = await RawClient.connect(origin.url)  # httpx would normalise the dots away
    await raw.send_raw(get("/vod/s1/../s1/master.m3u8") + get("/vod/../../etc/passwd"))
    for _ in range(2):
        answer = await raw.response()
        assert answer is not None and answer[0].status_code == 404
    await raw.aclose()
    assert await count_frames(f"{origin.url}/vod/s1/master.m3u8") == FRAMES


async def test_run_serves_the_shared_registry(tmp_path: Path) -> None:
    config = make_config(tmp_path, origin=OriginConfig(port=0))
    async with open_resources(config) as resources, trio.open_nursery() as nursery:
        info: ServiceInfo = await nursery.start(partial(run, config))
        assert info.name == "origin"
        feed = LiveFeeder(resources.media_registry())
        feed.seconds(1.5)
        async with origin_client(info.urls["hls"]) as client:
            r = await client.get("/live/s1/master.m3u8")
        assert r.status_code == 200 and b"hi/index.m3u8" in r.content
        nursery.cancel_scope.cancel()


async def test_origin_is_a_registered_service(tmp_path: Path) -> None:
    async with running_platform(make_config(tmp_path), services=("origin",)) as platform:
        async with httpx.AsyncClient(base_url=platform.url("origin", "hls")) as client:
            r = await client.get("/live/nobody/master.m3u8")
        assert r.status_code == 404


def test_ffprobe_is_installed() -> None:
    assert subprocess.run([FFPROBE, "-version"], capture_output=True, check=False).returncode == 0
