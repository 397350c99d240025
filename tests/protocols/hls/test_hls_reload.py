"""Blocking playlist reload rules (RFC 8216bis 6.2.5.2) and resource availability."""

from __future__ import annotations

import pytest
from hls_media import encode_video, feed

from streamscale.protocols.hls import (
    Availability,
    BlockingRequest,
    HLSError,
    LivePosition,
    PackagerConfig,
    Presentation,
    advance_part_limit,
    check_request,
    parse_query,
    playlist_ready,
)


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        ("", BlockingRequest()),
        ("foo=bar&x", BlockingRequest()),
        ("_HLS_msn=5", BlockingRequest(5)),
        ("?_HLS_msn=5&_HLS_part=2", BlockingRequest(5, 2)),
        (b"_HLS_msn=12&_HLS_part=0&_HLS_skip=YES", BlockingRequest(12, 0, "YES")),
        ("_HLS_skip=v2", BlockingRequest(skip="v2")),
        ({"_HLS_msn": "3", "_HLS_part": "1", "token": "x"}, BlockingRequest(3, 1)),
        ("_HLS_part=1&_HLS_msn=7", BlockingRequest(7, 1)),
    ],
)
def test_parse_query_accepts(
    query: str | bytes | dict[str, str], expected: BlockingRequest
) -> None:
    assert parse_query(query) == expected


@pytest.mark.parametrize(
    "query",
    [
        "_HLS_part=1",  # part without msn
        {"_HLS_part": "0"},
        "_HLS_msn=",
        "_HLS_msn=-1",
        "_HLS_msn=+1",
        "_HLS_msn=1.5",
        "_HLS_msn=0x10",
        "_HLS_msn=%31",
        "_HLS_msn=1&_HLS_part=a",
        "_HLS_msn=1&_HLS_msn=2",
        "_HLS_msn=1234567890123456789",
        "_HLS_msn=\u0661",  # a non-ASCII digit
        "_HLS_skip=yes",
        "_HLS_skip=",
    ],
)
def test_parse_query_rejects_with_400(query: str | dict[str, str]) -> None:
    with pytest.raises(HLSError) as info:
        parse_query(query)
    assert info.value.status == 400


# Live edge for the tables below: segment 9 complete, open segment 10 has parts 0..2.
EDGE = LivePosition(last_msn=9, part_msn=10, last_part=2)


@pytest.mark.parametrize(
    ("req", "ready"),
    [
        (BlockingRequest(), True),
        (BlockingRequest(skip="YES"), True),
        (BlockingRequest(3), True),  # expired msn: the playlist already has later ones
        (BlockingRequest(9), True),
        (BlockingRequest(10), False),  # segment 10 is not complete yet
        (BlockingRequest(10, 2), True),
        (BlockingRequest(10, 3), False),  # the preload-hinted part: block
        (BlockingRequest(9, 7), True),  # past the end of segment 9: a later part exists
        (BlockingRequest(11, 0), False),
    ],
)
def test_playlist_ready(req: BlockingRequest, ready: bool) -> None:
    assert playlist_ready(req, EDGE) is ready
    assert playlist_ready(req, LivePosition(9, 10, 2, ended=True))  # ended: never block


@pytest.mark.parametrize(
    ("req", "ok"),
    [
        (BlockingRequest(11), True),  # last complete + 2
        (BlockingRequest(12), False),  # beyond last complete + 2
        (BlockingRequest(10, 3), True),
        (BlockingRequest(10, 11), True),  # 9 parts ahead: the limit at 1/3 s parts
        (BlockingRequest(10, 12), False),
        (BlockingRequest(11, 0), True),
        (BlockingRequest(11, 7), False),  # 6 + 7 - 2 = 11 parts ahead
        (BlockingRequest(0, 0), True),
    ],
)
def test_check_request_rejects_far_future(req: BlockingRequest, ok: bool) -> None:
    if ok:
        check_request(req, EDGE, part_target_s=1 / 3, parts_per_segment=6)
    else:
        with pytest.raises(HLSError) as info:
            check_request(req, EDGE, part_target_s=1 / 3, parts_per_segment=6)
        assert info.value.status == 400


def test_nothing_is_too_far_once_ended() -> None:
    check_request(
        BlockingRequest(999, 99),
        LivePosition(9, 9, 5, ended=True),
        part_target_s=0.5,
        parts_per_segment=4,
    )


@pytest.mark.parametrize(
    ("part_target_s", "limit"), [(1 / 3, 9), (0.5, 6), (0.2, 15), (1.0, 3), (2.0, 3), (0.9, 3)]
)
def test_advance_part_limit(part_target_s: float, limit: int) -> None:
    assert advance_part_limit(part_target_s) == limit


def test_rendition_lookups_follow_the_live_edge(live: Presentation) -> None:
    rendition = live.get("720p")
    assert rendition is not None
    # 2 s fed with 1 s segments and 1/3 s parts: segment 0 complete, parts 1.0 and 1.1.
    assert rendition.position == LivePosition(0, 1, 1)
    cases = {
        "init.mp4": Availability.AVAILABLE,
        "0.m4s": Availability.AVAILABLE,
        "0.2.m4s": Availability.AVAILABLE,
        "0.3.m4s": Availability.NOT_FOUND,  # segment 0 had three parts
        "1.m4s": Availability.PENDING,  # open segment
        "1.1.m4s": Availability.AVAILABLE,
        "1.2.m4s": Availability.PENDING,  # the preload hint
        "1.3.m4s": Availability.NOT_FOUND,
        "2.0.m4s": Availability.NOT_FOUND,
        "2.m4s": Availability.NOT_FOUND,
        "x.m4s": Availability.NOT_FOUND,
        "../0.m4s": Availability.NOT_FOUND,
    }
    for name, status in cases.items():
        got, payload = rendition.resource(name)
        assert got is status, name
        assert (payload is not None) == (status is Availability.AVAILABLE), name
    assert rendition.playlist_ready(BlockingRequest(1, 1))
    assert not rendition.playlist_ready(BlockingRequest(1, 2))
    rendition.check_request(BlockingRequest(2, 0))
    with pytest.raises(HLSError):
        rendition.check_request(BlockingRequest(3, 0))
    assert rendition.blocking_timeout_s == 3.0


def test_segments_expire_after_window_and_retention() -> None:
    enc = encode_video(90, gop=10)
    pres = Presentation(
        PackagerConfig(
            segment_target_s=1 / 3, part_target_s=1 / 3, window_segments=2, retain_segments=1
        )
    )
    rendition = pres.add_rendition("a", video=enc.video)
    feed(rendition, enc, None)
    assert rendition.position.last_msn == 8
    assert rendition.segment(5)[0] is Availability.EXPIRED
    assert rendition.part(5, 0)[0] is Availability.EXPIRED
    assert rendition.segment(6)[0] is Availability.AVAILABLE  # retained, not listed
    assert rendition.segment(9)[0] is Availability.NOT_FOUND  # ended: nothing pending
    assert rendition.part(9, 0)[0] is Availability.NOT_FOUND
    assert b"6.m4s" not in rendition.media_playlist()
    assert rendition.playlist_ready(BlockingRequest(50, 3))
