"""Every playlist we render, parsed back with the `m3u8` library."""

from __future__ import annotations

import datetime as dt

import m3u8
from hls_media import encode_audio, encode_video, feed

from streamscale.protocols.hls import (
    PackagerConfig,
    Presentation,
    Sample,
    SegmentInfo,
    Variant,
    master_playlist,
    vod_playlist,
)

T0 = dt.datetime.fromtimestamp(1_700_000_000, tz=dt.UTC)


def parse(data: bytes) -> m3u8.M3U8:
    return m3u8.loads(data.decode())


def test_low_latency_media_playlist(live: Presentation) -> None:
    rendition = live.get("720p")
    assert rendition is not None
    pl = parse(rendition.media_playlist())
    assert (pl.version, pl.target_duration, pl.media_sequence) == (9, 1, 0)
    assert pl.segment_map[0].uri == "init.mp4"
    sc = pl.server_control
    assert sc.can_block_reload == "YES"
    assert sc.part_hold_back >= 3 * pl.part_inf.part_target
    assert sc.hold_back >= 3 * pl.target_duration
    assert sc.can_skip_until is None
    assert pl.part_inf.part_target == 0.33333
    complete, open_segment = pl.segments
    assert (complete.uri, complete.duration) == ("0.m4s", 1.0)
    assert complete.program_date_time == T0
    assert [(p.uri, p.duration, p.independent) for p in complete.parts] == [
        ("0.0.m4s", 0.33333, "YES"),
        ("0.1.m4s", 0.33333, None),
        ("0.2.m4s", 0.33333, None),
    ]
    assert open_segment.uri is None
    assert [p.uri for p in open_segment.parts] == ["1.0.m4s", "1.1.m4s"]
    assert open_segment.parts[0].independent == "YES"
    assert (pl.preload_hint.hint_type, pl.preload_hint.uri) == ("PART", "1.2.m4s")
    [report] = pl.rendition_reports
    assert (report.uri, report.last_msn, report.last_part) == ("../360p/index.m3u8", 1, 1)
    assert not pl.is_endlist
    assert b"#EXT-X-PROGRAM-DATE-TIME:2023-11-14T22:13:21.000Z\n#EXT-X-PART" in (
        rendition.media_playlist()
    )


def test_classic_playlist_has_no_part_tags(live: Presentation) -> None:
    rendition = live.get("720p")
    assert rendition is not None
    data = rendition.media_playlist(low_latency=False)
    pl = parse(data)
    assert (pl.version, pl.target_duration, pl.media_sequence) == (7, 1, 0)
    assert [s.uri for s in pl.segments] == ["0.m4s"]
    assert pl.segments[0].parts == []
    assert pl.segments[0].program_date_time == T0
    assert pl.server_control is None
    assert not pl.part_inf
    assert pl.preload_hint is None
    assert pl.rendition_reports == []
    assert not pl.is_endlist
    assert b"EXT-X-PART" not in data


def test_ended_playlists_carry_endlist(live: Presentation) -> None:
    live.end()
    rendition = live.get("360p")
    assert rendition is not None
    for data in (rendition.media_playlist(), rendition.media_playlist(low_latency=False)):
        pl = parse(data)
        assert pl.is_endlist
        assert pl.preload_hint is None
        assert [s.uri for s in pl.segments] == ["0.m4s", "1.m4s"]
        assert sum(s.duration for s in pl.segments) == 2.0


def test_master_playlist(live: Presentation) -> None:
    pl = parse(live.master_playlist())
    assert pl.is_variant
    assert [p.uri for p in pl.playlists] == ["720p/index.m3u8", "360p/index.m3u8"]
    for variant in pl.playlists:
        info = variant.stream_info
        assert info.bandwidth >= 500_000
        assert info.average_bandwidth > 0
        assert info.resolution == (320, 240)
        assert info.frame_rate == 30.0
        assert info.codecs == "avc1.42c00d,mp4a.40.2"
    classic = parse(live.master_playlist(low_latency=False))
    assert [p.uri for p in classic.playlists] == ["720p/classic.m3u8", "360p/classic.m3u8"]


def test_master_measures_what_was_not_declared() -> None:
    enc, aud = encode_video(), encode_audio()
    pres = Presentation(PackagerConfig(segment_target_s=1.0))
    rendition = pres.add_rendition("a", video=enc.video, audio=aud.audio)
    assert parse(pres.master_playlist()).playlists == []  # nothing to describe yet
    feed(rendition, enc, aud)
    [variant] = parse(pres.master_playlist()).playlists
    peak = max(len(rendition.segment(m)[1] or b"") * 8 for m in (0, 1))
    assert variant.stream_info.bandwidth == peak  # 1 s segments: bytes*8 per second
    assert abs(variant.stream_info.frame_rate - 30.0) < 0.01


