"""`ServerConnection`: the server (ingest) side of one RTMP connection, sans-I/O.

Feed bytes with `receive_data()`, pull events with `next_event()` until `NEED_DATA`, then
send `data_to_send()`. Housekeeping (handshake, window/bandwidth/chunk-size setup, `_result`
answers, acknowledgements, ping replies) is queued automatically. Decisions that need the
rest of the platform (is this stream key valid?) are left to the caller: `accept_publish()`
/ `reject_publish()`. All outgoing bytes go through one outbox in order, and every method
that returns bytes drains it, so a caller can never reorder chunks on the wire.

Memory is bounded per connection: the bytes held between calls (the unparsed receive
buffer plus every message being reassembled, across all chunk streams) may not exceed a
budget, checked whenever `next_event()` runs out of input, and a message longer than the
budget (or than `max_message_size`) is refused at its first chunk header. Until a publish
has been accepted the budget is small (`max_buffered_bytes_unpublished`): a client that has
not shown a stream key has no business sending big messages. Going over either budget is an
`RTMPProtocolError`, so only that connection closes. The caller must drain `next_event()`
before feeding more than one socket read, as the ingest does; then a connection never holds
more than its budget plus one read.
"""

from __future__ import annotations

import collections
import enum

from . import _events as ev
from ._amf0 import AMF0Value
from ._chunk import (
    DEFAULT_MAX_BUFFERED_BYTES,
    DEFAULT_MAX_BUFFERED_BYTES_UNPUBLISHED,
    DEFAULT_MAX_MESSAGE_SIZE,
    MIN_BUFFERED_BYTES,
    ChunkReader,
    ChunkWriter,
    RawMessage,
)
from ._errors import RTMPProtocolError, RTMPUsageError
from ._handshake import HANDSHAKE_SIZE, ServerHandshake
from ._messages import (
    Command,
    MessageType,
    PeerBandwidthLimit,
    UserControlEvent,
    decode_command,
    decode_u32,
    decode_user_control,
    encode_command,
    encode_set_peer_bandwidth,
    encode_u32,
    encode_user_control,
    split_aggregate,
)

__all__ = ["ServerConnection"]

_CSID_CONTROL = 2
_CSID_COMMAND = 3
_CSID_STATUS = 5
_MAX_STREAMS = 8


class _Phase(enum.Enum):
    HANDSHAKE = enum.auto()
    AWAIT_CONNECT = enum.auto()
    CONNECTED = enum.auto()


class _StreamState(enum.Enum):
    CREATED = enum.auto()
    PUBLISH_PENDING = enum.auto()
    PUBLISHING = enum.auto()
    REJECTED = enum.auto()  # media still in flight after a rejection is dropped


