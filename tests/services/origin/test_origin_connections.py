"""Connection handling: keep-alive, pipelining, bad input, timeouts, graceful shutdown."""

from __future__ import annotations

from pathlib import Path

import trio
import trio.testing

from streamscale.services.origin import Limits

from .conftest import Origin, open_origin
from .streams import LiveFeeder, RawClient, get, header
from .test_origin_http import parked


async def test_pipelined_requests_answer_in_order(origin: Origin) -> None:
    feed = LiveFeeder(origin.registry)
    feed.seconds(1.5)
    raw = await RawClient.connect(origin.url)
    names = ["0.m4s", "init.mp4", "0.1.m4s", "nope.m4s", "index.m3u8"]
    await raw.send_raw(b"".join(get(f"/live/s1/hi/{n}") for n in names))
    for name in names:
        answer = await raw.response()
        assert answer is not None
        response, body = answer
        if name == "nope.m4s":
            assert response.status_code == 404
        elif name == "index.m3u8":
            assert body == feed.hi.media_playlist()
        else:
            assert body == feed.hi.resource(name)[1]
    await raw.send_raw(b"HEAD /live/s1/hi/0.m4s HTTP/1.1\r\nHost: o\r\n\r\n")
    answer = await raw.response("HEAD")
    assert answer is not None and answer[1] == b""
    assert header(answer[0], b"content-length") == str(len(feed.hi.segment(0)[1] or b"")).encode()
    await raw.aclose()


async def test_malformed_request_gets_400_and_close_without_disturbing_others(
    origin: Origin,
) -> None:
    LiveFeeder(origin.registry).seconds(1.5)
    good = await RawClient.connect(origin.url)
    await good.send_raw(get("/live/s1/master.m3u8"))
    assert (await good.response()) is not None
    for garbage in (
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03\r\n\r\n",  # a TLS hello
        b"GET /live/s1/master.m3u8 HTTP/1.1\r\nHost: o\r\nBad Header\r\n\r\n",
        b"GET /live/s1/master.m3u8 HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n",
        b"BLAH\r\n\r\n",
    ):
        bad = await RawClient.connect(origin.url)
        await bad.send_raw(garbage)
        answer = await bad.response()
        assert answer is not None and answer[0].status_code == 400, garbage
        assert header(answer[0], b"connection") == b"close"
        assert await bad.closed()
    await good.send_raw(get("/live/s1/hi/0.m4s"))
    answer = await good.response()
    assert answer is not None and answer[0].status_code == 200
    await good.aclose()


async def test_oversized_headers_and_bodies_are_refused(origin: Origin) -> None:
    raw = await RawClient.connect(origin.url)
    await raw.send_raw(get("/live/s1/master.m3u8", headers=b"X-Big: " + b"a" * 20_000 + b"\r\n"))
    answer = await raw.response()
    assert answer is not None and answer[0].status_code == 431
    assert await raw.closed()

    raw = await RawClient.connect(origin.url)
    await raw.send_raw(b"POST /live/s1/master.m3u8 HTTP/1.1\r\nHost: o\r\n"
                       b"Content-Length: 5\r\n\r\nhello")
    answer = await raw.response()
    assert answer is not None and answer[0].status_code == 405
    assert await raw.closed()


async def test_idle_and_slow_connections_time_out(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    limits = Limits(idle_timeout_s=5.0, header_timeout_s=2.0)
    async with open_origin(tmp_path, limits) as origin:
        idle = await RawClient.connect(origin.url)
        start = trio.current_time()
        assert await idle.closed()
        assert 5.0 <= trio.current_time() - start < 6.0

        slow = await RawClient.connect(origin.url)
        await slow.send_raw(b"GET /live/s1/master.m3u8 HTTP/1.1\r\nHo")
        start = trio.current_time()
        answer = await slow.response()
        assert answer is not None and answer[0].status_code == 408
        assert 2.0 <= trio.current_time() - start < 3.0


async def test_graceful_shutdown_finishes_in_flight_requests(tmp_path: Path) -> None:
    async with open_origin(tmp_path, Limits(shutdown_grace_s=10.0)) as origin:
        feed = LiveFeeder(origin.registry)
        feed.seconds(1.2)
        idle = await RawClient.connect(origin.url)
        await idle.send_raw(get("/live/s1/master.m3u8"))
        assert await idle.response() is not None
        waiting = await RawClient.connect(origin.url)
        pos = feed.hi.position
        await waiting.send_raw(get(f"/live/s1/hi/index.m3u8?_HLS_msn={pos.last_msn + 1}"))
        with trio.fail_after(10):
            await parked(origin)
            origin.shutdown.set()
            assert await idle.closed()  # idle keep-alive connections close at once
            try:
                await RawClient.connect(origin.url)
                refused = False
            except OSError:
                refused = True
            assert refused
            feed.seconds(2.2)  # the held reload can now complete
            answer = await waiting.response()
            assert answer is not None and answer[0].status_code == 200
            assert header(answer[0], b"connection") == b"close"
            await origin.done.wait()


async def test_shutdown_grace_ends_held_requests_with_503(
    tmp_path: Path, autojump_clock: trio.testing.MockClock
) -> None:
    async with open_origin(tmp_path, Limits(shutdown_grace_s=0.5)) as origin:
        feed = LiveFeeder(origin.registry)
        feed.seconds(1.2)
        waiting = await RawClient.connect(origin.url)
        msn = feed.hi.position.last_msn + 1
        await waiting.send_raw(get(f"/live/s1/hi/index.m3u8?_HLS_msn={msn}"))
        await parked(origin)
        start = trio.current_time()
        origin.shutdown.set()
        answer = await waiting.response()
        assert answer is not None and answer[0].status_code == 503
        assert trio.current_time() - start <= 0.5 + 1e-6
        await origin.done.wait()


async def test_client_close_and_http10_are_honoured(origin: Origin) -> None:
    LiveFeeder(origin.registry).seconds(1.5)
    for request in (
        b"GET /live/s1/master.m3u8 HTTP/1.1\r\nHost: o\r\nConnection: close\r\n\r\n",
        b"GET /live/s1/master.m3u8 HTTP/1.0\r\n\r\n",
    ):
        raw = await RawClient.connect(origin.url)
        await raw.send_raw(request)
        answer = await raw.response()
        assert answer is not None and answer[0].status_code == 200
        assert header(answer[0], b"connection") == b"close"
        assert await raw.closed()
