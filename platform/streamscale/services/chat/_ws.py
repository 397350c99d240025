"""The outgoing side of one chat WebSocket: server frames built by hand, non-blocking writes.

Server frames are unmasked (RFC 6455 5.1), so a batch's frame bytes are the same for every
socket: the fan-out builds them once and `Peer.push` writes them with one non-blocking
`os.write` on the socket's fd (trio keeps sockets in O_NONBLOCK; SIGPIPE is ignored by
Python). Only when the kernel buffer is full does the rest go to a bounded backlog, drained
by the peer's writer task when the socket is writable again: no task wake-up per delivery,
and a reader who cannot keep up overflows its own backlog and is dropped, never the room.

Dropping a reader is deterministic (docs/chat-protocol.md, "Slow readers"): its backlog is
discarded and the close frame is handed to the kernel at once, right behind what the kernel
already holds, by lifting trio's cap on unsent bytes (and the send buffer, if it must) for
that socket (`Peer.close`). So a reader who resumes reading gets at most its kernel
buffers of older frames, then the close.
"""

from __future__ import annotations

import functools
import logging
import os
import socket
import struct
from collections import deque
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import trio
from wsproto import ConnectionType, WSConnection
from wsproto.events import (
    AcceptConnection,
    BytesMessage,
    CloseConnection,
    Ping,
    RejectConnection,
    Request,
    TextMessage,
)
from wsproto.utilities import RemoteProtocolError

from ...protocols.chat import CloseCode

log = logging.getLogger(__name__)

OP_TEXT, OP_CLOSE, OP_PING, OP_PONG = 0x1, 0x8, 0x9, 0xA


def server_frame(payload: bytes, opcode: int = OP_TEXT) -> bytes:
    """One final, unmasked frame: header + payload."""
    size = len(payload)
    if size < 126:
        return bytes((0x80 | opcode, size)) + payload
    if size < 0x10000:
        return struct.pack("!BBH", 0x80 | opcode, 126, size) + payload
    return struct.pack("!BBQ", 0x80 | opcode, 127, size) + payload


def close_frame(code: int, reason: str = "") -> bytes:
    return server_frame(struct.pack("!H", code) + reason.encode()[:120], OP_CLOSE)


