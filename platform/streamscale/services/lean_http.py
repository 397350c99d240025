"""A lean HTTP/1.1 listener for media delivery (origin and edge): one trio task per
connection.

No ASGI, no per-request task, channel or lock (DESIGN.md, "Measured"): a connection task
reads a request, awaits the handler, writes cached bytes and loops for the next
(keep-alive, pipelined) request. Only GET/HEAD (and CORS preflight OPTIONS) are served.

Reading: a plain GET/HEAD head (what players send) is read by one regex
(`_http_head.parse_head`, a strict subset of what h11 accepts); anything else is handed
to a fresh h11 connection whole, so odd or hostile input is judged by h11. Writing:
responses are a `Head` (status line and fixed headers, encoded once) plus Content-Length
and the body, or a `Ready` answer a cache built once (head, length and a small body in one
bytes object), written with one plain non-blocking write when the socket takes it. A task
holding an answer many requests wait for can write it to all of them in one pass
(`Request.deliver`) instead of waking each waiter to write its own.

Timeouts: an idle keep-alive connection is closed after `idle_timeout_s`; a request
must be complete within `header_timeout_s` of its first byte; a request that waits (a
hold) or whose answer the socket cannot take at once must be answered within
`response_timeout_s` of that moment, or the connection is dropped (one timer per
connection, moved only then: an answer written at once moves no deadline). Graceful
shutdown: stop accepting, close idle connections, let in-flight requests (blocking waits
included, via `Holds`) finish until the grace deadline, then cancel whatever is left.
"""

from __future__ import annotations

import contextvars
import logging
import math
import os
from collections.abc import Awaitable, Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from functools import partial

import h11
import trio

from ._http_answer import (
    _COALESCE_BYTES,
    CORS,
    TEXT,
    Head,
    Headers,
    Ready,
    Reply,
    Request,
    _Delivered,
    text_reply,
)
from ._http_head import BLANK_LINE, parse_head

log = logging.getLogger(__name__)

__all__ = [
    "CORS",
    "TEXT",
    "HTTPServer",
    "Handler",
    "Head",
    "Headers",
    "Holds",
    "Limits",
    "Ready",
    "Reply",
    "Request",
    "text_reply",
]

_RECV_BYTES = 64 * 1024


Handler = Callable[[Request, "Holds"], Awaitable[Reply]]

_PREFLIGHT = Head(204, [
    CORS,
    (b"access-control-allow-methods", b"GET, HEAD, OPTIONS"),
    (b"access-control-allow-headers", b"range"),
    (b"access-control-max-age", b"86400"),
])
_NOT_ALLOWED = Head(405, [*TEXT, (b"allow", b"GET, HEAD, OPTIONS")])
@dataclass(frozen=True, kw_only=True)
class Limits:
    """Per-connection bounds: a slow or hostile client holds one task, briefly."""

    max_header_bytes: int = 16 * 1024
    idle_timeout_s: float = 30.0
    header_timeout_s: float = 10.0
    response_timeout_s: float = 60.0  # a held request plus writing its answer
    shutdown_grace_s: float = 5.0


# The running connection's timer: a request that waits (a hold) or writes slowly gives it
# the full response timeout then, so a request answered at once moves no deadline.
_TIMER: contextvars.ContextVar[tuple[trio.CancelScope, float]] = contextvars.ContextVar(
    "lean_http_timer")


def _answer_time() -> None:
    """Give the current connection's request its response timeout from now."""
    current = _TIMER.get(None)
    if current is not None:
        timer, response_timeout_s = current
        timer.deadline = max(timer.deadline, trio.current_time() + response_timeout_s)


class Holds:
    """Deadlines for requests that wait (blocking reload, preload hint), shortened on drain."""

    def __init__(self) -> None:
        self._scopes: set[trio.CancelScope] = set()
        self.drain_deadline = math.inf

    @contextmanager
    def hold(self, deadline: float) -> Iterator[trio.CancelScope]:
        _answer_time()  # the wait and the answer's writing
        scope = trio.CancelScope(deadline=min(deadline, self.drain_deadline))
        self._scopes.add(scope)
        try:
            with scope:
                yield scope
        finally:
            self._scopes.discard(scope)

    def drain(self, deadline: float) -> None:
        self.drain_deadline = deadline
        for scope in self._scopes:
            scope.deadline = min(scope.deadline, deadline)


_IDLE, _HEADERS, _ANSWERING = range(3)  # what a connection's single timer guards


