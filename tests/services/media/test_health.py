"""Ingest health (services/media/health.py): the snapshots say what the publisher sends.

1. HealthMeter on hand-made FLV tags: frame rate from timestamps, keyframe interval, drops.
2. (slow) ffmpeg publishes at a known frame rate and GOP (-r 25 -g 50: a keyframe every
   2 s); the media service's own reporter (analytics.health_sample_s) reports them, and
   a rung shed (`MediaHub.shed`, as overload would) shows in the next snapshots.
"""

from __future__ import annotations

import dataclasses
import subprocess
from functools import partial
from pathlib import Path

import pytest
import trio

from streamscale.config import AnalyticsConfig
from streamscale.services.media import MediaHub
from streamscale.services.media.health import (
    HealthMeter,
    StreamHealth,
    decode_batch,
    encode_batch,
)
from streamscale.services.media.health_report import HealthReporter
from streamscale.testing import make_config

from .test_media_e2e import FFMPEG, _start, open_live

KEY, INTER = bytes([0x17, 0x01]), bytes([0x27, 0x01])  # AVC NALU, key / inter frame


class _Ladder:
    """What the meter reads of a ladder."""

    def __init__(self) -> None:
        self.stats = type("S", (), {"decode_errors": 0})()
        self.behind_s, self.load, self.shed_rungs = 0.25, 0.8, ["720p"]


def test_meter_frame_rate_keyframes_and_drops() -> None:
    meter = HealthMeter(0.0)
    ladder = _Ladder()
    meter.tag("video", 0, bytes([0x17, 0x00]) + b"seq")  # sequence header: not a frame
    for i in range(60):  # 2 s at 30 fps, a keyframe every 1 s
        meter.tag("video", round(i * 1000 / 30), (KEY if i % 30 == 0 else INTER) + b"x" * 98)
        meter.tag("audio", round(i * 1000 / 30), b"a" * 50)
        if i not in (10, 11):  # two frames never reach the ladder
            meter.transcoded(ladder)  # type: ignore[arg-type]
    ladder.stats.decode_errors = 1
    snap = meter.snapshot("s", now_s=2.0, ladder=ladder)  # type: ignore[arg-type]
    assert snap.frames == 60
    assert snap.frame_rate_fps == pytest.approx(30, abs=0.3)
    assert snap.keyframe_interval_s == pytest.approx(1.0)
    assert snap.dropped_frames == 3
    assert snap.ingest_kbps == pytest.approx((5 + 60 * 150) * 8 / 1000 / 2.0)
    assert (snap.transcoder_behind_s, snap.transcoder_load, snap.shed_rungs) == (
        0.25, 0.8, ("720p",))
    # the next window: the span starts at the previous window's last frame
    for i in range(60, 75):
        meter.tag("video", round(i * 1000 / 30), INTER + b"x")
        meter.transcoded(ladder)  # type: ignore[arg-type]
    snap = meter.snapshot("s", now_s=2.5, ladder=None)
    assert (snap.frames, snap.dropped_frames) == (15, 0)
    assert snap.frame_rate_fps == pytest.approx(30, abs=0.3)
    assert snap.keyframe_interval_s == pytest.approx(1.0)  # no keyframe here: the last known
    assert snap.transcoder_load == 0.0


def test_batch_round_trip_and_bad_input() -> None:
    snap = StreamHealth(stream_id="s", at_s=1.5, interval_s=2, ingest_kbps=900,
                        frame_rate_fps=25, keyframe_interval_s=2, frames=50, dropped_frames=0,
                        transcoder_behind_s=0, transcoder_load=0.5, shed_rungs=("480p",))
    assert decode_batch(encode_batch([snap, snap])) == [snap, snap]
    for bad in (b"", b"[]", b'{"v": 2}', b'{"v": 1, "health": [[1]]}',
                b'{"v": 1, "health": [["s", "NaN", 2, 1, 1, 1, 1, 1, 1, 1, []]]}',
                b'{"v": 1, "health": [["s", 1, 2, -1, 1, 1, 1, 1, 1, 1, []]]}'):
        with pytest.raises(ValueError, match="health"):
            decode_batch(bad)


@pytest.mark.slow
async def test_reported_health_matches_the_publishers_frame_rate_and_gop(
    tmp_path: Path,
) -> None:
    fps, gop_frames = 25, 50
    config = dataclasses.replace(make_config(tmp_path), analytics=AnalyticsConfig(
        health_sample_s=0.5, health_flush_s=0.5))
    async with open_live(config, ("gateway", "media", "origin")) as live:
        reporter = live.platform.handle("media", "health")
        assert isinstance(reporter, HealthReporter)
        stream_id, key = await _start(live)
        cmd = [FFMPEG, "-hide_banner", "-loglevel", "error", "-re",
               "-f", "lavfi", "-i", f"testsrc2=size=320x180:rate={fps}",
               "-t", "20", "-c:v", "libx264", "-preset", "ultrafast", "-g", str(gop_frames),
               "-keyint_min", str(gop_frames), "-sc_threshold", "0", "-pix_fmt", "yuv420p",
               "-f", "flv", f"{live.rtmp}/{key}"]
        async with trio.open_nursery() as nursery:
            publisher: trio.Process = await nursery.start(partial(
                trio.run_process, cmd, check=False, stderr=subprocess.DEVNULL))
            seen: list[StreamHealth] = []
            with trio.fail_after(60):
                # snapshots until two keyframe intervals have been measured in full
                while sum(s.frames for s in seen) < 3 * gop_frames + 10:
                    await reporter.flushed.wait()
                    snap = reporter.latest.get(stream_id)
                    if snap is not None and (not seen or seen[-1] is not snap):
                        seen.append(snap)
            # a rung shed as overload would: the next snapshots name it
            hub = live.platform.handle("media", "hub")
            assert isinstance(hub, MediaHub)
            shed = await hub.shed(stream_id)
            assert shed is not None
            with trio.fail_after(30):
                while shed not in reporter.latest[stream_id].shed_rungs:
                    await reporter.flushed.wait()
            publisher.terminate()
        measured = [s for s in seen if s.frames >= 5]  # whole windows of video
        assert measured
        for snap in measured:
            assert snap.frame_rate_fps == pytest.approx(fps, abs=0.5), snap
        assert seen[-1].keyframe_interval_s == pytest.approx(gop_frames / fps, abs=0.05)
        assert sum(s.dropped_frames for s in seen) == 0
        assert all(s.ingest_kbps > 0 for s in measured)
        assert reporter.stats.batches_sent > 0
