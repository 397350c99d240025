"""The media path end to end: ffmpeg publishes over RTMP to `streamscale up`'s services,
the ladder and packager make HLS/LL-HLS, the origin serves it, ffmpeg plays it back."""

from __future__ import annotations

import dataclasses
import json
import logging
import shutil
import socket
import struct
import subprocess
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial
from pathlib import Path
from typing import Any

import httpx
import m3u8
import pytest
import trio

from streamscale.config import Config, MediaConfig
from streamscale.testing import RunningPlatform, make_config, running_platform
from streamscale.testing.hls_validate import validate_all
from streamscale.testing.rtmp_session import publish_session

FFMPEG = shutil.which("ffmpeg") or "ffmpeg"
FFPROBE = shutil.which("ffprobe") or "ffprobe"
pytestmark = pytest.mark.slow


@dataclasses.dataclass
class Live:
    platform: RunningPlatform
    api: httpx.AsyncClient
    auth: dict[str, str]
    rtmp: str
    hls: str


@pytest.fixture
async def live(tmp_path: Path) -> AsyncIterator[Live]:
    async with open_live(make_config(tmp_path), ("gateway", "media", "origin")) as opened:
        yield opened


@asynccontextmanager
async def open_live(config: Config, services: tuple[str, ...]) -> AsyncIterator[Live]:
    """`services` running with a short-segment ladder, and a signed-in caster."""
    config = dataclasses.replace(config, media=MediaConfig(
        rtmp_port=0, reconnect_grace_s=0.5, ladder="source,360p,160p", segment_s=1.0,
        part_s=0.25, key_check_s=0.25, skip_until_s=6.0))
    async with running_platform(config, services) as platform:
        base = platform.api_url.removesuffix("/api")
        async with httpx.AsyncClient(base_url=base, timeout=30) as api:
            await api.post("/api/users/register", json={
                "username": "caster", "email": "c@example.com", "password": "pass word 1"})
            tokens = (await api.post("/api/users/login", json={
                "login": "caster", "password": "pass word 1"})).json()
            yield Live(platform, api, {"Authorization": f"Bearer {tokens['access_token']}"},
                       platform.url("media", "rtmp"), platform.url("origin", "hls"))


async def _start(live: Live) -> tuple[str, str]:
    r = await live.api.post("/api/streams/start", headers=live.auth,
                            json={"title": "e2e", "category": "test"})
    body = r.json()
    return body["stream"]["id"], body["stream_key"]


def _publish_cmd(url: str, seconds: float) -> list[str]:
    return [FFMPEG, "-hide_banner", "-loglevel", "error", "-re",
            "-f", "lavfi", "-i", "testsrc2=size=640x360:rate=30",
            "-f", "lavfi", "-i", "sine=frequency=440:sample_rate=44100",
            "-t", str(seconds), "-c:v", "libx264", "-preset", "ultrafast", "-g", "30",
            "-pix_fmt", "yuv420p", "-c:a", "aac", "-f", "flv", url]


async def _status(live: Live, stream_id: str) -> str:
    status: str = (await live.api.get(f"/api/streams/{stream_id}")).json()["status"]
    return status


async def _wait_for(predicate: Any, *, timeout_s: float = 20) -> None:
    """Poll a condition of the running system (the system's own progress, not a sleep)."""
    with trio.fail_after(timeout_s):
        while not await predicate():  # noqa: ASYNC110 - polls another process over HTTP
            await trio.sleep(0.1)


async def _publish_live(
    live: Live, nursery: trio.Nursery, stream_id: str, key: str, seconds: float, *,
    check: bool = False,
) -> trio.Process:
    """Start ffmpeg publishing `seconds` of test pattern and wait until the stream is live."""
    publisher: trio.Process = await nursery.start(partial(
        trio.run_process, _publish_cmd(f"{live.rtmp}/{key}", seconds), check=check,
        stderr=subprocess.DEVNULL))

    async def is_live() -> bool:
        return await _status(live, stream_id) == "live"

    await _wait_for(is_live)
    return publisher


async def _ffprobe(url: str) -> dict[str, Any]:
    result = await trio.run_process(
        [FFPROBE, "-v", "error", "-show_streams", "-show_format", "-of", "json", url],
        capture_stdout=True)
    probe: dict[str, Any] = json.loads(result.stdout)
    return probe


