"""The RTMP chunk stream: messages cut into chunks, interleaved over chunk stream ids.

`ChunkReader` reassembles messages from a receive buffer and `ChunkWriter` cuts messages
into chunks with header compression (fmt 0-3). The reader applies Set Chunk Size and Abort
itself, because they change how the very next chunk must be parsed. Parsing is restartable:
nothing is committed until a whole chunk is in the buffer, so any split of the input gives
the same messages. The hot path is O(1) Python work per chunk; payload bytes move by slicing.
The reader keeps a running count of the bytes it holds in unfinished messages
(`buffered_bytes`), so its owner can cap a connection's memory across all chunk streams.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ._errors import RTMPProtocolError

__all__ = [
    "DEFAULT_CHUNK_SIZE",
    "DEFAULT_MAX_BUFFERED_BYTES",
    "DEFAULT_MAX_BUFFERED_BYTES_UNPUBLISHED",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MIN_BUFFERED_BYTES",
    "ChunkReader",
    "ChunkWriter",
    "RawMessage",
]

DEFAULT_CHUNK_SIZE = 128
MAX_CHUNK_SIZE = 0x7FFFFFFF
DEFAULT_MAX_MESSAGE_SIZE = 8 * 1024 * 1024
DEFAULT_MAX_CHUNK_STREAMS = 64

DEFAULT_MAX_BUFFERED_BYTES = 16 * 1024 * 1024
"""Budget once a publish is accepted: twice the 8 MiB message cap.

A 1080p60 keyframe at 20 Mbit/s is typically 0.3-2 MB and never more than the encoder's
VBV buffer (about 5 MB with a generous two-second buffer); one 8 MiB message being
reassembled fits with room for a second large one starting on another chunk stream, audio
and the unparsed read. A publisher has shown a valid key, so this is the most one
authenticated connection can pin.
"""

DEFAULT_MAX_BUFFERED_BYTES_UNPUBLISHED = 64 * 1024
"""Budget until a publish is accepted (it also caps the size of any one message then).

