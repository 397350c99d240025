"""Handshake: simple and digest-style C1 both get S0/S1/S2 with S2 echoing C1."""

from __future__ import annotations

import pytest

from streamscale.protocols.rtmp import RTMPProtocolError
from streamscale.protocols.rtmp._handshake import HANDSHAKE_SIZE, ServerHandshake

C1_SIMPLE = b"\x00\x00\x00\x00" + b"\x00\x00\x00\x00" + bytes(range(256)) * 6
C1_DIGEST = b"\x00\x00\x00\x00" + b"\x09\x00\x7c\x02" + bytes(range(255, -1, -1)) * 6


@pytest.mark.parametrize("c1", [C1_SIMPLE[:HANDSHAKE_SIZE], C1_DIGEST[:HANDSHAKE_SIZE]])
@pytest.mark.parametrize("split", [1, 7, 1537, 3073])
def test_handshake_echoes_c1_whatever_the_split(c1: bytes, split: int) -> None:
    hs = ServerHandshake(random_bytes=b"r" * (HANDSHAKE_SIZE - 8))
    stream = b"\x03" + c1 + b"c" * HANDSHAKE_SIZE + b"after"
    buf, out = bytearray(), b""
    for start in range(0, len(stream), split):
        buf += stream[start : start + split]
        out += hs.advance(buf)
    assert hs.done
    assert buf == b"after"  # chunk data after C2 is left for the chunk reader
    assert out[0] == 3
    s1, s2 = out[1 : 1 + HANDSHAKE_SIZE], out[1 + HANDSHAKE_SIZE :]
    assert s1[4:8] == b"\x00\x00\x00\x00"  # zero version: clients skip digest checks
    assert s2 == c1


@pytest.mark.parametrize("version", [0, 6, 8, 0xFF])
def test_other_versions_are_refused(version: int) -> None:
    with pytest.raises(RTMPProtocolError, match="version"):
        ServerHandshake().advance(bytearray((version,)))


def test_nothing_is_sent_until_c1_is_complete() -> None:
    hs = ServerHandshake()
    buf = bytearray(b"\x03" + b"x" * (HANDSHAKE_SIZE - 1))
    assert hs.advance(buf) == b""
    assert not hs.done
