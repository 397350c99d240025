"""Client frame parsing, table-driven: every refusal has its documented code."""

from __future__ import annotations

import json

import pytest

from streamscale.protocols.chat import (
    MAX_FRAME_BYTES,
    MAX_TEXT_CHARS,
    ChatProtocolError,
    ErrorCode,
    Join,
    Leave,
    Ping,
    Send,
    encode_ack,
    encode_batch,
    encode_deleted,
    encode_error,
    encode_joined,
    encode_message,
    encode_notice,
    encode_pong,
    parse_client_frame,
    parse_server_frame,
)


@pytest.mark.parametrize(("raw", "frame"), [
    ('{"v":1,"type":"join","room":"s-1"}', Join("s-1")),
    ('{"v":1,"type":"join","room":"s-1","token":"a.b.c"}', Join("s-1", "a.b.c")),
    ('{"v":1,"type":"join","room":"s-1","token":null}', Join("s-1")),
    ('{"type":"send","v":1,"id":"c1","text":"héllo 👋"}', Send("c1", "héllo 👋")),
    ('{"v":1,"type":"leave"}', Leave()),
    ('{"v":1,"type":"ping"}', Ping()),
    ('{"v":1,"type":"ping","id":"p7"}', Ping("p7")),
    (b'{"v":1,"type":"send","id":"x","text":"\\u00e9t\xc3\xa9"}', Send("x", "été")),
])
def test_valid_frames(raw: str | bytes, frame: object) -> None:
    assert parse_client_frame(raw) == frame


BAD = [
    (b"\xff\xfe", ErrorCode.INVALID_JSON),
    ("{", ErrorCode.INVALID_JSON),
    ('{"v":1,"type":"ping","v":1}', ErrorCode.INVALID_JSON),  # duplicate key
    ('{"v":NaN,"type":"ping"}', ErrorCode.INVALID_JSON),
    ("[" * 5000, ErrorCode.FRAME_TOO_LARGE),
    ("[" * 2000 + "]" * 2000, ErrorCode.INVALID_JSON),  # nesting past the recursion limit
    ("[]", ErrorCode.INVALID_FRAME),
    ('"join"', ErrorCode.INVALID_FRAME),
    ('{"type":"ping"}', ErrorCode.INVALID_FRAME),
    ('{"v":true,"type":"ping"}', ErrorCode.INVALID_FRAME),
    ('{"v":"1","type":"ping"}', ErrorCode.INVALID_FRAME),
    ('{"v":2,"type":"ping"}', ErrorCode.UNSUPPORTED_VERSION),
    ('{"v":1}', ErrorCode.INVALID_FRAME),
    ('{"v":1,"type":7}', ErrorCode.INVALID_FRAME),
    ('{"v":1,"type":"shout"}', ErrorCode.UNKNOWN_TYPE),
    ('{"v":1,"type":"join"}', ErrorCode.INVALID_FRAME),
    ('{"v":1,"type":"join","room":"r","extra":1}', ErrorCode.INVALID_FRAME),
    ('{"v":1,"type":"join","room":5}', ErrorCode.INVALID_FRAME),
    ('{"v":1,"type":"join","room":""}', ErrorCode.INVALID_ID),
    ('{"v":1,"type":"join","room":"a b"}', ErrorCode.INVALID_ID),
    ('{"v":1,"type":"join","room":"%s"}' % ("r" * 65), ErrorCode.INVALID_ID),
    ('{"v":1,"type":"join","room":"r","token":"a b"}', ErrorCode.INVALID_ID),
    ('{"v":1,"type":"join","room":"r","token":3}', ErrorCode.INVALID_ID),
    ('{"v":1,"type":"send","id":"c1"}', ErrorCode.INVALID_FRAME),
    ('{"v":1,"type":"send","id":1,"text":"t"}', ErrorCode.INVALID_FRAME),
    ('{"v":1,"type":"send","id":"%s","text":"t"}' % ("c" * 65), ErrorCode.INVALID_ID),
    ('{"v":1,"type":"send","id":"c1","text":["t"]}', ErrorCode.INVALID_FRAME),
    ('{"v":1,"type":"send","id":"c1","text":"  "}', ErrorCode.INVALID_TEXT),
    ('{"v":1,"type":"send","id":"c1","text":"a\\u0000b"}', ErrorCode.INVALID_TEXT),
    ('{"v":1,"type":"send","id":"c1","text":"a\\nb"}', ErrorCode.INVALID_TEXT),
    ('{"v":1,"type":"send","id":"c1","text":"\\u009b"}', ErrorCode.INVALID_TEXT),
    ('{"v":1,"type":"send","id":"c1","text":"\\ud800"}', ErrorCode.INVALID_TEXT),
    ('{"v":1,"type":"send","id":"c1","text":"%s"}' % ("x" * (MAX_TEXT_CHARS + 1)),
     ErrorCode.INVALID_TEXT),
    ('{"v":1,"type":"send","id":"c1","text":"hi","user":"admin"}', ErrorCode.SPOOFED_IDENTITY),
    ('{"v":1,"type":"send","id":"c1","text":"hi","author":"x"}', ErrorCode.SPOOFED_IDENTITY),
    ('{"v":1,"type":"ping","id":""}', ErrorCode.INVALID_ID),
]


