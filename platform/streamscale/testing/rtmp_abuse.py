"""Hostile RTMP clients over real sockets, for the ingest-limit tests and bench/ingest_abuse.py.

Each one completes the handshake and then tries to make the server hold memory: unfinished
messages on many chunk streams, never completed, never publishing. `local_address` picks
another loopback source address (any of 127.0.0.0/8 on Linux) so that tests and benches can
act as several client IPs while talking only to 127.0.0.1.
"""

from __future__ import annotations

import contextlib
import struct
from collections.abc import Iterator
from dataclasses import dataclass

import trio

from ..protocols.rtmp._handshake import HANDSHAKE_SIZE, RTMP_VERSION
from .rtmp_client import ClientConnection

__all__ = ["Flood", "flood", "flood_then_connect", "handshake", "refused_at_once",
           "wait_closed"]

_SEND_PIECE = 64 * 1024


async def handshake(host: str, port: int, *, local_address: str | None = None
                    ) -> trio.SocketStream | None:
    """Connect and complete the RTMP handshake; None if the server closes instead of
    answering (a connection refused by a limit)."""
    sock = await trio.open_tcp_stream(host, port, local_address=local_address)
    try:
        await sock.send_all(bytes((RTMP_VERSION,)) + bytes(HANDSHAKE_SIZE))
        need = 1 + 2 * HANDSHAKE_SIZE
        while need:
            data = await sock.receive_some(need)
            if not data:
                await sock.aclose()
                return None
            need -= len(data)
        await sock.send_all(bytes(HANDSHAKE_SIZE))  # C2
    except trio.BrokenResourceError:
        await sock.aclose()
        return None
    return sock


async def refused_at_once(host: str, port: int, *, local_address: str | None = None) -> bool:
    """True if the server closes the connection without answering the handshake at all."""
    sock = await handshake(host, port, local_address=local_address)
    if sock is None:
        return True
    await sock.aclose()
    return False


def _header0(csid: int, length: int, type_id: int = 9, stream_id: int = 1) -> bytes:
    basic = bytes((csid,)) if csid < 64 else bytes((0, csid - 64))
    return (basic + b"\x00\x00\x00" + length.to_bytes(3, "big") + bytes((type_id,))
            + struct.pack("<I", stream_id))


@dataclass(frozen=True, slots=True)
class Flood:
    """Unfinished messages: `streams` chunk streams, each announcing `announce_bytes` and
    sending `per_stream_bytes` of it, in one chunk each (the chunk size is set to fit)."""

    streams: int = 62  # with csid 2 (control) and 3 (connect): the 64 allowed
    announce_bytes: int = 8 * 1024 * 1024 - 1
    per_stream_bytes: int = 256 * 1024

    def pieces(self) -> Iterator[bytes | memoryview]:
        """The bytes to send, lazily, in pieces of at most 64 KiB (one shared body)."""
        assert self.per_stream_bytes < self.announce_bytes < 1 << 24
        chunk = self.per_stream_bytes
        yield _header0(2, 4, 1, 0) + struct.pack(">I", chunk)  # Set Chunk Size
        body = memoryview(b"\x17" * min(chunk, _SEND_PIECE))
        for csid in range(4, 4 + self.streams):  # csid 3 stays free for a connect
            yield _header0(csid, self.announce_bytes)
            for start in range(0, chunk, _SEND_PIECE):
                yield body[:min(_SEND_PIECE, chunk - start)]

    @property
    def total_bytes(self) -> int:
        headers = sum(12 if csid < 64 else 13 for csid in range(4, 4 + self.streams))
        return 16 + headers + self.streams * self.per_stream_bytes


async def flood(sock: trio.SocketStream, plan: Flood) -> int:
    """Send the flood; the number of bytes sent before the server cut the connection off
    (equal to `plan.total_bytes` if it never did)."""
    sent = 0
    try:
        for piece in plan.pieces():
            await sock.send_all(piece)
            sent += len(piece)
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    return sent


async def flood_then_connect(host: str, port: int, plan: Flood, *,
                             local_address: str | None = None) -> tuple[int, bytes]:
    """Handshake, flood, then a valid connect: (bytes of the flood sent, everything the
    server sent after the handshake until it closed). A server that kept the flood answers
    the connect with `_result`; one that cut the connection off never does."""
    sock = await handshake(host, port, local_address=local_address)
    assert sock is not None, "the connection was refused, not flooded"
    async with sock:
        sent = await flood(sock, plan)
        client = ClientConnection()
        with contextlib.suppress(trio.BrokenResourceError, trio.ClosedResourceError):
            await sock.send_all(client.set_chunk_size(plan.per_stream_bytes)
                                + client.connect("live", f"rtmp://{host}:{port}/live"))
        return sent, await wait_closed(sock, until=b"_result")


async def wait_closed(sock: trio.SocketStream, *, until: bytes | None = None) -> bytes:
    """Read until the server closes the connection (or resets it), or until `until`
    appears in what it sent; return what it sent."""
    got = bytearray()
    try:
        while data := await sock.receive_some(65536):
            got += data
            if until is not None and until in got:
                break
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        pass
    return bytes(got)
