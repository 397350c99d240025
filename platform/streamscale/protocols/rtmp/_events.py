"""Events `ServerConnection.next_event()` returns: frozen, slotted dataclasses (h11 style)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Literal, TypeAlias

from ._amf0 import AMF0Value

__all__ = [
    "NEED_DATA",
    "AudioData",
    "Connect",
    "ConnectionClosed",
    "CreateStream",
    "DeleteStream",
    "Event",
    "FCPublish",
    "FCUnpublish",
    "PingResponse",
    "Publish",
    "ReleaseStream",
    "ScriptData",
    "UnknownCommand",
    "VideoData",
]


class _Sentinel(enum.Enum):
    NEED_DATA = "NEED_DATA"


NEED_DATA: Literal[_Sentinel.NEED_DATA] = _Sentinel.NEED_DATA
"""Returned by `next_event()` when the buffer holds no complete event; feed more bytes."""


@dataclass(frozen=True, slots=True)
class Connect:
    """`connect` command; the connection has already answered it with success."""

    app: str
    tc_url: str | None
    flash_ver: str | None = None
    properties: dict[str, AMF0Value] = field(default_factory=dict, hash=False)


@dataclass(frozen=True, slots=True)
class ReleaseStream:
    stream_key: str


@dataclass(frozen=True, slots=True)
class FCPublish:
    stream_key: str


@dataclass(frozen=True, slots=True)
class CreateStream:
    """`createStream`; `stream_id` is the id the connection allocated and answered with."""

    stream_id: int


@dataclass(frozen=True, slots=True)
class Publish:
    """`publish`: the server must now call `accept_publish()` or `reject_publish()`.

    `stream_key` is the name before any `?`; the rest (e.g. a token) is in `query`.
    """

    stream_key: str
    publish_type: str
    stream_id: int
    query: str = ""


@dataclass(frozen=True, slots=True)
class VideoData:
    """An RTMP video message: its payload is an FLV video tag body (see `protocols.flv`)."""

    timestamp_ms: int
    payload: bytes
    stream_id: int = 1


@dataclass(frozen=True, slots=True)
class AudioData:
    """An RTMP audio message: its payload is an FLV audio tag body."""

    timestamp_ms: int
    payload: bytes
    stream_id: int = 1


@dataclass(frozen=True, slots=True)
class ScriptData:
    """An AMF0 data message (`@setDataFrame`/`onMetaData`): an FLV script tag body."""

    timestamp_ms: int
    payload: bytes
    stream_id: int = 1


@dataclass(frozen=True, slots=True)
class DeleteStream:
    stream_id: int


@dataclass(frozen=True, slots=True)
class FCUnpublish:
    stream_key: str


@dataclass(frozen=True, slots=True)
class PingResponse:
    """The peer answered a `ping()`; `timestamp_ms` is the value we sent."""

    timestamp_ms: int


@dataclass(frozen=True, slots=True)
class UnknownCommand:
    """A command the ingest does not act on (play, getStreamLength, _checkbw, ...)."""

    name: str
    transaction_id: float
    command_object: AMF0Value = field(hash=False)
    args: tuple[AMF0Value, ...] = field(default=(), hash=False)
    stream_id: int = 0


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed its side (`receive_data(b"")`); no more events follow."""


Event: TypeAlias = (
    Connect
    | ReleaseStream
    | FCPublish
    | CreateStream
    | Publish
    | VideoData
    | AudioData
    | ScriptData
    | DeleteStream
    | FCUnpublish
    | PingResponse
    | UnknownCommand
    | ConnectionClosed
)
