"""FLV audio tag bodies (RTMP audio message payloads): AAC, legacy and Enhanced RTMP."""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import FLVError, FLVUnsupportedCodec
from ._h264 import BitReader

__all__ = [
    "AACConfig",
    "AACFrame",
    "AACSequenceHeader",
    "AudioTag",
    "parse_aac_config",
    "parse_audio",
]

SOUND_FORMAT_AAC = 10
_SOUND_FORMAT_EX_HEADER = 9
_SOUND_FORMATS = {
    0: "pcm", 1: "adpcm", 2: "mp3", 3: "pcm-le", 4: "nellymoser-16k", 5: "nellymoser-8k",
    6: "nellymoser", 7: "g711a", 8: "g711u", 11: "speex", 14: "mp3-8k", 15: "device-specific",
}  # fmt: skip
SAMPLE_RATES = (
    96000,
    88200,
    64000,
    48000,
    44100,
    32000,
    24000,
    22050,
    16000,
    12000,
    11025,
    8000,
    7350,
)
_AOT_SBR, _AOT_PS, _AOT_ESCAPE, _RATE_EXPLICIT = 5, 29, 31, 15


@dataclass(frozen=True, slots=True)
class AACConfig:
    """An AudioSpecificConfig (ISO 14496-3 1.6.2.1). `raw` is decoder extradata as-is.

    With explicit SBR/PS signalling, `object_type` is the core type (usually 2, AAC LC) and
    `sample_rate` the core rate; `sbr` says the decoder output is at twice that rate.
    """

    object_type: int
    sample_rate_index: int
    sample_rate: int
    channel_config: int
    sbr: bool
    raw: bytes

    @property
    def codec(self) -> str:
        """RFC 6381 codec string for HLS CODECS, e.g. `mp4a.40.2`."""
        return f"mp4a.40.{self.object_type}"


@dataclass(frozen=True, slots=True)
class AACSequenceHeader:
    config: AACConfig


@dataclass(frozen=True, slots=True)
class AACFrame:
    """One raw AAC access unit (no ADTS header)."""

    data: bytes


AudioTag = AACSequenceHeader | AACFrame


def _object_type(bits: BitReader) -> int:
    aot = bits.u(5)
    return 32 + bits.u(6) if aot == _AOT_ESCAPE else aot


def _sample_rate(bits: BitReader) -> tuple[int, int]:
    index = bits.u(4)
    if index == _RATE_EXPLICIT:
        return index, bits.u(24)
    if index >= len(SAMPLE_RATES):
        raise FLVError(f"reserved AAC sampling frequency index {index}")
    return index, SAMPLE_RATES[index]


def parse_aac_config(data: bytes) -> AACConfig:
    bits = BitReader(data, "AudioSpecificConfig")
    object_type = _object_type(bits)
    if object_type == 0:
        raise FLVError("AAC object type 0 (null)")
    rate_index, rate = _sample_rate(bits)
    channel_config = bits.u(4)
    sbr = object_type in (_AOT_SBR, _AOT_PS)
    if sbr:
        _sample_rate(bits)  # extension (output) rate
        object_type = _object_type(bits)
    if rate == 0:
        raise FLVError("AAC sample rate 0")
    return AACConfig(object_type, rate_index, rate, channel_config, sbr, data)


def parse_audio(payload: bytes) -> AudioTag:
    """Parse an audio tag body; anything but AAC raises `FLVUnsupportedCodec`."""
    if len(payload) < 2:
        raise FLVError(f"audio tag of {len(payload)} bytes, need at least 2")
    sound_format = payload[0] >> 4
    if sound_format == _SOUND_FORMAT_EX_HEADER:  # Enhanced RTMP: packet type + FourCC
        if len(payload) < 5:
            raise FLVError("truncated Enhanced RTMP audio header")
        fourcc = payload[1:5].decode("latin-1")
        if fourcc != "mp4a":
            raise FLVUnsupportedCodec(fourcc)
        packet_type, body = payload[0] & 0x0F, payload[5:]
    elif sound_format == SOUND_FORMAT_AAC:
        packet_type, body = payload[1], payload[2:]
    else:
        raise FLVUnsupportedCodec(_SOUND_FORMATS.get(sound_format, f"sound format {sound_format}"))
    if packet_type == 0:
        return AACSequenceHeader(parse_aac_config(body))
    if packet_type == 1:
        return AACFrame(body)
    raise FLVError(f"unknown AAC packet type {packet_type}")
