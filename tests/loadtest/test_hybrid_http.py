"""The hybrid driver's lean HTTP client against the platform's own lean listener (keep-alive,
the edge header, an idle connection closed by the server) and against answers it must
refuse rather than misread."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from functools import partial

import pytest
import trio
import trio.testing

from loadtest.hybrid_http import ClientError, Connection
from streamscale.services.lean_http import Holds, HTTPServer, Limits, Reply, Request, text_reply


class Seen:
    def __init__(self) -> None:
        self.edges: list[bytes | None] = []

    async def __call__(self, request: Request, holds: Holds) -> Reply:
        self.edges.append(request.header(b"x-streamscale-edge"))
        if request.target == b"/missing":
            return text_reply(404, "not here")
        return text_reply(200, "body of " + request.target.decode())


@asynccontextmanager
async def lean_server(limits: Limits) -> AsyncIterator[tuple[str, HTTPServer, Seen]]:
    seen = Seen()
    server = HTTPServer(seen, limits)
    shutdown = trio.Event()
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(server.serve, host="127.0.0.1", port=0,
                                                shutdown=shutdown))
        try:
            yield f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}", server, seen
        finally:
            shutdown.set()


async def test_keep_alive_statuses_and_the_edge_header() -> None:
    async with lean_server(Limits(shutdown_grace_s=0.5)) as (url, server, seen):
        conn = Connection(url, "hybrid-7")
        assert await conn.get(b"/live/a", 5.0) == (200, b"body of /live/a\n")
        status, _ = await conn.get(b"/missing", 5.0)
        assert status == 404
        assert (await conn.get(b"/live/b", 5.0))[1] == b"body of /live/b\n"
        assert server.connections == 1  # one kept connection did it all
        assert seen.edges == [b"hybrid-7"] * 3  # the origin sees an edge fetch
        await conn.aclose()


async def test_a_connection_the_server_closed_while_idle_is_retried(
    autojump_clock: trio.testing.MockClock,
) -> None:
    async with lean_server(Limits(idle_timeout_s=1.0, shutdown_grace_s=0.5)) as (url, s, _):
        conn = Connection(url, "t")
        assert (await conn.get(b"/x", 5.0))[0] == 200
        await trio.sleep(5)  # mock time: the server closes the idle connection
        assert s.connections == 0
        assert (await conn.get(b"/y", 5.0)) == (200, b"body of /y\n")
        await conn.aclose()


async def _canned(answers: list[bytes]) -> tuple[int, bytes] | str:
    """The client's answer (or its error) to GET /a from a server sending `answers`."""
    async def handler(stream: trio.SocketStream) -> None:
        while answers:
            request = await stream.receive_some(65536)
            if not request:
                return
            await stream.send_all(answers.pop(0))

    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        conn = Connection(f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}", "t")
        out: tuple[int, bytes] | str
        try:
            out = await conn.get(b"/a", 5.0)
        except ClientError as exc:
            out = str(exc)
        await conn.aclose()
        nursery.cancel_scope.cancel()
    return out


@pytest.mark.parametrize(("answer", "error"), [
    (b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
     "transfer-encoding"),
    (b"HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\n\r\nno length", "content-length"),
    (b"SSH-2.0-OpenSSH\r\n\r\n", "status line"),
])
async def test_answers_it_cannot_frame_are_errors(answer: bytes, error: str) -> None:
    out = await _canned([answer])
    assert isinstance(out, str) and error in out


async def test_header_names_are_read_in_any_case() -> None:
    out = await _canned([b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"])
    assert out == (200, b"hello")
