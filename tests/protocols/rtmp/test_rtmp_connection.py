"""ServerConnection: a full scripted publish, the housekeeping it answers by itself, the
server's decisions (accept/reject), and the peer mistakes that end a connection."""

from __future__ import annotations

import struct
from collections.abc import Callable

import pytest
from rtmp_sessions import SPS, Pair, drain, drain_client, publish_session

from streamscale.protocols.rtmp import (
    NEED_DATA,
    AudioData,
    Connect,
    ConnectionClosed,
    CreateStream,
    DeleteStream,
    FCPublish,
    FCUnpublish,
    MessageType,
    PingResponse,
    Publish,
    ReleaseStream,
    RTMPProtocolError,
    RTMPUsageError,
    ScriptData,
    UnknownCommand,
    VideoData,
    encode_amf0,
)
from streamscale.testing.rtmp_client import ServerCommand, ServerControl


def connected_pair() -> Pair:
    pair = Pair()
    pair.send(pair.client.initiate())
    pair.send(pair.client.connect("live", "rtmp://h/live"))
    return pair


def publishing_pair(*, accept: bool = True) -> Pair:
    pair = connected_pair()
    pair.send(pair.client.create_stream())
    pair.server.receive_data(pair.client.publish(1, "k"))
    events, out = drain(pair.server, accept=accept)
    assert events == [Publish("k", "live", 1)]
    pair.client.receive_data(out)
    return pair


def test_full_publish_session() -> None:
    session = publish_session(frames=40, complex_handshake=True)
    kinds = [type(e).__name__ for e in session.server_events]
    assert kinds[:5] == ["Connect", "ReleaseStream", "FCPublish", "CreateStream", "Publish"]
    connect = session.server_events[0]
    assert isinstance(connect, Connect)
    assert (connect.app, connect.tc_url) == ("live", "rtmp://127.0.0.1/live")
    assert session.server_events[1:5] == [
        ReleaseStream("testkey"),
        FCPublish("testkey"),
        CreateStream(1),
        Publish("testkey", "live", 1),
    ]
    assert isinstance(session.server_events[5], ScriptData)
    video = [e for e in session.server_events if isinstance(e, VideoData)]
    audio = [e for e in session.server_events if isinstance(e, AudioData)]
    assert len(video) == 41 and len(audio) == 41
    assert [v.timestamp_ms for v in video[1:]] == [i * 33 for i in range(40)]
    assert video[0].payload.endswith(SPS + b"\x01\x00\x06\x68\xeb\xe3\xcb\x22\xc0")
    assert session.server_events[-2:] == [FCUnpublish("testkey"), DeleteStream(1)]

    replies = session.client_events
    control_types = [e.type_id for e in replies if isinstance(e, ServerControl)]
    assert control_types[:3] == [
        MessageType.WINDOW_ACK_SIZE,
        MessageType.SET_PEER_BANDWIDTH,
        MessageType.SET_CHUNK_SIZE,
    ]
    commands = [e for e in replies if isinstance(e, ServerCommand)]
    assert [(c.name, c.transaction_id) for c in commands] == [
        ("_result", 1.0),
        ("_result", 2.0),
        ("_result", 3.0),
        ("_result", 4.0),
        ("onStatus", 0.0),
    ]
    assert commands[0].status_code == "NetConnection.Connect.Success"
    assert commands[3].args == (1.0,)
    assert commands[4].status_code == "NetStream.Publish.Start"
    assert commands[4].stream_id == 1


@pytest.mark.parametrize("chunk_size", [None, 1, 60000])
@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("start_ms", [0, 0xFFFF00, 0xFFFFFF00])
def test_sessions_with_any_chunking_and_timestamps(
    chunk_size: int | None, compress: bool, start_ms: int
) -> None:
    session = publish_session(frames=8, chunk_size=chunk_size, compress=compress, start_ms=start_ms)
    video = [e for e in session.server_events if isinstance(e, VideoData)]
    assert [v.timestamp_ms for v in video] == [
        (start_ms + i * 33) & 0xFFFFFFFF for i in [0, *range(8)]
    ]


