"""The lean listener's fast head parser (what edges and the origin read players' requests
with) accepts only what h11 accepts, and reads it the same way; h11 gets the rest."""

from __future__ import annotations

import h11
import trio
import trio.testing
from hypothesis import given, settings
from hypothesis import strategies as st

from streamscale.services._http_head import BLANK_LINE, parse_head
from streamscale.services.lean_http import Limits

from ..origin.streams import LiveFeeder, RawClient, get
from .conftest import open_counting_origin, open_edge, parked

HLS_JS = (
    b"GET /live/s1/hi/index.m3u8?_HLS_msn=12&_HLS_part=2&CMCD=sid%3D%22abc%22 HTTP/1.1\r\n"
    b"Host: edge.example:8090\r\nConnection: keep-alive\r\nsec-ch-ua-platform: \"Linux\"\r\n"
    b"User-Agent: Mozilla/5.0 (X11; Linux x86_64) Chrome/120.0.0.0 Safari/537.36\r\n"
    b"Accept: */*\r\nOrigin: http://localhost:8000\r\nSec-Fetch-Mode: cors\r\n"
    b"Referer: http://localhost:8000/\r\nAccept-Encoding: gzip, deflate, br\r\n\r\n"
)


def h11_read(data: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bool] | None:
    """What h11 makes of `data` as one bodiless request, or None if it refuses it."""
    conn = h11.Connection(h11.SERVER)
    conn.receive_data(data)
    try:
        request = conn.next_event()
        if type(request) is not h11.Request or type(conn.next_event()) is not h11.EndOfMessage:
            return None
    except h11.RemoteProtocolError:
        return None
    headers = [(bytes(n), bytes(v)) for n, v in request.headers]
    close = any(n == b"connection" and b"close" in v.lower() for n, v in headers)
    return bytes(request.method), bytes(request.target), headers, close


def parse(data: bytes) -> tuple[bytes, bytes, list[tuple[bytes, bytes]], bool] | None:
    blank = BLANK_LINE.search(data)
    return None if blank is None else parse_head(data, blank.end())


def test_players_requests_take_the_fast_path_and_read_as_h11_reads_them() -> None:
    for head in (HLS_JS, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n",
                 b"HEAD /live/s1/hi/0.m4s HTTP/1.1\r\nhost:x\r\nConnection:  close \r\n\r\n"):
        fast = parse(head)
        assert fast is not None and fast == h11_read(head)
    assert parse(HLS_JS) is not None and parse(HLS_JS)[3] is False  # type: ignore[index]


def test_anything_unusual_goes_to_h11() -> None:
    for head in (
        b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 1\r\n\r\nx",
        b"GET / HTTP/1.1\r\nHost: x\r\nContent-Length: 0\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n",
        b"GET / HTTP/1.0\r\n\r\n",
        b"GET / HTTP/1.1\r\n\r\n",  # no Host
        b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"GET http://elsewhere/ HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\nHost: x\n\n",  # bare LF
        b"GET / HTTP/1.1\r\nHost: x\r\n folded\r\n\r\n",
        b"GET / HTTP/1.1\r\nBad Name: x\r\nHost: x\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\x00y\r\n\r\n",
        b"\r\nGET / HTTP/1.1\r\nHost: x\r\n\r\n",
    ):
        assert parse(head) is None, head


_NAMES = st.sampled_from([b"Host", b"host", b"Connection", b"User-Agent", b"CMCD-Session",
                          b"Content-Length", b"Transfer-Encoding", b"X-A", b"Bad Name",
                          b"", b"x\x7f"])
_VALUES = st.one_of(st.sampled_from([b"close", b"keep-alive", b" spaced ", b"a\tb", b"0",
                                     b"chunked", b"", b"x\r\ny: z"]),
                    st.binary(max_size=12))


@settings(max_examples=3000, deadline=None)
@given(
    method=st.sampled_from([b"GET", b"HEAD", b"POST", b"OPTIONS", b"get"]),
    target=st.one_of(st.sampled_from([b"/", b"/live/s1/hi/0.m4s?x=1", b"*", b"/a b"]),
                     st.binary(min_size=1, max_size=8).map(lambda b: b"/" + b)),
    version=st.sampled_from([b"HTTP/1.1", b"HTTP/1.0", b"HTTP/2"]),
    fields=st.lists(st.tuples(_NAMES, st.sampled_from([b": ", b":", b" : ", b":\t"]),
                              _VALUES), max_size=5),
    eol=st.sampled_from([b"\r\n", b"\n"]),
)
def test_fast_path_is_a_subset_of_h11(
    method: bytes, target: bytes, version: bytes,
    fields: list[tuple[bytes, bytes, bytes]], eol: bytes,
) -> None:
    head = method + b" " + target + b" " + version + eol + b"".join(
        name + sep + value + eol for name, sep, value in fields) + eol
    fast = parse(head)
    if fast is not None:
        assert fast == h11_read(head), head


async def test_held_requests_outlive_the_idle_timeout_and_idle_ones_do_not(
    autojump_clock: trio.testing.MockClock,
) -> None:
    """The connection timer stays at the idle deadline while answers come at once; a
    request that waits (a hold) gets the response timeout from when it starts waiting."""
    limits = Limits(idle_timeout_s=2.0, response_timeout_s=60.0, shutdown_grace_s=0.5)
    async with open_counting_origin() as origin, \
            open_edge("a1", origin.url, limits=limits) as edge:
        feed = LiveFeeder(origin.registry)
        feed.seconds(1.2)
        client = await RawClient.connect(edge.url)
        await client.send_raw(get("/healthz"))
        assert await client.response() is not None
        await client.send_raw(get(f"/live/s1/hi/{feed.hi.position.last_msn + 1}.m4s"))
        await parked(edge, 1)
        await trio.sleep(2.5)  # mock time: past the idle timeout, within the origin's hold
        feed.seconds(2.2)
        answer = await client.response()
        assert answer is not None and answer[0].status_code == 200
        start = trio.current_time()
        assert await client.closed()  # idle again: closed at the idle timeout
        assert 2.0 <= trio.current_time() - start < 2.5
