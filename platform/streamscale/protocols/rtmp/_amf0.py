"""AMF0, the value format of RTMP commands and FLV script data.

Decoding is strict: every length is checked against the bytes actually present, nesting is
bounded, and any malformed input raises `AMF0Error` (a `RTMPProtocolError`), never
`struct.error`, `IndexError` or `RecursionError`.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass
from typing import TypeAlias

from ._errors import RTMPProtocolError

__all__ = [
    "UNDEFINED",
    "AMF0Date",
    "AMF0Error",
    "AMF0Value",
    "ECMAArray",
    "Undefined",
    "decode",
    "decode_value",
    "encode",
]

MAX_DEPTH = 32

_NUMBER = 0x00
_BOOLEAN = 0x01
_STRING = 0x02
_OBJECT = 0x03
_NULL = 0x05
_UNDEFINED = 0x06
_REFERENCE = 0x07
_ECMA_ARRAY = 0x08
_OBJECT_END = 0x09
_STRICT_ARRAY = 0x0A
_DATE = 0x0B
_LONG_STRING = 0x0C
_UNSUPPORTED = 0x0D
_XML_DOCUMENT = 0x0F
_TYPED_OBJECT = 0x10
_AVMPLUS = 0x11

_DOUBLE = struct.Struct(">d")
_U16 = struct.Struct(">H")
_U32 = struct.Struct(">I")
_MARKER_DOUBLE = struct.Struct(">Bd")
_MARKER_U16 = struct.Struct(">BH")
_MARKER_U32 = struct.Struct(">BI")
_DATE_BODY = struct.Struct(">dh")


class AMF0Error(RTMPProtocolError):
    """Malformed AMF0 data from the peer."""


class Undefined(enum.Enum):
    """AMF0 `undefined`, distinct from `null` (None) so values round-trip."""

    UNDEFINED = "undefined"


UNDEFINED = Undefined.UNDEFINED


@dataclass(frozen=True, slots=True)
class AMF0Date:
    """An AMF0 date: milliseconds since the Unix epoch (a double) and a timezone offset."""

    timestamp_ms: float
    timezone_min: int = 0


class ECMAArray(dict[str, "AMF0Value"]):
    """An AMF0 ECMA (associative) array; a dict subclass so it re-encodes as one."""


AMF0Value: TypeAlias = (
    float | bool | str | Undefined | AMF0Date | dict[str, "AMF0Value"] | list["AMF0Value"] | None
)


# -- encoding ---------------------------------------------------------------------------------


def encode(*values: AMF0Value) -> bytes:
    """Encode values back to back (a command is name, transaction id, object, args...)."""
    out = bytearray()
    for value in values:
        _encode(out, value, 0)
    return bytes(out)


def _encode_key(out: bytearray, key: str) -> None:
    raw = key.encode("utf-8")
    if len(raw) > 0xFFFF:
        raise ValueError("AMF0 property names are limited to 65535 bytes")
    out += _U16.pack(len(raw))
    out += raw


def _encode_properties(out: bytearray, value: dict[str, AMF0Value], depth: int) -> None:
    for key, item in value.items():
        _encode_key(out, key)
        _encode(out, item, depth + 1)
    out += b"\x00\x00\x09"


def _encode(out: bytearray, value: AMF0Value, depth: int) -> None:
    if depth > MAX_DEPTH:
        raise ValueError(f"AMF0 nesting deeper than {MAX_DEPTH}")
    if value is None:
        out.append(_NULL)
    elif value is UNDEFINED:
        out.append(_UNDEFINED)
    elif isinstance(value, bool):
        out += bytes((_BOOLEAN, 1 if value else 0))
    elif isinstance(value, int | float):
        out += _MARKER_DOUBLE.pack(_NUMBER, float(value))
    elif isinstance(value, str):
        raw = value.encode("utf-8")
        if len(raw) <= 0xFFFF:
            out += _MARKER_U16.pack(_STRING, len(raw))
        else:
            out += _MARKER_U32.pack(_LONG_STRING, len(raw))
        out += raw
    elif isinstance(value, AMF0Date):
        out.append(_DATE)
        out += _DATE_BODY.pack(value.timestamp_ms, value.timezone_min)
    elif isinstance(value, ECMAArray):
        out += _MARKER_U32.pack(_ECMA_ARRAY, len(value))
        _encode_properties(out, value, depth)
    elif isinstance(value, dict):
        out.append(_OBJECT)
        _encode_properties(out, value, depth)
    elif isinstance(value, list | tuple):
        out += _MARKER_U32.pack(_STRICT_ARRAY, len(value))
        for item in value:
            _encode(out, item, depth + 1)
    else:
        raise TypeError(f"cannot encode {type(value).__name__} as AMF0")


# -- decoding ---------------------------------------------------------------------------------


def decode(data: bytes | bytearray | memoryview) -> list[AMF0Value]:
    """Decode every value in `data` (which must end exactly at a value boundary)."""
    buf = bytes(data)
    values: list[AMF0Value] = []
    offset = 0
    while offset < len(buf):
        value, offset = _decode(buf, offset, 0)
        values.append(value)
    return values


def decode_value(data: bytes, offset: int = 0) -> tuple[AMF0Value, int]:
    """Decode one value at `offset`; return it and the offset just past it."""
    return _decode(data, offset, 0)


def _need(data: bytes, offset: int, size: int, what: str) -> None:
    if offset + size > len(data):
        raise AMF0Error(f"truncated AMF0 {what} at offset {offset}")


def _string(data: bytes, offset: int, size: int) -> str:
    _need(data, offset, size, "string")
    try:
        return data[offset : offset + size].decode("utf-8")
    except UnicodeDecodeError as exc:
        raise AMF0Error(f"AMF0 string at offset {offset} is not UTF-8") from exc


def _short_string(data: bytes, offset: int) -> tuple[str, int]:
    _need(data, offset, 2, "string length")
    (size,) = _U16.unpack_from(data, offset)
    return _string(data, offset + 2, size), offset + 2 + size


def _long_string(data: bytes, offset: int) -> tuple[str, int]:
    _need(data, offset, 4, "long string length")
    (size,) = _U32.unpack_from(data, offset)
    return _string(data, offset + 4, size), offset + 4 + size


def _properties(
    data: bytes, offset: int, depth: int, into: dict[str, AMF0Value]
) -> tuple[dict[str, AMF0Value], int]:
    while True:
        key, offset = _short_string(data, offset)
        if not key:
            _need(data, offset, 1, "object end")
            if data[offset] == _OBJECT_END:
                return into, offset + 1
        into[key], offset = _decode(data, offset, depth + 1)


def _decode(data: bytes, offset: int, depth: int) -> tuple[AMF0Value, int]:
    if depth > MAX_DEPTH:
        raise AMF0Error(f"AMF0 nesting deeper than {MAX_DEPTH}")
    _need(data, offset, 1, "type marker")
    marker = data[offset]
    offset += 1
    if marker == _NUMBER:
        _need(data, offset, 8, "number")
        return _DOUBLE.unpack_from(data, offset)[0], offset + 8
    if marker == _BOOLEAN:
        _need(data, offset, 1, "boolean")
        return data[offset] != 0, offset + 1
    if marker == _STRING:
        return _short_string(data, offset)
    if marker in (_LONG_STRING, _XML_DOCUMENT):
        return _long_string(data, offset)
    if marker == _OBJECT:
        return _properties(data, offset, depth, {})
    if marker == _TYPED_OBJECT:
        _class_name, offset = _short_string(data, offset)
        return _properties(data, offset, depth, {})
    if marker == _ECMA_ARRAY:
        _need(data, offset, 4, "ECMA array count")
        return _properties(data, offset + 4, depth, ECMAArray())
    if marker == _STRICT_ARRAY:
        _need(data, offset, 4, "strict array count")
        (count,) = _U32.unpack_from(data, offset)
        offset += 4
        if count > len(data) - offset:  # every value takes at least one byte
            raise AMF0Error(f"AMF0 strict array claims {count} items in {len(data) - offset} bytes")
        items: list[AMF0Value] = []
        for _ in range(count):
            item, offset = _decode(data, offset, depth + 1)
            items.append(item)
        return items, offset
    if marker == _DATE:
        _need(data, offset, 10, "date")
        timestamp_ms, timezone_min = _DATE_BODY.unpack_from(data, offset)
        return AMF0Date(timestamp_ms, timezone_min), offset + 10
    if marker == _NULL:
        return None, offset
    if marker in (_UNDEFINED, _UNSUPPORTED):
        return UNDEFINED, offset
    if marker == _OBJECT_END:
        raise AMF0Error(f"AMF0 object end outside an object at offset {offset - 1}")
    if marker == _REFERENCE:
        raise AMF0Error("AMF0 references are not supported")
    if marker == _AVMPLUS:
        raise AMF0Error("AMF3 values inside AMF0 are not supported")
    raise AMF0Error(f"unknown AMF0 type marker 0x{marker:02x} at offset {offset - 1}")
