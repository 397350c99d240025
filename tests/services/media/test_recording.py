"""Recording: segments reach the disk without ever blocking the packager, the VOD
playlist plays in FFmpeg, and retention removes old recordings."""

from __future__ import annotations

import os
import time
from functools import partial
from pathlib import Path

import m3u8
import pytest
import trio
import trio.testing

from streamscale.services.media.recording import (
    DAY_S,
    Recorder,
    expire_periodically,
    expire_recordings,
)
from streamscale.services.origin import MediaRegistry

from ..origin.streams import FRAMES, LiveFeeder

FFMPEG, FFPROBE = "/usr/bin/ffmpeg", "/usr/bin/ffprobe"


async def record(root: Path, recorder: Recorder | None = None) -> tuple[Recorder, LiveFeeder]:
    recorder = recorder or Recorder(root, "s1")
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        feed = LiveFeeder(MediaRegistry(), sink=recorder.record)
        feed.end()
        recorder.end()
    assert recorder.finished.is_set()
    return recorder, feed


async def test_segments_and_vod_playlists_are_written(tmp_path: Path) -> None:
    recorder, feed = await record(tmp_path)
    assert (recorder.written, recorder.dropped, recorder.failed) == (8, 0, 0)
    folder = tmp_path / "s1"
    for rendition in feed.renditions:
        sub = folder / rendition.name
        assert (sub / "init.mp4").read_bytes() == rendition.init_segment
        assert sorted(p.name for p in sub.iterdir()) == [
            "0.m4s", "1.m4s", "2.m4s", "3.m4s", "index.m3u8", "init.mp4"
        ]
        for msn in range(4):
            assert (sub / f"{msn}.m4s").read_bytes() == rendition.segment(msn)[1]
        vod = m3u8.loads((sub / "index.m3u8").read_text())
        assert vod.is_endlist and vod.playlist_type == "vod"
        assert [s.uri for s in vod.segments] == ["0.m4s", "1.m4s", "2.m4s", "3.m4s"]
        assert sum(s.duration for s in vod.segments) == pytest.approx(FRAMES / 30, abs=0.05)
        assert vod.segments[0].program_date_time is not None
    master = m3u8.loads((folder / "master.m3u8").read_text())
    assert [p.uri for p in master.playlists] == ["hi/index.m3u8", "lo/index.m3u8"]
    info = master.playlists[0].stream_info
    assert info.resolution == (320, 240) and info.bandwidth > 0
    assert info.codecs.startswith("avc1.")
    assert not list(folder.rglob("*.tmp"))


async def test_vod_playlist_plays_in_ffmpeg(tmp_path: Path) -> None:
    await record(tmp_path)
    with trio.fail_after(60):
        played = await trio.run_process(
            [FFMPEG, "-nostdin", "-v", "error", "-i", str(tmp_path / "s1/hi/index.m3u8"),
             "-f", "null", "-"],
            capture_stderr=True, check=False,
        )
        assert played.returncode == 0, played.stderr.decode()
        probed = await trio.run_process(
            [FFPROBE, "-v", "error", "-count_frames", "-select_streams", "v:0", "-show_entries",
             "stream=nb_read_frames", "-of", "csv=p=0", str(tmp_path / "s1/master.m3u8")],
            capture_stdout=True, capture_stderr=True, check=False,
        )
    assert probed.returncode == 0, probed.stderr.decode()
    assert int(probed.stdout.split()[0]) == FRAMES


async def test_a_stalled_disk_drops_segments_instead_of_blocking(tmp_path: Path) -> None:
    limiter = trio.CapacityLimiter(1)
    stall = object()
    await limiter.acquire_on_behalf_of(stall)  # the "disk" takes no writes until released
    recorder = Recorder(tmp_path, "s1", queue_segments=2, limiter=limiter)
    async with trio.open_nursery() as nursery:
        await nursery.start(recorder.run)
        feed = LiveFeeder(MediaRegistry(), sink=recorder.record)
        feed.seconds(1.2)  # segment 0 of both renditions closes
        await trio.testing.wait_all_tasks_blocked()  # the writer took one and is stuck
        assert recorder.queued == 2 and recorder.written == 0
        started = time.perf_counter()
        feed.end()  # six more segments: the packager never waits
        assert time.perf_counter() - started < 5
        assert recorder.queued == 3  # one in the writer's hands, two in the queue
        assert recorder.dropped == 8 - 3
        recorder.end()
        limiter.release_on_behalf_of(stall)
    assert recorder.written == recorder.queued == 3
    listed = sum(
        len(m3u8.loads((tmp_path / "s1" / name / "index.m3u8").read_text()).segments)
        for name in ("hi", "lo")
    )
    assert listed == recorder.written


async def test_write_failures_are_counted_not_raised(tmp_path: Path) -> None:
    (tmp_path / "s1").write_text("a file where the recording folder should be")
    recorder, _ = await record(tmp_path)
    assert recorder.written == 0 and recorder.failed == 8


def _age(folder: Path, days: float, now: float) -> None:
    stamp = now - days * DAY_S
    for path in [*folder.rglob("*"), folder]:
        os.utime(path, (stamp, stamp))


def _recording(root: Path, name: str, days: float, now: float) -> Path:
    folder = root / name / "hi"
    folder.mkdir(parents=True)
    (folder / "0.m4s").write_bytes(b"x")
    _age(root / name, days, now)
    return root / name


def _listing(root: Path) -> list[str]:
    return sorted(p.name for p in root.iterdir())


def test_expire_recordings_removes_only_old_ones(tmp_path: Path) -> None:
    now = time.time()
    _recording(tmp_path, "old", 31, now)
    _recording(tmp_path, "recent", 29, now)
    still_writing = _recording(tmp_path, "still_writing", 40, now)
    (still_writing / "hi" / "1.m4s").write_bytes(b"new")  # a fresh file keeps it
    (tmp_path / "stray.txt").write_text("not a recording")
    assert expire_recordings(tmp_path, 30, now) == ["old"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["recent", "still_writing", "stray.txt"]
    assert expire_recordings(tmp_path / "missing", 30, now) == []


async def test_expiry_runs_periodically(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    now = time.time()
    _recording(tmp_path, "old", 31, now)
    _recording(tmp_path, "recent", 29.5, now)
    days_later = [now, now + DAY_S]
    clock = partial(days_later.pop, 0)
    async with trio.open_nursery() as nursery:
        await nursery.start(partial(expire_periodically, tmp_path, 30, interval_s=3600,
                                    clock=clock))
        assert _listing(tmp_path) == ["recent"]
        await trio.sleep(3600)  # MockClock: no wall time passes
        await trio.testing.wait_all_tasks_blocked()
        assert not days_later  # the second pass read the clock and runs in its thread
        nursery.cancel_scope.cancel()  # waits for that thread: run_sync is not abandoned
    assert _listing(tmp_path) == []
