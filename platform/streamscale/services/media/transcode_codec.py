"""The codec layer of the ladder: libx264 settings, one encoded rung, errors and counters.

`transcode.Ladder` decodes once and hands each decoded frame to every `EncodedRung`;
this module owns what happens inside a rung (scale with a reused scaler, force the IDR,
encode, turn x264's Annex-B output into AVCC on the source timeline).
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

import av
from av.video.frame import PictureType
from av.video.reformatter import Interpolation, VideoReformatter

from ...protocols.hls import annexb_to_avcc
from .transcode_rungs import RungSpec

TIME_BASE = Fraction(1, 90_000)


class TranscodeError(Exception):
    """The ladder cannot go on (bad config record, corrupt input, codec failure).

    The service discards this Ladder and starts a fresh one from the next keyframe; the
    ingest and the other streams carry on.
    """


@contextmanager
def mapped_errors(what: str) -> Iterator[None]:
    """PyAV errors become TranscodeError: callers handle one exception type."""
    try:
        yield
    except av.FFmpegError as exc:
        raise TranscodeError(f"{what}: {exc}") from exc


@dataclass(frozen=True, slots=True)
class EncodedFrame:
    """One access unit of one rung, ready for `Sample(data, dts, pts, keyframe, ...)`."""

    rung: str
    data: bytes  # AVCC: 4-byte length-prefixed NAL units, no in-band SPS/PPS
    dts_90k: int
    pts_90k: int
    keyframe: bool
    wallclock_s: float
    track: str = ""  # the encoder (or passthrough) that made it, when not `rung` itself
    independent: bool = False  # an extra IDR inside a segment (see Sample.independent)

    @property
    def source(self) -> str:
        """Whose pictures these are: `track`, or the rung's own."""
        return self.track or self.rung


@dataclass(frozen=True, kw_only=True)
class CodecSettings:
    """libx264 and decoder knobs; the defaults (`LOW_LATENCY`) hold no frame anywhere.

    Encoder delay measured here (4-rung 720p30 ladder, frames held before the first
    output): tune=zerolatency with sliced threads 0, at the same realtime factor as
    zerolatency with frame threads (2); bframes=0 + rc-lookahead=0 with frame threads 3;
    `THROUGHPUT` 16; x264's veryfast defaults 17. The h264 decoder's frame threads add 2
    frames (67 ms at 30 fps) for ~12% of ladder time, so it decodes with slice threads.
    """

    preset: str = "veryfast"
    tune: str | None = "zerolatency"
    encoder_thread_type: str = "SLICE"
    decoder_thread_type: str = "SLICE"
    x264_params: str = "keyint=infinite:min-keyint=1:scenecut=0"
    interpolation: Interpolation = Interpolation.BICUBIC  # ffmpeg's scale filter default

    @property
    def effective_x264_params(self) -> str:
        """Always without B-frames: output order = input order keeps one dts timeline."""
        return f"{self.x264_params}:bframes=0" if self.x264_params else "bframes=0"


LOW_LATENCY = CodecSettings()
# Frame threads and x264's lookahead: the same CPU per frame (bench: ~0.5 core-s per media
# second either way) but fuller use of the cores by one ladder; ~16 frames of delay.
THROUGHPUT = CodecSettings(tune=None, encoder_thread_type="AUTO", decoder_thread_type="AUTO")


@dataclass
class LadderStats:
    """Counters for logs and metrics; times are wall seconds spent inside the ladder."""

    frames_in: int = 0
    frames_decoded: int = 0
    decode_errors: int = 0
    decode_s: float = 0.0
    frames_out: dict[str, int] = field(default_factory=dict)
    encode_s: dict[str, float] = field(default_factory=dict)
    dropped_rungs: list[str] = field(default_factory=list)

    def count(self, rung: str, frames: int, spent_s: float = 0.0) -> None:
        self.frames_out[rung] = self.frames_out.get(rung, 0) + frames
        if spent_s:
            self.encode_s[rung] = self.encode_s.get(rung, 0.0) + spent_s

    def encode_ms_per_frame(self, rung: str) -> float:
        """Scale + encode wall time per output frame of a rung (0 when nothing came out)."""
        n = self.frames_out.get(rung, 0)
        return 1000 * self.encode_s.get(rung, 0.0) / n if n else 0.0


