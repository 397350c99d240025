"""RTMP message layer: type ids, protocol control and user control payloads, AMF0 commands.

Payload encoders return message bodies; the connection puts them on a chunk stream.
Decoders validate sizes and raise `RTMPProtocolError` on anything malformed.
"""

from __future__ import annotations

import enum
import struct
from collections.abc import Iterator
from dataclasses import dataclass

from . import _amf0
from ._amf0 import AMF0Value
from ._errors import RTMPProtocolError

__all__ = [
    "Command",
    "MessageType",
    "UserControlEvent",
    "decode_command",
    "decode_u32",
    "decode_user_control",
    "encode_command",
    "split_aggregate",
]


class MessageType(enum.IntEnum):
    SET_CHUNK_SIZE = 1
    ABORT = 2
    ACKNOWLEDGEMENT = 3
    USER_CONTROL = 4
    WINDOW_ACK_SIZE = 5
    SET_PEER_BANDWIDTH = 6
    AUDIO = 8
    VIDEO = 9
    DATA_AMF3 = 15
    SHARED_OBJECT_AMF3 = 16
    COMMAND_AMF3 = 17
    DATA_AMF0 = 18
    SHARED_OBJECT_AMF0 = 19
    COMMAND_AMF0 = 20
    AGGREGATE = 22


class UserControlEvent(enum.IntEnum):
    STREAM_BEGIN = 0
    STREAM_EOF = 1
    STREAM_DRY = 2
    SET_BUFFER_LENGTH = 3
    STREAM_IS_RECORDED = 4
    PING_REQUEST = 6
    PING_RESPONSE = 7


class PeerBandwidthLimit(enum.IntEnum):
    HARD = 0
    SOFT = 1
    DYNAMIC = 2


_U32 = struct.Struct(">I")
_U16 = struct.Struct(">H")
_USER_CONTROL_U32 = struct.Struct(">HI")
_PEER_BANDWIDTH = struct.Struct(">IB")
_AGGREGATE_HEADER = struct.Struct(">BBHBHB")  # type, size(3), ts(3 low), ts high byte
_AGGREGATE_OVERHEAD = 11 + 4  # tag header + trailing previous-tag-size


# -- protocol control -------------------------------------------------------------------------


def encode_u32(value: int) -> bytes:
    """Body of Set Chunk Size, Abort, Acknowledgement and Window Acknowledgement Size."""
    return _U32.pack(value & 0xFFFFFFFF)


def encode_set_peer_bandwidth(window: int, limit: PeerBandwidthLimit) -> bytes:
    return _PEER_BANDWIDTH.pack(window, limit)


def encode_user_control(event: UserControlEvent, value: int) -> bytes:
    """Stream Begin/EOF/Dry/Is Recorded take a stream id; ping request/response a timestamp."""
    return _USER_CONTROL_U32.pack(event, value & 0xFFFFFFFF)


def decode_u32(payload: bytes, what: str) -> int:
    if len(payload) < 4:
        raise RTMPProtocolError(f"{what} payload is {len(payload)} bytes, expected 4")
    value: int = _U32.unpack_from(payload)[0]
    return value


def decode_user_control(payload: bytes) -> tuple[int, int]:
    """Return (event type, first 32-bit argument or 0 when the event carries none)."""
    if len(payload) < 2:
        raise RTMPProtocolError(f"User Control payload is {len(payload)} bytes, expected >= 2")
    (event,) = _U16.unpack_from(payload)
    value = _U32.unpack_from(payload, 2)[0] if len(payload) >= 6 else 0
    return event, value


# -- commands ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Command:
    """An AMF command: `name(transaction_id, command_object, *args)`."""

    name: str
    transaction_id: float
    command_object: AMF0Value
    args: tuple[AMF0Value, ...] = ()


def encode_command(
    name: str, transaction_id: float, command_object: AMF0Value, *args: AMF0Value
) -> bytes:
    return _amf0.encode(name, transaction_id, command_object, *args)


def decode_command(payload: bytes, *, amf3: bool = False) -> Command:
    """Decode a command message; AMF3 commands (type 17) are AMF0 after a leading 0x00."""
    if amf3:
        if not payload or payload[0] != 0:
            raise RTMPProtocolError("AMF3-encoded commands are not supported")
        payload = payload[1:]
    values = _amf0.decode(payload)
    if len(values) < 2:
        raise RTMPProtocolError("command message needs a name and a transaction id")
    name, transaction_id = values[0], values[1]
    if not isinstance(name, str):
        raise RTMPProtocolError("command name is not a string")
    if not isinstance(transaction_id, float):
        raise RTMPProtocolError(f"command {name!r}: transaction id is not a number")
    command_object = values[2] if len(values) > 2 else None
    return Command(name, transaction_id, command_object, tuple(values[3:]))


# -- aggregate --------------------------------------------------------------------------------


def split_aggregate(payload: bytes, timestamp_ms: int) -> Iterator[tuple[int, int, bytes]]:
    """Yield (type id, timestamp, body) for each FLV tag inside an Aggregate message.

    Sub-message timestamps are rebased so the first one equals the aggregate's own.
    """
    offset = 0
    base: int | None = None
    end = len(payload)
    while offset < end:
        if offset + 11 > end:
            raise RTMPProtocolError("truncated tag header in Aggregate message")
        type_id, size_hi, size_lo, ts_hi, ts_lo, ts_ext = _AGGREGATE_HEADER.unpack_from(
            payload, offset
        )
        size = (size_hi << 16) | size_lo
        ts = (ts_ext << 24) | (ts_hi << 16) | ts_lo
        if offset + _AGGREGATE_OVERHEAD + size > end:
            raise RTMPProtocolError("truncated tag body in Aggregate message")
        if base is None:
            base = ts
        body = payload[offset + 11 : offset + 11 + size]
        offset += _AGGREGATE_OVERHEAD + size
        yield type_id, (timestamp_ms + ts - base) & 0xFFFFFFFF, body
