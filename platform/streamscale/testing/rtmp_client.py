"""A sans-I/O RTMP *publisher* and FLV payload builders, for tests and benches.

The mirror image of `protocols.rtmp.ServerConnection`: it produces the byte stream ffmpeg or
OBS would send (including header-compressed chunks on several chunk streams), so tests can
script whole publish sessions without a network, and benches can publish synthetic streams.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from typing import Literal

from streamscale.protocols.rtmp import (
    NEED_DATA,
    AMF0Value,
    ChunkReader,
    ChunkWriter,
    ECMAArray,
    MessageType,
    RTMPProtocolError,
    encode_amf0,
)
from streamscale.protocols.rtmp._amf0 import decode as _decode_amf0
from streamscale.protocols.rtmp._events import _Sentinel
from streamscale.protocols.rtmp._handshake import HANDSHAKE_SIZE, RTMP_VERSION

__all__ = [
    "ClientConnection",
    "ServerCommand",
    "ServerControl",
    "aac_audio_specific_config",
    "aac_frame",
    "aac_sequence_header",
    "avc_decoder_config",
    "avc_end_of_sequence",
    "avc_sequence_header",
    "avc_video",
    "build_sps",
]

CSID_CONTROL, CSID_COMMAND, CSID_AUDIO, CSID_DATA, CSID_VIDEO = 2, 3, 4, 5, 6


@dataclass(frozen=True, slots=True)
class ServerCommand:
    """A command from the server (`_result`, `_error`, `onStatus`, ...)."""

    name: str
    transaction_id: float
    command_object: AMF0Value = field(hash=False)
    args: tuple[AMF0Value, ...] = field(hash=False)
    stream_id: int

    @property
    def status_code(self) -> str | None:
        info = self.args[0] if self.args else None
        code = info.get("code") if isinstance(info, dict) else None
        return code if isinstance(code, str) else None


@dataclass(frozen=True, slots=True)
class ServerControl:
    """Any non-command message from the server (window ack size, acks, user control...)."""

    type_id: int
    payload: bytes


class ClientConnection:
    """Publisher side of one RTMP connection: methods return the bytes to send."""

    def __init__(self, *, complex_handshake: bool = False, compress: bool = True) -> None:
        self._reader = ChunkReader()
        self._writer = ChunkWriter()
        self._compress = compress
        self._buf = bytearray()
        self._out = bytearray()
        self._handshake_done = False
        self._next_transaction_id = 1.0
        version = b"\x09\x00\x7c\x02" if complex_handshake else b"\x00\x00\x00\x00"
        self._c1 = b"\x00\x00\x00\x00" + version + os.urandom(HANDSHAKE_SIZE - 8)

    def initiate(self) -> bytes:
        """C0 + C1."""
        return bytes((RTMP_VERSION,)) + self._c1

    def receive_data(self, data: bytes) -> None:
        self._buf += data

    def next_event(self) -> ServerCommand | ServerControl | Literal[_Sentinel.NEED_DATA]:
        if not self._handshake_done:
            if len(self._buf) < 1 + 2 * HANDSHAKE_SIZE:
                return NEED_DATA
            if self._buf[0] != RTMP_VERSION:
                raise RTMPProtocolError(f"server answered RTMP version {self._buf[0]}")
            s1 = bytes(self._buf[1 : 1 + HANDSHAKE_SIZE])
            del self._buf[: 1 + 2 * HANDSHAKE_SIZE]
            self._out += s1  # C2 echoes S1
            self._handshake_done = True
        msg = self._reader.read_message(self._buf)
        if msg is None:
            return NEED_DATA
        if msg.type_id == MessageType.COMMAND_AMF0:
            values = _decode_amf0(msg.payload)
            name, tid = values[0], values[1]
            if not isinstance(name, str) or not isinstance(tid, float):
                raise RTMPProtocolError("malformed command from server")
            obj = values[2] if len(values) > 2 else None
            return ServerCommand(name, tid, obj, tuple(values[3:]), msg.stream_id)
        return ServerControl(msg.type_id, msg.payload)

    def data_to_send(self) -> bytes:
        out = bytes(self._out)
        self._out.clear()
        return out

    # -- raw sending ----------------------------------------------------------------------

    def message(
        self, csid: int, type_id: int, stream_id: int, timestamp_ms: int, payload: bytes
    ) -> bytes:
        self._out += self._writer.write(
            csid, type_id, stream_id, timestamp_ms, payload, compress=self._compress
        )
        return self.data_to_send()

    def command(
        self,
        name: str,
        command_object: AMF0Value,
        *args: AMF0Value,
        stream_id: int = 0,
        transaction_id: float | None = None,
    ) -> bytes:
        if transaction_id is None:
            transaction_id = self._next_transaction_id
            self._next_transaction_id += 1
        payload = encode_amf0(name, transaction_id, command_object, *args)
        csid = CSID_COMMAND if stream_id == 0 else CSID_DATA
        return self.message(csid, MessageType.COMMAND_AMF0, stream_id, 0, payload)

    def set_chunk_size(self, size: int) -> bytes:
        out = self.message(CSID_CONTROL, MessageType.SET_CHUNK_SIZE, 0, 0, struct.pack(">I", size))
        self._writer.chunk_size = size
        return out

    # -- the publish sequence ffmpeg and OBS use ------------------------------------------

    def connect(self, app: str, tc_url: str, **properties: AMF0Value) -> bytes:
        obj: dict[str, AMF0Value] = {
            "app": app,
            "type": "nonprivate",
            "flashVer": "FMLE/3.0 (compatible; streamscale-test)",
            "tcUrl": tc_url,
        }
        obj.update(properties)
        return self.command("connect", obj)

    def release_stream(self, key: str) -> bytes:
        return self.command("releaseStream", None, key)

    def fc_publish(self, key: str) -> bytes:
        return self.command("FCPublish", None, key)

    def create_stream(self) -> bytes:
        return self.command("createStream", None)

    def publish(self, stream_id: int, key: str, publish_type: str = "live") -> bytes:
        return self.command(
            "publish", None, key, publish_type, stream_id=stream_id, transaction_id=0.0
        )

    def metadata(self, stream_id: int, properties: dict[str, AMF0Value]) -> bytes:
        payload = encode_amf0("@setDataFrame", "onMetaData", ECMAArray(properties))
        return self.message(CSID_DATA, MessageType.DATA_AMF0, stream_id, 0, payload)

    def video(self, stream_id: int, timestamp_ms: int, payload: bytes) -> bytes:
        return self.message(CSID_VIDEO, MessageType.VIDEO, stream_id, timestamp_ms, payload)

    def audio(self, stream_id: int, timestamp_ms: int, payload: bytes) -> bytes:
        return self.message(CSID_AUDIO, MessageType.AUDIO, stream_id, timestamp_ms, payload)

    def fc_unpublish(self, key: str) -> bytes:
        return self.command("FCUnpublish", None, key)

    def delete_stream(self, stream_id: int) -> bytes:
        return self.command("deleteStream", None, float(stream_id))


# -- FLV tag bodies -------------------------------------------------------------------------


def avc_decoder_config(sps: list[bytes], pps: list[bytes], nal_length_size: int = 4) -> bytes:
    """An AVCDecoderConfigurationRecord (the avcC box body)."""
    first = sps[0]
    out = bytearray(
        (1, first[1], first[2], first[3], 0xFC | (nal_length_size - 1), 0xE0 | len(sps))
    )
    for nal in sps:
        out += struct.pack(">H", len(nal)) + nal
    out.append(len(pps))
    for nal in pps:
        out += struct.pack(">H", len(nal)) + nal
    return bytes(out)


def avc_sequence_header(record: bytes) -> bytes:
    return b"\x17\x00\x00\x00\x00" + record


def avc_video(
    nal_units: list[bytes],
    *,
    keyframe: bool,
    composition_time_ms: int = 0,
    nal_length_size: int = 4,
) -> bytes:
    head = bytes(((0x10 if keyframe else 0x20) | 7, 1))
    cts = (composition_time_ms & 0xFFFFFF).to_bytes(3, "big")
    body = b"".join(len(n).to_bytes(nal_length_size, "big") + n for n in nal_units)
    return head + cts + body


def avc_end_of_sequence() -> bytes:
    return b"\x17\x02\x00\x00\x00"


def aac_audio_specific_config(
    object_type: int = 2, sample_rate_index: int = 4, channels: int = 2
) -> bytes:
    bits = (object_type << 11) | (sample_rate_index << 7) | (channels << 3)
    return bits.to_bytes(2, "big")


def aac_sequence_header(asc: bytes) -> bytes:
    return b"\xaf\x00" + asc


def aac_frame(data: bytes) -> bytes:
    return b"\xaf\x01" + data


class _BitWriter:
    def __init__(self) -> None:
        self.value = 0
        self.bits = 0

    def u(self, n: int, v: int) -> None:
        self.value = (self.value << n) | (v & ((1 << n) - 1))
        self.bits += n

    def ue(self, v: int) -> None:
        code = v + 1
        self.u(2 * code.bit_length() - 1, code)

    def se(self, v: int) -> None:
        self.ue(2 * v - 1 if v > 0 else -2 * v)

    def rbsp(self) -> bytes:
        self.u(1, 1)
        self.u((-self.bits) % 8, 0)
        return self.value.to_bytes(self.bits // 8, "big")


def _emulation_prevention(rbsp: bytes) -> bytes:
    out = bytearray()
    zeros = 0
    for byte in rbsp:
        if zeros >= 2 and byte <= 3:
            out.append(3)
            zeros = 0
        out.append(byte)
        zeros = zeros + 1 if byte == 0 else 0
    return bytes(out)


def build_sps(
    width: int,
    height: int,
    *,
    profile_idc: int = 66,
    level_idc: int = 30,
    chroma_format_idc: int = 1,
    frame_mbs_only: bool = True,
    scaling_lists: bool = False,
    poc_type: int = 0,
) -> bytes:
    """An H.264 SPS NAL unit (with header) describing width x height, for parser tests."""
    w = _BitWriter()
    w.u(8, profile_idc)
    w.u(8, 0)
    w.u(8, level_idc)
    w.ue(0)
    if profile_idc in (100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135):
        w.ue(chroma_format_idc)
        if chroma_format_idc == 3:
            w.u(1, 0)
        w.ue(0)
        w.ue(0)
        w.u(1, 0)
        w.u(1, 1 if scaling_lists else 0)
        if scaling_lists:
            for i in range(8 if chroma_format_idc != 3 else 12):
                present = i % 2 == 0
                w.u(1, 1 if present else 0)
                if present:
                    for _ in range(16 if i < 6 else 64):
                        w.se(1)
    else:
        chroma_format_idc = 1
    w.ue(0)
    w.ue(poc_type)
    if poc_type == 0:
        w.ue(0)
    elif poc_type == 1:
        w.u(1, 0)
        w.se(-1)
        w.se(2)
        w.ue(2)
        w.se(3)
        w.se(-4)
    w.ue(1)
    w.u(1, 0)
    field_factor = 1 if frame_mbs_only else 2
    mbs_w = -(-width // 16)
    map_h = -(-height // (16 * field_factor))
    w.ue(mbs_w - 1)
    w.ue(map_h - 1)
    w.u(1, 1 if frame_mbs_only else 0)
    if not frame_mbs_only:
        w.u(1, 0)
    w.u(1, 1)
    sub_w = 2 if chroma_format_idc in (1, 2) else 1
    sub_h = 2 if chroma_format_idc == 1 else 1
    crop_x, crop_y = mbs_w * 16 - width, map_h * 16 * field_factor - height
    unit_y = sub_h * field_factor
    if crop_x % sub_w or crop_y % unit_y:
        raise ValueError("size cannot be expressed with this chroma format's crop units")
    if crop_x or crop_y:
        w.u(1, 1)
        w.ue(0)
        w.ue(crop_x // sub_w)
        w.ue(0)
        w.ue(crop_y // unit_y)
    else:
        w.u(1, 0)
    w.u(1, 0)  # no VUI
    return b"\x67" + _emulation_prevention(w.rbsp())
