"""What publishers really send, end to end: audio only, video only, H.264 that browsers
cannot decode (High 4:4:4 from ffmpeg and from GStreamer's default caps, High 10), and
codecs the platform refuses (Sorenson H.263 from ffmpeg, HEVC over Enhanced RTMP).

Each test publishes with a real client to the in-process platform, then checks what a
player gets: the master's CODECS against the served init segment's avcC, and the media as
ffprobe/ffmpeg decode it through the origin.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import subprocess
from collections.abc import AsyncIterator, Callable
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest
import trio

from streamscale.config import MediaConfig
from streamscale.testing import RunningPlatform, make_config, running_platform
from streamscale.testing.hls_validate import validate_all
from streamscale.testing.rtmp_client import ServerCommand
from streamscale.testing.rtmp_session import publish_session

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"
GST_LAUNCH = shutil.which("gst-launch-1.0")
pytestmark = pytest.mark.slow

VIDEO = ["-f", "lavfi", "-i", "testsrc2=size=320x240:rate=30"]
AUDIO = ["-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100"]
X264 = ["-c:v", "libx264", "-preset", "ultrafast", "-g", "30"]


def x264_pixel_formats() -> set[str]:
    """What the installed libx264 encodes (10-bit only when built with it)."""
    out = subprocess.run([FFMPEG, "-hide_banner", "-h", "encoder=libx264"],
                         capture_output=True, text=True, check=False).stdout
    line = next((ln for ln in out.splitlines() if "pixel formats" in ln), "")
    return set(line.split(":", 1)[-1].split())


TEN_BIT = pytest.mark.skipif("yuv420p10le" not in x264_pixel_formats(),
                             reason="this libx264 has no 10-bit support")


@dataclasses.dataclass
class Live:
    platform: RunningPlatform
    api: httpx.AsyncClient
    origin: httpx.AsyncClient
    auth: dict[str, str]
    rtmp: str
    hls: str

    async def start(self) -> tuple[str, str]:
        r = await self.api.post("/api/streams/start", headers=self.auth,
                                json={"title": "sources", "category": "test"})
        body = r.json()
        return body["stream"]["id"], body["stream_key"]

    async def status(self, stream_id: str) -> str:
        status: str = (await self.api.get(f"/api/streams/{stream_id}")).json()["status"]
        return status


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    config = make_config(tmp_path)
    config = dataclasses.replace(config, media=MediaConfig(
        rtmp_port=0, reconnect_grace_s=0.5, ladder="source,160p", segment_s=1.0, part_s=0.25,
        key_check_s=0.25))
    async with running_platform(config, ("gateway", "media", "origin")) as platform:
        base = platform.api_url.removesuffix("/api")
        async with httpx.AsyncClient(base_url=base, timeout=30) as api, \
                httpx.AsyncClient(timeout=30) as origin:
            await api.post("/api/users/register", json={
                "username": "caster", "email": "c@example.com", "password": "pass word 1"})
            tokens = (await api.post("/api/users/login", json={
                "login": "caster", "password": "pass word 1"})).json()
            yield Live(platform, api, origin,
                       {"Authorization": f"Bearer {tokens['access_token']}"},
                       platform.url("media", "rtmp"), platform.url("origin", "hls"))


def _ffmpeg_publish(url: str, *args: str, seconds: float = 8) -> list[str]:
    return [FFMPEG, "-hide_banner", "-loglevel", "error", "-re", *args, "-t", str(seconds),
            "-f", "flv", url]


async def _wait_for(predicate: Callable[[], Any], *, timeout_s: float = 30) -> None:
    """Poll the running system's own progress (over HTTP), not a sleep."""
    with trio.fail_after(timeout_s):
        while not await predicate():  # noqa: ASYNC110 - polls the origin over HTTP
            await trio.sleep(0.1)


