"""Hypothesis: arbitrary (and lightly corrupted valid) tag bodies raise only FLVError."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from streamscale.protocols.flv import FLVError, parse_audio, parse_script, parse_sps, parse_video
from streamscale.testing.rtmp_client import avc_decoder_config, avc_sequence_header, build_sps

SEQ = avc_sequence_header(avc_decoder_config([build_sps(1920, 1080, profile_idc=100)], [b"\x68"]))
FUZZ = settings(max_examples=400, deadline=None)


def only_flv_error(parse: object, data: bytes) -> None:
    try:
        parse(data)  # type: ignore[operator]
    except FLVError:
        pass


@FUZZ
@given(st.binary(max_size=300), st.sampled_from([1, 2, 4]))
def test_video(data: bytes, nal_length_size: int) -> None:
    try:
        parse_video(data, nal_length_size=nal_length_size)
    except FLVError:
        pass


@FUZZ
@given(
    st.sampled_from([b"\x17\x00", b"\x17\x01", b"\x90avc1", b"\x91avc1", b"\x27\x01"]),
    st.binary(max_size=300),
)
def test_video_with_plausible_heads(head: bytes, data: bytes) -> None:
    only_flv_error(parse_video, head + data)


@FUZZ
@given(st.integers(0, len(SEQ) - 1), st.integers(1, 255), st.integers(0, len(SEQ)))
def test_corrupted_sequence_header(position: int, xor: int, cut: int) -> None:
    data = bytearray(SEQ)
    data[position] ^= xor
    only_flv_error(parse_video, bytes(data[: max(cut, 1)]))


@FUZZ
@given(st.binary(max_size=64))
def test_sps(data: bytes) -> None:
    only_flv_error(parse_sps, b"\x67" + data)


@FUZZ
@given(st.binary(max_size=64))
def test_audio(data: bytes) -> None:
    only_flv_error(parse_audio, data)
    only_flv_error(parse_audio, b"\xaf\x00" + data)


@FUZZ
@given(st.binary(max_size=300))
def test_script(data: bytes) -> None:
    only_flv_error(parse_script, data)
    only_flv_error(parse_script, b"\x02\x00\x0d@setDataFrame" + data)
