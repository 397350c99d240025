"""Sans-I/O chat frames: versioned JSON over WebSocket text messages (docs/chat-protocol.md).

`parse_client_frame(text | bytes)` turns one client message into a frozen event (`Join`,
`Send`, `Leave`, `Ping`) and raises only `ChatProtocolError(code, message)`; `encode_*`
build frames as bytes. `CloseCode` names the WebSocket close codes the gateway uses.
"""

from ._errors import ChatProtocolError, CloseCode, ErrorCode
from ._frames import (
    MAX_FRAME_BYTES,
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    MAX_TOKEN_CHARS,
    VERSION,
    ClientFrame,
    Join,
    Leave,
    Ping,
    Send,
    encode_join,
    encode_leave,
    encode_ping,
    encode_send,
    parse_client_frame,
)
from ._server import (
    SERVER_FRAME_TYPES,
    encode_ack,
    encode_batch,
    encode_deleted,
    encode_error,
    encode_joined,
    encode_message,
    encode_notice,
    encode_pong,
    parse_server_frame,
)

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_ID_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_TOKEN_CHARS",
    "SERVER_FRAME_TYPES",
    "VERSION",
    "ChatProtocolError",
    "ClientFrame",
    "CloseCode",
    "ErrorCode",
    "Join",
    "Leave",
    "Ping",
    "Send",
    "encode_ack",
    "encode_batch",
    "encode_deleted",
    "encode_error",
    "encode_join",
    "encode_joined",
    "encode_leave",
    "encode_message",
    "encode_notice",
    "encode_ping",
    "encode_pong",
    "encode_send",
    "parse_client_frame",
    "parse_server_frame",
]
