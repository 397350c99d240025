"""Fixtures for the HLS tests: a live two-rung presentation fed real media."""

from __future__ import annotations

import pytest
from hls_media import Encoded, EncodedAudio, encode_audio, encode_video, feed

from streamscale.protocols.hls import PackagerConfig, Presentation


@pytest.fixture
def av_stream() -> tuple[Encoded, EncodedAudio]:
    return encode_video(), encode_audio()


@pytest.fixture
def live(av_stream: tuple[Encoded, EncodedAudio]) -> Presentation:
    """Two rungs fed the same 2 s of media, not ended: 1 s segments, 1/3 s parts."""
    video, audio = av_stream
    pres = Presentation(
        PackagerConfig(segment_target_s=1.0, part_target_s=1 / 3, window_segments=6)
    )
    for name in ("720p", "360p"):
        rendition = pres.add_rendition(
            name, video=video.video, audio=audio.audio, bandwidth_bps=500_000, frame_rate=30.0
        )
        feed(rendition, video, audio, end=False)
    return pres