async def _playable_master(live: Live, stream_id: str) -> m3u8.M3U8:
    """The master once it answers 200 and every variant has two complete segments."""
    url = f"{live.hls}/live/{stream_id}/master.m3u8"
    master: list[m3u8.M3U8] = []

    async def ready() -> bool:
        r = await live.origin.get(url)
        if r.status_code != 200:
            return False
        parsed = m3u8.loads(r.text)
        if not parsed.playlists:
            return False
        for variant in parsed.playlists:
            media = await live.origin.get(f"{live.hls}/live/{stream_id}/{variant.uri}")
            if media.status_code != 200 or media.text.count("#EXTINF") < 2:
                return False
        master[:] = [parsed]
        return True

    await _wait_for(ready)
    return master[0]


def _variants(master: m3u8.M3U8) -> dict[str, Any]:
    return {p.uri.split("/")[0]: p.stream_info for p in master.playlists}


async def _strictly_valid(live: Live, stream_id: str, rungs: list[str]) -> None:
    """The master and every rung's LL-HLS and classic playlist pass the strict parser."""
    base = f"{live.hls}/live/{stream_id}"
    served = [("master", (await live.origin.get(f"{base}/master.m3u8")).content)]
    for rung in rungs:
        for name in ("index.m3u8", "classic.m3u8"):
            served.append((f"{rung}/{name}",
                           (await live.origin.get(f"{base}/{rung}/{name}")).content))
    await trio.to_thread.run_sync(validate_all, served)


async def _probe(url: str, *extra: str) -> dict[str, Any]:
    result = await trio.run_process(
        [FFPROBE, "-v", "error", *extra, "-of", "json", url], capture_stdout=True)
    probe: dict[str, Any] = json.loads(result.stdout)
    return probe


async def _decoded_video_frames(url: str) -> list[dict[str, Any]]:
    """Decode the first frames of a playlist as a player would; their pixel formats."""
    probe = await _probe(url, "-select_streams", "v:0", "-read_intervals", "%+#8",
                         "-show_entries", "frame=pix_fmt,width,height")
    frames: list[dict[str, Any]] = probe["frames"]
    return frames


def _avcc_from_init(init: bytes) -> bytes:
    """The avcC record in an init segment, found by walking the boxes (not our parser)."""
    def walk(data: bytes) -> bytes | None:
        pos = 0
        while pos + 8 <= len(data):
            size, kind = int.from_bytes(data[pos:pos + 4], "big"), data[pos + 4:pos + 8]
            body = data[pos + 8:pos + size]
            if kind == b"avcC":
                return body
            if kind in (b"moov", b"trak", b"mdia", b"minf", b"stbl"):
                found = walk(body)
                if found is not None:
                    return found
            elif kind == b"stsd":
                found = walk(body[8:])  # version/flags, entry count
                if found is not None:
                    return found
            elif kind == b"avc1":
                return walk(body[78:])  # the visual sample entry's fixed fields
            pos += size
        return None

    record = walk(init)
    assert record is not None, "no avcC in the init segment"
    return record


async def _assert_browser_decodable_h264(live: Live, stream_id: str, rung: str,
                                         codecs: str) -> None:
    """CODECS says what the init segment carries, and that is H.264 4:2:0 8-bit."""
    init = (await live.origin.get(f"{live.hls}/live/{stream_id}/{rung}/init.mp4")).content
    record = _avcc_from_init(init)
    sps = record[8:8 + int.from_bytes(record[6:8], "big")]
    assert codecs.split(",")[0] == f"avc1.{sps[1:4].hex()}", (codecs, sps[1:4].hex())
    assert sps[1] in (66, 77, 100), f"profile_idc {sps[1]} is not Baseline/Main/High"
    probe = await _probe(f"{live.hls}/live/{stream_id}/{rung}/index.m3u8",
                         "-show_streams", "-select_streams", "v:0")
    stream = probe["streams"][0]
    assert stream["codec_name"] == "h264"
    assert stream["pix_fmt"] == "yuv420p", stream
    assert stream["profile"] in ("Constrained Baseline", "Baseline", "Main", "High"), stream
    frames = await _decoded_video_frames(f"{live.hls}/live/{stream_id}/{rung}/index.m3u8")
    assert frames and {f["pix_fmt"] for f in frames} == {"yuv420p"}


