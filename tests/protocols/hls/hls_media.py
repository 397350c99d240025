"""Real encoded media for the HLS tests: libx264 and AAC through PyAV, encoded once.

A plain module (not conftest) so tests import it by a name no other test folder uses.
"""

from __future__ import annotations

import fractions
import functools
from dataclasses import dataclass

import av
import numpy as np

from streamscale.protocols.hls import (
    AudioTrack,
    H264Config,
    Rendition,
    Sample,
    VideoTrack,
    annexb_to_avcc,
)


@dataclass(frozen=True)
class Encoded:
    video: VideoTrack
    samples: tuple[Sample, ...]  # AVCC, dts rebased to start at 0 (90 kHz)


@dataclass(frozen=True)
class EncodedAudio:
    audio: AudioTrack
    samples: tuple[Sample, ...]  # raw AAC, dts in samples


@functools.cache
def encode_video(
    frames: int = 60,
    *,
    width: int = 320,
    height: int = 240,
    fps: int = 30,
    gop: int = 30,
    bframes: int = 0,
    preset: str = "ultrafast",
    profile: str | None = None,
) -> Encoded:
    ctx = av.CodecContext.create("libx264", "w")
    ctx.width, ctx.height, ctx.pix_fmt = width, height, "yuv420p"
    ctx.time_base = fractions.Fraction(1, 90_000)
    ctx.framerate = fractions.Fraction(fps, 1)
    ctx.gop_size = gop
    ctx.options = {
        "preset": preset,
        "bf": str(bframes),
        "keyint_min": str(gop),
        "sc_threshold": "0",
        **({"profile": profile} if profile else {}),
    }
    ctx.open()
    step = 90_000 // fps
    packets = []
    for i in range(frames):
        image = np.zeros((height, width, 3), dtype=np.uint8)
        image[:, :, 0] = (i * 9) % 256
        image[(i * 3) % height :, : (i * 5) % width + 8, 1] = 200
        frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
        frame.pts = i * step
        frame.time_base = ctx.time_base
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))
    raw = [bytes(p) for p in packets]
    config = H264Config.from_extradata(raw[0])  # x264 puts SPS/PPS in band by default
    offset = -min(p.dts for p in packets)
    samples = tuple(
        Sample(annexb_to_avcc(data), dts=p.dts + offset, pts=p.pts + offset, keyframe=p.is_keyframe)
        for p, data in zip(packets, raw, strict=True)
    )
    return Encoded(VideoTrack(config), samples)


@functools.cache
def encode_audio(seconds: float = 2.0, rate: int = 48_000) -> EncodedAudio:
    ctx = av.CodecContext.create("aac", "w")
    ctx.sample_rate, ctx.layout, ctx.format = rate, "stereo", "fltp"
    ctx.time_base = fractions.Fraction(1, rate)
    ctx.open()
    packets = []
    n = int(seconds * rate) // 1024
    t = np.arange(1024) / rate
    for i in range(n):
        tone = (0.2 * np.sin(2 * np.pi * 440 * (t + i * 1024 / rate))).astype(np.float32)
        frame = av.AudioFrame.from_ndarray(np.stack([tone, tone]), format="fltp", layout="stereo")
        frame.sample_rate, frame.pts = rate, i * 1024
        packets.extend(ctx.encode(frame))
    packets.extend(ctx.encode(None))
    asc = bytes(ctx.extradata or b"")
    offset = -min(p.pts for p in packets)
    samples = tuple(Sample(bytes(p), dts=p.pts + offset) for p in packets if p.size)
    return EncodedAudio(AudioTrack.from_asc(asc), samples)


def feed(
    rendition: Rendition,
    video: Encoded | None,
    audio: EncodedAudio | None,
    *,
    wallclock_s: float = 1_700_000_000.0,
    end: bool = True,
) -> None:
    """Interleave video and audio by time, as a transcoder would emit them."""
    items: list[tuple[float, int, Sample]] = []
    if video is not None:
        items += [(s.dts / 90_000, 0, s) for s in video.samples]
    if audio is not None:
        rate = audio.audio.timescale
        items += [(s.dts / rate, 1, s) for s in audio.samples]
    items.sort(key=lambda item: (item[0], item[1]))
    for t, kind, sample in items:
        if kind == 0:
            rendition.push_video(
                Sample(sample.data, sample.dts, sample.pts, sample.keyframe, wallclock_s + t)
            )
        else:
            rendition.push_audio(sample)
    if end:
        rendition.end()
