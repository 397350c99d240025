"""The pure parts of bench/glass_to_glass.py: timestamps out of fMP4 and MPEG-TS, playlist
reading, the player's presentation clock and the per-frame latency arithmetic."""

from __future__ import annotations

import math
import sys
from pathlib import Path

import pytest

from streamscale.protocols.hls import (
    AudioTrack,
    PackagerConfig,
    Part,
    Presentation,
    Sample,
    VideoTrack,
)
from streamscale.testing.rtmp_client import avc_decoder_config, build_sps

# Appended, not prepended: bench/sim.py must not shadow the `sim` package.
sys.path.append(str(Path(__file__).resolve().parents[2] / "bench"))

from _g2g_media import (
    Playout,
    covering,
    fmp4_video_dts,
    frame_latencies,
    init_video_track,
    join_target_s,
    parse_playlist,
    percentile,
    ts_video_dts,
)

PPS = b"\x68\xeb\xe3\xcb\x22\xc0"
FRAME_TICKS = 3000  # 30 fps at 90 kHz


def _presentation() -> tuple[Presentation, list[Part]]:
    """A real packager fed 3 s of 30 fps video (keyframe every second) plus AAC."""
    record = avc_decoder_config([build_sps(320, 240, profile_idc=100, level_idc=13)], [PPS])
    pres = Presentation(PackagerConfig(segment_target_s=1.0, part_target_s=0.334))
    rendition = pres.add_rendition("a", video=VideoTrack.from_extradata(record),
                                   audio=AudioTrack.from_asc(b"\x11\x90"))
    parts: list[Part] = []
    for i in range(90):
        dts = 90_000 + i * FRAME_TICKS  # a timeline that does not start at zero
        nal = bytes((0x65 if i % 30 == 0 else 0x41,)) + bytes(40)
        events = rendition.push_video(Sample(len(nal).to_bytes(4, "big") + nal, dts=dts,
                                             keyframe=i % 30 == 0, wallclock_s=1e9 + i / 30))
        rendition.push_audio(Sample(b"\x21" * 20, dts=(48_000 + i * 1600)))
        parts += [e for e in events if isinstance(e, Part)]
    return pres, parts


def test_fmp4_timestamps_come_back_frame_by_frame() -> None:
    pres, parts = _presentation()
    rendition = pres.get("a")
    assert rendition is not None
    assert init_video_track(rendition.init_segment) == (1, 90_000)
    seen = [dts for part in parts for dts in fmp4_video_dts(part.payload, 1)]
    assert seen == [90_000 + i * FRAME_TICKS for i in range(len(seen))]
    assert len(seen) == 80  # 10-frame parts; the open part's 10 frames are not out yet
    assert fmp4_video_dts(parts[0].payload, 2)[:2] == [48_000, 49_600]  # audio, separately


def test_playlist_lists_parts_with_positions() -> None:
    pres, parts = _presentation()
    rendition = pres.get("a")
    assert rendition is not None
    pl = parse_playlist(rendition.media_playlist().decode())
    assert pl.part_hold_back_s == pytest.approx(1.002)
    assert [(p.msn, p.index) for p in pl.parts] == [(p.msn, p.index) for p in parts]
    assert [p.independent for p in pl.parts] == [p.independent for p in parts]
    assert len(pl.segments) == 2 and pl.segments[1].start_s == pytest.approx(1.0)
    assert pl.end_s == pytest.approx(sum(p.duration_s for p in parts), abs=1e-4)
    assert pl.preload_uri == f"{parts[-1].msn}.{parts[-1].index + 1}.m4s"
    target = join_target_s(pl, 1.0)
    at = covering(pl.parts, target)
    assert at is not None and at.start_s <= target < at.end_s
    classic = parse_playlist(rendition.media_playlist(low_latency=False).decode())
    assert classic.parts == [] and [s.uri for s in classic.segments] == ["0.m4s", "1.m4s"]