def test_acknowledgement_after_the_peers_window() -> None:
    pair = publishing_pair()
    c = pair.client
    pair.send(c.message(2, MessageType.WINDOW_ACK_SIZE, 0, 0, struct.pack(">I", 5000)))
    for i in range(5):
        pair.send(c.video(1, i, b"\x27\x01\x00\x00\x00" + b"x" * 1500))
    acks = [
        e
        for e in pair.session.client_events
        if isinstance(e, ServerControl) and e.type_id == MessageType.ACKNOWLEDGEMENT
    ]
    assert len(acks) == 1  # sent once 5000 bytes had arrived, not again before 10000
    (acked,) = struct.unpack(">I", acks[0].payload)
    assert 5000 <= acked <= 5000 + 1600
    assert pair.server.bytes_received - acked < 5000


def test_ping_both_ways() -> None:
    pair = connected_pair()
    pair.client.receive_data(pair.server.ping(1234))
    (ping,) = [e for e in [pair.client.next_event()] if e is not NEED_DATA]
    assert isinstance(ping, ServerControl)
    assert ping.payload == b"\x00\x06\x00\x00\x04\xd2"
    assert pair.send(pair.client.message(2, 4, 0, 0, b"\x00\x07\x00\x00\x04\xd2")) == [
        PingResponse(1234)
    ]
    before = len(pair.session.client_events)
    pair.send(pair.client.message(2, 4, 0, 0, b"\x00\x06\x00\x00\x00\x07"))
    (pong,) = pair.session.client_events[before:]
    assert isinstance(pong, ServerControl)
    assert pong.payload == b"\x00\x07\x00\x00\x00\x07"


def test_reject_publish_then_inflight_media_is_dropped() -> None:
    pair = publishing_pair(accept=False)
    pair.client.receive_data(pair.server.reject_publish("unknown stream key"))
    (status,) = [e for e in [pair.client.next_event()] if isinstance(e, ServerCommand)]
    assert status.status_code == "NetStream.Publish.BadName"
    assert status.args[0] == {
        "level": "error",
        "code": "NetStream.Publish.BadName",
        "description": "unknown stream key",
    }
    assert pair.send(pair.client.video(1, 0, b"\x17\x01\x00\x00\x00")) == []


def test_revoking_an_accepted_publish() -> None:
    pair = publishing_pair()
    out = pair.server.reject_publish("key revoked", code="NetStream.Publish.Rejected")
    pair.client.receive_data(out)
    statuses = [e for e in drain_client(pair.client) if isinstance(e, ServerCommand)]
    assert [s.status_code for s in statuses] == [
        "NetStream.Publish.Start",
        "NetStream.Publish.Rejected",
    ]


def test_usage_errors_are_not_protocol_errors() -> None:
    pair = connected_pair()
    with pytest.raises(RTMPUsageError):
        pair.server.accept_publish()
    with pytest.raises(RTMPUsageError):
        pair.server.reject_publish("x")


def test_other_commands_amf3_commands_and_aggregates() -> None:
    pair = publishing_pair()
    c = pair.client
    events = pair.send(c.command("getStreamLength", None, "k", stream_id=1))
    assert events == [UnknownCommand("getStreamLength", 3.0, None, ("k",), 1)]
    amf3 = b"\x00" + encode_amf0("FCUnpublish", 9.0, None, "k")
    assert pair.send(c.message(3, MessageType.COMMAND_AMF3, 0, 0, amf3)) == [FCUnpublish("k")]

    def tag(type_id: int, ts: int, body: bytes) -> bytes:
        head = bytes((type_id,)) + len(body).to_bytes(3, "big") + (ts & 0xFFFFFF).to_bytes(3, "big")
        return (
            head + bytes((ts >> 24,)) + b"\x00\x00\x00" + body + (11 + len(body)).to_bytes(4, "big")
        )

    aggregate = tag(9, 500, b"\x27\x01\x00\x00\x00") + tag(8, 520, b"\xaf\x01x")
    events = pair.send(c.message(6, MessageType.AGGREGATE, 1, 1000, aggregate))
    assert events == [
        VideoData(1000, b"\x27\x01\x00\x00\x00", 1),
        AudioData(1020, b"\xaf\x01x", 1),
    ]
    data_amf3 = b"\x00" + encode_amf0("onMetaData", {})
    assert pair.send(c.message(5, MessageType.DATA_AMF3, 1, 0, data_amf3)) == [
        ScriptData(0, encode_amf0("onMetaData", {}), 1)
    ]