class HTTPServer:
    def __init__(self, handler: Handler, limits: Limits, *, name: str = "origin") -> None:
        self.name = name  # for logs
        self.handler = handler
        self.limits = limits
        self.holds = Holds()
        self.closing = False
        # a fault drill ("edge down"): new connections are closed at once, open ones after
        # their current answer
        self.refusing = False
        self._idle: set[trio.CancelScope] = set()
        self.connections = 0

    async def serve(
        self,
        *,
        host: str,
        port: int,
        shutdown: trio.Event,
        task_status: trio.TaskStatus[list[trio.SocketListener]] = trio.TASK_STATUS_IGNORED,
    ) -> None:
        listeners = await trio.open_tcp_listeners(port, host=host)
        async with trio.open_nursery() as conns:
            async with trio.open_nursery() as accepting:
                # trio.serve_listeners also rides out EMFILE/ENFILE (sleeps and retries).
                accepting.start_soon(partial(trio.serve_listeners, self._connection, listeners,
                                             handler_nursery=conns))
                task_status.started(listeners)
                await shutdown.wait()
                accepting.cancel_scope.cancel()
            for listener in listeners:
                await listener.aclose()
            deadline = trio.current_time() + self.limits.shutdown_grace_s
            self.closing = True
            self.holds.drain(deadline)
            for scope in self._idle:
                scope.cancel()
            conns.cancel_scope.deadline = deadline + 1.0  # writes stuck past the grace
            log.info("%s draining %d connections", self.name, self.connections)

    def drop_idle(self) -> None:
        """Close every idle keep-alive connection now (a fault drill's "edge down")."""
        for scope in self._idle:
            scope.cancel()

    def _parser(self) -> h11.Connection:
        return h11.Connection(h11.SERVER, max_incomplete_event_size=self.limits.max_header_bytes)

    async def _connection(self, stream: trio.SocketStream) -> None:
        """Serve one connection. A single cancel scope per connection carries whichever
        deadline applies (idle, header, response), moved rather than re-made per request.

        A plain GET/HEAD head (what players send) is read by `_parse_head`; anything else
        (another method, a body, odd framing, a malformed head) goes to h11 whole."""
        if self.refusing:
            await trio.aclose_forcefully(stream)
            return
        peer = _peer(stream)
        fd = stream.socket.fileno()
        timer = trio.CancelScope()
        _TIMER.set((timer, self.limits.response_timeout_s))
        phase = _IDLE
        limits = self.limits
        pending, eof = b"", False  # bytes received and not yet parsed; peer finished
        self.connections += 1
        try:
            with timer:
                while True:
                    header_deadline = math.inf
                    blank = BLANK_LINE.search(pending)
                    if blank is not None:  # pipelined: nothing awaited since the last answer
                        timer.deadline = trio.current_time() + limits.idle_timeout_s
                        await trio.lowlevel.checkpoint()
                    while blank is None and not eof and len(pending) <= limits.max_header_bytes:
                        if pending:  # part of a request: the header clock runs
                            if header_deadline == math.inf:
                                header_deadline = trio.current_time() + limits.header_timeout_s
                            phase, timer.deadline = _HEADERS, header_deadline
                        else:
                            if self.closing:
                                return
                            phase = _IDLE
                            timer.deadline = trio.current_time() + limits.idle_timeout_s
                            self._idle.add(timer)  # shutdown closes idle connections
                        data = await stream.receive_some(_RECV_BYTES)
                        self._idle.discard(timer)
                        if data:
                            seen = max(0, len(pending) - 3)
                            pending += data
                            blank = BLANK_LINE.search(pending, seen)
                        else:
                            eof = True
                    if not pending and eof:
                        return
                    fast = None
                    if blank is not None and (head_end := blank.end()) <= limits.max_header_bytes:
                        fast = parse_head(pending, head_end)
                    if fast is not None:
                        pending = pending[head_end:]
                        method, target, headers, wants_close = fast
                        # The idle deadline stands while the handler answers at once; a
                        # hold or a slow write moves it (_answer_time): no deadline moved
                        # per request for hits.
                        phase = _ANSWERING
                        reply, close = await self._handle(method, target, headers, peer,
                                                          wants_close, fd)
                        head_only = method == b"HEAD"
                    else:
                        conn = self._parser()
                        conn.receive_data(pending)
                        if eof:
                            conn.receive_data(b"")
                        while (event := conn.next_event()) is h11.NEED_DATA:
                            if header_deadline == math.inf:
                                header_deadline = trio.current_time() + limits.header_timeout_s
                            phase, timer.deadline = _HEADERS, header_deadline
                            conn.receive_data(await stream.receive_some(_RECV_BYTES))
                        if type(event) is not h11.Request:
                            return  # ConnectionClosed
                        phase = _ANSWERING
                        timer.deadline = trio.current_time() + limits.response_timeout_s
                        reply, close, head_only = await self._answer(conn, event, peer, fd)
                        pending, eof = conn.trailing_data
                    await self._send(stream, reply, close=close, head_only=head_only)
                    if close:
                        return
            if timer.cancelled_caught and phase == _HEADERS:
                await self._refuse(stream, 408, "request timeout")
        except h11.RemoteProtocolError as exc:
            await self._refuse(stream, exc.error_status_hint, f"bad request: {exc}")
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        except Exception:
            log.exception("%s connection failed", self.name)
        finally:
            self._idle.discard(timer)
            self.connections -= 1
            await trio.aclose_forcefully(stream)

    async def _answer(
        self, conn: h11.Connection, request: h11.Request, peer: str, fd: int
    ) -> tuple[Reply | _Delivered, bool, bool]:
        """(reply, close afterwards, headers only) for one request."""
        method = request.method
        has_body = type(conn.next_event()) is not h11.EndOfMessage
        head_bytes, wants_close = _scan(request)
        close = has_body or wants_close or self.closing
        if head_bytes > self.limits.max_header_bytes:  # h11 bounds only incomplete heads
            return text_reply(431, "request header fields too large"), True, False
        if method not in (b"GET", b"HEAD"):
            if method == b"OPTIONS" and not has_body:
                return (_PREFLIGHT, b""), close, False
            return text_reply(_NOT_ALLOWED, "method not allowed"), close, False
        if has_body:
            return text_reply(400, "a GET or HEAD request takes no body"), True, False
        reply, close = await self._handle(method, request.target, request.headers, peer,
                                          close, fd)
        return reply, close, method == b"HEAD"

    async def _handle(
        self, method: bytes, target: bytes, headers: Sequence[tuple[bytes, bytes]], peer: str,
        close: bool, fd: int,
    ) -> tuple[Reply | _Delivered, bool]:
        """(reply, close afterwards) from the handler for a GET or HEAD."""
        request = Request(method, target, headers, peer, fd=fd, server=self,
                          wants_close=close)
        try:
            reply = await self.handler(request, self.holds)
        except Exception:
            log.exception("%s handler failed for %r", self.name, target)
            reply = text_reply(500, "internal error")
        if request.unsent is not None:  # answered by deliver() while the handler waited
            return _Delivered(request.unsent), request.close_after
        # closing: shutdown began; refusing: a fault drill took the listener down
        return reply, close or self.closing or self.refusing

    @staticmethod
    async def _send(
        stream: trio.SocketStream, reply: Reply | _Delivered, *, close: bool,
        head_only: bool = False,
    ) -> None:
        if isinstance(reply, _Delivered):
            if reply.unsent:
                _answer_time()
                await stream.send_all(reply.unsent)
            return
        if isinstance(reply, Ready):
            if close or head_only:
                await _write(stream, reply.head_close if close else reply.head,
                             b"" if head_only else reply.body)
            elif reply.whole:
                await _write(stream, reply.whole)
            else:
                await _write(stream, reply.head, reply.body)
            return
        head, body = reply
        out = head.block
        if head.status != 204:
            out += b"content-length: %d\r\n" % len(body)
        out += b"connection: close\r\n\r\n" if close else b"\r\n"
        if head_only or head.status == 204:
            body = b""
        elif len(body) < _COALESCE_BYTES:
            out += body
            body = b""
        await _write(stream, out, body)

    async def _refuse(self, stream: trio.SocketStream, status: int, message: str) -> None:
        """Answer a request we cannot parse (or that came too slowly), then close."""
        with (
            trio.move_on_after(self.limits.header_timeout_s),
            suppress(trio.BrokenResourceError, trio.ClosedResourceError),
        ):
            await self._send(stream, text_reply(status, message[:200]), close=True)


