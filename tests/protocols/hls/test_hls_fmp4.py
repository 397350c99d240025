"""The hand-written fMP4 muxer, checked by structure and by FFmpeg (PyAV) decoding it."""

from __future__ import annotations

import io
import itertools
import struct
from collections.abc import Iterator

import av
import pytest
from hls_media import encode_audio, encode_video, feed

from streamscale.protocols.hls import (
    PackagerConfig,
    Part,
    Presentation,
    Rendition,
    Segment,
)

_CONTAINERS = {b"moov", b"trak", b"mdia", b"minf", b"stbl", b"mvex", b"moof", b"traf", b"dinf"}


def boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, bytes]]:
    end = len(data) if end is None else end
    pos = start
    while pos < end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        assert 8 <= size <= end - pos, (kind, size)
        yield kind, data[pos + 8 : pos + size]
        pos += size
    assert pos == end


def tree(data: bytes) -> dict[bytes, list[bytes]]:
    """Every box by type (payloads), descending into the container boxes."""
    found: dict[bytes, list[bytes]] = {}

    def walk(buf: bytes) -> None:
        for kind, body in boxes(buf):
            found.setdefault(kind, []).append(body)
            if kind in _CONTAINERS:
                walk(body)
            elif kind == b"stsd":
                entry = body[8:]
                for sub_kind, sub in boxes(entry):
                    found.setdefault(sub_kind, []).append(sub)
                    offset = 78 if sub_kind == b"avc1" else 28
                    walk(sub[offset:])

    walk(data)
    return found


def packaged(
    *, bframes: int = 0, audio: bool = True, video: bool = True, width: int = 320, height: int = 240
) -> tuple[Rendition, list[Part | Segment]]:
    enc = encode_video(60, width=width, height=height, bframes=bframes)
    aud = encode_audio()
    pres = Presentation(
        PackagerConfig(segment_target_s=1.0, part_target_s=1 / 3, window_segments=10)
    )
    rendition = pres.add_rendition(
        "r", video=enc.video if video else None, audio=aud.audio if audio else None
    )
    events: list[Part | Segment] = []
    push_video, push_audio = rendition.push_video, rendition.push_audio
    rendition.push_video = lambda s: _record(events, push_video(s))  # type: ignore[method-assign]
    rendition.push_audio = lambda s: _record(events, push_audio(s))  # type: ignore[method-assign]
    feed(rendition, enc if video else None, aud if audio else None, end=False)
    events.extend(rendition.end())
    return rendition, events


def _record(events: list[Part | Segment], new: list[Part | Segment]) -> list[Part | Segment]:
    events.extend(new)
    return new


def whole_file(rendition: Rendition) -> bytes:
    last = rendition.position.last_msn
    return rendition.init_segment + b"".join(
        rendition.segment(m)[1] or b"" for m in range(last + 1)
    )


def test_init_segment_carries_codec_config() -> None:
    rendition, _ = packaged()
    found = tree(rendition.init_segment)
    assert list(k for k, _ in boxes(rendition.init_segment)) == [b"ftyp", b"moov"]
    assert len(found[b"trak"]) == 2
    assert len(found[b"trex"]) == 2
    assert found[b"avcC"] == [encode_video(60).video.config.avcc_record()]
    assert encode_audio().audio.config.asc in found[b"esds"][0]
    handlers = [body[8:12] for body in found[b"hdlr"]]
    assert handlers == [b"vide", b"soun"]
    timescales = [struct.unpack_from(">I", body, 12)[0] for body in found[b"mdhd"]]
    assert timescales == [90_000, 48_000]
    width, height = struct.unpack_from(">II", found[b"tkhd"][0], 76)
    assert (width >> 16, height >> 16) == (320, 240)


def test_every_part_is_one_moof_mdat_with_sync_flags_where_independent() -> None:
    _, events = packaged()
    parts = [e for e in events if isinstance(e, Part)]
    assert parts
    sequences = []
    for part in parts:
        assert [k for k, _ in boxes(part.payload)] == [b"moof", b"mdat"]
        found = tree(part.payload)
        sequences.append(struct.unpack_from(">I", found[b"mfhd"][0], 4)[0])
        video_trun = found[b"trun"][0]
        (flags,) = struct.unpack_from(">I", video_trun, 0)
        assert flags & 0xF01 == 0xF01  # data offset, duration, size, flags, cto
        first_flags = struct.unpack_from(">I", video_trun, 12 + 8)[0]
        assert (first_flags == 0x02000000) == part.independent
    assert sequences == list(range(1, len(parts) + 1))
    segments = [e for e in events if isinstance(e, Segment)]
    assert all(seg.parts[0].independent for seg in segments)
    assert [seg.msn for seg in segments] == list(range(len(segments)))


@pytest.mark.parametrize("bframes", [0, 2])
def test_pyav_decodes_every_frame_with_original_timestamps(bframes: int) -> None:
    rendition, events = packaged(bframes=bframes)
    enc = encode_video(60, bframes=bframes)
    data = whole_file(rendition)
    with av.open(io.BytesIO(data)) as container:
        stream = container.streams.video[0]
        assert (stream.codec_context.width, stream.codec_context.height) == (320, 240)
        packets = [p for p in container.demux(stream) if p.size]
    assert len(packets) == 60
    assert sorted(p.pts for p in packets) == sorted(s.pts or 0 for s in enc.samples)
    assert [p.dts for p in packets] == [s.dts for s in enc.samples]
    segment_starts = {round(e.start_s * 90_000) for e in events if isinstance(e, Segment)}
    keyframe_pts = {p.dts for p in packets if p.is_keyframe}
    assert keyframe_pts == segment_starts == {0, 90_000}
    with av.open(io.BytesIO(data)) as container:
        frames = list(container.decode(video=0))
    assert len(frames) == 60
    assert [f.pts for f in frames] == sorted(s.pts or 0 for s in enc.samples)


def test_pyav_decodes_the_audio_track_gaplessly() -> None:
    rendition, _ = packaged()
    with av.open(io.BytesIO(whole_file(rendition))) as container:
        stream = container.streams.audio[0]
        assert stream.codec_context.sample_rate == 48_000
        frames = list(container.decode(stream))
    assert len(frames) >= 90  # 2 s of 1024-sample frames, from the first keyframe on
    pts = [f.pts for f in frames]
    assert all(b - a == 1024 for a, b in itertools.pairwise(pts))


@pytest.mark.parametrize(("video", "audio"), [(True, False), (False, True)])
def test_single_track_renditions_decode(video: bool, audio: bool) -> None:
    rendition, events = packaged(video=video, audio=audio)
    assert rendition.codecs == ("avc1.42c00d" if video else "mp4a.40.2")
    assert any(isinstance(e, Segment) for e in events)
    with av.open(io.BytesIO(whole_file(rendition))) as container:
        assert len(container.streams) == 1
        frames = list(container.decode(container.streams[0]))
    assert len(frames) == (60 if video else len(encode_audio().samples))


def test_cropped_resolution_survives_muxing() -> None:
    rendition, _ = packaged(width=322, height=182, audio=False)
    assert rendition.video is not None
    assert (rendition.video.config.width, rendition.video.config.height) == (322, 182)
    with av.open(io.BytesIO(whole_file(rendition))) as container:
        frame = next(container.decode(video=0))
    assert (frame.width, frame.height) == (322, 182)
