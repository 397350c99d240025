"""The media hub fed what publishers send besides H.264 4:2:0 + AAC: audio only (declared
by onMetaData, or found by a bound), video after an audio-only start, a reconnect of an
audio-only publisher, H.264 browsers cannot decode, and codecs that are refused.

Tags go in through `hub.publish` exactly as the ingest sends them; the video is real
ffmpeg output. tests/services/media/test_sources.py does the same with real publishers.
"""

from __future__ import annotations

import logging
import re
import subprocess
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from pathlib import Path

import av
import pytest
import trio

from streamscale.backends.storage import Store, User, open_store
from streamscale.protocols.hls import H264Config, PackagerConfig, Presentation
from streamscale.protocols.rtmp import ECMAArray, encode_amf0
from streamscale.services.clock import new_id, utcnow
from streamscale.services.media.hub import MediaHub
from streamscale.services.media.ingest import PublishRefused, Tag
from streamscale.services.media.pipeline import RUNGS
from streamscale.services.media.transcode import SOURCE_RUNG, Ladder, RungSpec
from streamscale.services.origin.registry import MediaRegistry
from streamscale.services.streaming import StreamService
from streamscale.testing import make_config
from streamscale.testing.rtmp_client import (
    aac_audio_specific_config,
    aac_frame,
    aac_sequence_header,
    avc_sequence_header,
    avc_video,
)

from .test_sources import TEN_BIT, x264_pixel_formats
from .test_transcode import AU, FFMPEG, Clip, decode, run_ladder

AAC_RATE = 44_100
LADDER = [RUNGS["source"], RUNGS["160p"]]


def _clip(path: Path, pix_fmt: str) -> Clip:
    """One second of 320x180 lavfi video, libx264 in `pix_fmt`, read back as AVCC units."""
    subprocess.run(
        [FFMPEG, "-v", "error", "-y", "-f", "lavfi", "-i", "testsrc2=size=320x180:rate=30",
         "-t", "1", "-c:v", "libx264", "-preset", "veryfast", "-g", "15", "-bf", "0",
         "-pix_fmt", pix_fmt, str(path)],
        check=True, timeout=60)  # fmt: skip
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        record = bytes(stream.codec_context.extradata or b"")
        units = [AU(bytes(p), int(p.dts or 0), int(p.pts or 0), bool(p.is_keyframe))
                 for p in container.demux(stream) if p.size]
    return Clip(record, units)


@pytest.fixture(scope="module")
def clips(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Clip]:
    folder = tmp_path_factory.mktemp("clips")
    wanted = {"yuv420p", "yuv444p", "yuv420p10le"} & x264_pixel_formats()
    return {fmt: _clip(folder / f"{fmt}.flv", fmt) for fmt in wanted}


def _video_tags(clip: Clip, *, offset_ms: int = 0) -> list[Tag]:
    tags = [Tag("video", offset_ms, avc_sequence_header(clip.avcc_record))]
    for au in clip.units:
        nals, pos = [], 0
        while pos < len(au.data):
            n = int.from_bytes(au.data[pos:pos + 4], "big")
            nals.append(au.data[pos + 4:pos + 4 + n])
            pos += 4 + n
        tags.append(Tag("video", au.dts_ms + offset_ms, avc_video(
            nals, keyframe=au.keyframe, composition_time_ms=au.pts_ms - au.dts_ms)))
    return tags


