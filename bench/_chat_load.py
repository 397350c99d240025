"""The load generator of bench/chat_fanout.py: K WebSocket clients (P of them posters) in one
process on raw non-blocking sockets and epoll (one core must carry 5,000 clients, so no
library event loop or per-frame objects): RFC 6455 handshake, masked client frames, a
lean parser of the server's unmasked frames. Posters send `send` frames with their tokens
at a fixed total rate; each text carries its number and send time, so every reader's copy
is checked off (loss) and timed (publish-to-receive latency).

Loss accounting (docs/chat-protocol.md, "Batching and sampling"): a message acked
`visible` must reach every reader, except those the per-viewer cap left out, which the
`skipped` field of a later batch counts. So per reader: lost = visible acked - received
- skipped, never below 0. Held acks (`status: held`) and refusals are counted apart.
"""

from __future__ import annotations

import json
import os
import re
import select
import socket
import time
from dataclasses import dataclass, field
from typing import Any

TAG = re.compile(rb"benchmark (\d+) at (\d+\.\d+)")
NUMBER = re.compile(rb"benchmark (\d+) at")
SKIPPED = re.compile(rb'"skipped":(\d+)')
TYPE = re.compile(rb'"type":"([a-z_]+)"')
ACK = re.compile(rb'"id":"c(\d+)".*?"status":"([a-z]+)"')
ERROR = re.compile(rb'"code":"([a-z_]+)"')
BATCH = b'{"v":1,"type":"batch"'
CYCLE_S = 0.002
PROBES = 200  # readers whose every message is timed
MASK = b"\x5a\x17\xc3\x0e"


def message_text(number: int, sent_at: float) -> str:
    return f"benchmark {number} at {sent_at:.6f} hello chat, how is everyone doing today"