async def test_publish_play_and_end(live: Live) -> None:
    stream_id, key = await _start(live)
    master_url = f"{live.hls}/live/{stream_id}/master.m3u8"
    served: list[tuple[str, bytes]] = []  # every playlist, for the strict parser at the end
    async with trio.open_nursery() as nursery:
        publisher = await nursery.start(partial(
            trio.run_process, _publish_cmd(f"{live.rtmp}/{key}", 9),
            stderr=subprocess.DEVNULL))

        async def live_with_segments() -> bool:
            if await _status(live, stream_id) != "live":
                return False
            async with httpx.AsyncClient() as c:
                r = await c.get(f"{live.hls}/live/{stream_id}/160p/index.m3u8")
            return r.status_code == 200 and r.text.count("#EXTINF") >= 2

        await _wait_for(live_with_segments)
        async with httpx.AsyncClient() as origin:
            master = m3u8.loads((await origin.get(master_url)).text)
            names = [p.uri.split("/")[0] for p in master.playlists]
            # players start on the first variant: the top encoded rung, which has extra
            # IDRs (media.independent_s), not the passthrough with the publisher's GOP
            assert names == ["360p", "source", "160p"]
            sizes = {p.uri.split("/")[0]: p.stream_info.resolution for p in master.playlists}
            assert sizes == {"source": (640, 360), "360p": (640, 360), "160p": (284, 160)}
            media = m3u8.loads((await origin.get(
                f"{live.hls}/live/{stream_id}/160p/index.m3u8")).text)
            # encoded rungs: INDEPENDENT parts inside segments too (a GOP is 1 s here and
            # 0.5 s of parts is 2 parts of 7 frames: an extra IDR every 14 frames)
            listed = [p for seg in media.segments for p in seg.parts] + [
                p for p in getattr(media, "parts", []) or []]
            mid = [p for p in listed if p.independent == "YES" and not p.uri.endswith(".0.m4s")]
            assert mid, [(p.uri, p.independent) for p in listed]
            assert media.server_control.can_block_reload == "YES"
            assert media.part_inf.part_target == pytest.approx(0.25)
            assert media.program_date_time is not None
            # Keyframes aligned: every rung cut its segments at the same instants.
            durations = {}
            for rung in names:
                pl = m3u8.loads((await origin.get(
                    f"{live.hls}/live/{stream_id}/{rung}/classic.m3u8")).text)
                durations[rung] = [round(s.duration, 3) for s in pl.segments]
            shortest = min(len(d) for d in durations.values())
            assert len({tuple(d[:shortest]) for d in durations.values()}) == 1
            await _collect_ll_playlists(origin, f"{live.hls}/live/{stream_id}", names, served)
        # A real player plays the live stream.
        await trio.run_process([FFMPEG, "-v", "error", "-i", master_url, "-t", "1.5",
                                "-f", "null", "-"])
        probe = await _ffprobe(f"{live.hls}/live/{stream_id}/160p/index.m3u8")
        codecs = {s["codec_type"]: s for s in probe["streams"]}
        assert codecs["video"]["codec_name"] == "h264" and codecs["video"]["height"] == 160
        assert codecs["audio"]["codec_name"] == "aac"
        await publisher.wait()

    async def ended() -> bool:
        return await _status(live, stream_id) == "ended"

    await _wait_for(ended)
    vod = f"{live.hls}/vod/{stream_id}/master.m3u8"

    async def recorded() -> bool:
        async with httpx.AsyncClient() as c:
            return (await c.get(vod)).status_code == 200

    await _wait_for(recorded)
    probe = await _ffprobe(f"{live.hls}/vod/{stream_id}/360p/index.m3u8")
    assert float(probe["format"]["duration"]) == pytest.approx(9, abs=1.5)
    async with httpx.AsyncClient() as origin:
        ended_pl = (await origin.get(f"{live.hls}/live/{stream_id}/160p/index.m3u8")).text
        for url in (f"{live.hls}/live/{stream_id}/160p/classic.m3u8", vod,
                    f"{live.hls}/vod/{stream_id}/360p/index.m3u8"):
            served.append((url, (await origin.get(url)).content))
    assert "#EXT-X-ENDLIST" in ended_pl
    served.append(("ended 160p/index.m3u8", ended_pl.encode()))
    summaries = await trio.to_thread.run_sync(validate_all, served)
    assert summaries[-1]["endlist"] and any(s.get("skipped") for s in summaries)