class ServerConnection:
    """One publisher's RTMP connection, from handshake to deleteStream."""

    def __init__(
        self,
        *,
        chunk_size: int = 4096,
        window_ack_size: int = 2_500_000,
        peer_bandwidth: int = 2_500_000,
        max_message_size: int = DEFAULT_MAX_MESSAGE_SIZE,
        max_buffered_bytes: int = DEFAULT_MAX_BUFFERED_BYTES,
        max_buffered_bytes_unpublished: int = DEFAULT_MAX_BUFFERED_BYTES_UNPUBLISHED,
        handshake_random: bytes | None = None,
    ) -> None:
        if not 1 <= chunk_size <= 0x7FFFFFFF:
            raise ValueError(f"chunk size {chunk_size} out of range")
        if max_message_size < 1:
            raise ValueError(f"max_message_size must be positive, got {max_message_size}")
        for name, value in (("max_buffered_bytes", max_buffered_bytes),
                            ("max_buffered_bytes_unpublished", max_buffered_bytes_unpublished)):
            if value < MIN_BUFFERED_BYTES:
                raise ValueError(f"{name} must be at least {MIN_BUFFERED_BYTES} (the handshake "
                                 f"alone is {2 * HANDSHAKE_SIZE + 1} bytes), got {value}")
        self._max_message_size = max_message_size
        self._max_buffered_published = max_buffered_bytes
        self._max_buffered_unpublished = max_buffered_bytes_unpublished
        self._chunk_size = chunk_size
        self._window_ack_size = window_ack_size
        self._peer_bandwidth = peer_bandwidth
        self._buf = bytearray()
        self._out = bytearray()
        self._handshake = ServerHandshake(random_bytes=handshake_random)
        self._reader = ChunkReader(max_message_size=max_message_size)
        self._published = False  # a publish was accepted: the peer showed a valid key
        self.max_buffered_bytes = 0  # the budget in force; set by _apply_budget()
        self._apply_budget()
        self._writer = ChunkWriter()
        self._events: collections.deque[ev.Event] = collections.deque()
        self._phase = _Phase.HANDSHAKE
        self._error: RTMPProtocolError | None = None
        self._eof = False
        self._bytes_received = 0
        self._last_ack = 0
        self._ack_window = window_ack_size  # until the peer tells us its own
        self._streams: dict[int, _StreamState] = {}
        self._stream_keys: dict[int, str] = {}
        self._next_stream_id = 1
        self.app: str | None = None
        self.tc_url: str | None = None

    # -- input ----------------------------------------------------------------------------

    def receive_data(self, data: bytes | bytearray | memoryview) -> None:
        """Buffer bytes from the peer; `b""` means the peer closed its side."""
        if self._error is not None:
            raise RTMPProtocolError(f"connection already failed: {self._error}")
        if self._eof:
            if data:
                raise RTMPUsageError("receive_data() after end of stream")
            return
        if not data:
            self._eof = True
            return
        self._buf += data
        self._bytes_received += len(data)
        if self._phase is not _Phase.HANDSHAKE and (
            self._bytes_received - self._last_ack >= self._ack_window
        ):
            self._last_ack = self._bytes_received
            self._send(_CSID_CONTROL, MessageType.ACKNOWLEDGEMENT, 0, encode_u32(self._last_ack))

    def next_event(self) -> ev.Event | ev._Sentinel:
        """The next event, `NEED_DATA`, or `ConnectionClosed` (repeatedly) after EOF."""
        if self._error is not None:
            raise RTMPProtocolError(f"connection already failed: {self._error}")
        try:
            while not self._events:
                if self._phase is _Phase.HANDSHAKE:
                    self._out += self._handshake.advance(self._buf)
                    if not self._handshake.done:
                        return self._starved()
                    self._phase = _Phase.AWAIT_CONNECT
                msg = self._reader.read_message(self._buf)
                if msg is None:
                    return self._starved()
                self._handle_message(msg)
            return self._events.popleft()
        except RTMPProtocolError as exc:
            self._error = exc
            raise

    def _starved(self) -> ev.Event | ev._Sentinel:
        if self._eof:
            return ev.ConnectionClosed()
        held = self.buffered_bytes
        if held > self.max_buffered_bytes:
            when = "while publishing" if self._published else "before publishing"
            raise RTMPProtocolError(
                f"{held} bytes buffered in unfinished messages, over the "
                f"{self.max_buffered_bytes}-byte limit {when}"
            )
        return ev.NEED_DATA

    @property
    def buffered_bytes(self) -> int:
        """Bytes held for the peer: the unparsed input plus messages being reassembled."""
        return len(self._buf) + self._reader.buffered_bytes

    def _apply_budget(self) -> None:
        budget = self._max_buffered_published if self._published else (
            self._max_buffered_unpublished)
        self.max_buffered_bytes = budget
        # A message longer than the whole budget could never be reassembled within it:
        # refuse it at its first header, before any of its bytes are held.
        self._reader.max_message_size = min(self._max_message_size, budget)

    # -- output ---------------------------------------------------------------------------

    def data_to_send(self) -> bytes:
        """Drain everything queued for the peer (in order)."""
        out = bytes(self._out)
        self._out.clear()
        return out

    def accept_publish(self) -> bytes:
        """Answer the pending `Publish` with NetStream.Publish.Start; media may flow."""
        stream_id = self._pending_publish()
        self._streams[stream_id] = _StreamState.PUBLISHING
        self._published = True  # stays: a revoked publisher is closed by the caller anyway
        self._apply_budget()
        key = self._stream_keys[stream_id]
        self._send(
            _CSID_CONTROL,
            MessageType.USER_CONTROL,
            0,
            encode_user_control(UserControlEvent.STREAM_BEGIN, stream_id),
        )
        self._on_status(stream_id, "status", "NetStream.Publish.Start", f"{key} is now published.")
        return self.data_to_send()

    def reject_publish(self, description: str, *, code: str = "NetStream.Publish.BadName") -> bytes:
        """Refuse the pending publish, or end an accepted one (e.g. a key revoked mid-stream).

        Send the bytes, then close the connection: clients treat this as fatal.
        """
        candidates = [
            sid
            for sid, state in self._streams.items()
            if state in (_StreamState.PUBLISH_PENDING, _StreamState.PUBLISHING)
        ]
        if not candidates:
            raise RTMPUsageError("reject_publish() with no pending or active publish")
        for stream_id in candidates:
            self._streams[stream_id] = _StreamState.REJECTED
            self._on_status(stream_id, "error", code, description)
        return self.data_to_send()

    def ping(self, timestamp_ms: int) -> bytes:
        """Send a ping request; the answer arrives as a `PingResponse` event."""
        self._send(
            _CSID_CONTROL,
            MessageType.USER_CONTROL,
            0,
            encode_user_control(UserControlEvent.PING_REQUEST, timestamp_ms),
        )
        return self.data_to_send()

    @property
    def bytes_received(self) -> int:
        return self._bytes_received

    def _pending_publish(self) -> int:
        for stream_id, state in self._streams.items():
            if state is _StreamState.PUBLISH_PENDING:
                return stream_id
        raise RTMPUsageError("no publish is waiting for a decision")

    def _send(self, csid: int, type_id: int, stream_id: int, payload: bytes) -> None:
        self._out += self._writer.write(csid, type_id, stream_id, 0, payload)

    def _send_command(
        self,
        csid: int,
        stream_id: int,
        name: str,
        transaction_id: float,
        command_object: AMF0Value,
        *args: AMF0Value,
    ) -> None:
        payload = encode_command(name, transaction_id, command_object, *args)
        self._send(csid, MessageType.COMMAND_AMF0, stream_id, payload)

    def _on_status(self, stream_id: int, level: str, code: str, description: str) -> None:
        info: dict[str, AMF0Value] = {"level": level, "code": code, "description": description}
        self._send_command(_CSID_STATUS, stream_id, "onStatus", 0.0, None, info)

    # -- message dispatch -----------------------------------------------------------------

    def _handle_message(self, msg: RawMessage) -> None:
        type_id = msg.type_id
        if type_id in (MessageType.VIDEO, MessageType.AUDIO, MessageType.DATA_AMF0):
            self._media(type_id, msg.stream_id, msg.timestamp_ms, msg.payload)
        elif type_id in (MessageType.COMMAND_AMF0, MessageType.COMMAND_AMF3):
            command = decode_command(msg.payload, amf3=type_id == MessageType.COMMAND_AMF3)
            self._handle_command(command, msg.stream_id)
        elif type_id == MessageType.USER_CONTROL:
            event, value = decode_user_control(msg.payload)
            if event == UserControlEvent.PING_REQUEST:
                reply = encode_user_control(UserControlEvent.PING_RESPONSE, value)
                self._send(_CSID_CONTROL, MessageType.USER_CONTROL, 0, reply)
            elif event == UserControlEvent.PING_RESPONSE:
                self._events.append(ev.PingResponse(value))
        elif type_id == MessageType.WINDOW_ACK_SIZE:
            window = decode_u32(msg.payload, "Window Acknowledgement Size")
            if window == 0:
                raise RTMPProtocolError("Window Acknowledgement Size of 0")
            self._ack_window = window
        elif type_id == MessageType.DATA_AMF3:
            if msg.payload[:1] == b"\x00":  # AMF0 payload behind an AMF3 switch byte
                self._media(MessageType.DATA_AMF0, msg.stream_id, msg.timestamp_ms, msg.payload[1:])
        elif type_id == MessageType.AGGREGATE:
            for sub_type, timestamp_ms, body in split_aggregate(msg.payload, msg.timestamp_ms):
                if sub_type in (MessageType.VIDEO, MessageType.AUDIO, MessageType.DATA_AMF0):
                    self._media(sub_type, msg.stream_id, timestamp_ms, body)
        # Set Chunk Size / Abort were applied by the reader; acknowledgements, peer
        # bandwidth and shared objects need nothing from an ingest.

    def _media(self, type_id: int, stream_id: int, timestamp_ms: int, payload: bytes) -> None:
        state = self._streams.get(stream_id)
        if state is not _StreamState.PUBLISHING:
            if state is _StreamState.REJECTED:
                return
            raise RTMPProtocolError(f"media on stream {stream_id}, which is not publishing")
        if type_id == MessageType.VIDEO:
            self._events.append(ev.VideoData(timestamp_ms, payload, stream_id))
        elif type_id == MessageType.AUDIO:
            self._events.append(ev.AudioData(timestamp_ms, payload, stream_id))
        else:
            self._events.append(ev.ScriptData(timestamp_ms, payload, stream_id))

    def _handle_command(self, cmd: Command, stream_id: int) -> None:
        if self._phase is _Phase.AWAIT_CONNECT:
            if cmd.name != "connect":
                raise RTMPProtocolError(f"{cmd.name!r} before connect")
            self._connect(cmd)
            return
        name = cmd.name
        if name == "connect":
            raise RTMPProtocolError("second connect on one connection")
        if name == "releaseStream":
            self._events.append(ev.ReleaseStream(_string_arg(cmd, 0)))
            self._result(cmd.transaction_id, None, None)
        elif name == "FCPublish":
            self._events.append(ev.FCPublish(_string_arg(cmd, 0)))
            self._result(cmd.transaction_id, None, None)
        elif name == "createStream":
            self._create_stream(cmd)
        elif name == "publish":
            self._publish(cmd, stream_id)
        elif name == "deleteStream":
            if not cmd.args or not isinstance(cmd.args[0], float) or cmd.args[0] != cmd.args[0]:
                raise RTMPProtocolError("deleteStream needs a stream id")
            deleted = int(cmd.args[0]) if 0 <= cmd.args[0] < 2**32 else -1
            if self._streams.pop(deleted, None) is not None:
                self._stream_keys.pop(deleted, None)
                self._events.append(ev.DeleteStream(deleted))
        elif name == "FCUnpublish":
            self._events.append(ev.FCUnpublish(_string_arg(cmd, 0)))
        else:
            self._events.append(
                ev.UnknownCommand(name, cmd.transaction_id, cmd.command_object, cmd.args, stream_id)
            )

    def _result(self, transaction_id: float, command_object: AMF0Value, *args: AMF0Value) -> None:
        self._send_command(_CSID_COMMAND, 0, "_result", transaction_id, command_object, *args)

    def _connect(self, cmd: Command) -> None:
        props = cmd.command_object
        if not isinstance(props, dict):
            raise RTMPProtocolError("connect command object is not an object")
        app, tc_url, flash_ver = props.get("app"), props.get("tcUrl"), props.get("flashVer")
        if not isinstance(app, str):
            raise RTMPProtocolError("connect without an app name")
        self.app = app
        self.tc_url = tc_url if isinstance(tc_url, str) else None
        self._phase = _Phase.CONNECTED
        self._events.append(
            ev.Connect(
                app, self.tc_url, flash_ver if isinstance(flash_ver, str) else None, dict(props)
            )
        )
        encoding = props.get("objectEncoding", 0.0)
        self._send(_CSID_CONTROL, MessageType.WINDOW_ACK_SIZE, 0, encode_u32(self._window_ack_size))
        self._send(
            _CSID_CONTROL,
            MessageType.SET_PEER_BANDWIDTH,
            0,
            encode_set_peer_bandwidth(self._peer_bandwidth, PeerBandwidthLimit.DYNAMIC),
        )
        self._send(_CSID_CONTROL, MessageType.SET_CHUNK_SIZE, 0, encode_u32(self._chunk_size))
        self._writer.chunk_size = self._chunk_size
        self._result(
            cmd.transaction_id,
            {"fmsVer": "FMS/3,0,1,123", "capabilities": 31.0},
            {
                "level": "status",
                "code": "NetConnection.Connect.Success",
                "description": "Connection succeeded.",
                "objectEncoding": encoding if isinstance(encoding, float) else 0.0,
            },
        )

    def _create_stream(self, cmd: Command) -> None:
        if len(self._streams) >= _MAX_STREAMS:
            raise RTMPProtocolError(f"more than {_MAX_STREAMS} streams on one connection")
        stream_id = self._next_stream_id
        self._next_stream_id += 1
        self._streams[stream_id] = _StreamState.CREATED
        self._events.append(ev.CreateStream(stream_id))
        self._result(cmd.transaction_id, None, float(stream_id))

    def _publish(self, cmd: Command, stream_id: int) -> None:
        state = self._streams.get(stream_id)
        if state is None:
            raise RTMPProtocolError(f"publish on stream {stream_id}, which was never created")
        if any(
            s in (_StreamState.PUBLISH_PENDING, _StreamState.PUBLISHING)
            for s in self._streams.values()
        ):
            raise RTMPProtocolError("publish while another publish is active on this connection")
        name = _string_arg(cmd, 0)
        publish_type = cmd.args[1] if len(cmd.args) > 1 else "live"
        if not isinstance(publish_type, str):
            publish_type = "live"
        key, _, query = name.partition("?")
        self._streams[stream_id] = _StreamState.PUBLISH_PENDING
        self._stream_keys[stream_id] = key
        self._events.append(ev.Publish(key, publish_type, stream_id, query))


def _string_arg(cmd: Command, index: int) -> str:
    if len(cmd.args) <= index or not isinstance(cmd.args[index], str):
        raise RTMPProtocolError(f"{cmd.name} needs a string argument")
    value = cmd.args[index]
    assert isinstance(value, str)
    return value
