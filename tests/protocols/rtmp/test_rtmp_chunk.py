"""Chunk stream: every header format, csid widths, extended timestamps, chunk size changes,
interleaving, abort and the guards; then writer/reader round trips under random splits."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streamscale.protocols.rtmp import ChunkReader, ChunkWriter, RawMessage, RTMPProtocolError


def fmt0(csid: int, ts: int, length: int, type_id: int, sid: int) -> bytes:
    basic = bytes((csid,)) if csid < 64 else b""
    return (
        basic
        + ts.to_bytes(3, "big")
        + length.to_bytes(3, "big")
        + bytes((type_id,))
        + (struct.pack("<I", sid))
    )


def read_all(data: bytes, reader: ChunkReader | None = None) -> list[RawMessage]:
    reader = reader or ChunkReader()
    buf = bytearray(data)
    out = []
    while (msg := reader.read_message(buf)) is not None:
        out.append(msg)
    assert not buf, f"{len(buf)} bytes left unparsed"
    return out


M = RawMessage
CASES = [
    pytest.param(
        fmt0(3, 100, 5, 20, 1) + b"hello",
        [M(3, 20, 1, 100, b"hello")],
        id="fmt0-1byte-csid",
    ),
    pytest.param(
        b"\x00\x24" + fmt0(100, 1, 2, 9, 1)[0:] + b"hi",
        [M(100, 9, 1, 1, b"hi")],
        id="fmt0-2byte-csid",
    ),
    pytest.param(
        b"\x01\x50\x01" + fmt0(400, 1, 1, 8, 7) + b"a",
        [M(400, 8, 7, 1, b"a")],
        id="fmt0-3byte-csid",
    ),
    pytest.param(
        b"\x01\xff\xff" + fmt0(65599, 0, 0, 8, 1),
        [M(65599, 8, 1, 0, b"")],
        id="max-csid-empty-message",
    ),
    pytest.param(
        fmt0(4, 1000, 3, 8, 1) + b"abc" + b"\x44" + b"\x00\x00\x14" + b"\x00\x00\x02\x09" + b"de",
        [M(4, 8, 1, 1000, b"abc"), M(4, 9, 1, 1020, b"de")],
        id="fmt1-delta-length-type",
    ),
    pytest.param(
        fmt0(4, 1000, 3, 8, 1) + b"abc" + b"\x84\x00\x00\x21" + b"xyz",
        [M(4, 8, 1, 1000, b"abc"), M(4, 8, 1, 1033, b"xyz")],
        id="fmt2-delta-only",
    ),
    pytest.param(
        fmt0(4, 0, 1, 8, 1) + b"a" + b"\x84\x00\x00\x17" + b"b" + b"\xc4c" + b"\xc4d",
        [M(4, 8, 1, 0, b"a"), M(4, 8, 1, 23, b"b"), M(4, 8, 1, 46, b"c"), M(4, 8, 1, 69, b"d")],
        id="fmt3-new-message-repeats-delta",
    ),
    pytest.param(
        fmt0(4, 50, 1, 8, 1) + b"a" + b"\xc4b",
        [M(4, 8, 1, 50, b"a"), M(4, 8, 1, 100, b"b")],
        id="fmt3-after-fmt0-uses-its-timestamp-as-delta",
    ),
    pytest.param(
        fmt0(5, 0xFFFFFF, 2, 18, 1) + b"\x01\x00\x00\x00" + b"md",
        [M(5, 18, 1, 0x01000000, b"md")],
        id="extended-timestamp-fmt0",
    ),
    pytest.param(
        fmt0(6, 0xFFFFFF, 130, 9, 1)
        + b"\x01\x00\x00\x00"
        + b"v" * 128
        + b"\xc6\x01\x00\x00\x00"
        + b"vv",
        [M(6, 9, 1, 0x01000000, b"v" * 130)],
        id="extended-timestamp-repeated-in-continuation",
    ),
    pytest.param(
        fmt0(6, 0xFFFFFF, 1, 9, 1) + b"\xff\xff\xff\xf0" + b"a" + b"\x86\x00\x00\x20" + b"b",
        [M(6, 9, 1, 0xFFFFFFF0, b"a"), M(6, 9, 1, 0x10, b"b")],
        id="timestamp-wraps-at-32-bits",
    ),
    pytest.param(
        fmt0(6, 0, 300, 9, 1) + b"x" * 128 + b"\xc6" + b"y" * 128 + b"\xc6" + b"z" * 44,
        [M(6, 9, 1, 0, b"x" * 128 + b"y" * 128 + b"z" * 44)],
        id="three-chunks-default-size",
    ),
    pytest.param(
        fmt0(4, 0, 200, 8, 1)
        + b"A" * 128
        + fmt0(6, 0, 150, 9, 1)
        + b"V" * 128
        + b"\xc4"
        + b"a" * 72
        + b"\xc6"
        + b"v" * 22,
        [M(4, 8, 1, 0, b"A" * 128 + b"a" * 72), M(6, 9, 1, 0, b"V" * 128 + b"v" * 22)],
        id="interleaved-chunk-streams",
    ),
    pytest.param(
        fmt0(2, 0, 4, 1, 0)
        + b"\x00\x00\x01\x00"
        + fmt0(6, 0, 300, 9, 1)
        + b"p" * 256
        + b"\xc6"
        + b"q" * 44,
        [M(2, 1, 0, 0, b"\x00\x00\x01\x00"), M(6, 9, 1, 0, b"p" * 256 + b"q" * 44)],
        id="set-chunk-size-applies-to-the-next-chunk",
    ),
    pytest.param(
        fmt0(6, 0, 200, 9, 1)
        + b"p" * 128
        + fmt0(2, 0, 4, 2, 0)
        + b"\x00\x00\x00\x06"
        + fmt0(6, 40, 2, 9, 1)
        + b"ok",
        [M(2, 2, 0, 0, b"\x00\x00\x00\x06"), M(6, 9, 1, 40, b"ok")],
        id="abort-drops-the-partial-message",
    ),
]


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_reader(data: bytes, expected: list[RawMessage]) -> None:
    assert read_all(data) == expected


@pytest.mark.parametrize(("data", "expected"), CASES)
def test_reader_byte_at_a_time(data: bytes, expected: list[RawMessage]) -> None:
    reader, buf, out = ChunkReader(), bytearray(), []
    for byte in data:
        buf.append(byte)
        while (msg := reader.read_message(buf)) is not None:
            out.append(msg)
    assert out == expected


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"\x44\x00\x00\x00\x00\x00\x01\x08a", "no fmt 0 yet"),
        (fmt0(6, 0, 300, 9, 1) + b"x" * 128 + fmt0(6, 0, 1, 9, 1), "middle of a message"),
        (fmt0(2, 0, 4, 1, 0) + b"\x00\x00\x00\x00", "invalid chunk size 0"),
        (fmt0(2, 0, 4, 1, 0) + b"\x80\x00\x00\x01", "invalid chunk size"),
        (fmt0(2, 0, 3, 1, 0) + b"\x00\x00\x01", "expected 4"),
        (fmt0(2, 0, 2, 2, 0) + b"\x00\x00", "expected 4"),
        (fmt0(6, 0, 0xFFFFFF, 9, 1), "exceeds"),
    ],
)
def test_reader_errors(data: bytes, message: str) -> None:
    with pytest.raises(RTMPProtocolError, match=message):
        read_all(data)


def test_chunk_stream_count_is_bounded() -> None:
    data = b"".join(b"\x00" + bytes((i,)) + fmt0(64 + i, 0, 1, 8, 1) + b"x" for i in range(100))
    with pytest.raises(RTMPProtocolError, match="chunk streams"):
        read_all(data, ChunkReader(max_chunk_streams=50))


def test_incomplete_chunk_is_not_consumed() -> None:
    reader = ChunkReader()
    buf = bytearray(fmt0(6, 0, 300, 9, 1) + b"x" * 128 + b"\xc6" + b"y" * 10)
    assert reader.read_message(buf) is None
    assert buf == b"\xc6" + b"y" * 10  # the complete first chunk went, the partial one stays


@pytest.mark.parametrize(
    ("messages", "first_bytes"),
    [
        ([(4, 8, 1, 0, 10)], [0x04]),
        ([(4, 8, 1, 0, 10), (4, 9, 1, 20, 11)], [0x04, 0x44]),
        ([(4, 8, 1, 0, 10), (4, 8, 1, 20, 10), (4, 8, 1, 40, 10)], [0x04, 0x84, 0xC4]),
        ([(4, 8, 1, 10, 10), (4, 8, 1, 20, 10)], [0x04, 0xC4]),
        ([(4, 8, 1, 100, 10), (4, 8, 1, 50, 10)], [0x04, 0x04]),
        ([(4, 8, 1, 0, 10), (4, 8, 2, 0, 10)], [0x04, 0x04]),
        ([(70, 8, 1, 0, 1)], [0x00]),
        ([(500, 8, 1, 0, 1)], [0x01]),
    ],
)
def test_writer_header_compression(
    messages: list[tuple[int, int, int, int, int]], first_bytes: list[int]
) -> None:
    writer, data, firsts = ChunkWriter(), b"", []
    for csid, type_id, sid, ts, size in messages:
        chunk = writer.write(csid, type_id, sid, ts, b"p" * size)
        firsts.append(chunk[0])
        data += chunk
    assert firsts == first_bytes
    expected = [M(c, t, s, ts, b"p" * n) for c, t, s, ts, n in messages]
    assert read_all(data) == expected


csids = st.sampled_from([2, 3, 4, 6, 63, 64, 65, 319, 320, 1000, 65599])
message_specs = st.lists(
    st.tuples(
        csids,
        st.sampled_from([8, 9, 18, 20, 22]),
        st.sampled_from([0, 1, 2, 0x01020304]),
        st.one_of(st.integers(0, 100), st.integers(0xFFFF00, 0x1000100), st.just(0xFFFFFFFF)),
        st.integers(0, 700),
    ),
    min_size=1,
    max_size=25,
)


@settings(max_examples=150, deadline=None)
@given(
    specs=message_specs,
    chunk_size=st.sampled_from([1, 7, 128, 129, 4096]),
    compress=st.booleans(),
    cuts=st.lists(st.integers(0, 20000), max_size=12),
)
def test_writer_reader_round_trip(
    specs: list[tuple[int, int, int, int, int]],
    chunk_size: int,
    compress: bool,
    cuts: list[int],
) -> None:
    writer = ChunkWriter()
    data = writer.write(2, 1, 0, 0, struct.pack(">I", chunk_size))
    writer.chunk_size = chunk_size
    expected, ts = [M(2, 1, 0, 0, struct.pack(">I", chunk_size))], 0
    for n, (csid, type_id, sid, step, size) in enumerate(specs):
        ts = (ts + step) & 0xFFFFFFFF
        payload = bytes((n + i) & 0xFF for i in range(size))
        data += writer.write(csid, type_id, sid, ts, payload, compress=compress)
        expected.append(M(csid, type_id, sid, ts, payload))
    reader, buf, got, prev = ChunkReader(), bytearray(), [], 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        buf += data[prev:cut]
        prev = cut
        while (msg := reader.read_message(buf)) is not None:
            got.append(msg)
    assert got == expected
