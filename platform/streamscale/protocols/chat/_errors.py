"""The chat layer's one peer-error type, its error codes and the WebSocket close codes."""

from __future__ import annotations

import enum


class ErrorCode(enum.StrEnum):
    """`code` of an error frame (docs/chat-protocol.md). Stable strings clients switch on."""

    # the frame itself (parse_client_frame)
    INVALID_JSON = "invalid_json"  # not UTF-8, not JSON, NaN, duplicate keys
    INVALID_FRAME = "invalid_frame"  # not an object; missing, extra or mistyped fields
    UNSUPPORTED_VERSION = "unsupported_version"
    UNKNOWN_TYPE = "unknown_type"
    FRAME_TOO_LARGE = "frame_too_large"
    INVALID_TEXT = "invalid_text"  # empty, too long, control characters
    INVALID_ID = "invalid_id"  # client message id / room id / token malformed
    SPOOFED_IDENTITY = "spoofed_identity"  # a client named an author: closes 1008
    # the gateway
    NOT_JOINED = "not_joined"
    NO_SUCH_STREAM = "no_such_stream"  # join of a room (stream id) that does not exist
    AUTH_REQUIRED = "auth_required"
    RATE_LIMITED = "rate_limited"
    UNAVAILABLE = "unavailable"  # the pipeline did not answer in time: retry, same id
    # the pipeline (ChatRejected) picks its own codes too, e.g. banned, timed_out, slow_mode


class CloseCode(enum.IntEnum):
    """WebSocket close codes the chat gateway sends (RFC 6455 7.4 plus the 4000 range)."""

    NORMAL = 1000
    GOING_AWAY = 1001  # server shutdown
    PROTOCOL_ERROR = 1002  # broken WebSocket framing (e.g. unmasked client frame)
    UNSUPPORTED_DATA = 1003  # a binary frame: the protocol is JSON text only
    INVALID_PAYLOAD = 1007  # a text frame that is not UTF-8
    POLICY_VIOLATION = 1008  # banned, spoofing an identity, flooding past the limit
    MESSAGE_TOO_BIG = 1009  # a frame or message over the size limit
    INTERNAL_ERROR = 1011
    TRY_AGAIN_LATER = 1013  # slow client dropped (send queue overflow), or server full
    AUTH_FAILED = 4001  # the join token was rejected


class ChatProtocolError(Exception):
    """A client frame is unusable. The only exception `parse_client_frame` raises.

    `client_id` is the frame's client message id when it could be read, so the error frame
    can name the message it refers to.
    """

    def __init__(self, code: ErrorCode, message: str, *, client_id: str | None = None) -> None:
        super().__init__(code, message)
        self.code = code
        self.message = message
        self.client_id = client_id

    def __str__(self) -> str:
        return f"{self.code}: {self.message}"
