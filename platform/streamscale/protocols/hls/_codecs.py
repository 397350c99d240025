"""Codec configuration for the muxer: H.264 SPS/PPS and the AAC AudioSpecificConfig.

The muxer needs a handful of facts the encoder already knows (resolution, profile and
level for the avc1 CODECS string, sample rate and frame length for AAC), but carrying
them in from outside invites mismatches, so they are read from the bitstream itself.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

from ..flv import SAMPLE_RATES, FLVError, parse_sps
from ._errors import HLSError

NAL_SPS = 7
NAL_PPS = 8
_NAL_AUD = 9
PROFILE_NAMES = {
    66: "Baseline", 77: "Main", 88: "Extended", 100: "High", 110: "High 10",
    122: "High 4:2:2", 244: "High 4:4:4 Predictive", 44: "CAVLC 4:4:4 Intra",
    83: "Scalable Baseline", 86: "Scalable High", 118: "Multiview High", 128: "Stereo High",
    134: "MFC High", 135: "MFC Depth High", 138: "Multiview Depth High",
    139: "Enhanced Multiview Depth High",
}  # fmt: skip
# What every browser's MSE decodes (Chrome, Firefox, Safari; hardware decoders too):
# Baseline, Main and High at 4:2:0, 8 bits. Anything else may fail in some of them.
BROWSER_PROFILES = frozenset({66, 77, 100})
_CHROMA_NAMES = {0: "4:0:0", 1: "4:2:0", 2: "4:2:2", 3: "4:4:4"}


class _Bits:
    """MSB-first bit reader for the AudioSpecificConfig (the SPS goes to `flv.parse_sps`)."""

    __slots__ = ("_data", "_pos")

    def __init__(self, data: bytes) -> None:
        self._data = data
        self._pos = 0

    def u(self, n: int) -> int:
        value = 0
        for _ in range(n):
            byte_i = self._pos >> 3
            if byte_i >= len(self._data):
                raise HLSError("truncated codec configuration")
            value = (value << 1) | ((self._data[byte_i] >> (7 - (self._pos & 7))) & 1)
            self._pos += 1
        return value


def split_annexb(data: bytes) -> list[bytes]:
    """NAL units of an Annex-B byte stream (start codes 00 00 01 or 00 00 00 01)."""
    nals: list[bytes] = []
    start = -1
    i = 0
    n = len(data)
    while True:
        j = data.find(b"\x00\x00\x01", i)
        if j < 0:
            break
        if start >= 0:
            end = j - 1 if j > 0 and data[j - 1] == 0 else j
            if end > start:
                nals.append(data[start:end])
        start = j + 3
        i = start
    if start < 0:
        raise HLSError("no Annex-B start code in H.264 data")
    if start < n:
        nals.append(data[start:])
    return nals


def avcc_from_nals(nals: list[bytes]) -> bytes:
    """Join NAL units as 4-byte length-prefixed (AVCC) sample data."""
    return b"".join(struct.pack(">I", len(nal)) + nal for nal in nals)


def annexb_to_avcc(data: bytes) -> bytes:
    """Convert one Annex-B access unit to an AVCC sample, dropping SPS/PPS/AUD.

    Parameter sets live in the init segment (avcC); in-band copies would only waste
    bytes in every keyframe part.
    """
    keep = [nal for nal in split_annexb(data) if nal[0] & 0x1F not in (NAL_SPS, NAL_PPS, _NAL_AUD)]
    return avcc_from_nals(keep)


@dataclass(frozen=True, slots=True)
class H264Config:
    """What the init segment and the master playlist need from the SPS and PPS."""

    sps: bytes
    pps: bytes
    width: int
    height: int
    profile_idc: int
    constraint_flags: int
    level_idc: int
    chroma_format_idc: int = 1
    bit_depth_luma: int = 8
    bit_depth_chroma: int = 8

    @property
    def codec(self) -> str:
        """RFC 6381 string, avc1.PPCCLL from the three SPS bytes after the NAL header."""
        return f"avc1.{self.profile_idc:02x}{self.constraint_flags:02x}{self.level_idc:02x}"

    @property
    def profile_name(self) -> str:
        return PROFILE_NAMES.get(self.profile_idc, f"profile_idc {self.profile_idc}")

    @property
    def description(self) -> str:
        """For logs and refusals, e.g. `High 4:4:4 Predictive, 4:4:4, 8-bit, 320x240`."""
        chroma = _CHROMA_NAMES.get(self.chroma_format_idc, str(self.chroma_format_idc))
        depth = max(self.bit_depth_luma, self.bit_depth_chroma)
        return f"{self.profile_name}, {chroma}, {depth}-bit, {self.width}x{self.height}"

    def browser_problem(self) -> str | None:
        """Why a browser may fail to decode this stream, or None when every one can.

        Browsers take Baseline, Main and High with 4:2:0 chroma at 8 bits (Chrome and
        Firefox refuse High 4:4:4 and High 10 in MSE; Safari's hardware path too).
        """
        problems = []
        if self.profile_idc not in BROWSER_PROFILES:
            known = self.profile_idc in PROFILE_NAMES
            problems.append(f"profile {self.profile_name}" if known else self.profile_name)
        if self.chroma_format_idc != 1:
            chroma = _CHROMA_NAMES.get(self.chroma_format_idc, str(self.chroma_format_idc))
            problems.append(f"chroma {chroma}")
        if max(self.bit_depth_luma, self.bit_depth_chroma) > 8:
            problems.append(f"{max(self.bit_depth_luma, self.bit_depth_chroma)}-bit")
        if not problems:
            return None
        return f"{', '.join(problems)} (browsers decode Baseline/Main/High 4:2:0 8-bit)"

    @classmethod
    def from_sps_pps(cls, sps: bytes, pps: bytes) -> H264Config:
        if len(sps) < 4 or sps[0] & 0x1F != NAL_SPS:
            raise HLSError("not an H.264 SPS NAL unit")
        if not pps or pps[0] & 0x1F != NAL_PPS:
            raise HLSError("not an H.264 PPS NAL unit")
        try:
            info = parse_sps(bytes(sps))  # the one SPS parser, in the FLV layer
        except FLVError as exc:
            raise HLSError(f"bad SPS: {exc}") from exc
        return cls(
            sps=bytes(sps),
            pps=bytes(pps),
            width=info.width,
            height=info.height,
            profile_idc=info.profile_idc,
            constraint_flags=info.constraint_flags,
            level_idc=info.level_idc,
            chroma_format_idc=info.chroma_format_idc,
            bit_depth_luma=info.bit_depth_luma,
            bit_depth_chroma=info.bit_depth_chroma,
        )

    @classmethod
    def from_extradata(cls, extradata: bytes) -> H264Config:
        """From an encoder's extradata: an avcC record or Annex-B SPS+PPS."""
        if extradata[:1] == b"\x01":
            return cls._from_avcc_record(extradata)
        sps = pps = b""
        for nal in split_annexb(extradata):
            kind = nal[0] & 0x1F
            if kind == NAL_SPS and not sps:
                sps = nal
            elif kind == NAL_PPS and not pps:
                pps = nal
        if not sps or not pps:
            raise HLSError("extradata lacks an SPS or a PPS")
        return cls.from_sps_pps(sps, pps)

    @classmethod
    def _from_avcc_record(cls, record: bytes) -> H264Config:
        try:
            pos = 5
            n_sps = record[pos] & 0x1F
            pos += 1
            sets: list[list[bytes]] = [[], []]
            for kind, count in ((0, n_sps), (1, -1)):
                if count < 0:
                    count = record[pos]
                    pos += 1
                for _ in range(count):
                    (size,) = struct.unpack_from(">H", record, pos)
                    sets[kind].append(record[pos + 2 : pos + 2 + size])
                    pos += 2 + size
        except (IndexError, struct.error) as exc:
            raise HLSError("truncated avcC record") from exc
        if not sets[0] or not sets[1]:
            raise HLSError("avcC record lacks an SPS or a PPS")
        return cls.from_sps_pps(sets[0][0], sets[1][0])

    def avcc_record(self) -> bytes:
        """AVCDecoderConfigurationRecord (ISO/IEC 14496-15 5.3.3.1) for the avcC box."""
        out = (
            bytes([1, self.profile_idc, self.constraint_flags, self.level_idc, 0xFF, 0xE1])
            + struct.pack(">H", len(self.sps))
            + self.sps
        )
        out += b"\x01" + struct.pack(">H", len(self.pps)) + self.pps
        if self.profile_idc in (100, 110, 122, 144):
            out += bytes(
                [
                    0xFC | self.chroma_format_idc,
                    0xF8 | (self.bit_depth_luma - 8),
                    0xF8 | (self.bit_depth_chroma - 8),
                    0,
                ]
            )
        return out


@dataclass(frozen=True, slots=True)
class AACConfig:
    """An AudioSpecificConfig (ISO/IEC 14496-3 1.6.2.1) and what follows from it."""

    asc: bytes
    object_type: int
    sample_rate: int
    channels: int
    frame_samples: int = 1024

    @property
    def codec(self) -> str:
        return f"mp4a.40.{self.object_type}"

    @classmethod
    def from_asc(cls, asc: bytes) -> AACConfig:
        bits = _Bits(bytes(asc))
        aot = bits.u(5)
        if aot == 31:
            aot = 32 + bits.u(6)
        rate_index = bits.u(4)
        rate = (
            bits.u(24)
            if rate_index == 15
            else (SAMPLE_RATES[rate_index] if rate_index < len(SAMPLE_RATES) else 0)
        )
        channels = bits.u(4)
        if aot == 0 or rate == 0:
            raise HLSError("bad AudioSpecificConfig (object type or sample rate)")
        frame_samples = 1024
        if aot in (1, 2, 3, 4, 6, 7, 17, 19, 20, 21, 22, 23):
            frame_samples = 960 if bits.u(1) else 1024  # GASpecificConfig frameLengthFlag
        return cls(
            asc=bytes(asc),
            object_type=aot,
            sample_rate=rate,
            channels=channels or 2,
            frame_samples=frame_samples,
        )
