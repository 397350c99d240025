"""The edge's upstream client: keep-alive, nothing of the viewer's forwarded, a pooled
connection the upstream closed is retried, framing other than Content-Length is read."""

from __future__ import annotations

from functools import partial

import httpx
import pytest
import trio
import trio.testing

from streamscale.services.cdn.edge._upstream import Upstream
from streamscale.services.lean_http import Limits

from ..origin.streams import LiveFeeder
from .conftest import open_counting_origin, open_edge

FORWARDED = {b"host", b"x-streamscale-edge", b"user-agent", b"accept-encoding"}


async def test_keep_alive_and_nothing_of_the_viewer_goes_upstream() -> None:
    async with open_counting_origin() as origin:
        feed = LiveFeeder(origin.registry)
        feed.seconds(2.2)
        async with open_edge("a1", origin.url) as edge, httpx.AsyncClient() as client:
            for name in ("index.m3u8", "init.mp4", "0.m4s", "1.m4s", "0.0.m4s"):
                r = await client.get(
                    f"{edge.url}/live/s1/hi/{name}?CMCD=sid%3D%22v%22",
                    headers={"cookie": "session=secret", "authorization": "Bearer t",
                             "user-agent": "viewer/1", "x-forwarded-for": "10.0.0.1",
                             "cmcd-session": 'sid="v"', "range": "bytes=0-10"})
                assert r.status_code == 200, name
                assert r.content == feed.hi.resource(name)[1] or name == "index.m3u8"
            assert origin.routes.header_names == FORWARDED
            assert set(origin.counts) == {f"/live/s1/hi/{n}".encode() for n in (
                "index.m3u8", "init.mp4", "0.m4s", "1.m4s", "0.0.m4s")}
            assert origin.server.connections == 1  # one pooled connection did it all


async def test_a_pooled_connection_closed_upstream_is_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with open_counting_origin(limits=Limits(idle_timeout_s=1.0)) as origin:
        LiveFeeder(origin.registry).seconds(2.2)
        async with open_edge("a1", origin.url) as edge, httpx.AsyncClient() as client:
            assert (await client.get(f"{edge.url}/live/s1/hi/0.m4s")).status_code == 200
            await trio.sleep(5)  # mock time: the origin closes the idle connection
            assert origin.server.connections == 0
            r = await client.get(f"{edge.url}/live/s1/hi/1.m4s")
            assert r.status_code == 200 and r.headers["x-cache"] == "MISS"
            assert origin.counts[b"/live/s1/hi/1.m4s"] == 1


async def test_chunked_and_close_delimited_answers_are_read() -> None:
    answers = [
        b"HTTP/1.1 200 OK\r\ncontent-type: video/mp4\r\ncache-control: max-age=60\r\n"
        b"transfer-encoding: chunked\r\n\r\n5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n",
        b"HTTP/1.0 200 OK\r\ncontent-type: video/mp4\r\n\r\nuntil the end",
    ]

    async def handler(stream: trio.SocketStream) -> None:
        await stream.receive_some(65536)
        await stream.send_all(answers.pop(0))
        await stream.aclose()

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        url = f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        async with Upstream(url, "t") as upstream:
            first = await upstream.fetch(b"/live/s1/a", 5.0)
            second = await upstream.fetch(b"/live/s1/b", 5.0)
        nursery.cancel_scope.cancel()
    assert (first.status, first.body, first.cache_control) == (200, b"hello world",
                                                               b"max-age=60")
    assert (second.status, second.body, second.failed) == (200, b"until the end", False)


def test_only_plain_http_upstreams() -> None:
    for bad in ("https://origin:443", "origin:8080", "http://origin:8080/prefix"):
        with pytest.raises(ValueError, match="upstream must be http://host:port"):
            Upstream(bad, "a1")