@pytest.mark.parametrize(("raw", "code"), BAD)
def test_bad_frames(raw: str | bytes, code: ErrorCode) -> None:
    with pytest.raises(ChatProtocolError) as info:
        parse_client_frame(raw)
    assert info.value.code == code


def test_error_names_the_client_id_it_can_read() -> None:
    with pytest.raises(ChatProtocolError) as info:
        parse_client_frame('{"v":1,"type":"send","id":"c9","text":"a\\u0007"}')
    assert info.value.client_id == "c9"
    with pytest.raises(ChatProtocolError) as info:
        parse_client_frame('{"v":1,"type":"send","id":"bad id","text":"a"}')
    assert info.value.client_id is None


def test_size_limit_counts_utf8_bytes() -> None:
    text = "é" * 240  # 480 bytes of UTF-8, 240 characters
    frame = json.dumps({"v": 1, "type": "send", "id": "c", "text": text}, ensure_ascii=False)
    assert parse_client_frame(frame) == Send("c", text)
    with pytest.raises(ChatProtocolError) as info:
        parse_client_frame(frame, max_bytes=len(frame) + 10)  # chars fit, bytes do not
    assert info.value.code == ErrorCode.FRAME_TOO_LARGE
    assert len(frame.encode()) > MAX_FRAME_BYTES // 10


def test_server_frames_are_compact_versioned_json() -> None:
    msg = encode_message({"id": "m1", "user": "ann", "text": "hi", "ts": 1.5})
    batch = parse_server_frame(encode_batch("r1", [msg, msg], skipped=3))
    assert batch == {"v": 1, "type": "batch", "room": "r1", "skipped": 3,
                     "messages": [{"id": "m1", "user": "ann", "text": "hi", "ts": 1.5}] * 2}
    assert parse_server_frame(encode_batch("r1", []))["messages"] == []
    assert parse_server_frame(encode_ack("c1", "m1")) == {
        "v": 1, "type": "ack", "id": "c1", "message_id": "m1", "status": "visible"}
    assert parse_server_frame(encode_ack("c1", "m1", "held"))["status"] == "held"
    joined = parse_server_frame(encode_joined("r1", user_id=None, state={"slow_mode_s": 5}))
    assert joined["can_post"] is False and joined["slow_mode_s"] == 5
    assert parse_server_frame(encode_deleted("r1", "m1"))["message_id"] == "m1"
    notice = parse_server_frame(encode_notice("r1", "timeout", "10 min", user="bob"))
    assert notice["kind"] == "timeout" and notice["user"] == "bob"
    error = parse_server_frame(encode_error(ErrorCode.RATE_LIMITED, "slow down", "c1"))
    assert error == {"v": 1, "type": "error", "code": "rate_limited", "message": "slow down",
                     "id": "c1"}
    assert parse_server_frame(encode_pong("p")) == {"v": 1, "type": "pong", "id": "p"}
    assert b" " not in encode_ack("c1", "m1")