Before publishing, a client sends the handshake (C0+C1 then C2, 3,073 bytes, each consumed
as soon as it is whole) and a handful of small AMF0 commands: connect (0.2-1 KB from ffmpeg
and OBS, a few KB with long page/swf URLs or tokens in tcUrl), releaseStream, FCPublish,
createStream and publish (tens of bytes plus the key). 64 KiB is over ten times the largest
of those, and bounds an unauthenticated connection to 64 KiB instead of 64 chunk streams x
8 MiB (512 MiB) before this limit existed.
"""

MIN_BUFFERED_BYTES = 4096
"""The smallest budget allowed: the handshake (C0+C1, then C2) alone may sit in the receive
buffer, 3,073 bytes, before anything else is parsed."""

MIN_CSID, MAX_CSID = 2, 65599

_TS_MASK = 0xFFFFFFFF
_EXTENDED = 0xFFFFFF
_TYPE_SET_CHUNK_SIZE = 1
_TYPE_ABORT = 2

_FMT1 = struct.Struct(">BHBHB")
_FMT2 = struct.Struct(">BH")
_U32 = struct.Struct(">I")
_U32LE = struct.Struct("<I")  # the message stream id is the one little-endian field
_INCOMPLETE: tuple[None, int] = (None, -1)


@dataclass(frozen=True, slots=True)
class RawMessage:
    """One reassembled RTMP message, before the message layer interprets it."""

    chunk_stream_id: int
    type_id: int
    stream_id: int
    timestamp_ms: int
    payload: bytes


class _InStream:
    """Per-csid header state used to expand fmt 1-3 headers."""

    __slots__ = ("delta", "extended", "length", "partial", "stream_id", "timestamp", "type_id")

    def __init__(self) -> None:
        self.timestamp = 0
        self.delta = 0
        self.length = 0
        self.type_id = 0
        self.stream_id = 0
        self.extended = False
        self.partial: bytearray | None = None


def parse_chunk_size(payload: bytes) -> int:
    """Validate a Set Chunk Size payload (31-bit, non-zero)."""
    if len(payload) != 4:
        raise RTMPProtocolError(f"Set Chunk Size payload is {len(payload)} bytes, expected 4")
    size: int = _U32.unpack_from(payload)[0]
    if size == 0 or size > MAX_CHUNK_SIZE:
        raise RTMPProtocolError(f"invalid chunk size {size}")
    return size


class ChunkReader:
    """Reassembles messages from chunks at the front of a receive buffer."""

    def __init__(
        self,
        *,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_chunk_streams: int = DEFAULT_MAX_CHUNK_STREAMS,
    ) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self.max_message_size = max_message_size
        self.max_chunk_streams = max_chunk_streams
        self.buffered_bytes = 0  # payload held in unfinished messages, all chunk streams
        self._streams: dict[int, _InStream] = {}

    def read_message(self, buf: bytearray) -> RawMessage | None:
        """Consume whole chunks from `buf` until one message completes; None if more is needed."""
        pos = 0
        try:
            while True:
                msg, new_pos = self._read_chunk(buf, pos)
                if new_pos < 0:
                    return None
                pos = new_pos
                if msg is not None:
                    if msg.type_id == _TYPE_SET_CHUNK_SIZE:
                        self.chunk_size = parse_chunk_size(msg.payload)
                    elif msg.type_id == _TYPE_ABORT:
                        self._abort(msg.payload)
                    return msg
        finally:
            if pos:
                del buf[:pos]

    def _abort(self, payload: bytes) -> None:
        if len(payload) != 4:
            raise RTMPProtocolError(f"Abort payload is {len(payload)} bytes, expected 4")
        stream = self._streams.get(_U32.unpack_from(payload)[0])
        if stream is not None and stream.partial is not None:
            self.buffered_bytes -= len(stream.partial)
            stream.partial = None

    def _read_chunk(self, buf: bytearray, pos: int) -> tuple[RawMessage | None, int]:
        """Parse one chunk at `pos`: (completed message or None, position after the chunk),
        or `_INCOMPLETE` (nothing committed) when the whole chunk is not in `buf` yet."""
        end = len(buf)
        if pos >= end:
            return _INCOMPLETE
        b0 = buf[pos]
        fmt = b0 >> 6
        csid = b0 & 0x3F
        p = pos + 1
        if csid == 0:
            if p + 1 > end:
                return _INCOMPLETE
            csid = buf[p] + 64
            p += 1
        elif csid == 1:
            if p + 2 > end:
                return _INCOMPLETE
            csid = buf[p] + (buf[p + 1] << 8) + 64
            p += 2

        stream = self._streams.get(csid)
        ts_field = length = type_id = stream_id = 0
        if fmt == 0:
            if p + 11 > end:
                return _INCOMPLETE
            ts_hi, ts_lo, len_hi, len_lo, type_id = _FMT1.unpack_from(buf, p)
            ts_field = (ts_hi << 16) | ts_lo
            length = (len_hi << 16) | len_lo
            (stream_id,) = _U32LE.unpack_from(buf, p + 7)
            p += 11
        elif fmt == 1:
            if p + 7 > end:
                return _INCOMPLETE
            ts_hi, ts_lo, len_hi, len_lo, type_id = _FMT1.unpack_from(buf, p)
            ts_field = (ts_hi << 16) | ts_lo
            length = (len_hi << 16) | len_lo
            p += 7
        elif fmt == 2:
            if p + 3 > end:
                return _INCOMPLETE
            ts_hi, ts_lo = _FMT2.unpack_from(buf, p)
            ts_field = (ts_hi << 16) | ts_lo
            p += 3

        if stream is None:
            if fmt != 0:
                raise RTMPProtocolError(f"chunk fmt {fmt} on chunk stream {csid} with no fmt 0 yet")
            if len(self._streams) >= self.max_chunk_streams:
                raise RTMPProtocolError(f"more than {self.max_chunk_streams} chunk streams in use")
            stream = self._streams[csid] = _InStream()
        if fmt == 3:
            extended = stream.extended
        else:
            if stream.partial is not None:
                raise RTMPProtocolError(
                    f"fmt {fmt} header on chunk stream {csid} in the middle of a message"
                )
            extended = ts_field == _EXTENDED
        if extended:
            if p + 4 > end:
                return _INCOMPLETE
            if fmt != 3:
                (ts_field,) = _U32.unpack_from(buf, p)
            p += 4

        partial = stream.partial
        if partial is not None:  # fmt 3 continuation
            take = min(stream.length - len(partial), self.chunk_size)
            if p + take > end:
                return _INCOMPLETE
            partial += buf[p : p + take]
            p += take
            if len(partial) < stream.length:
                self.buffered_bytes += take
                return None, p
            self.buffered_bytes -= len(partial) - take
            stream.partial = None
            msg = RawMessage(
                csid, stream.type_id, stream.stream_id, stream.timestamp, bytes(partial)
            )
            return msg, p

        if fmt == 0:
            timestamp, delta = ts_field, ts_field
        elif fmt == 3:
            delta = stream.delta
            timestamp = (stream.timestamp + delta) & _TS_MASK
            length, type_id, stream_id = stream.length, stream.type_id, stream.stream_id
        else:
            delta = ts_field
            timestamp = (stream.timestamp + delta) & _TS_MASK
            stream_id = stream.stream_id
            if fmt == 2:
                length, type_id = stream.length, stream.type_id
        if length > self.max_message_size:
            raise RTMPProtocolError(
                f"message of {length} bytes exceeds the {self.max_message_size}-byte limit"
            )
        take = min(length, self.chunk_size)
        if p + take > end:
            return _INCOMPLETE
        stream.timestamp, stream.delta, stream.extended = timestamp, delta, extended
        stream.length, stream.type_id, stream.stream_id = length, type_id, stream_id
        if take == length:
            payload = bytes(buf[p : p + take])
            return RawMessage(csid, type_id, stream_id, timestamp, payload), p + take
        stream.partial = buf[p : p + take]
        self.buffered_bytes += take
        return None, p + take


class _OutStream:
    __slots__ = ("delta", "extended", "length", "stream_id", "timestamp", "type_id")

    def __init__(self, stream_id: int, type_id: int, length: int, timestamp: int) -> None:
        self.stream_id = stream_id
        self.type_id = type_id
        self.length = length
        self.timestamp = timestamp
        self.delta = timestamp
        self.extended = False


def basic_header(fmt: int, csid: int) -> bytes:
    """Encode a chunk basic header (1, 2 or 3 bytes depending on the csid)."""
    if csid < 64:
        return bytes(((fmt << 6) | csid,))
    if csid < 320:
        return bytes((fmt << 6, csid - 64))
    return bytes(((fmt << 6) | 1, (csid - 64) & 0xFF, (csid - 64) >> 8))


class ChunkWriter:
    """Cuts messages into chunks, compressing headers against the previous message per csid."""

    def __init__(self) -> None:
        self.chunk_size = DEFAULT_CHUNK_SIZE
        self._streams: dict[int, _OutStream] = {}

    def write(
        self,
        csid: int,
        type_id: int,
        stream_id: int,
        timestamp_ms: int,
        payload: bytes,
        *,
        compress: bool = True,
    ) -> bytes:
        if not MIN_CSID <= csid <= MAX_CSID:
            raise ValueError(f"chunk stream id {csid} out of range")
        if len(payload) > 0xFFFFFF:
            raise ValueError("RTMP messages are limited to 16 MiB")
        timestamp_ms &= _TS_MASK
        length = len(payload)
        st = self._streams.get(csid)
        delta = 0 if st is None else (timestamp_ms - st.timestamp) & _TS_MASK
        if not compress or st is None or st.stream_id != stream_id or delta >= 0x80000000:
            fmt, field = 0, timestamp_ms
            st = self._streams[csid] = _OutStream(stream_id, type_id, length, timestamp_ms)
        elif st.type_id != type_id or st.length != length:
            fmt, field = 1, delta
        elif st.delta != delta:
            fmt, field = 2, delta
        else:
            fmt, field = 3, delta
        if fmt != 3:
            st.extended = field >= _EXTENDED
        extended = st.extended
        st.type_id, st.length, st.timestamp, st.delta = type_id, length, timestamp_ms, field

        parts: list[bytes | memoryview] = [basic_header(fmt, csid)]
        short_ts = _EXTENDED if extended else field
        if fmt <= 1:
            hi, lo = short_ts >> 16, short_ts & 0xFFFF
            parts.append(_FMT1.pack(hi, lo, length >> 16, length & 0xFFFF, type_id))
            if fmt == 0:
                parts.append(_U32LE.pack(stream_id))
        elif fmt == 2:
            parts.append(_FMT2.pack(short_ts >> 16, short_ts & 0xFFFF))
        ext = _U32.pack(field) if extended else b""
        parts.append(ext)
        size = self.chunk_size
        view = memoryview(payload)
        parts.append(view[:size])
        if length > size:
            continuation = basic_header(3, csid) + ext
            for offset in range(size, length, size):
                parts.append(continuation)
                parts.append(view[offset : offset + size])
        return b"".join(parts)
