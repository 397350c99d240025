"""SPS parsing: sizes with and without cropping, high-profile chroma/scaling-list branches,
interlaced streams, emulation prevention, and x264's real SPS."""

from __future__ import annotations

import pytest

from streamscale.protocols.flv import FLVError, parse_sps
from streamscale.testing.rtmp_client import build_sps

# Real SPSs from x264 (ffmpeg -c:v libx264, VUI included): yuv420p (High) and, what ffmpeg
# picks for an RGB lavfi source, yuv444p (High 4:4:4 Predictive, chroma_format_idc 3).
X264 = [
    ("6764000dacd94141fb0110000003001000000303c0f1429960", 100, 1, 320, 240),
    ("67640028acd940780227e5c044000003000400000300f03c60c658", 100, 1, 1920, 1080),
    ("6764001facd940d83de6f0110000030001000003003c0f183196", 100, 1, 854, 480),
    ("67f4000d919b28283f6022000003000200000300781e28532c", 244, 3, 320, 240),
    ("67f40028919b280f0044fc4e0220000003002000000781e30632c0", 244, 3, 1920, 1080),
    ("67f4001f919b281b07bc5f8088000003000800000301e078c18cb0", 244, 3, 854, 480),
]


@pytest.mark.parametrize(
    ("width", "height", "kwargs"),
    [
        (320, 240, {}),
        (1920, 1080, {}),
        (1280, 720, {"profile_idc": 77}),
        (1920, 1080, {"profile_idc": 100}),
        (1920, 1080, {"profile_idc": 100, "scaling_lists": True}),
        (1280, 720, {"profile_idc": 244, "chroma_format_idc": 3, "scaling_lists": True}),
        (640, 360, {"profile_idc": 122, "chroma_format_idc": 2}),
        (640, 358, {"profile_idc": 100, "chroma_format_idc": 0}),
        (1920, 1080, {"frame_mbs_only": False}),
        (720, 576, {"frame_mbs_only": False, "profile_idc": 100}),
        (176, 144, {"poc_type": 1}),
        (176, 144, {"poc_type": 2}),
        (16, 16, {}),
        (3840, 2160, {"profile_idc": 100, "level_idc": 51}),
    ],
)
def test_sizes(width: int, height: int, kwargs: dict[str, int]) -> None:
    info = parse_sps(build_sps(width, height, **kwargs))  # type: ignore[arg-type]
    assert (info.width, info.height) == (width, height)
    assert info.profile_idc == kwargs.get("profile_idc", 66)
    assert info.frame_mbs_only == kwargs.get("frame_mbs_only", True)


@pytest.mark.parametrize(("hex_sps", "profile", "chroma", "width", "height"), X264)
def test_real_x264_sps(hex_sps: str, profile: int, chroma: int, width: int, height: int) -> None:
    info = parse_sps(bytes.fromhex(hex_sps))
    assert (info.profile_idc, info.chroma_format_idc) == (profile, chroma)
    assert (info.width, info.height) == (width, height)
    assert info.bit_depth_luma == 8


def test_emulation_prevention_bytes_are_removed() -> None:
    sps = bytes.fromhex(X264[0][0])  # the VUI timing fields hold 00 00 03 sequences
    assert b"\x00\x00\x03" in sps
    assert parse_sps(sps).height == 240


@pytest.mark.parametrize(
    ("nal", "message"),
    [
        (b"", "not an SPS"),
        (b"\x68\x00", "not an SPS"),
        (b"\x67\x42\x00", "ends early"),
        (b"\x67\x42\x00\x1e\x00\x00\x00\x00\x00", "exp-Golomb"),
        (b"\x67\x64\x00\x1e\x88", "chroma_format_idc"),
    ],
)
def test_malformed(nal: bytes, message: str) -> None:
    with pytest.raises(FLVError, match=message):
        parse_sps(nal)


@pytest.mark.parametrize(("hex_sps", "profile", "chroma", "depth"), [
    ("676e000da6cd94141fb0110000030001000003003c0f142996", 110, 1, 10),  # x264 yuv420p10le
    ("677a000db6cd94141fb0110000030001000003003c0f142996", 122, 2, 10),  # x264 yuv422p10le
    (X264[0][0], 100, 1, 8),
])
def test_bit_depths_of_real_x264_sps(hex_sps: str, profile: int, chroma: int, depth: int) -> None:
    """What decides whether browsers can decode the stream (High 10 and 4:2:2 they cannot)."""
    info = parse_sps(bytes.fromhex(hex_sps))
    assert (info.profile_idc, info.chroma_format_idc) == (profile, chroma)
    assert (info.bit_depth_luma, info.bit_depth_chroma) == (depth, depth)
    assert (info.width, info.height) == (320, 240)