def _audio_tags(seconds: float, *, offset_ms: int = 0, header: bool = True) -> list[Tag]:
    """AAC LC 44.1 kHz: a sequence header, then a (dummy) frame every 1024 samples."""
    tags = [Tag("audio", offset_ms, aac_sequence_header(aac_audio_specific_config()))]
    frames = int(seconds * AAC_RATE / 1024)
    tags += [Tag("audio", offset_ms + i * 1024 * 1000 // AAC_RATE, aac_frame(bytes(32)))
             for i in range(frames)]
    return tags if header else tags[1:]


def _metadata(**properties: float) -> Tag:
    return Tag("script", 0, encode_amf0("@setDataFrame", "onMetaData",
                                        ECMAArray(dict(properties))))


def _interleave(*streams: list[Tag]) -> list[Tag]:
    """Merge by timestamp, as a muxer sends them (stable: headers stay first)."""
    return sorted((t for s in streams for t in s), key=lambda t: t.timestamp_ms)


@dataclass
class Env:
    hub: MediaHub
    registry: MediaRegistry
    streams: StreamService
    store: Store
    published: list[Presentation]

    async def stream(self) -> str:
        user = User(id=new_id(), username=f"u{new_id()[:8]}", email=f"{new_id()}@x.org",
                    password_hash="x", display_name="u", bio="", created_at=utcnow(),
                    updated_at=utcnow())
        await self.store.create_user(user)
        stream, _ = await self.streams.start(user_id=user.id, title="t", category="c",
                                             tags=[])
        return stream.id

    async def publish(self, stream_id: str, tags: list[Tag]) -> None:
        async with self.hub.publish(stream_id) as feed:
            for tag in tags:
                await feed.send(tag)

    async def refused(self, stream_id: str, tags: Callable[[int], list[Tag]]) -> str:
        """Publish until the feed refuses (the refusal lands a few tags late: the pipeline
        runs beside the ingest); the refusal message."""
        with pytest.raises(PublishRefused) as refused:
            async with self.hub.publish(stream_id) as feed:
                for round_ in range(200):
                    for tag in tags(round_):
                        await feed.send(tag)
        return str(refused.value)


@pytest.fixture
async def make_env(tmp_path: Path, nursery: trio.Nursery,
                   monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[Callable[[float], Env]]:
    config = make_config(tmp_path)
    store = await open_store(f"sqlite:///{tmp_path / 'db.sqlite'}")

    def make(capacity: float = 2.0) -> Env:
        registry = MediaRegistry()
        published: list[Presentation] = []
        publish = registry.publish

        def spy(stream_id: str, presentation: Presentation) -> None:
            published.append(presentation)
            publish(stream_id, presentation)

        monkeypatch.setattr(registry, "publish", spy)
        hub = MediaHub(
            nursery=nursery, streams=StreamService(store, config), registry=registry,
            rungs=LADDER, packager=PackagerConfig(segment_target_s=0.5, part_target_s=0.25),
            recordings_root=tmp_path / "rec", capacity=capacity, reconnect_grace_s=0.2)
        return Env(hub, registry, hub.streams, store, published)

    yield make
    await store.close()


def _extinf_total_s(presentation: Presentation, rendition: str) -> float:
    r = presentation.get(rendition)
    assert r is not None
    return sum(float(d) for d in re.findall(r"#EXTINF:([0-9.]+),", r.vod_playlist().decode()))


# -- audio only -------------------------------------------------------------------------------


async def test_metadata_without_video_opens_audio_only_at_once(
    make_env: Callable[[float], Env]
) -> None:
    env = make_env(2.0)
    stream_id = await env.stream()
    await env.publish(stream_id, [_metadata(audiocodecid=10.0, audiosamplerate=44100.0),
                                  *_audio_tags(0.1)])
    [presentation] = env.published
    assert [r.name for r in presentation] == ["audio"]
    master = presentation.master_playlist().decode()
    assert 'CODECS="mp4a.40.2"' in master and "RESOLUTION" not in master
    assert env.hub.admission.used == 0.0  # nothing to transcode


async def test_audio_with_no_video_header_goes_audio_only_after_the_bound(
    make_env: Callable[[float], Env], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, "streamscale.services.media")
    env = make_env(2.0)
    short, long = await env.stream(), await env.stream()
    await env.publish(short, _audio_tags(1.5))  # within the bound: nothing packaged
    assert env.published == []
    await env.publish(long, _audio_tags(3.0))
    [presentation] = env.published
    assert [r.name for r in presentation] == ["audio"]
    # The audio held while waiting for video is packaged too: all 3 s, from the start.
    pipeline = env.hub.pipeline(long)
    assert pipeline is not None
    with trio.fail_after(10):
        await pipeline.finished.wait()
    assert _extinf_total_s(presentation, "audio") == pytest.approx(3.0, abs=0.05)
    assert any("no video sequence header in the first 2.0 s of audio" in r.getMessage()
               for r in caplog.records)


async def test_video_declared_but_never_sent_still_opens_audio_only(
    make_env: Callable[[float], Env]
) -> None:
    env = make_env(2.0)
    stream_id = await env.stream()
    await env.publish(stream_id, [_metadata(videocodecid=7.0, audiocodecid=10.0),
                                  *_audio_tags(2.5)])
    [presentation] = env.published
    assert [r.name for r in presentation] == ["audio"]


async def test_video_after_an_audio_only_start_is_a_new_presentation(
    make_env: Callable[[float], Env], clips: dict[str, Clip]
) -> None:
    env = make_env(2.0)
    stream_id = await env.stream()
    audio = _audio_tags(4.0)
    video = _video_tags(clips["yuv420p"], offset_ms=2500)
    await env.publish(stream_id, _interleave(audio, video))
    first, second = env.published
    assert [r.name for r in first] == ["audio"]
    assert all(r.ended for r in first)  # its players see ENDLIST and reload the master
    assert [r.name for r in second] == ["source", "160p"]
    for rendition in second:
        assert rendition.codecs.startswith("avc1.") and rendition.codecs.endswith(",mp4a.40.2")


async def test_audio_only_reconnect_continues_the_timeline(
    make_env: Callable[[float], Env]
) -> None:
    env = make_env(2.0)
    stream_id = await env.stream()
    await env.publish(stream_id, _audio_tags(2.5))
    await env.publish(stream_id, _audio_tags(2.5))  # timestamps restart at 0
    [presentation] = env.published
    pipeline = env.hub.pipeline(stream_id)
    assert pipeline is not None
    with trio.fail_after(10):
        await pipeline.finished.wait()
    assert env.hub.stats.flv_errors == 0
    assert _extinf_total_s(presentation, "audio") == pytest.approx(5.0, abs=0.1)


# -- H.264 browsers cannot decode ----------------------------------------------------------


@pytest.mark.parametrize(("pix_fmt", "problem"), [
    ("yuv444p", "profile High 4:4:4 Predictive, chroma 4:4:4"),
    pytest.param("yuv420p10le", "profile High 10, 10-bit", marks=TEN_BIT),
])
def test_ladder_encodes_the_source_rung_when_browsers_cannot_decode_it(
    clips: dict[str, Clip], pix_fmt: str, problem: str
) -> None:
    ladder = Ladder(LADDER)
    batches = run_ladder(ladder, clips[pix_fmt])
    assert ladder.source_problem is not None and ladder.source_problem.startswith(problem)
    assert ladder.rungs == ["source", "160p"]
    served = H264Config.from_extradata(ladder.rung_extradata("source"))
    assert served.browser_problem() is None
    assert (served.width, served.height) == (320, 180)
    assert served.codec == f"avc1.{served.sps[1:4].hex()}"
    frames = [f for batch in batches for f in batch if f.rung == "source"]
    pictures = decode(ladder.rung_extradata("source"), frames)
    assert len(pictures) == len(clips[pix_fmt].units)
    assert {p.format.name for p in pictures} == {"yuv420p"}
    # The stand-in is real work: it costs what a 320x180 encoded rung costs.
    plain = Ladder(LADDER)
    plain.configure(clips["yuv420p"].avcc_record)
    assert plain.source_problem is None and ladder.cost > plain.cost


def test_the_source_rung_takes_the_place_of_an_encoded_rung_of_its_size(
    clips: dict[str, Clip]
) -> None:
    """A 180p 4:4:4 source and a 180p rung: one 180p encode (named source), not two."""
    rungs = [SOURCE_RUNG, RungSpec(name="180p", height=180, video_bitrate_kbps=400),
             RungSpec(name="90p", height=90, video_bitrate_kbps=100)]
    ladder, plain = Ladder(rungs), Ladder(rungs)
    ladder.configure(clips["yuv444p"].avcc_record)
    plain.configure(clips["yuv420p"].avcc_record)
    assert plain.rungs == ["source", "180p", "90p"]
    assert ladder.rungs == ["source", "90p"]
    assert ladder.cost == pytest.approx(plain.cost)  # same encodes: passthrough is free


async def test_a_source_that_must_be_transcoded_is_refused_when_it_does_not_fit(
    make_env: Callable[[float], Env], clips: dict[str, Clip]
) -> None:
    # The passthrough alone is free, so admission lets it in; the 4:4:4 source is not.
    env = make_env(0.001)
    env.hub.rungs = [RUNGS["source"]]
    ok, refused = await env.stream(), await env.stream()
    await env.publish(ok, _video_tags(clips["yuv420p"]))
    message = await env.refused(refused, lambda i: _video_tags(clips["yuv444p"],
                                                               offset_ms=1000 * i))
    assert "must be transcoded" in message and "transcode capacity exceeded" in message
    assert [r.name for r in env.published[0]] == ["source"]
    assert len(env.published) == 1


# -- refused codecs ---------------------------------------------------------------------------


async def test_hevc_over_enhanced_rtmp_is_refused(make_env: Callable[[float], Env]) -> None:
    env = make_env(2.0)
    stream_id = await env.stream()
    start = Tag("video", 0, bytes((0x80 | 0x10 | 0,)) + b"hvc1" + bytes(23))

    def tags(i: int) -> list[Tag]:
        frame = Tag("video", 40 * i, bytes((0x80 | 0x10 | 3,)) + b"hvc1" + bytes(64))
        return [start, frame] if i == 0 else [frame]

    message = await env.refused(stream_id, tags)
    assert message.startswith("unsupported codec 'hvc1'")
    assert env.published == []
    assert env.hub.stats.refused == 1


async def test_mp3_audio_is_refused(make_env: Callable[[float], Env]) -> None:
    env = make_env(2.0)
    stream_id = await env.stream()
    message = await env.refused(stream_id, lambda i: [Tag("audio", 26 * i, b"\x2f" + bytes(64))])
    assert message.startswith("unsupported codec 'mp3'")
