"""Server -> client chat frames, encoded to bytes ready for a WebSocket text frame.

A batch is assembled from messages already encoded once (`encode_message`), so a room's
fan-out encodes each message once per gateway and each batch once per interval, never
per recipient.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

from ._errors import ChatProtocolError, ErrorCode
from ._frames import VERSION

__all__ = [
    "SERVER_FRAME_TYPES",
    "encode_ack",
    "encode_batch",
    "encode_deleted",
    "encode_error",
    "encode_joined",
    "encode_message",
    "encode_notice",
    "encode_pong",
    "parse_server_frame",
]

SERVER_FRAME_TYPES = frozenset({"joined", "ack", "batch", "deleted", "notice", "error", "pong"})
_dumps = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False).encode


def _frame(kind: str, fields: Mapping[str, object]) -> bytes:
    return _dumps({"v": VERSION, "type": kind, **fields}).encode()


def encode_message(message: Mapping[str, object]) -> bytes:
    """One chat message (the pipeline's dict: id, user, text, ts, ...) as a JSON object."""
    return _dumps(message).encode()


def encode_batch(room: str, messages: Sequence[bytes], skipped: int = 0) -> bytes:
    """Messages of one interval in one frame; `skipped` counts what sampling left out."""
    return b'{"v":%d,"type":"batch","room":%s,"skipped":%d,"messages":[%s]}' % (
        VERSION, _dumps(room).encode(), skipped, b",".join(messages),
    )


def encode_joined(
    room: str, *, user_id: str | None, state: Mapping[str, object] | None = None
) -> bytes:
    """The room state a client needs to render its input box: `can_post` (signed in) and
    the moderation settings the pipeline owns (slow_mode_s, followers_only, ...)."""
    return _frame("joined", {
        "room": room, "user": user_id, "can_post": user_id is not None,
        "slow_mode_s": 0, "followers_only": False, **(state or {}),
    })


def encode_ack(client_id: str, message_id: str, status: str = "visible") -> bytes:
    """The message `client_id` is persisted as `message_id`. `status` "visible": it will
    also arrive in a batch; "held": moderation holds it for review, no viewer sees it yet."""
    return _frame("ack", {"id": client_id, "message_id": message_id, "status": status})


def encode_deleted(room: str, message_id: str) -> bytes:
    return _frame("deleted", {"room": room, "message_id": message_id})


def encode_notice(room: str, kind: str, text: str, **fields: object) -> bytes:
    """Moderation news: kind is e.g. timeout, ban, slow_mode, followers_only, clear."""
    return _frame("notice", {"room": room, "kind": kind, "text": text, **fields})


def encode_error(code: str, message: str, client_id: str | None = None) -> bytes:
    return _frame("error", {"code": str(code), "message": message, "id": client_id})


def encode_pong(ping_id: str | None = None) -> bytes:
    return _frame("pong", {"id": ping_id})


def parse_server_frame(data: str | bytes) -> dict[str, Any]:
    """A server frame as a dict (for clients and tests); `ChatProtocolError` if it is not one."""
    try:
        obj = json.loads(data)
    except (ValueError, RecursionError):
        raise ChatProtocolError(ErrorCode.INVALID_JSON, "server frame is not JSON") from None
    if type(obj) is not dict or obj.get("v") != VERSION:
        raise ChatProtocolError(ErrorCode.INVALID_FRAME, "not a version-1 frame object")
    if obj.get("type") not in SERVER_FRAME_TYPES:
        raise ChatProtocolError(ErrorCode.UNKNOWN_TYPE, "unknown server frame type")
    return obj
