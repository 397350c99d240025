"""Client -> server chat frames: frozen events, one strict parser, and their encoders.

Strict on purpose: a frame with an unknown or missing field, a wrong type, a control
character or an over-long id is refused whole (with a code the client can switch on)
rather than half-understood, so a buggy or hostile client cannot smuggle fields through
(an `author` field is refused as spoofing).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any, TypeAlias

from ._errors import ChatProtocolError, ErrorCode

__all__ = [
    "MAX_FRAME_BYTES",
    "MAX_ID_CHARS",
    "MAX_TEXT_CHARS",
    "MAX_TOKEN_CHARS",
    "VERSION",
    "ClientFrame",
    "Join",
    "Leave",
    "Ping",
    "Send",
    "encode_join",
    "encode_leave",
    "encode_ping",
    "encode_send",
    "parse_client_frame",
]

VERSION = 1
MAX_FRAME_BYTES = 4096  # a chat line, an id and a token fit with room to spare
MAX_TEXT_CHARS = 500
MAX_ID_CHARS = 64
MAX_TOKEN_CHARS = 2048

_ID = re.compile(rf"[A-Za-z0-9._:\-]{{1,{MAX_ID_CHARS}}}")
_TOKEN = re.compile(rf"[\x21-\x7e]{{1,{MAX_TOKEN_CHARS}}}")  # printable ASCII (JWT, opaque)
# C0/C1 controls, DEL, lone surrogates (unencodable), line/paragraph separators
_BAD_TEXT = re.compile("[\x00-\x1f\x7f-\x9f\ud800-\udfff\u2028\u2029]")
_IDENTITY_FIELDS = frozenset({"user", "user_id", "author", "sender", "from", "username"})


@dataclass(frozen=True, slots=True)
class Join:
    """Enter a room (a stream id); with a token the connection may post."""

    room: str
    token: str | None = None


@dataclass(frozen=True, slots=True)
class Send:
    """Post `text`; `client_id` is echoed in the ack or error and makes retries idempotent."""

    client_id: str
    text: str


@dataclass(frozen=True, slots=True)
class Leave:
    """Leave the current room; the connection stays open and may join another."""


@dataclass(frozen=True, slots=True)
class Ping:
    """Application-level keep-alive (browsers cannot send WebSocket pings); answered by pong."""

    id: str | None = None


ClientFrame: TypeAlias = Join | Send | Leave | Ping

# type -> (required fields, optional fields), "v" and "type" excluded
_FIELDS: dict[str, tuple[frozenset[str], frozenset[str]]] = {
    "join": (frozenset({"room"}), frozenset({"token"})),
    "send": (frozenset({"id", "text"}), frozenset()),
    "leave": (frozenset(), frozenset()),
    "ping": (frozenset(), frozenset({"id"})),
}


def _no_constants(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _unique_pairs(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    obj = dict(pairs)
    if len(obj) != len(pairs):
        raise ValueError("duplicate key")
    return obj


_DECODER = json.JSONDecoder(object_pairs_hook=_unique_pairs, parse_constant=_no_constants)


def parse_client_frame(data: str | bytes, *, max_bytes: int = MAX_FRAME_BYTES) -> ClientFrame:
    """One client frame (the payload of one WebSocket text message) -> its event.

    Raises only `ChatProtocolError`; the connection survives it (the gateway answers with
    an error frame), except for `SPOOFED_IDENTITY`, which the gateway treats as policy.
    """
    if isinstance(data, bytes | bytearray | memoryview):
        if len(data) > max_bytes:
            raise ChatProtocolError(ErrorCode.FRAME_TOO_LARGE, f"frame over {max_bytes} bytes")
        try:
            text = bytes(data).decode("utf-8")
        except UnicodeDecodeError:
            raise ChatProtocolError(ErrorCode.INVALID_JSON, "frame is not UTF-8") from None
    else:
        text = data
        # a str may hold lone surrogates (unencodable); len*4 bounds the UTF-8 size cheaply
        if len(text) > max_bytes or (
            len(text) * 4 > max_bytes and len(text.encode("utf-8", "surrogatepass")) > max_bytes
        ):
            raise ChatProtocolError(ErrorCode.FRAME_TOO_LARGE, f"frame over {max_bytes} bytes")
    try:
        obj = _DECODER.decode(text)
    except (ValueError, RecursionError):  # JSONDecodeError, NaN, duplicates, deep nesting
        raise ChatProtocolError(ErrorCode.INVALID_JSON, "frame is not valid JSON") from None
    if type(obj) is not dict:
        raise ChatProtocolError(ErrorCode.INVALID_FRAME, "frame is not a JSON object")
    return _frame(obj)


def _frame(obj: dict[str, Any]) -> ClientFrame:
    version = obj.get("v")
    if type(version) is not int:
        raise ChatProtocolError(ErrorCode.INVALID_FRAME, '"v" (an integer) is required')
    if version != VERSION:
        raise ChatProtocolError(
            ErrorCode.UNSUPPORTED_VERSION, f"version {version} unsupported; use {VERSION}"
        )
    kind = obj.get("type")
    if type(kind) is not str:
        raise ChatProtocolError(ErrorCode.INVALID_FRAME, '"type" (a string) is required')
    fields = _FIELDS.get(kind)
    if fields is None:
        raise ChatProtocolError(ErrorCode.UNKNOWN_TYPE, f"unknown frame type {kind[:32]!r}")
    client_id = _client_id(obj.get("id"))
    required, optional = fields
    keys = obj.keys() - {"v", "type"}
    if spoof := keys & _IDENTITY_FIELDS:
        raise ChatProtocolError(
            ErrorCode.SPOOFED_IDENTITY,
            f"{min(spoof)!r}: the server sets the author", client_id=client_id,
        )
    if missing := required - keys:
        raise ChatProtocolError(
            ErrorCode.INVALID_FRAME, f"{kind} needs {min(missing)!r}", client_id=client_id
        )
    if extra := keys - required - optional:
        raise ChatProtocolError(
            ErrorCode.INVALID_FRAME, f"unknown field {min(extra)[:32]!r} in {kind}",
            client_id=client_id,
        )
    if kind == "send":
        return Send(_id(obj["id"], "id"), _text(obj["text"], client_id))
    if kind == "join":
        token = obj.get("token")
        if token is not None and (type(token) is not str or not _TOKEN.fullmatch(token)):
            raise ChatProtocolError(ErrorCode.INVALID_ID, "token must be printable ASCII")
        return Join(_id(obj["room"], "room"), token)
    if kind == "ping":
        ping_id = obj.get("id")
        return Ping(None if ping_id is None else _id(ping_id, "id"))
    return Leave()


def _client_id(value: object) -> str | None:
    """The id an error frame may echo: only one that is itself valid."""
    return value if type(value) is str and _ID.fullmatch(value) else None


def _id(value: object, name: str) -> str:
    if type(value) is not str:
        raise ChatProtocolError(ErrorCode.INVALID_FRAME, f"{name!r} must be a string")
    if not _ID.fullmatch(value):
        raise ChatProtocolError(
            ErrorCode.INVALID_ID, f"{name!r} must be 1-{MAX_ID_CHARS} of A-Z a-z 0-9 . _ : -"
        )
    return value


def _text(value: object, client_id: str | None) -> str:
    if type(value) is not str:
        raise ChatProtocolError(ErrorCode.INVALID_FRAME, '"text" must be a string',
                                client_id=client_id)
    if not value.strip():
        raise ChatProtocolError(ErrorCode.INVALID_TEXT, "text is empty", client_id=client_id)
    if len(value) > MAX_TEXT_CHARS:
        raise ChatProtocolError(ErrorCode.INVALID_TEXT, f"text over {MAX_TEXT_CHARS} characters",
                                client_id=client_id)
    if _BAD_TEXT.search(value):
        raise ChatProtocolError(ErrorCode.INVALID_TEXT, "text holds control characters",
                                client_id=client_id)
    return value


def _dump(obj: dict[str, object]) -> bytes:
    return json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode()


def encode_join(room: str, token: str | None = None) -> bytes:
    frame: dict[str, object] = {"v": VERSION, "type": "join", "room": room}
    if token is not None:
        frame["token"] = token
    return _dump(frame)


def encode_send(client_id: str, text: str) -> bytes:
    return _dump({"v": VERSION, "type": "send", "id": client_id, "text": text})


def encode_leave() -> bytes:
    return _dump({"v": VERSION, "type": "leave"})


def encode_ping(ping_id: str | None = None) -> bytes:
    frame: dict[str, object] = {"v": VERSION, "type": "ping"}
    if ping_id is not None:
        frame["id"] = ping_id
    return _dump(frame)
