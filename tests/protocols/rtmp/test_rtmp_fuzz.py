"""Hypothesis: whatever bytes arrive, in whatever pieces, only RTMPProtocolError escapes,
the connection never holds more than its buffer budget when it asks for data, and a valid
stream cut at arbitrary points yields exactly the same events."""

from __future__ import annotations

import functools

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rtmp_sessions import drain, publish_session

from streamscale.protocols.rtmp import (
    MIN_BUFFERED_BYTES,
    Event,
    RTMPProtocolError,
    ServerConnection,
)
from streamscale.protocols.rtmp._handshake import HANDSHAKE_SIZE

FUZZ = settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@functools.cache
def valid_stream() -> tuple[bytes, tuple[Event, ...]]:
    session = publish_session(frames=6)
    return session.sent, tuple(session.server_events)


@functools.cache
def connect_prefix() -> bytes:
    """Handshake + connect + createStream + publish: past the gates random bytes never pass."""
    sent, _ = valid_stream()
    marker = b"@setDataFrame"
    return sent[: sent.index(marker) - 16]  # cut inside the header of the metadata message


# The smallest budgets allowed, and small enough for the valid session's 9 KB keyframe
# (cut anywhere) to come near the published one.
UNPUBLISHED_BUDGET, PUBLISHED_BUDGET = MIN_BUFFERED_BYTES, 12 * 1024


def feed(data: bytes, cuts: list[int]) -> list[Event]:
    conn = ServerConnection(handshake_random=bytes(HANDSHAKE_SIZE - 8),
                            max_buffered_bytes=PUBLISHED_BUDGET,
                            max_buffered_bytes_unpublished=UNPUBLISHED_BUDGET)
    events: list[Event] = []
    prev = 0
    for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
        if cut == prev:
            continue  # b"" would mean EOF
        conn.receive_data(data[prev:cut])
        prev = cut
        got, _ = drain(conn)
        events += got
        assert conn.buffered_bytes <= conn.max_buffered_bytes
    conn.receive_data(b"")
    got, _ = drain(conn)
    return events + got[:-1] if got else events


def feed_tolerating_protocol_errors(data: bytes, cuts: list[int]) -> None:
    try:
        feed(data, cuts)
    except RTMPProtocolError:
        pass


cuts_strategy = st.lists(st.integers(min_value=0, max_value=1 << 20), max_size=20)


@FUZZ
@given(data=st.binary(max_size=4000), cuts=cuts_strategy)
def test_arbitrary_bytes(data: bytes, cuts: list[int]) -> None:
    feed_tolerating_protocol_errors(data, cuts)


@FUZZ
@given(data=st.binary(max_size=3000), cuts=cuts_strategy)
def test_arbitrary_bytes_after_the_handshake(data: bytes, cuts: list[int]) -> None:
    prefix = b"\x03" + bytes(2 * HANDSHAKE_SIZE)
    feed_tolerating_protocol_errors(prefix + data, cuts)


@FUZZ
@given(data=st.binary(max_size=3000), cuts=cuts_strategy)
def test_arbitrary_bytes_while_publishing(data: bytes, cuts: list[int]) -> None:
    feed_tolerating_protocol_errors(connect_prefix() + data, cuts)


@FUZZ
@given(
    edits=st.lists(
        st.tuples(
            st.integers(min_value=0),
            st.sampled_from(["flip", "drop", "insert"]),
            st.integers(0, 255),
        ),
        min_size=1,
        max_size=6,
    ),
    cuts=cuts_strategy,
)
def test_mutated_valid_sessions(edits: list[tuple[int, str, int]], cuts: list[int]) -> None:
    data = bytearray(valid_stream()[0])
    for position, kind, value in edits:
        # Keep mutations past the handshake so they reach the chunk and message layers.
        at = 1 + 2 * HANDSHAKE_SIZE + position % (len(data) - 2 * HANDSHAKE_SIZE - 1)
        if kind == "flip":
            data[at] ^= value or 1
        elif kind == "drop":
            del data[at]
        else:
            data.insert(at, value)
    feed_tolerating_protocol_errors(bytes(data), cuts)


@settings(max_examples=200, deadline=None)
@given(cuts=cuts_strategy)
def test_any_split_yields_the_same_events(cuts: list[int]) -> None:
    data, expected = valid_stream()
    assert tuple(feed(data, cuts)) == expected
