"""Segmenter edge cases: stream start, bad input, part and segment cutting."""

from __future__ import annotations

import m3u8
import pytest
from hls_media import encode_audio, encode_video

from streamscale.protocols.hls import (
    HLSError,
    PackagerConfig,
    Part,
    Presentation,
    Resource,
    Sample,
    Segment,
    parse_resource,
)

NAL = b"\x00\x00\x00\x02\x65\x88"


def video_rendition(config: PackagerConfig | None = None, **kwargs: object) -> Presentation:
    pres = Presentation(config or PackagerConfig(segment_target_s=1.0))
    pres.add_rendition("v", video=encode_video().video, **kwargs)  # type: ignore[arg-type]
    return pres


def test_stream_starts_at_the_first_keyframe() -> None:
    pres = video_rendition()
    rendition = pres.get("v")
    assert rendition is not None
    before = rendition.media_playlist()
    assert b"PRELOAD-HINT" not in before
    assert rendition.push_video(Sample(NAL, 0, keyframe=False)) == []
    assert rendition.position.part_msn == -1
    rendition.push_video(Sample(NAL, 3000, keyframe=True, wallclock_s=1_000.0))
    hinted = m3u8.loads(rendition.media_playlist().decode())
    assert hinted.preload_hint.uri == "0.0.m4s"  # cache invalidated by the first keyframe
    for i in range(2, 12):
        events = rendition.push_video(Sample(NAL, 3000 * i, keyframe=False))
        if events:
            [part] = events
            assert isinstance(part, Part)
            assert (part.msn, part.index, part.independent) == (0, 0, True)
            assert part.duration_s == pytest.approx(1 / 3)
    events = rendition.end()
    assert [type(e) for e in events] == [Part, Segment]
    segment = events[1]
    assert isinstance(segment, Segment)
    assert segment.duration_s == pytest.approx(11 * 3000 / 90_000)
    assert segment.program_date_time_s == 1_000.0
    assert segment.payload == b"".join(p.payload for p in segment.parts)
    assert rendition.end() == []
    with pytest.raises(HLSError):
        rendition.push_video(Sample(NAL, 10**6))


def test_segments_are_cut_only_on_keyframes_at_or_past_target() -> None:
    pres = video_rendition(PackagerConfig(segment_target_s=1.0, part_target_s=0.5))
    rendition = pres.get("v")
    assert rendition is not None
    segments = []
    for i in range(200):  # keyframes every 20 frames (0.667 s): segments of 1.333 s
        for ev in rendition.push_video(Sample(NAL, 3000 * i, keyframe=i % 20 == 0)):
            if isinstance(ev, Segment):
                segments.append(ev)
    assert [round(s.duration_s, 3) for s in segments] == [1.333] * len(segments)
    assert all(p.duration_s <= 0.5 for s in segments for p in s.parts)
    assert all(s.parts[0].independent for s in segments)
    assert rendition.target_duration == 1  # 1.333 rounds to 1


def test_audio_before_the_first_keyframe_is_dropped() -> None:
    aud = encode_audio()
    pres = Presentation(PackagerConfig(segment_target_s=1.0))
    rendition = pres.add_rendition("av", video=encode_video().video, audio=aud.audio)
    for sample in aud.samples[:10]:
        rendition.push_audio(sample)
    start = aud.samples[5].dts * 90_000 // 48_000 + 1
    for i in range(40):
        rendition.push_video(Sample(NAL, start + 3000 * i, keyframe=i == 0))
    events = rendition.end()
    assert events
    # Frames 0..5 started before the keyframe; 6..9 and nothing else were queued.
    assert b"".join(aud.samples[i].data for i in range(6, 10)) in events[-1].payload


@pytest.mark.parametrize(
    ("sample", "audio"),
    [
        (Sample(b"\x00\x00\x00\x01\x65", -1), False),  # negative dts
        (Sample(b"\x00\x00\x01\x65\x88", 0), False),  # Annex-B, not AVCC
        (Sample(b"", 0), True),
        (Sample(b"\x21", 0), True),  # no audio track
    ],
)
def test_bad_samples(sample: Sample, audio: bool) -> None:
    rendition = video_rendition().get("v")
    assert rendition is not None
    with pytest.raises(HLSError):
        (rendition.push_audio if audio else rendition.push_video)(sample)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"segment_target_s": 1.0, "part_target_s": 2.0},
        {"part_target_s": 0.0},
        {"window_segments": 0},
        {"retain_segments": -1},
        {"skip_until_s": 0.0},
    ],
)
def test_bad_config(kwargs: dict[str, float]) -> None:
    with pytest.raises(HLSError):
        PackagerConfig(**kwargs)  # type: ignore[arg-type]


def test_bad_renditions() -> None:
    pres = video_rendition()
    with pytest.raises(HLSError):
        pres.add_rendition("v", video=encode_video().video)  # duplicate
    with pytest.raises(HLSError):
        pres.add_rendition("../x", video=encode_video().video)
    with pytest.raises(HLSError):
        pres.add_rendition("empty")


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("init.mp4", Resource("init")),
        ("12.m4s", Resource("segment", 12)),
        ("12.3.m4s", Resource("part", 12, 3)),
        ("12.3.4.m4s", None),
        ("-1.m4s", None),
        ("12.mp4", None),
        ("index.m3u8", None),
        ("1" * 19 + ".m4s", None),
    ],
)
def test_parse_resource(name: str, expected: Resource | None) -> None:
    assert parse_resource(name) == expected