class Peer:
    """One client connection's state shared by its reader task, writer task and the rooms.

    `push` never awaits. `closing` is set once a close frame is queued: nothing more is
    accepted, and `read_scope` is cancelled so the connection task winds the socket down.
    """

    __slots__ = (
        "_lot",
        "backlog",
        "close_code",
        "closing",
        "dead",
        "fd",
        "max_frames",
        "read_scope",
        "room",
        "sock",
        "user_id",
    )

    def __init__(self, fd: int, max_frames: int, sock: trio.socket.SocketType | None = None,
                 ) -> None:
        self.fd = fd
        self.sock = sock  # to enlarge the send buffer for a close frame; None: cannot
        self.max_frames = max_frames
        self.backlog: deque[bytes | memoryview] = deque()
        self.closing = False
        self.dead = False  # the socket failed: nothing can be written any more
        self.close_code: int | None = None
        self.read_scope = trio.CancelScope()
        self.room: str | None = None
        self.user_id: str | None = None
        self._lot = trio.lowlevel.ParkingLot()

    def push(self, frame: bytes) -> bool:
        """Write or queue one frame; False if the backlog is full (the caller drops us)."""
        if self.closing:
            return True  # going away anyway: not an overflow
        if self.backlog:
            if len(self.backlog) >= self.max_frames:
                return False
            self.backlog.append(frame)
            return True
        try:
            sent = os.write(self.fd, frame)
        except BlockingIOError:
            sent = 0
        except OSError:
            self._fail()
            return True
        if sent != len(frame):
            self.backlog.append(memoryview(frame)[sent:] if sent else frame)
            self._lot.unpark()
        return True

    def close(self, code: int, reason: str = "") -> None:
        """Drop the backlog, write the close frame now (after whatever frame is half-written)
        and make the connection task end. Idempotent: the first reason wins.

        When the socket takes no more (a slow reader), it is made to take the close
        (`_make_room`), so the close goes out ahead of the discarded backlog instead of
        waiting for the reader to make room. If even that fails (the system's `wmem_max`),
        the close frame stays queued and the connection ends with a plain TCP close."""
        if self.closing:
            return
        self.closing = True
        self.close_code = code
        head = self.backlog[0] if self.backlog else None
        self.backlog.clear()
        if type(head) is memoryview:  # partly on the wire: finish it or the stream breaks
            self.backlog.append(head)
        self.backlog.append(close_frame(code, reason))
        self.drain()
        if self.backlog and not self.dead and self._make_room():
            self.drain()
        self.read_scope.cancel()
        self._lot.unpark()

    def _make_room(self) -> bool:
        """Let the kernel take the backlog (the close frame) now; False if it would not.

        trio caps a socket's unsent bytes at 16 KiB (TCP_NOTSENT_LOWAT): that, not the
        send buffer, is what a slow reader fills. Raise the cap by what is needed; only
        if the send buffer itself is full, enlarge it too (never past `wmem_max`, where
        the kernel would shrink it instead)."""
        if self.sock is None:
            return False
        needed = sum(len(frame) for frame in self.backlog) + 64 * 1024
        try:
            if hasattr(socket, "TCP_NOTSENT_LOWAT"):
                self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NOTSENT_LOWAT, 1 << 30)
                self.drain()
                if not self.backlog or self.dead:
                    return False  # written: nothing more to do
            current: int = self.sock.getsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF)  # 2x
            if current // 2 + needed > _wmem_max():
                return False
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, current // 2 + needed)
        except OSError:
            return False
        return True

    def drain(self) -> None:
        """Write as much of the backlog as the kernel takes now."""
        backlog = self.backlog
        while backlog:
            frame = backlog[0]
            try:
                sent = os.write(self.fd, frame)
            except BlockingIOError:
                return
            except OSError:
                self._fail()
                return
            if sent == len(frame):
                backlog.popleft()
            else:
                backlog[0] = memoryview(frame)[sent:]
                return

    async def writer(self) -> None:
        """Drain the backlog whenever there is one and the socket can take more."""
        while not self.dead:
            while not self.backlog and not self.dead:
                await self._lot.park()
            try:
                await trio.lowlevel.wait_writable(self.fd)
            except (trio.ClosedResourceError, trio.BusyResourceError, OSError):
                self._fail()
                return
            self.drain()

    async def flush(self) -> None:
        """Wait until the backlog is written (run with a deadline; the writer is gone)."""
        while self.backlog and not self.dead:
            await trio.lowlevel.wait_writable(self.fd)
            self.drain()

    def _fail(self) -> None:
        self.dead = True
        self.backlog.clear()
        self.read_scope.cancel()
        self._lot.unpark_all()


