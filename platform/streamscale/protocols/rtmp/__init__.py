"""Sans-I/O server-side RTMP (handshake, chunk stream, AMF0, messages) for the ingest.

Drive a `ServerConnection` per socket: `receive_data(bytes)`, then `next_event()` until it
returns `NEED_DATA`, then send `data_to_send()`; answer `Publish` with `accept_publish()` or
`reject_publish()`. Only `RTMPProtocolError` escapes for bad input from the peer, including
a peer that makes the connection hold more than its buffer budget (small until a publish is
accepted).
"""

from ._amf0 import UNDEFINED, AMF0Date, AMF0Error, AMF0Value, ECMAArray, Undefined
from ._amf0 import decode as decode_amf0
from ._amf0 import encode as encode_amf0
from ._chunk import (
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_BUFFERED_BYTES_UNPUBLISHED,
    DEFAULT_MAX_MESSAGE_SIZE,
    MIN_BUFFERED_BYTES,
    ChunkReader,
    ChunkWriter,
    RawMessage,
)
from ._connection import ServerConnection
from ._errors import RTMPProtocolError, RTMPUsageError
from ._events import (
    NEED_DATA,
    AudioData,
    Connect,
    ConnectionClosed,
    CreateStream,
    DeleteStream,
    Event,
    FCPublish,
    FCUnpublish,
    PingResponse,
    Publish,
    ReleaseStream,
    ScriptData,
    UnknownCommand,
    VideoData,
)
from ._messages import Command, MessageType, UserControlEvent

__all__ = [
    "DEFAULT_MAX_BUFFERED_BYTES",
    "DEFAULT_MAX_BUFFERED_BYTES_UNPUBLISHED",
    "DEFAULT_MAX_MESSAGE_SIZE",
    "MIN_BUFFERED_BYTES",
    "NEED_DATA",
    "UNDEFINED",
    "AMF0Date",
    "AMF0Error",
    "AMF0Value",
    "AudioData",
    "ChunkReader",
    "ChunkWriter",
    "Command",
    "Connect",
    "ConnectionClosed",
    "CreateStream",
    "DeleteStream",
    "ECMAArray",
    "Event",
    "FCPublish",
    "FCUnpublish",
    "MessageType",
    "PingResponse",
    "Publish",
    "RTMPProtocolError",
    "RTMPUsageError",
    "RawMessage",
    "ReleaseStream",
    "ScriptData",
    "ServerConnection",
    "Undefined",
    "UnknownCommand",
    "UserControlEvent",
    "VideoData",
    "decode_amf0",
    "encode_amf0",
]
