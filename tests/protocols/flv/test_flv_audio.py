"""Audio tag bodies: AAC sequence header (AudioSpecificConfig) and raw frames; refusals."""

from __future__ import annotations

import pytest

from streamscale.protocols.flv import (
    AACConfig,
    AACFrame,
    AACSequenceHeader,
    FLVError,
    FLVUnsupportedCodec,
    parse_aac_config,
    parse_audio,
)
from streamscale.testing.rtmp_client import (
    aac_audio_specific_config,
    aac_frame,
    aac_sequence_header,
)


@pytest.mark.parametrize(
    ("asc", "expected"),
    [
        (bytes.fromhex("1210"), (2, 4, 44100, 2, False)),  # ffmpeg's 44.1 kHz stereo LC
        (bytes.fromhex("1190"), (2, 3, 48000, 2, False)),
        (bytes.fromhex("1408"), (2, 8, 16000, 1, False)),
        (bytes.fromhex("0a10"), (1, 4, 44100, 2, False)),  # AAC Main
        (bytes.fromhex("2b8a08"), (2, 7, 22050, 1, True)),  # HE-AAC explicit SBR
        (bytes.fromhex("eb8a08"), (2, 7, 22050, 1, True)),  # HE-AACv2 (PS)
        (bytes.fromhex("17800fa010"), (2, 15, 8000, 2, False)),  # explicit 24-bit rate
        (bytes.fromhex("f8c840"), (38, 4, 44100, 2, False)),  # escaped object type 38
    ],
)
def test_audio_specific_config(asc: bytes, expected: tuple[int, int, int, int, bool]) -> None:
    config = parse_aac_config(asc)
    got = (config.object_type, config.sample_rate_index, config.sample_rate)
    assert (*got, config.channel_config, config.sbr) == expected
    assert config.raw == asc


def test_sequence_header_and_frames() -> None:
    asc = aac_audio_specific_config(2, 4, 2)
    tag = parse_audio(aac_sequence_header(asc))
    assert tag == AACSequenceHeader(AACConfig(2, 4, 44100, 2, False, asc))
    assert tag.config.codec == "mp4a.40.2"
    assert parse_audio(aac_frame(b"\x21\x10")) == AACFrame(b"\x21\x10")
    assert parse_audio(b"\x91mp4a\x21") == AACFrame(b"\x21")  # Enhanced RTMP mp4a


@pytest.mark.parametrize(
    ("payload", "codec"),
    [(b"\x2f\x00", "mp3"), (b"\x7e\x00", "g711a"), (b"\x90Opus", "Opus"), (b"\x90fLaC", "fLaC")],
)
def test_unsupported_codecs_are_named(payload: bytes, codec: str) -> None:
    with pytest.raises(FLVUnsupportedCodec) as info:
        parse_audio(payload)
    assert info.value.codec == codec


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        (b"", "at least 2"),
        (b"\xaf", "at least 2"),
        (b"\xaf\x02", "packet type"),
        (b"\xaf\x00", "ends early"),
        (b"\xaf\x00\x12", "ends early"),
        (b"\xaf\x00\x00\x10", "object type 0"),
        (b"\xaf\x00\x16\x90", "reserved AAC sampling frequency index 13"),
        (b"\x90mp", "Enhanced RTMP"),
    ],
)
def test_malformed(payload: bytes, message: str) -> None:
    with pytest.raises(FLVError, match=message):
        parse_audio(payload)
