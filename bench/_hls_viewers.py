"""LL-HLS viewers for bench/edge.py on raw non-blocking sockets and epoll (one core must
carry 5,000 connections, so no event-loop library or per-request objects).

A player loops like an LL-HLS client: the playlist, then the preload-hinted part (held
by the server until it is made), then the blocking reload for that part
(`_HLS_msn/_HLS_part`), whose answer names the next hint. It notes when each part
arrived. An answer's arrival is the kernel's receive time of the read that completed it
(SO_TIMESTAMPNS, Unix seconds; else the epoll wake-up before the batch is read), so
the client's own reading of thousands of answers does not land in the figures.
"""

from __future__ import annotations

import re
import select
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field

HINT = re.compile(rb'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="(\d+)\.(\d+)\.m4s"')
LENGTH = re.compile(rb"(?i)\r\ncontent-length: *(\d+)")
SO_TIMESTAMPNS = 35  # Linux (asm-generic); the socket module does not name it
ANCILLARY_BYTES = socket.CMSG_SPACE(16)


@dataclass
class Conn:
    sock: socket.socket
    host: str
    label: str
    base: str  # "/live/<stream>/<rendition>/"
    buf: bytearray = field(default_factory=bytearray)
    state: str = "idle"  # playlist | part | reload | once | done
    hint: tuple[int, int] = (-1, -1)
    arrivals: dict[tuple[int, int], float] = field(default_factory=dict)
    sent_at: float = 0.0
    answer: tuple[int, float] | None = None  # (status, arrival) of a one-shot request


class Viewers:
    def __init__(self) -> None:
        self.ep = select.epoll()
        self.conns: dict[int, Conn] = {}
        self.statuses: Counter[int] = Counter()
        self.failures = 0  # connections lost or refused

    def connect(self, url: str, label: str, base: str) -> Conn:
        host, port = url.removeprefix("http://").rsplit(":", 1)
        sock = socket.create_connection((host, int(port)), timeout=10)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if sys.platform == "linux":
            sock.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
        sock.setblocking(False)
        conn = Conn(sock, f"{host}:{port}", label, base)
        self.conns[sock.fileno()] = conn
        self.ep.register(sock.fileno(), select.EPOLLIN)
        return conn

    def send(self, conn: Conn, target: str) -> None:
        data = f"GET {target} HTTP/1.1\r\nHost: {conn.host}\r\n\r\n".encode()
        while data:
            try:
                data = data[conn.sock.send(data):]
            except BlockingIOError:
                select.select([], [conn.sock], [], 1.0)
        conn.sent_at = time.time()

    def start_player(self, conn: Conn) -> None:
        conn.state = "playlist"
        self.send(conn, conn.base + "index.m3u8")

    def close(self, conn: Conn) -> None:
        if conn.state != "done":
            conn.state = "done"
            self.ep.unregister(conn.sock.fileno())
            conn.sock.close()

    def close_all(self) -> None:
        for conn in list(self.conns.values()):
            self.close(conn)
        self.ep.close()

    def pump(self, until: float, *, stop_when_answered: bool = False) -> None:
        """Read answers and drive the players until `until` (Unix seconds)."""
        while (left := until - time.time()) > 0:
            events = self.ep.poll(min(left, 0.5), maxevents=16384)
            now = time.time()
            for fd, _ in events:
                conn = self.conns[fd]
                arrived = now
                try:
                    data, ancillary, _, _ = conn.sock.recvmsg(1 << 20, ANCILLARY_BYTES)
                except BlockingIOError:
                    continue
                except OSError:
                    data, ancillary = b"", []
                for level, kind, value in ancillary:
                    if (level, kind) == (socket.SOL_SOCKET, SO_TIMESTAMPNS) and len(value) >= 16:
                        seconds, nanoseconds = struct.unpack("qq", value[:16])
                        arrived = seconds + nanoseconds / 1e9
                if not data:
                    self.failures += conn.state not in ("done",)
                    self.close(conn)
                    continue
                conn.buf += data
                self._answers(conn, arrived)
            if stop_when_answered and all(c.answer is not None or c.state == "done"
                                          for c in self.conns.values()):
                return

    def _answers(self, conn: Conn, now: float) -> None:
        while True:
            end = conn.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            match = LENGTH.search(conn.buf, 0, end + 2)
            length = int(match[1]) if match else 0
            if len(conn.buf) < end + 4 + length:
                return
            status = int(conn.buf[9:12])
            body = bytes(conn.buf[end + 4:end + 4 + length])
            del conn.buf[:end + 4 + length]
            self.statuses[status] += 1
            self._next(conn, status, body, now)

    def _next(self, conn: Conn, status: int, body: bytes, now: float) -> None:
        if conn.state == "once":
            conn.answer = (status, now)
            return
        if status != 200:
            self.start_player(conn)  # start over from the playlist
            return
        if conn.state in ("playlist", "reload"):
            match = HINT.search(body)
            if match is None:  # an ended stream: nothing more to follow
                conn.state = "idle"
                return
            conn.hint = (int(match[1]), int(match[2]))
            conn.state = "part"
            self.send(conn, f"{conn.base}{conn.hint[0]}.{conn.hint[1]}.m4s")
        elif conn.state == "part":
            conn.arrivals[conn.hint] = now
            conn.state = "reload"
            self.send(conn, f"{conn.base}index.m3u8?_HLS_msn={conn.hint[0]}"
                            f"&_HLS_part={conn.hint[1]}")

    def once(self, conn: Conn, target: str) -> None:
        """A single request on `conn`; its (status, arrival) lands in `conn.answer`."""
        conn.state, conn.answer = "once", None
        self.send(conn, target)


def percentile(values: list[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * q))]
