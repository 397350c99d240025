"""H.264 bits the ingest needs: SPS (for width/height/profile) and NAL unit framing.

The SPS is a few dozen bytes once per stream, so a simple int-backed bit reader is plenty;
NAL splitting runs per frame and only slices.
"""

from __future__ import annotations

from dataclasses import dataclass

from ._errors import FLVError

__all__ = ["SPSInfo", "annexb", "parse_sps", "split_nal_units"]

NAL_SPS = 7
_HIGH_PROFILES = frozenset((100, 110, 122, 244, 44, 83, 86, 118, 128, 138, 139, 134, 135))
_MAX_MBS = 2048  # 32768 px: far beyond any H.264 level, small enough to refuse garbage


class BitReader:
    """MSB-first bit reader over a whole (small) buffer: SPS and AudioSpecificConfig."""

    __slots__ = ("_bits", "_pos", "_value", "_what")

    def __init__(self, data: bytes, what: str = "SPS") -> None:
        self._value = int.from_bytes(data, "big")
        self._bits = len(data) * 8
        self._pos = 0
        self._what = what

    def u(self, n: int) -> int:
        if self._pos + n > self._bits:
            raise FLVError(f"{self._what} ends early")
        self._pos += n
        return (self._value >> (self._bits - self._pos)) & ((1 << n) - 1)

    def ue(self) -> int:
        zeros = 0
        while self.u(1) == 0:
            zeros += 1
            if zeros > 31:
                raise FLVError("exp-Golomb code longer than 32 bits in SPS")
        return (1 << zeros) - 1 + self.u(zeros)

    def se(self) -> int:
        code = self.ue()
        return (code + 1) // 2 if code & 1 else -(code // 2)


@dataclass(frozen=True, slots=True)
class SPSInfo:
    """What downstream needs from a sequence parameter set: display size, profile, chroma
    format and bit depths (the HLS layer's `H264Config` reads its SPS through this too)."""

    profile_idc: int
    constraint_flags: int
    level_idc: int
    chroma_format_idc: int
    bit_depth_luma: int
    frame_mbs_only: bool
    width: int
    height: int
    bit_depth_chroma: int = 8


def _ue_max(r: BitReader, limit: int, what: str) -> int:
    value = r.ue()
    if value > limit:
        raise FLVError(f"SPS {what} {value} out of range (max {limit})")
    return value


def _skip_scaling_list(r: BitReader, size: int) -> None:
    last, next_ = 8, 8
    for _ in range(size):
        if next_ != 0:
            next_ = (last + r.se() + 256) % 256
        if next_ != 0:
            last = next_


def parse_sps(nal: bytes) -> SPSInfo:
    """Parse an SPS NAL unit (header byte included) far enough for the picture size."""
    if not nal or nal[0] & 0x1F != NAL_SPS:
        raise FLVError("not an SPS NAL unit")
    r = BitReader(nal[1:].replace(b"\x00\x00\x03", b"\x00\x00"))
    profile_idc, constraint_flags, level_idc = r.u(8), r.u(8), r.u(8)
    _ue_max(r, 31, "seq_parameter_set_id")
    chroma_format_idc, separate_colour_plane, bit_depth_luma, bit_depth_chroma = 1, False, 8, 8
    if profile_idc in _HIGH_PROFILES:
        chroma_format_idc = _ue_max(r, 3, "chroma_format_idc")
        if chroma_format_idc == 3:
            separate_colour_plane = r.u(1) == 1
        bit_depth_luma = 8 + _ue_max(r, 6, "bit_depth_luma_minus8")
        bit_depth_chroma = 8 + _ue_max(r, 6, "bit_depth_chroma_minus8")
        r.u(1)  # qpprime_y_zero_transform_bypass_flag
        if r.u(1):  # seq_scaling_matrix_present_flag
            for i in range(8 if chroma_format_idc != 3 else 12):
                if r.u(1):
                    _skip_scaling_list(r, 16 if i < 6 else 64)
    _ue_max(r, 12, "log2_max_frame_num_minus4")
    poc_type = _ue_max(r, 2, "pic_order_cnt_type")
    if poc_type == 0:
        _ue_max(r, 12, "log2_max_pic_order_cnt_lsb_minus4")
    elif poc_type == 1:
        r.u(1)
        r.se()
        r.se()
        for _ in range(_ue_max(r, 255, "num_ref_frames_in_pic_order_cnt_cycle")):
            r.se()
    r.ue()  # max_num_ref_frames
    r.u(1)  # gaps_in_frame_num_value_allowed_flag
    width_mbs = _ue_max(r, _MAX_MBS - 1, "pic_width_in_mbs_minus1") + 1
    height_map_units = _ue_max(r, _MAX_MBS - 1, "pic_height_in_map_units_minus1") + 1
    frame_mbs_only = r.u(1) == 1
    if not frame_mbs_only:
        r.u(1)  # mb_adaptive_frame_field_flag
    r.u(1)  # direct_8x8_inference_flag
    width = width_mbs * 16
    height = height_map_units * 16 * (1 if frame_mbs_only else 2)
    if r.u(1):  # frame_cropping_flag
        left, right, top, bottom = r.ue(), r.ue(), r.ue(), r.ue()
        if separate_colour_plane or chroma_format_idc == 0:
            unit_x, unit_y = 1, 1
        else:
            unit_x = 2 if chroma_format_idc in (1, 2) else 1
            unit_y = 2 if chroma_format_idc == 1 else 1
        unit_y *= 1 if frame_mbs_only else 2
        width -= unit_x * (left + right)
        height -= unit_y * (top + bottom)
        if width <= 0 or height <= 0:
            raise FLVError("SPS cropping leaves no picture")
    return SPSInfo(
        profile_idc,
        constraint_flags,
        level_idc,
        chroma_format_idc,
        bit_depth_luma,
        frame_mbs_only,
        width,
        height,
        bit_depth_chroma,
    )


def split_nal_units(data: bytes, nal_length_size: int = 4) -> tuple[bytes, ...]:
    """Split length-prefixed (AVCC) NAL units; empty ones are skipped."""
    if nal_length_size not in (1, 2, 4):
        raise FLVError(f"invalid NAL length size {nal_length_size}")
    units: list[bytes] = []
    offset, end = 0, len(data)
    while offset < end:
        start = offset + nal_length_size
        if start > end:
            raise FLVError("truncated NAL unit length")
        size = int.from_bytes(data[offset:start], "big")
        offset = start + size
        if offset > end:
            raise FLVError(f"NAL unit of {size} bytes overruns the tag ({end - start} left)")
        if size:
            units.append(data[start:offset])
    return tuple(units)


def annexb(nal_units: tuple[bytes, ...] | list[bytes]) -> bytes:
    """Join NAL units with start codes (MPEG-TS, raw .h264)."""
    return b"\x00\x00\x00\x01" + b"\x00\x00\x00\x01".join(nal_units) if nal_units else b""
