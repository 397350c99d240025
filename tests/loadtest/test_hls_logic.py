"""The player's decisions on a recorded LL-HLS playlist (the platform's 160p rung, parts of
0.25 s, PART-HOLD-BACK 0.75 s) and on synthetic ones."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from loadtest.hls import (
    DEFAULT_ESTIMATE_BPS,
    Chunk,
    Playback,
    PlaylistError,
    Throughput,
    blocking_request,
    choose_variant,
    join_point,
    next_chunk,
    parse_media,
    steering_pathway,
)

RECORDED = (Path(__file__).parent / "data" / "ll_160p.m3u8").read_text()
CLASSIC = """#EXTM3U
#EXT-X-VERSION:6
#EXT-X-TARGETDURATION:2
#EXT-X-MEDIA-SEQUENCE:40
#EXTINF:2.0,
40.ts
#EXTINF:2.0,
41.ts
#EXTINF:2.0,
42.ts
#EXTINF:2.0,
43.ts
"""
LADDER_BPS = [979_480.0, 6_128_000.0, 384_704.0]  # 360p, source, 160p as the master lists


def _pos(chunk: Chunk | None) -> tuple[int, int | None] | None:
    return None if chunk is None else (chunk.msn, chunk.part)


def test_recorded_playlist_parses_parts_segments_and_server_control() -> None:
    view = parse_media(RECORDED)
    assert [s.msn for s in view.segments] == [0, 1, 2, 3, 4]
    assert [(p.msn, p.part) for p in view.parts][-3:] == [(4, 4), (5, 0), (5, 1)]
    assert (view.part_hold_back_s, view.hold_back_s) == (0.75, 3.0)
    assert view.can_block_reload and view.low_latency and view.init_uri == "init.mp4"
    # PDT carried into the open segment: its first part starts where segment 4 ends
    seg4 = datetime(2026, 12, 3, 16, 19, 14, 785000, tzinfo=UTC).timestamp()
    assert view.parts[-2].start_epoch_s == pytest.approx(seg4 + 1.0)
    assert view.parts[-1].start_epoch_s == pytest.approx(seg4 + 1.0 + 0.233)


def test_ll_join_is_part_hold_back_behind_the_edge_on_an_independent_part() -> None:
    view = parse_media(RECORDED)
    # 5.1, 5.0, 4.4 sum to 0.534 s < 0.75; 4.3 reaches it but is not independent: 4.2
    assert _pos(join_point(view, low_latency=True)) == (4, 2)


def test_classic_join_is_hold_back_behind_on_whole_segments() -> None:
    assert _pos(join_point(parse_media(RECORDED), low_latency=False)) == (2, None)
    # no HOLD-BACK tag: three target durations (6 s) behind the end of 43
    assert _pos(join_point(parse_media(CLASSIC), low_latency=False)) == (41, None)


def test_next_chunk_follows_parts_then_waits_with_a_blocking_request() -> None:
    view = parse_media(RECORDED)
    at = join_point(view, low_latency=True)
    seen = []
    while (following := next_chunk(view, at, low_latency=True)) is not None:
        seen.append(_pos(following))
        at = following
    assert seen == [(4, 3), (4, 4), (5, 0), (5, 1)]
    assert blocking_request(view, at) == (5, 2)  # segment 5 still open: its next part
    last_of_4 = next(p for p in view.parts if (p.msn, p.part) == (4, 4))
    assert blocking_request(view, last_of_4) == (5, 0)  # segment 4 complete: next one
    segment_4 = view.segments[-1]
    assert next_chunk(view, segment_4, low_latency=False) is None
    assert blocking_request(view, segment_4) == (5, None)


def test_next_chunk_after_a_rendition_switch_matches_by_number() -> None:
    other = parse_media(RECORDED.replace(".m4s", "-360p.m4s"))
    loaded_on_160p = Chunk(4, 1, "4.1.m4s", 0.234, False, None)
    following = next_chunk(other, loaded_on_160p, low_latency=True)
    assert following is not None and following.uri == "4.2-360p.m4s"


def test_empty_or_foreign_playlists_are_refused() -> None:
    with pytest.raises(PlaylistError):
        parse_media("<html>")
    with pytest.raises(PlaylistError):
        join_point(parse_media("#EXTM3U\n#EXT-X-TARGETDURATION:2\n"), low_latency=True)


def test_abr_starts_low_goes_up_with_headroom_and_down_quickly() -> None:
    assert choose_variant(LADDER_BPS, DEFAULT_ESTIMATE_BPS, -1) == 2  # 500 kbps: 160p
    assert choose_variant(LADDER_BPS, 2_000_000, 2) == 0  # 0.7 x 2 Mbps fits 360p
    assert choose_variant(LADDER_BPS, 1_300_000, 2) == 2  # 0.7 x 1.3 Mbps does not
    assert choose_variant(LADDER_BPS, 1_040_000, 0) == 0  # stays: 0.95 x 1.04 Mbps fits
    assert choose_variant(LADDER_BPS, 1_000_000, 0) == 2  # drops: 0.95 x 1 Mbps does not
    assert choose_variant(LADDER_BPS, 10_000_000, 0) == 1  # 0.7 x 10 Mbps fits the source
    with pytest.raises(PlaylistError):
        choose_variant([], 1e6, 0)


def test_throughput_estimate_is_the_default_until_measured_then_follows_samples() -> None:
    meter = Throughput()
    assert meter.estimate_bps() == DEFAULT_ESTIMATE_BPS
    for _ in range(20):
        meter.sample(0.5, 500_000)  # 8 Mbps
    assert meter.estimate_bps() == pytest.approx(8e6, rel=0.01)
    meter.sample(2.0, 250_000)  # a slow transfer (1 Mbps) pulls the fast average down
    assert meter.estimate_bps() < 6e6


def test_steering_takes_the_first_unpenalised_pathway_the_master_offers() -> None:
    offered = ["a", "b", "origin"]
    assert steering_pathway(["a", "b", "origin"], offered, set()) == "a"
    assert steering_pathway(["a", "b", "origin"], offered, {"a"}) == "b"
    assert steering_pathway(["c", "b", "a"], offered, set()) == "b"  # c not in the master
    assert steering_pathway(["a", "b", "origin"], offered, set(offered)) == "a"
    assert steering_pathway([], offered, {"a"}) == "b"  # no manifest yet: master order


def test_playback_counts_startup_from_the_scheduled_arrival_and_stalls() -> None:
    playback = Playback(arrival_s=10.0)
    part = Chunk(1, 0, "1.0.m4s", 0.25, True, 1000.0)
    assert playback.loaded(part, 11.0) == pytest.approx(1.0)  # startup
    assert playback.loaded(part, 11.1) is None
    assert playback.latency_s(11.1, 1001.0) == pytest.approx(1001.0 - (1000.25 - 0.4))
    playback.loaded(part, 12.0)  # 0.5 s of media ran dry at 11.5: a 0.5 s stall
    assert (playback.stalled_s, playback.stalls) == (pytest.approx(0.5), 1)
    watched_s, stalled_s = playback.finish(12.2)
    assert (watched_s, stalled_s) == (pytest.approx(1.2), pytest.approx(0.5))


def test_a_session_that_never_loads_media_has_no_startup() -> None:
    playback = Playback(arrival_s=0.0)
    assert playback.finish(5.0) == (0.0, 0.0)
    assert playback.latency_s(5.0, 100.0) is None
