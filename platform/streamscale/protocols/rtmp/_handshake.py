"""Server side of the RTMP handshake (C0/C1/C2 in, S0/S1/S2 out).

We always answer with the simple (version 3, echo) handshake. Clients that send a "complex"
(digest) C1, as ffmpeg and OBS do, accept it: S1 carries a zero version field, which tells
them not to look for a server digest, and S2 echoes C1 as the simple handshake requires.
"""

from __future__ import annotations

import enum
import os
import struct

from ._errors import RTMPProtocolError

__all__ = ["HANDSHAKE_SIZE", "RTMP_VERSION", "ServerHandshake"]

RTMP_VERSION = 3
HANDSHAKE_SIZE = 1536
_TIME_ZERO = struct.Struct(">II")


class _Stage(enum.Enum):
    AWAIT_C0C1 = enum.auto()
    AWAIT_C2 = enum.auto()
    DONE = enum.auto()


class ServerHandshake:
    """Consumes C0+C1 and C2 from a shared receive buffer and produces S0+S1+S2."""

    def __init__(self, *, random_bytes: bytes | None = None) -> None:
        if random_bytes is None:
            random_bytes = os.urandom(HANDSHAKE_SIZE - 8)
        if len(random_bytes) != HANDSHAKE_SIZE - 8:
            raise ValueError(f"S1 random part must be {HANDSHAKE_SIZE - 8} bytes")
        self._s1 = _TIME_ZERO.pack(0, 0) + random_bytes
        self._stage = _Stage.AWAIT_C0C1
        self.client_c1: bytes = b""

    @property
    def done(self) -> bool:
        return self._stage is _Stage.DONE

    def advance(self, buf: bytearray) -> bytes:
        """Consume what the handshake needs from the front of `buf`; return bytes to send."""
        out = b""
        if self._stage is _Stage.AWAIT_C0C1:
            if not buf:
                return out
            if buf[0] != RTMP_VERSION:
                raise RTMPProtocolError(
                    f"unsupported RTMP version {buf[0]} (only plain RTMP version 3; no RTMPE)"
                )
            if len(buf) < 1 + HANDSHAKE_SIZE:
                return out
            self.client_c1 = bytes(buf[1 : 1 + HANDSHAKE_SIZE])
            del buf[: 1 + HANDSHAKE_SIZE]
            out = bytes((RTMP_VERSION,)) + self._s1 + self.client_c1
            self._stage = _Stage.AWAIT_C2
        if self._stage is _Stage.AWAIT_C2 and len(buf) >= HANDSHAKE_SIZE:
            # C2 should echo S1, but digest clients send something else: nothing to check.
            del buf[:HANDSHAKE_SIZE]
            self._stage = _Stage.DONE
        return out
