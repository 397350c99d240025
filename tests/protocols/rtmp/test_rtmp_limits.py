"""The per-connection buffer budget: what a peer may make one connection hold (unparsed
input plus messages being reassembled, across all chunk streams), small until a publish is
accepted. It trips exactly one byte past the budget, frees what completes or is aborted,
refuses an over-long message at its header, and only RTMPProtocolError escapes."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rtmp_sessions import Pair, drain

from streamscale.protocols.rtmp import (
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_BUFFERED_BYTES_UNPUBLISHED,
    DEFAULT_MAX_MESSAGE_SIZE,
    MIN_BUFFERED_BYTES,
    NEED_DATA,
    RTMPProtocolError,
    ServerConnection,
    VideoData,
)
from streamscale.protocols.rtmp._handshake import HANDSHAKE_SIZE

UNPUBLISHED, PUBLISHED = 5000, 50_000  # small budgets so tests can reach them
SHARED_OBJECT = 19  # a message type the server ignores whole, in every phase


def server(**limits: int) -> ServerConnection:
    return ServerConnection(
        handshake_random=bytes(HANDSHAKE_SIZE - 8),
        **{"max_buffered_bytes": PUBLISHED,
           "max_buffered_bytes_unpublished": UNPUBLISHED, **limits},
    )


def pair_in(phase: str, **limits: int) -> Pair:
    """A client and server after connect ("unpublished"), after a publish that is still
    waiting for the server's decision ("pending"), or after an accepted one ("published")."""
    pair = Pair()
    pair.server = server(**limits)
    c = pair.client
    pair.send(c.initiate())
    pair.send(c.connect("live", "rtmp://h/live"))
    if phase != "unpublished":
        pair.send(c.create_stream())
        pair.server.receive_data(c.publish(1, "k"))
        _, out = drain(pair.server, accept=phase == "published")
        pair.client.receive_data(out)
    assert pair.server.buffered_bytes == 0
    return pair


def header0(csid: int, length: int, type_id: int = SHARED_OBJECT, stream_id: int = 1) -> bytes:
    """A fmt 0 chunk header (12 bytes for csid < 64)."""
    assert 2 <= csid < 64
    return (bytes((csid,)) + b"\x00\x00\x00" + length.to_bytes(3, "big") + bytes((type_id,))
            + struct.pack("<I", stream_id))


def set_chunk_size(size: int) -> bytes:
    return header0(2, 4, 1, 0) + struct.pack(">I", size)


def one_incomplete_chunk(budget: int) -> tuple[bytes, bytes]:
    """Everything held in the receive buffer: one chunk that never completes."""
    fill = set_chunk_size(1 << 24) + header0(10, budget) + b"x" * (budget - 12)
    return fill, b"x"


def partials_on_many_streams(budget: int) -> tuple[bytes, bytes]:
    """Unfinished messages on many chunk streams, plus an incomplete chunk in the buffer."""
    chunk = 128 if budget < 10_000 else 1024  # stays under the 64-chunk-stream limit
    streams, rest = divmod(budget - 12, chunk)
    fill = set_chunk_size(chunk)
    for csid in range(10, 10 + streams):
        fill += header0(csid, budget) + b"p" * chunk  # a whole first chunk: held as partial
    fill += header0(10 + streams, budget) + b"q" * rest  # 12 + rest bytes, chunk incomplete
    assert rest + 1 < chunk and 10 + streams < 64
    return fill, b"q"


def continuation_in_flight(budget: int) -> tuple[bytes, bytes]:
    """A message nearly reassembled from fmt 3 continuations, its last chunk incomplete,
    beside a second unfinished message (one message alone never exceeds its own length)."""
    chunk = 128
    whole, rest = divmod(budget - chunk - 1, chunk)
    fill = set_chunk_size(chunk) + header0(9, budget) + b"b" * chunk  # held: 128
    fill += header0(10, budget) + b"a" * chunk + (b"\xca" + b"a" * chunk) * (whole - 1)
    fill += b"\xca" + b"a" * rest  # held: 128 + whole * 128 + 1 + rest == budget
    assert rest + 1 < chunk
    return fill, b"a"


SHAPES: list[Callable[[int], tuple[bytes, bytes]]] = [
    one_incomplete_chunk, partials_on_many_streams, continuation_in_flight]


@pytest.mark.parametrize("shape", SHAPES, ids=lambda f: f.__name__)
@pytest.mark.parametrize(("phase", "budget"), [
    ("unpublished", UNPUBLISHED), ("pending", UNPUBLISHED), ("published", PUBLISHED)])
def test_the_budget_trips_one_byte_past_it(
    shape: Callable[[int], tuple[bytes, bytes]], phase: str, budget: int
) -> None:
    conn = pair_in(phase).server
    assert conn.max_buffered_bytes == budget
    fill, over = shape(budget)
    conn.receive_data(fill)
    assert conn.next_event() is NEED_DATA
    assert conn.buffered_bytes == budget
    conn.receive_data(over)
    with pytest.raises(RTMPProtocolError, match=f"{budget + 1} bytes buffered.*{budget}-byte"):
        conn.next_event()
    with pytest.raises(RTMPProtocolError):  # the connection stays failed
        conn.next_event()


@pytest.mark.parametrize(("phase", "limit", "limits"), [
    ("unpublished", UNPUBLISHED, {}),
    ("published", PUBLISHED, {}),
    ("published", 30_000, {"max_message_size": 30_000}),  # the message cap is below the budget
])
def test_a_message_longer_than_allowed_is_refused_at_its_header(
    phase: str, limit: int, limits: dict[str, int]
) -> None:
    conn = pair_in(phase, **limits).server
    conn.receive_data(set_chunk_size(128) + header0(10, limit) + b"x" * 128)
    assert conn.next_event() is NEED_DATA
    conn.receive_data(header0(11, limit + 1))  # 140 bytes held: the budget is not the reason
    with pytest.raises(RTMPProtocolError, match=f"{limit + 1} bytes exceeds the {limit}-byte"):
        conn.next_event()