def test_eof_gives_connection_closed_repeatedly() -> None:
    pair = connected_pair()
    pair.server.receive_data(b"")
    assert pair.server.next_event() == ConnectionClosed()
    assert pair.server.next_event() == ConnectionClosed()
    with pytest.raises(RTMPUsageError):
        pair.server.receive_data(b"more")


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda p: p.client.video(1, 0, b"\x17"), "not publishing"),
        (lambda p: p.client.publish(1, "k"), "never created"),
        (lambda p: p.client.connect("live", "x"), "second connect"),
        (lambda p: p.client.command("deleteStream", None, "one"), "needs a stream id"),
        (lambda p: p.client.command("FCPublish", None, 5.0), "string argument"),
        (lambda p: p.client.message(3, 20, 0, 0, encode_amf0("x")), "transaction id"),
        (lambda p: p.client.message(3, 20, 0, 0, encode_amf0(1.0, 1.0)), "name"),
        (lambda p: p.client.message(3, 17, 0, 0, b"\x11\x02"), "AMF3"),
        (lambda p: p.client.message(2, 5, 0, 0, b"\x00\x00\x00\x00"), "Window"),
        (lambda p: p.client.message(2, 4, 0, 0, b"\x00"), "User Control"),
        (lambda p: p.client.message(6, 22, 1, 0, b"\x09\x00\x00"), "Aggregate"),
    ],
)
def test_peer_mistakes_raise_protocol_error_and_stick(
    make: Callable[[Pair], bytes], message: str
) -> None:
    pair = connected_pair()
    with pytest.raises(RTMPProtocolError, match=message):
        pair.send(make(pair))
    with pytest.raises(RTMPProtocolError, match="already failed"):
        pair.server.next_event()
    with pytest.raises(RTMPProtocolError, match="already failed"):
        pair.server.receive_data(b"x")


@pytest.mark.parametrize(
    ("command", "message"),
    [
        (encode_amf0("createStream", 2.0, None), "before connect"),
        (encode_amf0("connect", 1.0, "live"), "not an object"),
        (encode_amf0("connect", 1.0, {"tcUrl": "x"}), "without an app"),
    ],
)
def test_connect_must_come_first_and_be_well_formed(command: bytes, message: str) -> None:
    pair = Pair()
    pair.send(pair.client.initiate())
    with pytest.raises(RTMPProtocolError, match=message):
        pair.send(pair.client.message(3, 20, 0, 0, command))


def test_one_publish_at_a_time_and_bounded_streams() -> None:
    pair = publishing_pair()
    pair.send(pair.client.create_stream())
    with pytest.raises(RTMPProtocolError, match="another publish"):
        pair.send(pair.client.publish(2, "k2"))
    pair = connected_pair()
    with pytest.raises(RTMPProtocolError, match="streams on one connection"):
        for _ in range(9):
            pair.send(pair.client.create_stream())


def test_stream_key_query_is_split_off() -> None:
    pair = connected_pair()
    pair.send(pair.client.create_stream())
    events = pair.send(pair.client.publish(1, "abc?token=1&x=2", "record"))
    assert events == [Publish("abc", "record", 1, "token=1&x=2")]


@pytest.mark.parametrize("package", ["rtmp", "flv"])
def test_protocol_code_imports_no_io(package: str) -> None:
    """Sans-I/O means it: no trio, socket, av (or asyncio) anywhere in the package."""
    import ast
    import pathlib

    import streamscale.protocols

    root = pathlib.Path(streamscale.protocols.__file__).parent / package
    for path in root.glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in {"trio", "socket", "av", "asyncio"}, path
