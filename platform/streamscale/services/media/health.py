"""Ingest health per live stream: what the publisher sends and how the ladder keeps up.

`HealthMeter` sits on a pipeline's tag path (`StreamPipeline.consume` calls `tag` for every
FLV tag, `_video` calls `transcoded` once a frame has been through the ladder); both are a
few integer operations, no allocation. `StreamPipeline.health()` takes a `StreamHealth`
every `analytics.health_sample_s` (the media service's reporter task, `HealthReporter`),
which restarts the window.

What each figure means (over the window since the previous snapshot):

- `ingest_kbps`: FLV tag payload bytes received (video, audio and metadata) per wall second
  of the window. A publisher that stalls shows here first.
- `frame_rate_fps`: the publisher's frame rate from its own timestamps: video frames
  received divided by the decode-timestamp span they cover (from the last frame before the
  window to the last in it). Timestamps, not arrival times, so network bursts or a busy
  node do not skew it; a publisher that sends fewer frames than it claims shows here.
- `keyframe_interval_s`: mean timestamp distance between consecutive keyframes seen in the
  window; the latest known interval when the window held fewer than two (a window shorter
  than the GOP); 0 until two keyframes have been seen.
- `dropped_frames`: video frames received that no rendition got a picture of: frames
  skipped while waiting for the first keyframe (a presentation starts on one), frames
  that arrived while no ladder was configured (no sequence header yet, or refused), the
  frame a failed transcoder was restarted on, and frames the H.264 decoder rejected
  (corrupt; `LadderStats.decode_errors`). A frame is known to be dropped once the next
  one arrives, so the count can trail by one frame. Frames an encoded rung leaves out on
  purpose (its frame-rate cap, `RungSpec.max_fps`) are not drops.
- `transcoder_behind_s`, `transcoder_load`: the ladder's `behind_s` and `load` as of the
  snapshot (see transcode.py); `shed_rungs`: the rungs shed by overload right now.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .transcode import Ladder

HEALTH_QUEUE = "ingest-health"  # bus work queue, keyed by stream id (like viewer-records)

_AVC_CODEC_ID = 7
_AVC_NALU = 1
_KEYFRAME = 1
_EX_HEADER = 0x80


@dataclass(frozen=True, slots=True, kw_only=True)
class StreamHealth:
    """One live stream's ingest health over `interval_s` up to `at_s` (unix time)."""

    stream_id: str
    at_s: float
    interval_s: float
    ingest_kbps: float
    frame_rate_fps: float
    keyframe_interval_s: float
    frames: int  # video frames received in the window
    dropped_frames: int  # of those (give or take the one in flight), see the module doc
    transcoder_behind_s: float
    transcoder_load: float
    shed_rungs: tuple[str, ...] = ()

    def to_json(self) -> list[Any]:
        return [self.stream_id, self.at_s, self.interval_s, self.ingest_kbps,
                self.frame_rate_fps, self.keyframe_interval_s, self.frames,
                self.dropped_frames, self.transcoder_behind_s, self.transcoder_load,
                list(self.shed_rungs)]

    @classmethod
    def from_json(cls, item: Any) -> StreamHealth:
        """ValueError for anything malformed (a bad batch is skipped, never a crash)."""
        try:
            (sid, at, interval, kbps, fps, gop, frames, dropped, behind, load, shed) = item
            out = cls(stream_id=str(sid), at_s=_finite(at), interval_s=_finite(interval),
                      ingest_kbps=_finite(kbps), frame_rate_fps=_finite(fps),
                      keyframe_interval_s=_finite(gop), frames=int(frames),
                      dropped_frames=int(dropped), transcoder_behind_s=_finite(behind),
                      transcoder_load=_finite(load),
                      shed_rungs=tuple(str(name) for name in shed))
        except (TypeError, ValueError) as exc:
            raise ValueError(f"malformed health snapshot: {exc}") from None
        if min(out.interval_s, out.ingest_kbps, out.frame_rate_fps, out.frames,
               out.dropped_frames, out.transcoder_behind_s, out.transcoder_load) < 0:
            raise ValueError("negative figure in a health snapshot")
        return out


def encode_batch(snapshots: list[StreamHealth]) -> bytes:
    """One bus item: a stream's snapshots since the last flush."""
    return json.dumps({"v": 1, "health": [s.to_json() for s in snapshots]},
                      separators=(",", ":")).encode()


def decode_batch(data: bytes) -> list[StreamHealth]:
    try:
        doc = json.loads(data)
        if not isinstance(doc, dict) or doc.get("v") != 1:
            raise ValueError("unknown health batch version")
        items = doc["health"]
        if not isinstance(items, list):
            raise ValueError("health is not a list")
    except (KeyError, TypeError, json.JSONDecodeError) as exc:
        raise ValueError(f"malformed health batch: {exc!r}") from None
    return [StreamHealth.from_json(item) for item in items]


