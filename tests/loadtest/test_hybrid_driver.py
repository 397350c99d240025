"""The hybrid driver's bookkeeping (no I/O): when objects were first seen, intended times,
the measuring window, and the spec's round trip to the driver process."""

from __future__ import annotations

from pathlib import Path

import pytest

from loadtest.hls import parse_media
from loadtest.hybrid_driver import DriverSpec, Recorder, quantile

RECORDED = (Path(__file__).parent / "data" / "ll_160p.m3u8").read_text()


def spec(**kw: object) -> DriverSpec:
    base: dict[str, object] = dict(origin_url="http://127.0.0.1:1", stream_id="s",
                                   loops=(("160p", "ll"),), steering_pollers=0,
                                   duration_s=20.0, warmup_s=4.0, tail_s=2.0)
    base.update(kw)
    return DriverSpec(**base)  # type: ignore[arg-type]


def test_first_sighting_is_kept_and_stands_in_for_a_past_the_end_part() -> None:
    rec = Recorder(100.0, spec())
    view = parse_media(RECORDED)
    rec.seen("160p", view, 105.0)
    rec.seen("160p", view, 106.0)  # a later answer with the same parts changes nothing
    assert rec.intended("160p", 5, 1, default_s=0.0) == 105.0
    assert rec.intended("160p", 4, None, default_s=0.0) == 105.0  # segment 4, complete
    assert rec.intended("160p", 5, 2, default_s=7.0) == 7.0  # not listed yet
    # a reload for 4.5 (past segment 4's last part) is answered by 5.0
    assert rec.intended("160p", 4, 5, default_s=0.0) == 105.0
    assert rec.intended("360p", 5, 1, default_s=3.0) == 3.0  # per rung


def test_only_the_window_counts_and_latency_is_from_intended() -> None:
    rec = Recorder(100.0, spec())  # window [104, 118)
    rec.record("part", 103.9, 103.9, 104.2, 200, 10)  # warm-up: not counted
    rec.record("part", 110.0, 110.5, 110.7, 200, 10)  # sent late: 0.7 s from intended
    rec.record("part", 118.0, 118.0, 118.1, 200, 10)  # tail: not counted
    rec.record("playlist", 111.0, 111.0, 111.1, 503, 0)
    part, playlist = rec.kinds["part"], rec.kinds["playlist"]
    assert (part.count, part.total, part.bytes) == (1, 3, 10)
    assert part.intended == [pytest.approx(0.7)] and part.service == [pytest.approx(0.2)]
    assert playlist.count == 0 and playlist.errors == {"503": 1}


def test_spec_round_trip_and_quantile() -> None:
    s = spec(spread=True, part_s=0.5)
    assert DriverSpec.from_json(s.to_json()) == s
    assert quantile([], 0.5) is None
    assert quantile([3.0, 1.0, 2.0, 4.0], 0.5) == 3.0
    assert quantile([float(i) for i in range(100)], 0.99) == 99.0