@dataclass(frozen=True, slots=True)
class FrameMeta:
    """What the output keeps of an input access unit (timestamps in 90 kHz)."""

    pts: int
    dts: int
    keyframe: bool
    wallclock_s: float
    independent: bool = False  # force an IDR here though the source has none


class EncodedRung:
    """One encoded rung: its encoder, its reused scaler and the frames x264 holds."""

    def __init__(
        self, spec: RungSpec, width: int, height: int, fps: float, settings: CodecSettings
    ) -> None:
        self.spec, self.width, self.height, self.fps = spec, width, height, fps
        self.name = spec.name
        with mapped_errors(f"open encoder {spec.name}"):
            enc: Any = av.CodecContext.create("libx264", "w")
            enc.width, enc.height, enc.pix_fmt = width, height, "yuv420p"
            enc.time_base = TIME_BASE
            enc.framerate = Fraction(fps).limit_denominator(1001)
            enc.bit_rate = spec.video_bitrate_kbps * 1000
            enc.flags |= av.codec.context.Flags.global_header  # SPS/PPS in extradata
            options = {"preset": settings.preset, "x264-params": settings.effective_x264_params}
            if settings.tune:
                options["tune"] = settings.tune
            enc.options = options
            enc.thread_type, enc.thread_count = settings.encoder_thread_type, 0
            enc.open()
        self.encoder = enc
        self.extradata = bytes(enc.extradata or b"")
        self.interpolation = settings.interpolation
        # One scaler per rung: frame.reformat() would build a new SwsContext per frame.
        self.reformatter = VideoReformatter()
        self.held: deque[FrameMeta] = deque()
        # Cap with 25% slack so millisecond rounding of the input never drops a frame.
        self.min_interval = 0 if spec.max_fps is None else round(90_000 / spec.max_fps * 0.75)
        self.last_pts: int | None = None
        self.pixel_rate = width * height * fps

    def wants(self, meta: FrameMeta) -> bool:
        """Frame-rate cap: keep keyframes always, else at most `max_fps` frames/s."""
        if meta.keyframe or self.last_pts is None or self.min_interval == 0:
            return True
        return meta.pts - self.last_pts >= self.min_interval

    def encode(self, frame: Any, meta: FrameMeta) -> list[EncodedFrame]:
        """Scale and encode one decoded frame; an IDR exactly where the source has one."""
        with mapped_errors(f"encode {self.name}"):
            scaled = self.reformatter.reformat(
                frame, self.width, self.height, format="yuv420p", interpolation=self.interpolation
            )
            scaled.pts, scaled.time_base = meta.pts, TIME_BASE
            idr = meta.keyframe or meta.independent
            scaled.pict_type = PictureType.I if idr else PictureType.NONE
            packets = self.encoder.encode(scaled)
        self.last_pts = meta.pts
        self.held.append(meta)
        return self._collect(packets)

    def flush(self) -> list[EncodedFrame]:
        with mapped_errors(f"flush {self.name}"):
            packets = self.encoder.encode(None)
        return self._collect(packets)

    def _collect(self, packets: list[Any]) -> list[EncodedFrame]:
        out: list[EncodedFrame] = []
        for packet in packets:
            meta = self.held.popleft()
            if packet.pts is not None and packet.pts != meta.pts:
                raise TranscodeError(f"rung {self.name}: encoder reordered frames")
            data = annexb_to_avcc(bytes(packet))
            idr = bool(packet.is_keyframe)  # a segment may start here unless it is extra
            out.append(EncodedFrame(
                self.name, data, meta.dts, meta.pts, idr and not meta.independent,
                meta.wallclock_s, independent=idr and meta.independent,
            ))
        return out