# -- audio only, video only -------------------------------------------------------------------


async def test_audio_only_publish_plays(live: Live, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, "streamscale.services.media")
    stream_id, key = await live.start()
    async with trio.open_nursery() as nursery:
        publisher = await nursery.start(partial(
            trio.run_process, _ffmpeg_publish(f"{live.rtmp}/{key}", *AUDIO, "-c:a", "aac"),
            stderr=subprocess.DEVNULL))
        master = await _playable_master(live, stream_id)
        variants = _variants(master)
        assert list(variants) == ["audio"]
        assert variants["audio"].codecs == "mp4a.40.2"
        assert variants["audio"].resolution is None
        await _strictly_valid(live, stream_id, ["audio"])
        assert await live.status(stream_id) == "live"
        media = m3u8.loads((await live.origin.get(
            f"{live.hls}/live/{stream_id}/audio/index.m3u8")).text)
        assert media.part_inf.part_target == pytest.approx(0.25)
        assert media.program_date_time is not None
        master_url = f"{live.hls}/live/{stream_id}/master.m3u8"
        probe = await _probe(master_url, "-show_streams")
        assert [s["codec_name"] for s in probe["streams"]] == ["aac"]
        # A player decodes a second and a half of it through the master.
        await trio.run_process([FFMPEG, "-v", "error", "-i", master_url, "-t", "1.5",
                                "-f", "null", "-"])
        await publisher.wait()
    assert any("packaging audio only (mp4a.40.2)" in r.getMessage() for r in caplog.records)


async def test_video_only_publish_plays(live: Live) -> None:
    stream_id, key = await live.start()
    async with trio.open_nursery() as nursery:
        publisher = await nursery.start(partial(
            trio.run_process,
            _ffmpeg_publish(f"{live.rtmp}/{key}", *VIDEO, *X264, "-pix_fmt", "yuv420p"),
            stderr=subprocess.DEVNULL))
        master = await _playable_master(live, stream_id)
        variants = _variants(master)
        assert list(variants) == ["160p", "source"]  # the encoded rung first: players start there
        await _strictly_valid(live, stream_id, list(variants))
        for rung, info in variants.items():
            assert "mp4a" not in info.codecs
            await _assert_browser_decodable_h264(live, stream_id, rung, info.codecs)
        assert variants["source"].resolution == (320, 240)
        await publisher.wait()


# -- H.264 the browsers cannot decode: the source rung is transcoded ----------------------


@pytest.mark.parametrize("pix_fmt", ["yuv444p", pytest.param("yuv420p10le", marks=TEN_BIT)])
async def test_undecodable_h264_source_is_transcoded(
    live: Live, pix_fmt: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "streamscale.services.media")
    stream_id, key = await live.start()
    async with trio.open_nursery() as nursery:
        publisher = await nursery.start(partial(
            trio.run_process,
            _ffmpeg_publish(f"{live.rtmp}/{key}", *VIDEO, *AUDIO, *X264, "-pix_fmt", pix_fmt,
                            "-c:a", "aac"),
            stderr=subprocess.DEVNULL))
        master = await _playable_master(live, stream_id)
        variants = _variants(master)
        assert list(variants) == ["source", "160p"]
        assert variants["source"].resolution == (320, 240)
        await _strictly_valid(live, stream_id, list(variants))
        for rung, info in variants.items():
            assert info.codecs.endswith(",mp4a.40.2")
            await _assert_browser_decodable_h264(live, stream_id, rung, info.codecs)
        await publisher.wait()
    expected = {"yuv444p": "High 4:4:4 Predictive, 4:4:4, 8-bit",
                "yuv420p10le": "High 10, 4:2:0, 10-bit"}[pix_fmt]
    assert any(expected in r.getMessage() and "transcoding the source rung" in r.getMessage()
               for r in caplog.records)