def test_standalone_master_renderer() -> None:
    data = master_playlist(
        [
            Variant(
                "hi/index.m3u8", 3_000_000, "avc1.64001f,mp4a.40.2", 2_500_000, (1280, 720), 29.97
            ),
            Variant("audio/index.m3u8", 128_000, "mp4a.40.2"),
        ]
    )
    hi, audio = parse(data).playlists
    assert (hi.stream_info.bandwidth, hi.stream_info.average_bandwidth) == (3_000_000, 2_500_000)
    assert hi.stream_info.resolution == (1280, 720)
    assert hi.stream_info.frame_rate == 29.97
    assert audio.stream_info.resolution is None
    assert audio.stream_info.codecs == "mp4a.40.2"


def test_vod_playlist_lists_every_segment_ever() -> None:
    enc = encode_video(90, gop=10)
    pres = Presentation(
        PackagerConfig(
            segment_target_s=1 / 3, part_target_s=1 / 3, window_segments=2, retain_segments=0
        )
    )
    rendition = pres.add_rendition("a", video=enc.video)
    feed(rendition, enc, None)
    pl = parse(rendition.vod_playlist())
    assert pl.playlist_type == "vod"
    assert pl.is_endlist
    assert pl.media_sequence == 0
    assert [s.uri for s in pl.segments] == [f"{m}.m4s" for m in range(9)]
    assert all(s.program_date_time is not None for s in pl.segments)
    assert pl.target_duration == 1
    standalone = parse(vod_playlist([SegmentInfo(4, 6.4), SegmentInfo(5, 2.0)]))
    assert (standalone.media_sequence, standalone.target_duration) == (4, 6)
    assert standalone.segments[0].program_date_time is None


def test_delta_update_skips_old_segments() -> None:
    enc = encode_video(300, width=64, height=64, gop=10)
    pres = Presentation(
        PackagerConfig(
            segment_target_s=1 / 3, part_target_s=1 / 3, window_segments=100, skip_until_s=1.0
        )
    )
    rendition = pres.add_rendition("a", video=enc.video)
    feed(rendition, enc, None, end=False)
    full = parse(rendition.media_playlist())
    delta = parse(rendition.media_playlist(skip=True))
    assert full.server_control.can_skip_until == 6.0  # raised to six target durations
    assert not full.skip
    assert delta.media_sequence == full.media_sequence == 0
    skipped = delta.skip.skipped_segments
    assert skipped > 0
    assert [s.uri for s in delta.segments] == [s.uri for s in full.segments][skipped:]
    kept = sum(s.duration for s in delta.segments if s.uri)
    kept += sum(p.duration for p in delta.segments[-1].parts)  # the open segment's parts
    assert kept >= 6.0 - 1e-3  # nothing within CAN-SKIP-UNTIL of the end is skipped
    # Parts are listed only for the last three target durations.
    complete = [s for s in full.segments if s.uri]
    with_parts = [s for s in complete if s.parts]
    assert 0 < len(with_parts) <= 9
    assert with_parts == complete[-len(with_parts) :]


def test_skip_is_ignored_without_can_skip_until(live: Presentation) -> None:
    rendition = live.get("720p")
    assert rendition is not None
    assert rendition.media_playlist(skip=True) is rendition.media_playlist()


def test_playlist_bytes_are_cached_until_something_changes(live: Presentation) -> None:
    hd, sd = live.get("720p"), live.get("360p")
    assert hd is not None
    assert sd is not None
    first = hd.media_playlist()
    classic = hd.media_playlist(low_latency=False)
    assert hd.media_playlist() is first  # no re-render
    assert live.master_playlist() is live.master_playlist()
    # Another rung's new part changes this playlist's rendition report only.
    enc = encode_video()
    last = enc.samples[-1]
    sd.push_video(Sample(last.data, last.dts + 3000, last.pts and last.pts + 3000, False))
    updated = hd.media_playlist()
    assert updated is not first
    assert updated != first
    assert hd.media_playlist(low_latency=False) is classic
    report = parse(updated).rendition_reports[0]
    assert (report.last_msn, report.last_part) == (1, 2)
