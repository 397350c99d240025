"""Property tests: any sequence of samples keeps the live playlist within the spec."""

from __future__ import annotations

import m3u8
import pytest
from hls_media import encode_audio, encode_video
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streamscale.protocols.hls import HLSError, PackagerConfig, Presentation, Sample

_NAL = b"\x00\x00\x00\x02\x65\x88"  # well-formed AVCC; the muxer never decodes it
_AAC = b"\x21\x00\x49\x90\x02\x19\x00\x23\x80"

configs = st.builds(
    lambda seg, part, window, retain: PackagerConfig(
        segment_target_s=seg,
        part_target_s=min(part, seg),
        window_segments=window,
        retain_segments=retain,
    ),
    st.sampled_from([0.5, 1.0, 2.0]),
    st.sampled_from([0.2, 1 / 3, 0.5]),
    st.integers(1, 5),
    st.integers(0, 3),
)
# (frame duration in 90 kHz ticks, keyframe, push a bad sample first)
steps = st.lists(
    st.tuples(
        st.sampled_from([3000, 3000, 3000, 3600, 1500, 45_000, 120_000]),
        st.booleans(),
        st.booleans(),
    ),
    min_size=1,
    max_size=120,
)


def _check(pl: m3u8.M3U8, previous: dict[str, int], config: PackagerConfig) -> None:
    assert pl.media_sequence >= previous.get("msn", 0)
    assert pl.target_duration >= previous.get("td", 0)
    previous["msn"], previous["td"] = pl.media_sequence, pl.target_duration
    complete = [s for s in pl.segments if s.uri]
    assert len(complete) <= config.window_segments
    assert [s.uri for s in complete] == [
        f"{pl.media_sequence + i}.m4s" for i in range(len(complete))
    ]
    part_target = pl.part_inf.part_target
    assert part_target > 0
    assert pl.server_control.part_hold_back >= 3 * part_target - 1e-4
    assert pl.server_control.hold_back >= 3 * pl.target_duration
    for seg in pl.segments:
        if seg.uri:
            assert int(seg.duration + 0.5) <= pl.target_duration
        for part in seg.parts:
            assert 0 < part.duration <= part_target
        if seg.parts:
            assert seg.parts[0].independent == "YES" or not seg.uri
            if seg.uri:
                assert abs(sum(p.duration for p in seg.parts) - seg.duration) < 1e-4 * (
                    len(seg.parts) + 1
                )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, plan=steps, with_audio=st.booleans(), end=st.booleans())
def test_any_push_sequence_keeps_playlist_invariants(
    config: PackagerConfig, plan: list[tuple[int, bool, bool]], with_audio: bool, end: bool
) -> None:
    pres = Presentation(config)
    rendition = pres.add_rendition(
        "r", video=encode_video().video, audio=encode_audio().audio if with_audio else None
    )
    previous: dict[str, int] = {}
    dts, audio_dts, last = 0, 0, 0
    for duration, keyframe, bad_first in plan:
        if bad_first and dts:
            version = rendition.version
            with pytest.raises(HLSError):
                rendition.push_video(Sample(_NAL, last))  # dts not increasing
            assert rendition.version == version
        rendition.push_video(
            Sample(_NAL, dts, dts, keyframe or dts == 0, wallclock_s=1e9 + dts / 90_000)
        )
        last, dts = dts, dts + duration
        while with_audio and audio_dts * 90_000 < dts * 48_000:
            rendition.push_audio(Sample(_AAC, audio_dts))
            audio_dts += 1024
        _check(m3u8.loads(rendition.media_playlist().decode()), previous, config)
        classic = m3u8.loads(rendition.media_playlist(low_latency=False).decode())
        assert all(not s.parts for s in classic.segments)
    if end:
        rendition.end()
        pl = m3u8.loads(rendition.media_playlist().decode())
        _check(pl, previous, config)
        assert pl.is_endlist
        assert pl.preload_hint is None
        vod = m3u8.loads(rendition.vod_playlist().decode())
        assert [s.uri for s in vod.segments] == [f"{m}.m4s" for m in range(len(vod.segments))]
        assert all(int(s.duration + 0.5) <= vod.target_duration for s in vod.segments)
    else:
        pl = m3u8.loads(rendition.media_playlist().decode())
        open_parts = pl.segments[-1].parts if pl.segments and not pl.segments[-1].uri else []
        msn = rendition.position.part_msn if open_parts else rendition.position.last_msn + 1
        assert pl.preload_hint.uri == f"{max(msn, 0)}.{len(open_parts)}.m4s"


@settings(max_examples=200, deadline=None)
@given(
    data=st.binary(max_size=40), dts=st.integers(-5, 10**12), key=st.booleans(), audio=st.booleans()
)
def test_bad_samples_raise_only_hlserror(data: bytes, dts: int, key: bool, audio: bool) -> None:
    pres = Presentation()
    rendition = pres.add_rendition("r", video=encode_video().video, audio=encode_audio().audio)
    rendition.push_video(Sample(_NAL, 0, 0, True))
    try:
        if audio:
            rendition.push_audio(Sample(data, dts))
        else:
            rendition.push_video(Sample(data, dts, dts, key))
    except HLSError:
        pass