class Budget:
    """A connection's frame token bucket; `refused` counts refusals in a row (a flood)."""

    __slots__ = ("burst", "rate", "refused", "stamp", "tokens")

    def __init__(self, rate_per_s: float, burst: int, now: float) -> None:
        self.rate = rate_per_s
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = now
        self.refused = 0

    def take(self, now: float) -> bool:
        self.tokens = min(self.burst, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now
        if self.tokens >= 1:
            self.tokens -= 1
            self.refused = 0
            return True
        self.refused += 1
        return False


@functools.cache
def _wmem_max() -> int:
    """The largest SO_SNDBUF an unprivileged process may set (Linux; 0 if unknown)."""
    try:
        with open("/proc/sys/net/core/wmem_max") as f:
            return int(f.read())
    except (OSError, ValueError):
        return 0


async def wind_down(stream: trio.SocketStream, peer: Peer) -> None:
    """Write what is queued (the close frame), half-close, and read until the client's
    EOF, so unread input does not turn our close into a reset that loses the close frame."""
    await peer.flush()
    if peer.dead:
        return
    await stream.send_eof()
    while await stream.receive_some(_RECV_BYTES):
        pass


_RECV_BYTES = 16 * 1024
TextHandler = Callable[[Peer, str], Awaitable[None]]


def _http_refusal(status: int, reason: str) -> bytes:
    body = reason.encode() + b"\n"
    return b"HTTP/1.1 %d %s\r\ncontent-type: text/plain\r\ncontent-length: %d\r\n" \
        b"connection: close\r\n\r\n%s" % (status, reason.encode(), len(body), body)


async def read_websocket(
    stream: trio.SocketStream,
    peer: Peer,
    on_text: TextHandler,
    *,
    path: str,
    handshake_timeout_s: float,
    max_message_bytes: int,
    full: bool = False,
) -> None:
    """Upgrade the connection and hand each complete text message to `on_text`, in order.

    Answers WebSocket pings and closes; refuses binary (1003), oversized (1009) and broken
    (1002/1007) input by closing. Returns when the connection is done, or is cancelled via
    `peer.read_scope` when something else closed the peer. `full`: refuse with 503.
    """
    ws = WSConnection(ConnectionType.SERVER)
    request: Request | None = None
    head = b""  # wsproto's server side drops bytes pipelined after the upgrade request
    with trio.move_on_after(handshake_timeout_s):
        while request is None:
            data = await stream.receive_some(_RECV_BYTES)
            if not data:
                return
            head += data
            try:
                ws.receive_data(data)
                request = next((e for e in ws.events() if isinstance(e, Request)), None)
            except RemoteProtocolError as exc:
                hint = exc.event_hint
                status = hint.status_code if isinstance(hint, RejectConnection) else 400
                peer.push(_http_refusal(status, "bad websocket upgrade"))
                return
    if request is None:
        peer.push(_http_refusal(408, "request timeout"))
        return
    try:
        target_path = urlsplit(request.target).path
    except ValueError:  # e.g. "//[": not a URL at all
        target_path = None
    if target_path != path:
        peer.push(_http_refusal(404, "not found"))
        return
    if full:
        peer.push(_http_refusal(503, "chat gateway full, try again later"))
        return
    peer.push(ws.send(AcceptConnection()))  # no extensions: frames are never compressed
    if early := head[head.find(b"\r\n\r\n") + 4:]:  # an upgrade request has no body
        ws.receive_data(early)

    parts: list[str] = []
    size = 0
    while not peer.closing:
        for event in ws.events():  # first: any frames that came with the upgrade request
            if peer.closing:
                return
            if isinstance(event, TextMessage):
                size += len(event.data.encode("utf-8", "surrogatepass"))
                if size > max_message_bytes:
                    peer.close(CloseCode.MESSAGE_TOO_BIG, f"message over {max_message_bytes} B")
                    return
                parts.append(event.data)
                if event.message_finished:
                    text = parts[0] if len(parts) == 1 else "".join(parts)
                    parts.clear()
                    size = 0
                    await on_text(peer, text)
            elif isinstance(event, BytesMessage):
                peer.close(CloseCode.UNSUPPORTED_DATA, "binary frames are not accepted")
                return
            elif isinstance(event, Ping):
                peer.push(server_frame(bytes(event.payload)[:125], OP_PONG))
            elif isinstance(event, CloseConnection):  # the client's, or wsproto's parse error
                code = event.code if 1000 <= event.code < 5000 and event.code not in (
                    1005, 1006, 1015) else CloseCode.NORMAL
                peer.close(code, "")
                return
        data = await stream.receive_some(_RECV_BYTES)
        if not data:
            return  # 1006: gone without a close frame
        ws.receive_data(data)