async def _collect_ll_playlists(
    origin: httpx.AsyncClient, base: str, rungs: list[str], served: list[tuple[str, bytes]]
) -> None:
    """Fetch what LL-HLS players fetch from a live stream: the master, every rung's full
    playlist, a delta update once the window outgrows the skip boundary, and blocking
    reloads (plain and delta) for the preload-hinted part."""
    async def get(path: str) -> httpx.Response:
        r = await origin.get(f"{base}/{path}")
        assert r.status_code == 200, (path, r.status_code, r.text)
        served.append((path, r.content))
        return r

    await get("master.m3u8")
    await get("master.m3u8?classic=1")
    for rung in rungs:
        await get(f"{rung}/index.m3u8")
        await get(f"{rung}/classic.m3u8")

    async def delta_skips() -> bool:
        return "#EXT-X-SKIP:" in (await get("160p/index.m3u8?_HLS_skip=YES")).text

    await _wait_for(delta_skips)
    hint = m3u8.loads((await get("160p/index.m3u8")).text).preload_hint.uri
    msn, part = hint.split(".")[:2]
    blocking = await get(f"160p/index.m3u8?_HLS_msn={msn}&_HLS_part={part}")
    assert f'URI="{msn}.{part}.m4s"' in blocking.text
    assert blocking.headers["cache-control"] == "public, max-age=30"
    delta = await get(f"160p/index.m3u8?_HLS_msn={msn}&_HLS_part={part}&_HLS_skip=YES")
    assert "#EXT-X-SKIP:" in delta.text and f'URI="{msn}.{part}.m4s"' in delta.text


async def test_unknown_key_is_refused(live: Live) -> None:
    result = await trio.run_process(_publish_cmd(f"{live.rtmp}/live_not_a_key", 2),
                                    check=False, capture_stderr=True)
    assert result.returncode != 0


async def test_one_publisher_per_stream_and_revocation(live: Live) -> None:
    stream_id, key = await _start(live)
    async with trio.open_nursery() as nursery:
        first = await _publish_live(live, nursery, stream_id, key, 30)
        second = await trio.run_process(_publish_cmd(f"{live.rtmp}/{key}", 2), check=False,
                                        capture_stderr=True)
        assert second.returncode != 0  # refused: the stream already has a publisher

        r = await live.api.post(f"/api/streams/{stream_id}/key", headers=live.auth)
        assert r.status_code == 200
        with trio.fail_after(5):  # key_check_s is 0.25 here; the cut-off is near-immediate
            await first.wait()
        assert first.returncode != 0
    # The new key publishes to the same stream.
    new_key = r.json()["stream_key"]
    result = await trio.run_process(_publish_cmd(f"{live.rtmp}/{new_key}", 1), check=False,
                                    capture_stderr=True)
    assert result.returncode == 0, result.stderr[-500:]


async def test_garbage_on_the_ingest_port_disturbs_no_stream(live: Live) -> None:
    stream_id, key = await _start(live)
    host, port = live.rtmp.removeprefix("rtmp://").split("/")[0].split(":")
    async with trio.open_nursery() as nursery:
        publisher = await _publish_live(live, nursery, stream_id, key, 5, check=True)
        for junk in (b"\x03" + b"\xff" * 3000, b"GET / HTTP/1.1\r\n\r\n", b"\x06abc"):
            sock = await trio.open_tcp_stream(host, int(port))
            await sock.send_all(junk)
            with trio.move_on_after(5):
                while await sock.receive_some(65536):
                    pass  # the server closes a peer that breaks the protocol
            await sock.aclose()
        await publisher.wait()
        assert publisher.returncode == 0


async def test_a_publisher_reset_mid_publish_is_a_lost_connection_not_a_failure(
    live: Live, caplog: pytest.LogCaptureFixture
) -> None:
    """The session's nursery (pump and key watcher) wraps what the pump raises in an
    exception group; the ingest must still read a reset as a lost connection (INFO), not
    as a failed session with a traceback."""
    caplog.set_level(logging.INFO, logger="streamscale.services.media.ingest")
    _stream_id, key = await _start(live)
    host, port = live.rtmp.removeprefix("rtmp://").split("/")[0].rsplit(":", 1)
    session = await publish_session(host, int(port), key)
    sock = session.stream.socket
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()  # linger 0: the kernel sends RST, not FIN

    async def session_over() -> bool:
        return any(m.endswith("connection lost") or "session failed" in m
                   for m in (r.getMessage() for r in caplog.records))

    await _wait_for(session_over)
    messages = [r.getMessage() for r in caplog.records]
    assert not [m for m in messages if "session failed" in m], messages
    assert not [r for r in caplog.records if r.exc_info], messages