def _ts_packet(pid: int, payload: bytes, *, start: bool) -> bytes:
    header = bytes((0x47, (0x40 if start else 0) | pid >> 8, pid & 0xFF))
    stuffing = 184 - len(payload)
    if stuffing == 0:
        return header + b"\x10" + payload
    field = bytes((stuffing - 1,)) + (b"\x00" + b"\xff" * (stuffing - 2) if stuffing > 1 else b"")
    return header + b"\x30" + field + payload


def _timestamp(prefix: int, ticks: int) -> bytes:
    return bytes((prefix << 4 | (ticks >> 29) & 0x0E | 1, ticks >> 22 & 0xFF,
                  (ticks >> 14) & 0xFE | 1, ticks >> 7 & 0xFF, (ticks << 1) & 0xFE | 1))


def test_ts_timestamps_from_pes_headers() -> None:
    pat = b"\x00" + bytes((0x00, 0xB0, 13, 0, 1, 0xC1, 0, 0, 0, 1, 0xF0, 0x00)) + bytes(4)
    pmt_body = bytes((0x02, 0xB0, 23, 0, 1, 0xC1, 0, 0, 0xE1, 0x00, 0xF0, 0x00,
                      0x0F, 0xE1, 0x01, 0xF0, 0x00, 0x1B, 0xE1, 0x00, 0xF0, 0x00))
    data = _ts_packet(0, pat, start=True) + _ts_packet(0x1000, b"\x00" + pmt_body + bytes(4),
                                                       start=True)
    expected = [63_000 + i * FRAME_TICKS for i in range(4)] + [(1 << 33) - 100, 3000]
    for i, dts in enumerate(expected):
        pes = (b"\x00\x00\x01\xe0\x00\x00\x80\xc0\x0a" + _timestamp(3, (dts + 6000) % (1 << 33))
               + _timestamp(1, dts % (1 << 33)) + b"\x00\x00\x00\x01\x09\xf0")
        data += _ts_packet(0x100, pes, start=True)
        data += _ts_packet(0x101, b"\x00\x00\x01\xc0" + bytes(20), start=True)
        if i == 1:
            data += _ts_packet(0x100, b"\xaa" * 50, start=False)  # continuation: no header
    got = ts_video_dts(data)
    assert got[:5] == expected[:5]
    assert got[5] == 3000 + (1 << 33)  # unwrapped past the 33-bit wrap


def test_playout_is_real_time_and_stalls_on_late_frames() -> None:
    clock = Playout(start_dts=9000, start_wall_s=100.0)
    assert clock.present(6000, 99.0) is None  # before the join point: decoded, not shown
    assert clock.present(9000, 100.0) == 100.0
    assert clock.present(12_000, 99.5) == pytest.approx(100 + 1 / 30)
    assert clock.present(15_000, 101.0) == pytest.approx(101.0)  # late: a stall
    assert clock.present(18_000, 90.0) == pytest.approx(101 + 1 / 30)  # and then on time
    assert clock.stalls == 1 and clock.stall_s == pytest.approx(1 - 2 / 30)


def test_frame_latencies_first_arrival_offset_and_warm_up() -> None:
    sent = {0: 10.0, 33: 10.033, 66: 10.066, 100: 10.1}
    arrivals = [(10.5, [63_000, 63_000 + 2970]), (10.7, [63_000 + 2970, 63_000 + 5940]),
                (10.9, [63_000 + 9000])]
    lat = frame_latencies(arrivals, sent, offset_90k=63_000, first_sent_ms=33)
    assert lat == pytest.approx({33: 0.467, 66: 0.634, 100: 0.8})
    shown = frame_latencies(arrivals, sent, offset_90k=63_000,
                            playout=Playout(start_dts=63_000, start_wall_s=11.0))
    assert shown[0] == pytest.approx(1.0) and shown[100] == pytest.approx(1.0)


def test_percentile_is_nearest_rank() -> None:
    values = [float(v) for v in range(1, 101)]
    assert percentile(values, 50) == 50 and percentile(values, 95) == 95
    assert percentile([3.0], 95) == 3.0 and math.isnan(percentile([], 50))
