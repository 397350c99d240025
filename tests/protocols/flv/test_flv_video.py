"""Video tag bodies: AVC sequence header, NALUs, end of sequence, Enhanced RTMP, refusals."""

from __future__ import annotations

import pytest

from streamscale.protocols.flv import (
    AVCEndOfSequence,
    AVCFrame,
    AVCSequenceHeader,
    FLVError,
    FLVUnsupportedCodec,
    FrameType,
    VideoInfo,
    annexb,
    parse_avc_config,
    parse_video,
)
from streamscale.testing.rtmp_client import (
    avc_decoder_config,
    avc_end_of_sequence,
    avc_sequence_header,
    avc_video,
    build_sps,
)

SPS = build_sps(1280, 720, profile_idc=100, level_idc=31)
PPS = b"\x68\xee\x3c\x80"
RECORD = avc_decoder_config([SPS], [PPS])


def test_sequence_header() -> None:
    tag = parse_video(avc_sequence_header(RECORD))
    assert isinstance(tag, AVCSequenceHeader)
    config = tag.config
    assert (config.width, config.height) == (1280, 720)
    assert (config.sps, config.pps, config.nal_length_size) == ((SPS,), (PPS,), 4)
    assert (config.profile_idc, config.level_idc, config.codec) == (100, 31, "avc1.64001f")
    assert config.record == RECORD


@pytest.mark.parametrize("nal_length_size", [1, 2, 4])
@pytest.mark.parametrize(
    ("keyframe", "cts", "frame_type"), [(True, 0, FrameType.KEY), (False, -33, FrameType.INTER)]
)
def test_nal_units(nal_length_size: int, keyframe: bool, cts: int, frame_type: FrameType) -> None:
    nals = [b"\x09\xf0", b"\x65" + b"\x88" * 200, b"\x65\x00"]
    payload = avc_video(
        nals, keyframe=keyframe, composition_time_ms=cts, nal_length_size=nal_length_size
    )
    tag = parse_video(payload, nal_length_size=nal_length_size)
    assert isinstance(tag, AVCFrame)
    assert (tag.frame_type, tag.keyframe, tag.composition_time_ms) == (frame_type, keyframe, cts)
    assert tag.nal_units == tuple(nals)
    assert tag.data == payload[5:]
    assert annexb(tag.nal_units) == b"\x00\x00\x00\x01" + b"\x00\x00\x00\x01".join(nals)


def test_end_of_sequence_and_command_frames() -> None:
    assert parse_video(avc_end_of_sequence()) == AVCEndOfSequence()
    assert parse_video(b"\x57\x01") == VideoInfo(5, 1)


def test_enhanced_rtmp_avc1_is_understood() -> None:
    seq = parse_video(b"\x90avc1" + RECORD)  # key frame, SequenceStart
    assert isinstance(seq, AVCSequenceHeader)
    frame = parse_video(b"\x91avc1\x00\x00\x21" + b"\x00\x00\x00\x02\x65\x88")
    assert isinstance(frame, AVCFrame)
    assert (frame.composition_time_ms, frame.nal_units) == (33, (b"\x65\x88",))
    frame_x = parse_video(b"\xa3avc1" + b"\x00\x00\x00\x02\x41\x9a")  # CodedFramesX
    assert isinstance(frame_x, AVCFrame)
    assert (frame_x.keyframe, frame_x.composition_time_ms) == (False, 0)
    assert parse_video(b"\x92avc1") == AVCEndOfSequence()
    assert parse_video(b"\x94avc1\x02\x00") == VideoInfo(1, 4)  # metadata packet


@pytest.mark.parametrize(
    ("payload", "codec"),
    [
        (b"\x90hvc1" + b"\x01" * 30, "hvc1"),
        (b"\x91av01" + b"\x00" * 8, "av01"),
        (b"\x90vp09", "vp09"),
        (b"\x12\x00", "h263"),
        (b"\x1c\x00\x00\x00\x00", "hevc"),
        (b"\x1f\x00", "video codec id 15"),
    ],
)
def test_unsupported_codecs_are_named(payload: bytes, codec: str) -> None:
    with pytest.raises(FLVUnsupportedCodec) as info:
        parse_video(payload)
    assert info.value.codec == codec
    assert codec in str(info.value)


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "empty"),
        (b"\x17\x01\x00", "at least 5"),
        (b"\x17\x05\x00\x00\x00", "unknown AVC packet type"),
        (b"\x07\x01\x00\x00\x00", "frame type"),
        (b"\x17\x01\x00\x00\x00\x00\x00\x00\x09\x65", "overruns"),
        (b"\x17\x01\x00\x00\x00\x00\x00", "truncated NAL unit length"),
        (b"\x17\x00\x00\x00\x00\x01\x64", "too short"),
        (b"\x17\x00\x00\x00\x00" + b"\x02" + RECORD[1:], "version"),
        (b"\x17\x00\x00\x00\x00" + RECORD[:4] + b"\xfe" + RECORD[5:], "length size 3"),
        (b"\x17\x00\x00\x00\x00" + RECORD[:5] + b"\xe0\x00", "without an SPS"),
        (b"\x17\x00\x00\x00\x00" + RECORD[:5] + b"\xe1\x00\x40\x67", "overruns"),
        (b"\x17\x00\x00\x00\x00" + RECORD[:5] + b"\xe1\x00", "truncated SPS length"),
        (b"\x17\x00\x00\x00\x00" + RECORD[: -len(PPS) - 3], "before the PPS count"),
        (b"\x91avc1\x00", "composition time"),
        (b"\x90av", "Enhanced RTMP"),
    ],
)
def test_malformed(payload: bytes, message: str) -> None:
    with pytest.raises(FLVError, match=message):
        parse_video(payload)


def test_config_record_with_high_profile_trailer_is_accepted() -> None:
    trailer = b"\xfd\xf8\xf8\x00"  # chroma_format, bit depths, numOfSequenceParameterSetExt
    assert parse_avc_config(RECORD + trailer).width == 1280
