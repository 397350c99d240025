"""End to end: playlists and media written to a folder play in FFmpeg's HLS demuxer."""

from __future__ import annotations

import subprocess
from pathlib import Path

import av
import pytest
from hls_media import encode_audio, encode_video, feed

from streamscale.protocols.hls import (
    CLASSIC_PLAYLIST_URI,
    INIT_URI,
    PLAYLIST_URI,
    PackagerConfig,
    Presentation,
    Rendition,
)


def write_rendition(root: Path, rendition: Rendition) -> Path:
    folder = root / rendition.name
    folder.mkdir(parents=True)
    (folder / INIT_URI).write_bytes(rendition.init_segment)
    for msn in range(rendition.position.last_msn + 1):
        _, payload = rendition.segment(msn)
        assert payload is not None
        (folder / f"{msn}.m4s").write_bytes(payload)
    (folder / PLAYLIST_URI).write_bytes(rendition.media_playlist())
    (folder / CLASSIC_PLAYLIST_URI).write_bytes(rendition.media_playlist(low_latency=False))
    (folder / "vod.m3u8").write_bytes(rendition.vod_playlist())
    return folder


def decode_all(path: Path) -> tuple[list[av.VideoFrame], int]:
    with av.open(str(path)) as container:
        video = list(container.decode(video=0))
    with av.open(str(path)) as container:
        audio = sum(1 for _ in container.decode(audio=0)) if container.streams.audio else 0
    return video, audio


@pytest.fixture
def stream_dir(tmp_path: Path) -> Path:
    enc, aud = encode_video(), encode_audio()
    pres = Presentation(PackagerConfig(segment_target_s=1.0, part_target_s=1 / 3))
    for name in ("hi", "lo"):
        rendition = pres.add_rendition(
            name, video=enc.video, audio=aud.audio, bandwidth_bps=400_000
        )
        feed(rendition, enc, aud)
        write_rendition(tmp_path, rendition)
    (tmp_path / "master.m3u8").write_bytes(pres.master_playlist())
    return tmp_path


@pytest.mark.parametrize("playlist", [PLAYLIST_URI, CLASSIC_PLAYLIST_URI, "vod.m3u8"])
def test_ffmpeg_plays_every_frame(stream_dir: Path, playlist: str) -> None:
    video, audio = decode_all(stream_dir / "hi" / playlist)
    assert len(video) == 60
    assert {(f.width, f.height) for f in video} == {(320, 240)}
    times = [f.time for f in video]
    assert times == sorted(times)
    assert times[-1] - times[0] == pytest.approx(59 / 30, abs=1e-3)
    assert audio >= 90


def test_ffmpeg_plays_the_master_playlist(stream_dir: Path) -> None:
    with av.open(str(stream_dir / "master.m3u8")) as container:
        assert len(container.streams.video) == 2  # one per variant
        frames = list(container.decode(container.streams.video[0]))
    assert len(frames) == 60


def test_parts_alone_rebuild_the_stream(tmp_path: Path) -> None:
    """A player that only fetched parts (LL-HLS) gets the same media as segments."""
    enc, aud = encode_video(), encode_audio()
    pres = Presentation(PackagerConfig(segment_target_s=1.0))
    rendition = pres.add_rendition("a", video=enc.video, audio=aud.audio)
    feed(rendition, enc, aud)
    data = bytearray(rendition.init_segment)
    for msn in range(rendition.position.last_msn + 1):
        index = 0
        while (payload := rendition.part(msn, index)[1]) is not None:
            data += payload
            index += 1
    path = tmp_path / "parts.mp4"
    path.write_bytes(bytes(data))
    video, audio = decode_all(path)
    assert len(video) == 60
    assert audio >= 90


def test_ffmpeg_cli_plays_the_low_latency_playlist(stream_dir: Path) -> None:
    """The issue's acceptance check: `ffmpeg -i playlist.m3u8 -f null -` succeeds."""
    imageio_ffmpeg = pytest.importorskip("imageio_ffmpeg")
    result = subprocess.run(
        [
            imageio_ffmpeg.get_ffmpeg_exe(),
            "-v",
            "error",
            "-i",
            str(stream_dir / "master.m3u8"),
            "-map",
            "0",
            "-f",
            "null",
            "-",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stderr.strip() == ""