def client_frame(payload: bytes) -> bytes:
    """A masked text frame (clients must mask)."""
    size = len(payload)
    head = bytes((0x81, 0x80 | size)) if size < 126 else bytes((0x81, 0xFE)) + size.to_bytes(2)
    mask = (MASK * (size // 4 + 1))[:size]
    body = (int.from_bytes(payload) ^ int.from_bytes(mask)).to_bytes(size) if size else b""
    return head + MASK + body


def scan_frames(buf: bytes | bytearray) -> tuple[int, list[tuple[int, bytes]]]:
    """Walk whole server frames (unmasked, unfragmented) at the front of `buf`: the end of
    the last whole one, and the (opcode, payload) of every frame that is not a `batch`
    (batches are read in bulk off `buf[:end]` by the caller: the per-frame cost is what
    limits one core to a few thousand clients)."""
    others: list[tuple[int, bytes]] = []
    pos, end = 0, len(buf)
    while end - pos >= 2:
        opcode, size, start = buf[pos] & 0x0F, buf[pos + 1] & 0x7F, pos + 2
        if size == 126:
            if end - start < 2:
                break
            size, start = int.from_bytes(buf[start:start + 2]), start + 2
        elif size == 127:
            if end - start < 8:
                break
            size, start = int.from_bytes(buf[start:start + 8]), start + 8
        if end - start < size:
            break
        if opcode != 0x1 or not buf.startswith(BATCH, start):
            others.append((opcode, bytes(buf[start:start + size])))
        pos = start + size
    return pos, others


def parse_frames(buf: bytearray) -> list[tuple[int, bytes]]:
    """Take every whole server frame off the front of `buf`, batches included."""
    end, _ = scan_frames(buf)
    whole = bytearray(buf[:end])
    del buf[:end]
    frames: list[tuple[int, bytes]] = []
    while whole:
        size, start = whole[1] & 0x7F, 2
        if size >= 126:
            start += 2 if size == 126 else 8
            size = int.from_bytes(whole[2:start])
        frames.append((whole[0] & 0x0F, bytes(whole[start:start + size])))
        del whole[:start + size]
    return frames


def reader_loss(visible: set[bytes], seen: set[bytes], skipped: int) -> int:
    """Acked-visible messages this reader neither received nor was told were skipped."""
    return max(0, len(visible) - len(visible & seen) - skipped)


@dataclass
class Conn:
    sock: socket.socket
    poster: bool
    token: str | None
    buf: bytearray = field(default_factory=bytearray)
    upgraded: bool = False
    joined: bool = False
    closed: bool = False
    probe: bool = False
    skipped: int = 0
    seen: set[bytes] = field(default_factory=set)  # message numbers, as in the text
    out: bytes = b""


@dataclass
class Load:
    host: str
    port: int
    room: str
    readers: int
    tokens: list[str]
    rate_per_s: float
    seconds: float
    drain_s: float = 5.0
    conns: dict[int, Conn] = field(default_factory=dict)
    ep: select.epoll = field(default_factory=select.epoll)
    acks: dict[bytes, str] = field(default_factory=dict)
    refused: dict[str, int] = field(default_factory=dict)
    lags: list[float] = field(default_factory=list)
    deliveries: int = 0
    duplicates: int = 0
    unknown: int = 0  # deliveries of a number this run never posted
    pending: set[int] = field(default_factory=set)  # fds with bytes left to write

    def open(self, poster: bool, token: str | None) -> None:
        sock = socket.create_connection((self.host, self.port), timeout=10)
        sock.setblocking(False)
        hello = (f"GET /chat HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nUpgrade: websocket"
                 "\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n"
                 "Sec-WebSocket-Version: 13\r\n\r\n").encode()
        join: dict[str, Any] = {"v": 1, "type": "join", "room": self.room}
        if token is not None:
            join["token"] = token
        probe = len(self.conns) % max(1, self.readers // PROBES) == 0
        conn = Conn(sock, poster, token, probe=probe)
        conn.out = hello + client_frame(json.dumps(join).encode())
        self.conns[sock.fileno()] = conn
        self.ep.register(sock.fileno(), select.EPOLLIN)
        self.flush(conn)

    def flush(self, conn: Conn) -> None:
        if conn.out and not conn.closed:
            try:
                sent = conn.sock.send(conn.out)
            except BlockingIOError:
                return
            except OSError:
                self.close(conn)
                return
            conn.out = conn.out[sent:]
            if conn.out:
                self.pending.add(conn.sock.fileno())
            else:
                self.pending.discard(conn.sock.fileno())

    def close(self, conn: Conn) -> None:
        if not conn.closed:
            conn.closed = True
            self.pending.discard(conn.sock.fileno())
            self.ep.unregister(conn.sock.fileno())
            conn.sock.close()

    def pump(self, deadline: float) -> None:
        """Read until `deadline`. A poll at most every `CYCLE_S` lets a socket gather several
        frames per read: one `recv` per frame (Node sends one frame per message) would cost
        the client more than the server (this bounds the latency added to CYCLE_S)."""
        while (left := deadline - time.time()) > 0:
            started = time.time()
            for fd, _ in self.ep.poll(left):
                conn = self.conns[fd]
                try:
                    data = conn.sock.recv(262144)
                except BlockingIOError:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self.close(conn)
                    continue
                if conn.buf:  # usually empty: a read holds whole frames
                    conn.buf += data
                    data = bytes(conn.buf)
                    conn.buf.clear()
                if not conn.upgraded:
                    end = data.find(b"\r\n\r\n")
                    if end < 0:
                        conn.buf += data
                        continue
                    if not data.startswith(b"HTTP/1.1 101"):
                        self.close(conn)
                        continue
                    conn.upgraded = True
                    data = data[end + 4:]
                end, others = scan_frames(data)
                if end < len(data):
                    conn.buf += data[end:]
                if end:
                    self.on_batches(conn, data if end == len(data) else data[:end])
                for opcode, payload in others:
                    if opcode == 0x8:
                        self.close(conn)
                        break
                    if opcode == 0x1:
                        self.on_text(conn, payload)
            for fd in list(self.pending):
                self.flush(self.conns[fd])
            if (rest := min(deadline, started + CYCLE_S) - time.time()) > 0:
                time.sleep(rest)

    def on_batches(self, conn: Conn, data: bytes) -> None:
        """Every message and `skipped` count in a run of whole frames, in bulk."""
        for skipped in SKIPPED.findall(data):
            conn.skipped += int(skipped)
        numbers = NUMBER.findall(data)
        if not numbers:
            return
        before = len(conn.seen)
        conn.seen.update(numbers)
        fresh = len(conn.seen) - before
        self.deliveries += fresh
        self.duplicates += len(numbers) - fresh
        if conn.probe:
            now = time.time()
            self.lags.extend(now - float(sent_at) for _, sent_at in TAG.findall(data))

    def on_text(self, conn: Conn, payload: bytes) -> None:
        kind = TYPE.search(payload)
        name = kind.group(1) if kind else b""
        if name == b"joined":
            conn.joined = True
        elif name == b"ack":
            if (ack := ACK.search(payload)) is not None:
                self.acks[ack.group(1)] = ack.group(2).decode()
        elif name == b"error":
            error = ERROR.search(payload)
            code = error.group(1).decode() if error else "?"
            self.refused[code] = self.refused.get(code, 0) + 1

    def connect_all(self, timeout_s: float = 90.0) -> int:
        for i, token in enumerate(self.tokens):
            try:
                self.open(True, token)
            except OSError:
                break
            if i % 100 == 99:
                self.pump(time.time() + 0.01)
        for i in range(self.readers - len(self.tokens)):
            try:
                self.open(False, None)
            except OSError:
                break
            if i % 100 == 99:  # let the server take the handshakes as they come
                self.pump(time.time() + 0.01)
        deadline = time.time() + timeout_s
        while time.time() < deadline and not all(c.joined or c.closed
                                                 for c in self.conns.values()):
            self.pump(time.time() + 0.1)
        return sum(1 for c in self.conns.values() if c.joined and not c.closed)

    def post_all(self) -> tuple[int, float]:
        posters = [c for c in self.conns.values() if c.poster and c.joined and not c.closed]
        total = int(self.rate_per_s * self.seconds)
        start = time.time()
        for n in range(total):
            due = start + n / self.rate_per_s
            if due > time.time():
                self.pump(due)
            conn = posters[n % len(posters)]
            frame = {"v": 1, "type": "send", "id": f"c{n}", "text": message_text(n, time.time())}
            conn.out += client_frame(json.dumps(frame).encode())
            self.flush(conn)
        return total, time.time() - start

    def drain(self, posted: int) -> None:
        """Until every post is answered and every reader has accounted for every visible
        message (received or skipped), or `drain_s` passes."""
        deadline = time.time() + self.drain_s
        readers = list(self.conns.values())
        while time.time() < deadline:
            self.pump(min(deadline, time.time() + 0.1))
            answered = len(self.acks) + sum(self.refused.values())
            visible = sum(1 for s in self.acks.values() if s == "visible")
            if answered >= posted and all(c.closed or len(c.seen) + c.skipped >= visible
                                          for c in readers):
                break

    def run(self) -> dict[str, Any]:
        cpu0 = time.process_time()
        connected = self.connect_all()
        readers = list(self.conns.values())
        readers_joined = sum(1 for c in readers if c.joined and not c.closed)
        print("POSTING", flush=True)
        t0 = time.process_time()
        posted, window_s = self.post_all()
        self.drain(posted)
        post_cpu = (time.process_time() - t0) / max(window_s, 1e-9)
        visible = {n for n, s in self.acks.items() if s == "visible"}
        posted_numbers = {str(n).encode() for n in range(posted)}
        self.unknown = sum(len(c.seen - posted_numbers) for c in readers)
        live = [c for c in readers if c.joined]
        losses = [reader_loss(visible, c.seen, c.skipped) for c in live]
        lags = sorted(self.lags)

        def pick(q: float) -> float:
            return lags[min(len(lags) - 1, int(q * len(lags)))] * 1000 if lags else float("nan")

        return {
            "readers": self.readers, "readers_joined": readers_joined,
            "posters": len(self.tokens), "connected": connected,  # posters read too
            "closed_by_server": sum(1 for c in readers if c.joined and c.closed),
            "posted": posted, "window_s": window_s, "visible": len(visible),
            "held": sum(1 for s in self.acks.values() if s == "held"),
            "refused": self.refused, "unanswered": posted - len(self.acks)
            - sum(self.refused.values()),
            "lost": sum(losses), "readers_with_loss": sum(1 for v in losses if v),
            "skipped": sum(c.skipped for c in live), "duplicates": self.duplicates,
            "unknown": self.unknown, "deliveries": self.deliveries,
            "deliveries_per_s": self.deliveries / max(window_s, 1e-9),
            "per_reader_per_s": self.deliveries / max(1, len(live)) / max(window_s, 1e-9),
            "p50_ms": pick(0.5), "p99_ms": pick(0.99), "max_ms": pick(1.0),
            "samples": len(lags), "drain_s": self.drain_s, "client_cpu": post_cpu,
            "client_cpu_total_s": time.process_time() - cpu0, "pid": os.getpid(),
        }
