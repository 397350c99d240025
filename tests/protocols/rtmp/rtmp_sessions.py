"""Scripted publish sessions: a test client talks to a ServerConnection in memory."""

from __future__ import annotations

from dataclasses import dataclass, field

from streamscale.protocols.rtmp import (
    NEED_DATA,
    ConnectionClosed,
    Event,
    Publish,
    ServerConnection,
)
from streamscale.testing.rtmp_client import (
    ClientConnection,
    ServerCommand,
    ServerControl,
    aac_audio_specific_config,
    aac_frame,
    aac_sequence_header,
    avc_decoder_config,
    avc_sequence_header,
    avc_video,
    build_sps,
)

SPS = build_sps(320, 240, profile_idc=100, level_idc=13)
PPS = b"\x68\xeb\xe3\xcb\x22\xc0"
ASC = aac_audio_specific_config(2, 4, 2)


def drain(conn: ServerConnection, *, accept: bool = True) -> tuple[list[Event], bytes]:
    """Pull every event, accepting any publish as an ingest with a valid key would;
    return the events and everything the server wants to send."""
    events: list[Event] = []
    out = b""
    while (event := conn.next_event()) is not NEED_DATA:
        events.append(event)
        if isinstance(event, ConnectionClosed):
            break
        if accept and isinstance(event, Publish):
            out += conn.accept_publish()
    return events, out + conn.data_to_send()


def drain_client(client: ClientConnection) -> list[ServerCommand | ServerControl]:
    out: list[ServerCommand | ServerControl] = []
    while (event := client.next_event()) is not NEED_DATA:
        out.append(event)
    return out


@dataclass
class Session:
    """What the client sent (byte stream), and what each side saw."""

    sent: bytes = b""
    server_events: list[Event] = field(default_factory=list)
    client_events: list[ServerCommand | ServerControl] = field(default_factory=list)


class Pair:
    """A client and a server wired back to back; every client write is recorded."""

    def __init__(self, *, compress: bool = True, complex_handshake: bool = False) -> None:
        self.client = ClientConnection(compress=compress, complex_handshake=complex_handshake)
        self.server = ServerConnection()
        self.session = Session()

    def send(self, data: bytes) -> list[Event]:
        self.session.sent += data
        self.server.receive_data(data)
        events, reply = drain(self.server)
        self.session.server_events += events
        if reply:
            self.client.receive_data(reply)
            self.session.client_events += drain_client(self.client)
            c2 = self.client.data_to_send()
            if c2:
                events += self.send(c2)
        return events


def video_frame(index: int, size: int) -> bytes:
    nal_type = 0x65 if index % 30 == 0 else 0x41
    body = bytes((index + i) & 0xFF for i in range(min(size, 256))) * (size // 256 + 1)
    return avc_video(
        [b"\x06\x05\x01\x00", bytes((nal_type,)) + body[:size]],
        keyframe=index % 30 == 0,
        composition_time_ms=66 if index % 2 else 0,
    )


def publish_session(
    *,
    frames: int = 12,
    chunk_size: int | None = 4096,
    compress: bool = True,
    start_ms: int = 0,
    complex_handshake: bool = False,
) -> Session:
    """Handshake, connect, publish, metadata, configs, interleaved A/V, unpublish."""
    pair = Pair(compress=compress, complex_handshake=complex_handshake)
    c = pair.client
    pair.send(c.initiate())
    if chunk_size is not None:
        pair.send(c.set_chunk_size(chunk_size))
    pair.send(c.connect("live", "rtmp://127.0.0.1/live"))
    pair.send(c.release_stream("testkey") + c.fc_publish("testkey") + c.create_stream())
    pair.send(c.publish(1, "testkey"))
    pair.send(c.metadata(1, {"width": 320.0, "height": 240.0, "framerate": 30.0}))
    pair.send(c.video(1, start_ms, avc_sequence_header(avc_decoder_config([SPS], [PPS]))))
    pair.send(c.audio(1, start_ms, aac_sequence_header(ASC)))
    for i in range(frames):
        ts = start_ms + i * 33
        size = 9000 if i % 30 == 0 else 300 + 97 * (i % 7)
        pair.send(
            c.video(1, ts, video_frame(i, size)) + c.audio(1, ts + 5, aac_frame(b"\x21" * 200))
        )
    pair.send(c.fc_unpublish("testkey") + c.delete_stream(1))
    return pair.session