async def _write(stream: trio.SocketStream, head: bytes, body: bytes = b"") -> None:
    """`send_all(head + body)` without the copy, trying one plain non-blocking write (or
    writev) first: an answer the socket takes whole (nearly every one) costs one syscall
    and none of trio's send machinery. The connection task still checkpoints once per
    request (its next receive, or explicitly for a pipelined one)."""
    try:
        fd = stream.socket.fileno()
        written = os.writev(fd, (head, body)) if body else os.write(fd, head)
    except BlockingIOError:
        written = 0
    except OSError as exc:
        raise trio.BrokenResourceError(f"socket write failed: {exc}") from exc
    if written < len(head) + len(body):  # the socket is full: this may take a while
        _answer_time()
        if written < len(head):
            await stream.send_all(memoryview(head)[written:])
            written = len(head)
        if written - len(head) < len(body):
            await stream.send_all(memoryview(body)[written - len(head):])


def _peer(stream: trio.SocketStream) -> str:
    try:
        address = stream.socket.getpeername()
    except OSError:
        return ""
    return str(address[0]) if isinstance(address, tuple) else ""


def _scan(request: h11.Request) -> tuple[int, bool]:
    """(size of the request head, whether the client asked to close): one pass over it."""
    size = len(request.target)
    close = request.http_version != b"1.1"  # h11 gives HTTP/1.0 no keep-alive either
    for name, value in request.headers.raw_items():
        size += len(name) + len(value) + 4
        if len(name) == 10 and name.lower() == b"connection" and b"close" in value.lower():
            close = True
    return size, close