def _finite(value: Any) -> float:
    number = float(value)
    if not math.isfinite(number):
        raise ValueError("non-finite number")
    return number


class HealthMeter:
    """Counters a pipeline updates per tag; `snapshot` reads and restarts the window."""

    __slots__ = (
        "_bytes",
        "_decode_errors_before",
        "_dropped",
        "_frames",
        "_gop_count",
        "_gop_sum_ms",
        "_ladder",
        "_ladder_errors",
        "_last_dts",
        "_last_gop_ms",
        "_last_key_dts",
        "_own_start",
        "_pending",
        "_span_start_dts",
        "_window_start_s",
    )

    def __init__(self, now_s: float) -> None:
        self._window_start_s = now_s
        self._bytes = 0
        self._frames = 0
        self._dropped = 0
        self._pending = False  # a video frame received, not yet through the ladder
        self._last_dts: int | None = None
        self._span_start_dts: int | None = None  # dts before the window's first frame
        self._own_start = False  # ... or of that first frame itself (no frame before it)
        self._last_key_dts: int | None = None
        self._last_gop_ms = 0
        self._gop_sum_ms = 0
        self._gop_count = 0
        self._ladder: Ladder | None = None
        self._ladder_errors = 0  # decode errors of the current ladder, as last seen
        self._decode_errors_before = 0  # of ladders replaced since the last snapshot

    # -- hot path ----------------------------------------------------------------------

    def tag(self, kind: str, timestamp_ms: int, payload: bytes) -> None:
        """Every tag from the publisher (timestamps after reconnect continuity)."""
        self._bytes += len(payload)
        if kind != "video" or len(payload) < 2:
            return
        head = payload[0]
        if head & _EX_HEADER:  # Enhanced RTMP: coded frames are packet types 1 and 3
            if (head & 0x0F) not in (1, 3):
                return
        elif (head & 0x0F) != _AVC_CODEC_ID or payload[1] != _AVC_NALU:
            return  # sequence headers, end of sequence, commands: not frames
        if self._pending:
            self._dropped += 1  # the previous frame never made it through the ladder
        self._pending = True
        self._frames += 1
        if self._span_start_dts is None:
            self._own_start = self._last_dts is None
            self._span_start_dts = timestamp_ms if self._own_start else self._last_dts
        self._last_dts = timestamp_ms
        if (head >> 4) & 0x07 == _KEYFRAME:
            if self._last_key_dts is not None and timestamp_ms > self._last_key_dts:
                gop_ms = timestamp_ms - self._last_key_dts
                self._last_gop_ms = gop_ms
                self._gop_sum_ms += gop_ms
                self._gop_count += 1
            self._last_key_dts = timestamp_ms

    def transcoded(self, ladder: Ladder) -> None:
        """The latest frame went through `ladder` (its decode errors are counted too)."""
        self._pending = False
        if ladder is not self._ladder:
            self._decode_errors_before += self._ladder_errors_now()
            self._ladder = ladder
            self._ladder_errors = ladder.stats.decode_errors

    def _ladder_errors_now(self) -> int:
        if self._ladder is None:
            return 0
        return self._ladder.stats.decode_errors - self._ladder_errors

    # -- snapshots ---------------------------------------------------------------------

    def snapshot(self, stream_id: str, *, now_s: float, ladder: Ladder | None) -> StreamHealth:
        interval_s = max(0.0, now_s - self._window_start_s)
        frames = self._frames
        span_ms = (self._last_dts - self._span_start_dts
                   if self._last_dts is not None and self._span_start_dts is not None else 0)
        # From the frame before the window, `frames` intervals; from the window's own first
        # frame (the stream's first window), one fewer.
        intervals = frames - 1 if self._own_start else frames
        fps = intervals * 1000 / span_ms if span_ms > 0 else 0.0
        gop_s = (self._gop_sum_ms / self._gop_count if self._gop_count
                 else self._last_gop_ms) / 1000
        decode_errors = self._decode_errors_before + self._ladder_errors_now()
        if self._ladder is not None:
            self._ladder_errors = self._ladder.stats.decode_errors
        health = StreamHealth(
            stream_id=stream_id, at_s=now_s, interval_s=interval_s,
            ingest_kbps=self._bytes * 8 / 1000 / interval_s if interval_s > 0 else 0.0,
            frame_rate_fps=max(0.0, fps), keyframe_interval_s=gop_s, frames=frames,
            dropped_frames=self._dropped + decode_errors,
            transcoder_behind_s=ladder.behind_s if ladder is not None else 0.0,
            transcoder_load=ladder.load if ladder is not None else 0.0,
            shed_rungs=tuple(ladder.shed_rungs) if ladder is not None else (),
        )
        self._window_start_s = now_s
        self._bytes = self._frames = self._dropped = 0
        self._gop_sum_ms = self._gop_count = 0
        self._decode_errors_before = 0
        self._span_start_dts = None
        return health