@pytest.mark.skipif(GST_LAUNCH is None, reason="gst-launch-1.0 is not installed")
async def test_gstreamer_default_caps_are_transcoded(live: Live) -> None:
    """videotestsrc ! x264enc ! flvmux negotiates Y444: High 4:4:4 Predictive on the wire."""
    assert GST_LAUNCH is not None
    stream_id, key = await live.start()
    # Caps left to negotiation; only the GOP is set so segments close every second.
    pipeline = [GST_LAUNCH, "-q", "videotestsrc", "is-live=true", "num-buffers=240", "!",
                "x264enc", "key-int-max=30", "!", "flvmux", "streamable=true", "!",
                "rtmpsink", f"location={live.rtmp}/{key} live=1"]
    async with trio.open_nursery() as nursery:
        publisher = await nursery.start(partial(
            trio.run_process, pipeline, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL))
        master = await _playable_master(live, stream_id)
        variants = _variants(master)
        assert list(variants) == ["source", "160p"]
        assert variants["source"].resolution == (320, 240)
        for rung, info in variants.items():
            await _assert_browser_decodable_h264(live, stream_id, rung, info.codecs)
        await publisher.wait()


# -- codecs that are refused at publish -------------------------------------------------------


async def _wait_ended(live: Live, stream_id: str) -> None:
    async def ended() -> bool:
        return await live.status(stream_id) == "ended"

    await _wait_for(ended)


async def test_non_h264_video_from_ffmpeg_is_refused(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "streamscale.services.media")
    stream_id, key = await live.start()
    result = await trio.run_process(
        _ffmpeg_publish(f"{live.rtmp}/{key}", *VIDEO, *AUDIO, "-c:v", "flv", "-c:a", "aac",
                        seconds=20),
        check=False, capture_stderr=True)
    stderr = result.stderr.decode(errors="replace")
    assert result.returncode != 0
    assert "Server error: unsupported codec 'h263'" in stderr, stderr[-1000:]
    assert any("publish refused: unsupported codec 'h263'" in r.getMessage()
               for r in caplog.records)
    r = await live.origin.get(f"{live.hls}/live/{stream_id}/master.m3u8")
    assert r.status_code == 404
    await _wait_ended(live, stream_id)


def _fourcc(code: str) -> float:
    return float(int.from_bytes(code.encode(), "big"))


async def test_hevc_over_enhanced_rtmp_is_refused(live: Live) -> None:
    stream_id, key = await live.start()
    hostport = live.rtmp.removeprefix("rtmp://").split("/")[0]
    host, port = hostport.rsplit(":", 1)
    async with await publish_session(host, int(port), key) as session:
        stream, client, sid = session.stream, session.client, session.sid
        await stream.send_all(client.metadata(sid, {
            "width": 320.0, "height": 240.0, "videocodecid": _fourcc("hvc1")}))
        # Enhanced RTMP: IsExHeader | KEY frame, then SequenceStart / CodedFramesX + FourCC.
        sequence_start = bytes((0x80 | 0x10 | 0,)) + b"hvc1" + bytes(23)
        await stream.send_all(client.video(sid, 0, sequence_start))
        refused: list[ServerCommand] = []
        async with trio.open_nursery() as nursery:

            async def frames() -> None:  # like a live encoder: a frame every 40 ms
                for i in range(250):
                    try:
                        await stream.send_all(client.video(
                            sid, 40 * i, bytes((0x80 | 0x10 | 3,)) + b"hvc1" + bytes(100)))
                    except (trio.BrokenResourceError, trio.ClosedResourceError):
                        return
                    await trio.sleep(0.04)

            nursery.start_soon(frames)
            with trio.fail_after(10):
                refused.append(await session.command(
                    lambda c: c.name == "onStatus" and bool(c.args)
                    and isinstance(c.args[0], dict) and c.args[0].get("level") == "error"))
            nursery.cancel_scope.cancel()
    info = refused[0].args[0]
    assert isinstance(info, dict)
    assert "unsupported codec 'hvc1'" in str(info["description"])
    assert (await live.origin.get(f"{live.hls}/live/{stream_id}/master.m3u8")).status_code == 404
    await _wait_ended(live, stream_id)
