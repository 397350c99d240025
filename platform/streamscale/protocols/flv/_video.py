"""FLV video tag bodies (RTMP video message payloads): H.264/AVC, legacy and Enhanced RTMP.

Other codecs are recognised just far enough to refuse them with `FLVUnsupportedCodec`.
"""

from __future__ import annotations

import enum
import struct
from dataclasses import dataclass

from ._errors import FLVError, FLVUnsupportedCodec
from ._h264 import SPSInfo, parse_sps, split_nal_units

__all__ = [
    "AVCConfig",
    "AVCEndOfSequence",
    "AVCFrame",
    "AVCSequenceHeader",
    "FrameType",
    "VideoInfo",
    "VideoTag",
    "parse_avc_config",
    "parse_video",
]

_CODEC_AVC = 7
_LEGACY_CODECS = {2: "h263", 3: "screen", 4: "vp6", 5: "vp6a", 6: "screen2", 12: "hevc", 13: "av1"}
_EX_HEADER = 0x80
_EX_SEQUENCE_START, _EX_CODED_FRAMES, _EX_SEQUENCE_END, _EX_CODED_FRAMES_X = 0, 1, 2, 3
_U16 = struct.Struct(">H")


class FrameType(enum.IntEnum):
    KEY = 1
    INTER = 2
    DISPOSABLE_INTER = 3
    GENERATED_KEY = 4
    COMMAND = 5


@dataclass(frozen=True, slots=True)
class AVCConfig:
    """An AVCDecoderConfigurationRecord plus what its first SPS says.

    `record` is the raw avcC body: decoder extradata and the fMP4 avcC box as-is.
    """

    profile_idc: int
    profile_compatibility: int
    level_idc: int
    nal_length_size: int
    sps: tuple[bytes, ...]
    pps: tuple[bytes, ...]
    sps_info: SPSInfo
    record: bytes

    @property
    def width(self) -> int:
        return self.sps_info.width

    @property
    def height(self) -> int:
        return self.sps_info.height

    @property
    def codec(self) -> str:
        """RFC 6381 codec string for HLS CODECS, e.g. `avc1.64001f`."""
        return f"avc1.{self.profile_idc:02x}{self.profile_compatibility:02x}{self.level_idc:02x}"


@dataclass(frozen=True, slots=True)
class AVCSequenceHeader:
    config: AVCConfig


@dataclass(frozen=True, slots=True)
class AVCFrame:
    """One access unit. `data` is the AVCC (length-prefixed) payload as sent."""

    frame_type: FrameType
    composition_time_ms: int
    data: bytes
    nal_units: tuple[bytes, ...]

    @property
    def keyframe(self) -> bool:
        return self.frame_type in (FrameType.KEY, FrameType.GENERATED_KEY)


@dataclass(frozen=True, slots=True)
class AVCEndOfSequence:
    pass


@dataclass(frozen=True, slots=True)
class VideoInfo:
    """A tag with no picture (command frame, Enhanced RTMP metadata): safe to ignore."""

    frame_type: int
    packet_type: int


VideoTag = AVCSequenceHeader | AVCFrame | AVCEndOfSequence | VideoInfo


def parse_avc_config(record: bytes) -> AVCConfig:
    """Parse an AVCDecoderConfigurationRecord (ISO 14496-15 5.2.4.1)."""
    if len(record) < 7:
        raise FLVError(f"AVC decoder configuration record too short ({len(record)} bytes)")
    if record[0] != 1:
        raise FLVError(f"unknown AVC configuration version {record[0]}")
    nal_length_size = (record[4] & 0x03) + 1
    if nal_length_size == 3:
        raise FLVError("invalid NAL length size 3")
    offset = 5
    sets: list[tuple[bytes, ...]] = []
    for what, mask in (("SPS", 0x1F), ("PPS", 0xFF)):
        if offset >= len(record):
            raise FLVError(f"AVC configuration record ends before the {what} count")
        count = record[offset] & mask
        offset += 1
        units = []
        for _ in range(count):
            if offset + 2 > len(record):
                raise FLVError(f"truncated {what} length in AVC configuration record")
            (size,) = _U16.unpack_from(record, offset)
            offset += 2
            if offset + size > len(record) or size == 0:
                raise FLVError(f"{what} of {size} bytes overruns the AVC configuration record")
            units.append(record[offset : offset + size])
            offset += size
        sets.append(tuple(units))
    sps, pps = sets
    if not sps:
        raise FLVError("AVC configuration record without an SPS")
    return AVCConfig(
        record[1], record[2], record[3], nal_length_size, sps, pps, parse_sps(sps[0]), record
    )


def _avc_packet(
    frame_type: int, packet_type: int, cts: int, body: bytes, nal_length_size: int
) -> VideoTag:
    if packet_type == 0:
        return AVCSequenceHeader(parse_avc_config(body))
    if packet_type == 1:
        if not FrameType.KEY <= frame_type <= FrameType.GENERATED_KEY:
            raise FLVError(f"invalid video frame type {frame_type}")
        return AVCFrame(FrameType(frame_type), cts, body, split_nal_units(body, nal_length_size))
    if packet_type == 2:
        return AVCEndOfSequence()
    raise FLVError(f"unknown AVC packet type {packet_type}")


def _si24(data: bytes, offset: int) -> int:
    value = int.from_bytes(data[offset : offset + 3], "big")
    return value - 0x1000000 if value & 0x800000 else value


def parse_video(payload: bytes, *, nal_length_size: int = 4) -> VideoTag:
    """Parse a video tag body. Pass the `nal_length_size` from the stream's AVCConfig."""
    if not payload:
        raise FLVError("empty video tag")
    head = payload[0]
    frame_type = (head >> 4) & 0x07
    if head & _EX_HEADER:
        if len(payload) < 5:
            raise FLVError("truncated Enhanced RTMP video header")
        packet_type = head & 0x0F
        fourcc = payload[1:5].decode("latin-1")
        if frame_type == FrameType.COMMAND or packet_type > _EX_CODED_FRAMES_X:
            return VideoInfo(frame_type, packet_type)
        if fourcc != "avc1":
            raise FLVUnsupportedCodec(fourcc)
        if packet_type == _EX_CODED_FRAMES:
            if len(payload) < 8:
                raise FLVError("truncated Enhanced RTMP composition time")
            return _avc_packet(frame_type, 1, _si24(payload, 5), payload[8:], nal_length_size)
        if packet_type == _EX_CODED_FRAMES_X:
            return _avc_packet(frame_type, 1, 0, payload[5:], nal_length_size)
        avc_type = 0 if packet_type == _EX_SEQUENCE_START else 2
        return _avc_packet(frame_type, avc_type, 0, payload[5:], nal_length_size)
    codec_id = head & 0x0F
    if frame_type == FrameType.COMMAND:
        return VideoInfo(frame_type, payload[1] if len(payload) > 1 else 0)
    if codec_id != _CODEC_AVC:
        raise FLVUnsupportedCodec(_LEGACY_CODECS.get(codec_id, f"video codec id {codec_id}"))
    if len(payload) < 5:
        raise FLVError(f"AVC video tag of {len(payload)} bytes, need at least 5")
    return _avc_packet(frame_type, payload[1], _si24(payload, 2), payload[5:], nal_length_size)