def test_completed_and_aborted_messages_free_their_bytes() -> None:
    pair = pair_in("published")
    conn = pair.server
    big = b"\x17\x01\x00\x00\x00" + b"v" * (PUBLISHED - 100)
    for ts in range(3):  # three messages near the budget, fed at once: each is freed
        events = pair.send(pair.client.video(1, ts, big))
        assert events == [VideoData(ts, big, 1)]
        assert conn.buffered_bytes == 0
    conn.receive_data(set_chunk_size(128) + header0(10, 1000) + b"p" * 128
                      + header0(11, 1000) + b"p" * 128)
    assert conn.next_event() is NEED_DATA and conn.buffered_bytes == 256
    conn.receive_data(header0(2, 4, 2, 0) + struct.pack(">I", 10))  # Abort csid 10
    assert conn.next_event() is NEED_DATA and conn.buffered_bytes == 128


def test_the_budget_grows_only_when_the_publish_is_accepted() -> None:
    message = header0(6, 10_000, 9) + b"\x17" * 128
    pending = pair_in("pending").server
    pending.receive_data(message)
    with pytest.raises(RTMPProtocolError, match="exceeds the 5000-byte"):
        pending.next_event()

    rejected = pair_in("pending").server
    rejected.reject_publish("bad key")
    assert rejected.max_buffered_bytes == UNPUBLISHED

    accepted = pair_in("published").server
    accepted.receive_data(message)
    assert accepted.next_event() is NEED_DATA and accepted.buffered_bytes == 128
    accepted.reject_publish("key revoked")  # the caller closes a revoked publisher
    assert accepted.max_buffered_bytes == PUBLISHED


def test_defaults_fit_real_publishers_and_starve_strangers() -> None:
    conn = ServerConnection()
    assert conn.max_buffered_bytes == DEFAULT_MAX_BUFFERED_BYTES_UNPUBLISHED == 64 * 1024
    assert DEFAULT_MAX_BUFFERED_BYTES == 2 * DEFAULT_MAX_MESSAGE_SIZE == 16 * 1024 * 1024


@pytest.mark.parametrize("name", ["max_buffered_bytes", "max_buffered_bytes_unpublished",
                                  "max_message_size"])
def test_limits_must_leave_room_for_the_handshake(name: str) -> None:
    with pytest.raises(ValueError, match=name):
        ServerConnection(**{name: 0})
    if name != "max_message_size":
        with pytest.raises(ValueError, match="handshake"):
            ServerConnection(**{name: MIN_BUFFERED_BYTES - 1})
        ServerConnection(**{name: MIN_BUFFERED_BYTES})


# -- property: a hostile interleaving of unfinished messages, checked against a model -----

CSIDS = range(3, 13)
BUDGET = 5000
CHUNK = 128


@st.composite
def hostile_chunks(draw: st.DrawFn) -> list[tuple[bytes, int | None]]:
    """Whole chunks on several chunk streams, each with the bytes the model says the
    connection holds after it, or None where the model says the connection must fail."""
    lengths = st.integers(min_value=1, max_value=2 * BUDGET)
    remaining: dict[int, int] = {}  # csid -> payload bytes still to come
    held: dict[int, int] = {}
    out: list[tuple[bytes, int | None]] = []
    for csid in draw(st.lists(st.sampled_from(CSIDS), min_size=1, max_size=60)):
        if csid in remaining:
            take = min(remaining[csid], CHUNK)
            data = bytes((0xC0 | csid,)) + b"c" * take
        else:
            length = draw(lengths)
            if length > BUDGET:
                out.append((header0(csid, length), None))
                return out
            remaining[csid], held[csid] = length, 0
            take = min(length, CHUNK)
            data = header0(csid, length) + b"f" * take
        remaining[csid] -= take
        held[csid] += take
        if not remaining[csid]:
            del remaining[csid], held[csid]
        total = sum(held.values())
        out.append((data, total if total <= BUDGET else None))
        if total > BUDGET:
            return out
    return out


@settings(max_examples=300, deadline=None)
@given(chunks=hostile_chunks(), published=st.booleans())
def test_hostile_interleavings_match_the_model(
    chunks: list[tuple[bytes, int | None]], published: bool
) -> None:
    conn = pair_in("published" if published else "unpublished",
                   **{"max_buffered_bytes" if published else
                      "max_buffered_bytes_unpublished": BUDGET}).server
    for data, expected in chunks:
        conn.receive_data(data)
        if expected is None:
            with pytest.raises(RTMPProtocolError):
                drain(conn)
            return
        events, _ = drain(conn)
        assert events == []
        assert conn.buffered_bytes == expected


@settings(max_examples=200, deadline=None)
@given(chunks=hostile_chunks(), cuts=st.lists(st.integers(min_value=0), max_size=30))
def test_hostile_interleavings_cut_anywhere_never_exceed_the_budget(
    chunks: list[tuple[bytes, int | None]], cuts: list[int]
) -> None:
    conn = pair_in("unpublished", max_buffered_bytes_unpublished=BUDGET).server
    data = b"".join(d for d, _ in chunks)
    prev = 0
    try:
        for cut in [*sorted(c % (len(data) + 1) for c in cuts), len(data)]:
            if cut > prev:
                conn.receive_data(data[prev:cut])
                prev = cut
                drain(conn)
                assert conn.buffered_bytes <= BUDGET
    except RTMPProtocolError:
        pass
