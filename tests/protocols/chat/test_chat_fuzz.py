"""Hypothesis: whatever a client sends, only ChatProtocolError escapes the parser, and every
frame the encoders can build parses back to the same event."""

from __future__ import annotations

import json

from hypothesis import given, settings
from hypothesis import strategies as st

from streamscale.protocols.chat import (
    MAX_ID_CHARS,
    MAX_TEXT_CHARS,
    ChatProtocolError,
    ClientFrame,
    Join,
    Leave,
    Ping,
    Send,
    encode_batch,
    encode_join,
    encode_leave,
    encode_message,
    encode_ping,
    encode_send,
    parse_client_frame,
    parse_server_frame,
)

FUZZ = settings(max_examples=400, deadline=None)

ids = st.text(st.sampled_from("abcXYZ0189._:-"), min_size=1, max_size=MAX_ID_CHARS)
tokens = st.text(st.characters(min_codepoint=0x21, max_codepoint=0x7E), min_size=1,
                 max_size=300)
texts = st.text(
    st.characters(blacklist_categories=("Cc", "Cs"), blacklist_characters="\u2028\u2029"),
    min_size=1, max_size=MAX_TEXT_CHARS,
).filter(str.strip)
frames: st.SearchStrategy[ClientFrame] = st.one_of(
    st.builds(Join, ids, st.none() | tokens),
    st.builds(Send, ids, texts),
    st.just(Leave()),
    st.builds(Ping, st.none() | ids),
)


def encode(frame: ClientFrame) -> bytes:
    if isinstance(frame, Join):
        return encode_join(frame.room, frame.token)
    if isinstance(frame, Send):
        return encode_send(frame.client_id, frame.text)
    if isinstance(frame, Ping):
        return encode_ping(frame.id)
    return encode_leave()


def only_protocol_errors(data: str | bytes) -> None:
    try:
        parse_client_frame(data)
    except ChatProtocolError:
        pass


@FUZZ
@given(st.binary(max_size=5000))
def test_arbitrary_bytes(data: bytes) -> None:
    only_protocol_errors(data)


@FUZZ
@given(st.text(max_size=5000))
def test_arbitrary_text(data: str) -> None:
    only_protocol_errors(data)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=80),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12,
)


@FUZZ
@given(st.fixed_dictionaries(
    {}, optional={"v": st.sampled_from([1, 1, 2, True, "1", None]),
                  "type": st.sampled_from(["join", "send", "leave", "ping", "x", 3]),
                  "room": json_values | ids, "id": json_values | ids,
                  "text": json_values | texts, "token": json_values | tokens,
                  "user": json_values}),
    st.dictionaries(st.text(max_size=8), json_values, max_size=3))
def test_arbitrary_objects(fields: dict[str, object], extra: dict[str, object]) -> None:
    """Near-miss frames (right shape, wrong details) get past the JSON layer."""
    only_protocol_errors(json.dumps({**extra, **fields}))


@FUZZ
@given(frames)
def test_round_trip(frame: ClientFrame) -> None:
    data = encode(frame)
    assert parse_client_frame(data) == frame
    assert parse_client_frame(data.decode()) == frame


@FUZZ
@given(st.text(st.sampled_from("ab1-"), min_size=1, max_size=10),
       st.lists(st.dictionaries(st.text(max_size=5), st.text(max_size=20) | st.integers(),
                                max_size=4), max_size=5),
       st.integers(min_value=0, max_value=10**6))
def test_batch_round_trip(room: str, messages: list[dict[str, object]], skipped: int) -> None:
    frame = parse_server_frame(encode_batch(room, [encode_message(m) for m in messages],
                                            skipped))
    assert (frame["room"], frame["messages"], frame["skipped"]) == (room, messages, skipped)
