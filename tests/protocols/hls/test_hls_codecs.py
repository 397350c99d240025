"""SPS/PPS, avcC and AudioSpecificConfig parsing: real encoder output, tables, and fuzz."""

from __future__ import annotations

import contextlib
import struct

import pytest
from hls_media import encode_audio, encode_video
from hypothesis import given
from hypothesis import strategies as st

from streamscale.protocols.hls import (
    AACConfig,
    H264Config,
    HLSError,
    annexb_to_avcc,
    avcc_from_nals,
    split_annexb,
)
from streamscale.protocols.hls._model import check_avcc


@pytest.mark.parametrize(
    ("width", "height", "preset", "profile", "codec_prefix"),
    [
        (320, 240, "ultrafast", None, "avc1.42"),
        (322, 182, "ultrafast", None, "avc1.42"),  # needs frame cropping
        (640, 360, "medium", "main", "avc1.4d"),
        (176, 144, "medium", "high", "avc1.64"),  # scaling/chroma fields in the SPS
    ],
)
def test_sps_from_x264(
    width: int, height: int, preset: str, profile: str | None, codec_prefix: str
) -> None:
    config = encode_video(
        8, width=width, height=height, preset=preset, profile=profile, gop=8
    ).video.config
    assert (config.width, config.height) == (width, height)
    assert config.codec.startswith(codec_prefix)
    assert len(config.codec) == len("avc1.PPCCLL")
    assert config.codec == "avc1." + config.sps[1:4].hex()


def test_avcc_record_round_trips_through_extradata() -> None:
    config = encode_video(60).video.config
    record = config.avcc_record()
    assert record[0] == 1
    assert record[1:4] == config.sps[1:4]
    assert record[4] == 0xFF
    assert H264Config.from_extradata(record) == config
    annexb = b"\x00\x00\x00\x01" + config.sps + b"\x00\x00\x01" + config.pps
    assert H264Config.from_extradata(annexb) == config


def test_annexb_conversion_drops_parameter_sets_and_aud() -> None:
    idr, sps, pps, aud = b"\x65\x88\x84", b"\x67\x42", b"\x68\xce", b"\x09\xf0"
    stream = b"".join(b"\x00\x00\x00\x01" + n for n in (aud, sps, pps)) + b"\x00\x00\x01" + idr
    assert split_annexb(stream) == [aud, sps, pps, idr]
    assert annexb_to_avcc(stream) == struct.pack(">I", 3) + idr
    assert avcc_from_nals([idr, idr]) == (struct.pack(">I", 3) + idr) * 2
    with pytest.raises(HLSError):
        split_annexb(b"\x65\x88")


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x00\x00\x00",
        b"\x00\x00\x00\x05\x65",
        b"\x00\x00\x00\x01\x65\x00",
        b"\x00\x00\x00\x01\x65\x88",
    ],
)
def test_check_avcc_rejects_malformed_samples(data: bytes) -> None:
    with pytest.raises(HLSError):
        check_avcc(data)


def _asc(*fields: tuple[int, int]) -> bytes:
    """Pack (value, bits) fields MSB first, zero-padded to whole bytes."""
    value, nbits = 0, 0
    for v, n in fields:
        value, nbits = (value << n) | v, nbits + n
    pad = (-nbits) % 8
    return (value << pad).to_bytes((nbits + pad) // 8, "big")


@pytest.mark.parametrize(
    ("asc", "expected"),
    [
        (bytes.fromhex("1190"), (2, 48_000, 2, 1024, "mp4a.40.2")),
        (bytes.fromhex("1208"), (2, 44_100, 1, 1024, "mp4a.40.2")),
        (_asc((2, 5), (3, 4), (2, 4), (1, 1)), (2, 48_000, 2, 960, "mp4a.40.2")),
        (_asc((5, 5), (6, 4), (2, 4)), (5, 24_000, 2, 1024, "mp4a.40.5")),
        (_asc((2, 5), (15, 4), (22_050, 24), (1, 4), (0, 1)), (2, 22_050, 1, 1024, "mp4a.40.2")),
        (_asc((31, 5), (10, 6), (3, 4), (2, 4)), (42, 48_000, 2, 1024, "mp4a.40.42")),
    ],
)
def test_audio_specific_config(asc: bytes, expected: tuple[int, int, int, int, str]) -> None:
    config = AACConfig.from_asc(asc)
    assert (
        config.object_type,
        config.sample_rate,
        config.channels,
        config.frame_samples,
        config.codec,
    ) == expected


def test_audio_config_from_the_aac_encoder() -> None:
    config = encode_audio().audio.config
    assert (config.object_type, config.sample_rate, config.channels) == (2, 48_000, 2)


@pytest.mark.parametrize(
    "asc", [b"", b"\x11", _asc((0, 5), (3, 4), (2, 4)), _asc((2, 5), (13, 4), (2, 4))]
)
def test_bad_audio_specific_config(asc: bytes) -> None:
    with pytest.raises(HLSError):
        AACConfig.from_asc(asc)


@pytest.mark.parametrize(
    ("sps", "pps"),
    [
        (b"", b"\x68"),
        (b"\x67\x42", b"\x68"),
        (b"\x68\x42\x00\x0d", b"\x68"),
        (b"\x67\x42\xc0\x0d", b""),
        (b"\x67\x42\xc0\x0d\xff", b"\x68\xce"),
    ],
)
def test_bad_parameter_sets(sps: bytes, pps: bytes) -> None:
    with pytest.raises(HLSError):
        H264Config.from_sps_pps(sps, pps)


@given(st.binary(max_size=64))
def test_fuzz_sps_raises_only_hlserror(payload: bytes) -> None:
    with contextlib.suppress(HLSError):
        H264Config.from_sps_pps(b"\x67" + payload, b"\x68\xce")


@given(st.binary(max_size=64))
def test_fuzz_extradata_and_asc_raise_only_hlserror(data: bytes) -> None:
    for parse in (H264Config.from_extradata, AACConfig.from_asc, annexb_to_avcc):
        with contextlib.suppress(HLSError):
            parse(data)
