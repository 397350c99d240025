"""ISO BMFF box writer: just enough to build CMAF init segments and fragments."""

from __future__ import annotations

import struct

# Identity transformation matrix (ISO/IEC 14496-12 8.2.2), shared by mvhd and tkhd.
MATRIX = struct.pack(">9I", 0x10000, 0, 0, 0, 0x10000, 0, 0, 0, 0x40000000)


def box(kind: bytes, *payload: bytes) -> bytes:
    body = b"".join(payload)
    return struct.pack(">I4s", 8 + len(body), kind) + body


def full_box(kind: bytes, version: int, flags: int, *payload: bytes) -> bytes:
    return box(kind, struct.pack(">I", (version << 24) | flags), *payload)


def descriptor(tag: int, *payload: bytes) -> bytes:
    """MPEG-4 descriptor (ISO/IEC 14496-1 8.3.3) with the size in 7-bit groups."""
    body = b"".join(payload)
    size = len(body)
    groups = [size & 0x7F]
    size >>= 7
    while size:
        groups.append(0x80 | (size & 0x7F))
        size >>= 7
    return bytes([tag, *reversed(groups)]) + body
