"""The packaging model: samples in; parts and segments (with their fMP4 bytes) out.

A segment is cut only on a keyframe once it is at least `segment_target_s` long, so
every segment starts independent and keyframes stay aligned across rungs that share a
GOP. Inside it, parts are cut on the driver track's timeline (video, or audio for an
audio-only rendition) just before they would exceed `part_target_s`; that is what lets
LL-HLS latency follow the part target instead of the keyframe interval.

A driver sample's duration is known only when the next one arrives, so the segmenter
holds one sample back: a part closes one frame after its last sample was encoded.
"""

from __future__ import annotations

import re
from collections import deque
from dataclasses import dataclass
from typing import Literal

from ._errors import HLSError
from ._fmp4 import AudioTrack, FragmentSample, TrackRun, VideoTrack, fragment

INIT_URI = "init.mp4"
_RESOURCE_RE = re.compile(r"(?P<msn>[0-9]{1,18})(?:\.(?P<part>[0-9]{1,6}))?\.m4s")
_INIT_RE = re.compile(r"init-(?P<map>[1-9][0-9]{0,5})\.mp4")
_MAX_QUEUED_AUDIO_S = 10.0
PART_SLACK_S = 0.002  # how far a part may run past PART-TARGET (see Segmenter)


def segment_uri(msn: int) -> str:
    return f"{msn}.m4s"


def part_uri(msn: int, index: int) -> str:
    return f"{msn}.{index}.m4s"


def init_uri(map_index: int) -> str:
    """The init segment of the `map_index`-th video track of a rendition (0: init.mp4)."""
    return INIT_URI if map_index == 0 else f"init-{map_index}.mp4"


@dataclass(frozen=True, slots=True)
class Resource:
    """A media file name an origin was asked for, decoded."""

    kind: Literal["init", "segment", "part"]
    msn: int = -1
    part: int = -1
    map_index: int = 0  # for "init"


def parse_resource(name: str) -> Resource | None:
    """Decode `init.mp4`, `init-<n>.mp4`, `<msn>.m4s` or `<msn>.<part>.m4s`; else None."""
    if name == INIT_URI:
        return Resource("init")
    init = _INIT_RE.fullmatch(name)
    if init is not None:
        return Resource("init", map_index=int(init["map"]))
    match = _RESOURCE_RE.fullmatch(name)
    if match is None:
        return None
    if match["part"] is None:
        return Resource("segment", int(match["msn"]))
    return Resource("part", int(match["msn"]), int(match["part"]))


@dataclass(frozen=True, kw_only=True)
class PackagerConfig:
    """Packaging knobs shared by every rendition of a stream."""

    segment_target_s: float = 2.0  # minimum segment length; cut on the next keyframe
    part_target_s: float = 1 / 3  # LL-HLS part target (PART-TARGET)
    window_segments: int = 6  # complete segments listed in a live playlist
    retain_segments: int = 6  # kept fetchable after leaving the playlist (in-flight players)
    skip_until_s: float | None = None  # enables delta updates (_HLS_skip) when set

    def __post_init__(self) -> None:
        if not 0 < self.part_target_s <= self.segment_target_s:
            raise HLSError("need 0 < part_target_s <= segment_target_s")
        if self.window_segments < 1 or self.retain_segments < 0:
            raise HLSError("need window_segments >= 1 and retain_segments >= 0")
        if self.skip_until_s is not None and self.skip_until_s <= 0:
            raise HLSError("skip_until_s must be positive")


@dataclass(frozen=True, slots=True)
class Sample:
    """One encoded access unit: AVCC H.264 (length-prefixed NALs) or a raw AAC frame.

    `dts`/`pts` are in the track timescale (90 kHz video, sample rate for audio). The
    ingest wall clock (`wallclock_s`, Unix seconds) of any early sample anchors
    EXT-X-PROGRAM-DATE-TIME; later values are ignored so PDT and EXTINF always agree.

    `keyframe` marks where a segment may start (the source's keyframes, the same instants
    on every rung); `independent` an extra IDR inside a segment, where a part may start
    independent (a player joins there instead of decoding from the segment's start).
    """

    data: bytes
    dts: int
    pts: int | None = None
    keyframe: bool = True
    wallclock_s: float | None = None
    independent: bool = False


@dataclass(frozen=True, slots=True)
class Part:
    """An LL-HLS partial segment: one fMP4 fragment."""

    msn: int
    index: int
    duration_s: float
    independent: bool
    payload: bytes

    @property
    def uri(self) -> str:
        return part_uri(self.msn, self.index)


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    """What a VOD playlist needs to list a segment (the recorder can persist this)."""

    msn: int
    duration_s: float
    program_date_time_s: float | None = None
    discontinuity: bool = False  # the video track changed here (EXT-X-DISCONTINUITY)
    map_index: int = 0  # which init segment applies (see init_uri)


@dataclass(frozen=True, slots=True)
class Segment:
    """A complete media segment: its parts, concatenated into `payload`."""

    msn: int
    parts: tuple[Part, ...]
    duration_s: float
    start_s: float  # media time of the first sample, in seconds
    program_date_time_s: float | None
    payload: bytes
    discontinuity: bool = False  # the first segment after a video track switch
    map_index: int = 0  # which init segment applies (see init_uri)

    @property
    def uri(self) -> str:
        return segment_uri(self.msn)

    @property
    def info(self) -> SegmentInfo:
        return SegmentInfo(
            self.msn, self.duration_s, self.program_date_time_s, self.discontinuity,
            self.map_index,
        )


def check_avcc(data: bytes) -> None:
    """Reject sample data that is not a well-formed run of 4-byte length-prefixed NALs."""
    pos, n = 0, len(data)
    while pos < n:
        if pos + 4 > n:
            raise HLSError("truncated AVCC length prefix in video sample")
        pos += 4 + int.from_bytes(data[pos : pos + 4], "big")
    if pos != n or n == 0:
        raise HLSError("video sample is not AVCC (length-prefixed NAL units)")


class Segmenter:
    """Cuts one rendition's samples into parts and segments and muxes each part."""

    def __init__(
        self, video: VideoTrack | None, audio: AudioTrack | None, config: PackagerConfig
    ) -> None:
        if video is None and audio is None:
            raise HLSError("a rendition needs a video or an audio track")
        self.video, self.audio = video, audio
        driver = video if video is not None else audio
        assert driver is not None
        self.timescale = driver.timescale
        self.segment_target = round(config.segment_target_s * self.timescale)
        self.part_target = max(1, round(config.part_target_s * self.timescale))
        # Millisecond timestamps (RTMP) put frame boundaries up to 1 ms off the ideal grid: a
        # part may run 2 ms past its target rather than close a frame early and fall under
        # the 85% of PART-TARGET that RFC 8216bis asks of every part but a segment's last.
        self.part_slack = round(PART_SLACK_S * self.timescale)
        self.max_part_ticks = self.part_target  # grows if a part runs past it (slack, gaps)
        self.tracks: list[VideoTrack | AudioTrack] = [t for t in (video, audio) if t]
        self.msn = 0
        self.parts: list[Part] = []
        self.ended = False
        self._pending: Sample | None = None
        self._last_dur = 0
        self._samples: list[FragmentSample] = []
        self._part_start = 0
        self._part_independent = False
        self._seg_start: int | None = None
        self._audio_queue: deque[Sample] = deque()
        self._last_dts: dict[str, int] = {}
        self._anchor: tuple[float, int] | None = None
        self._sequence = 1
        self.map_index = 0  # bumps on every video track switch
        self.open_discontinuity = False  # the open segment starts a new video track
        self._switch_to: VideoTrack | None = None

    @property
    def open_start_s(self) -> float | None:
        """Media time where the open segment starts (None before the first keyframe)."""
        return None if self._seg_start is None else self._seg_start / self.timescale

    def pdt_at(self, ticks: int) -> float | None:
        if self._anchor is None:
            return None
        return self._anchor[0] + (ticks - self._anchor[1]) / self.timescale

    def open_pdt(self) -> float | None:
        return None if self._seg_start is None else self.pdt_at(self._seg_start)

    def switch_video(self, track: VideoTrack) -> None:
        """From the next video sample (a keyframe) on, package `track` instead.

        The open segment is closed there, whatever its length, and the next one starts
        with EXT-X-DISCONTINUITY and a new init segment (`map_index` + 1): how a rung
        shed under overload keeps its playlist going on another rung's pictures, and
        goes back to its own when restored. The timeline and sequence numbers go on.
        """
        if self.video is None:
            raise HLSError("this rendition has no video track to switch")
        if track.timescale != self.video.timescale:
            raise HLSError("a switched video track must keep the timescale")
        self._switch_to = track

    def push_video(self, sample: Sample) -> list[Part | Segment]:
        if self.video is None:
            raise HLSError("this rendition has no video track")
        check_avcc(sample.data)
        if self._switch_to is not None and not sample.keyframe:
            raise HLSError("a video track switch must start on a keyframe")
        self._check_dts("video", sample.dts)
        if self._switch_to is None:
            return self._push_driver(sample)
        out = self._push_driver(sample, cut=True)
        self.video, self._switch_to = self._switch_to, None
        self.tracks = [t for t in (self.video, self.audio) if t]
        self.map_index += 1
        self.open_discontinuity = self.msn > 0  # nothing was published before: no break
        return out

    def push_audio(self, sample: Sample) -> list[Part | Segment]:
        if self.audio is None:
            raise HLSError("this rendition has no audio track")
        if not sample.data:
            raise HLSError("empty audio sample")
        self._check_dts("audio", sample.dts)
        if self.video is None:
            return self._push_driver(
                Sample(sample.data, sample.dts, sample.dts, True, sample.wallclock_s)
            )
        self._audio_queue.append(sample)
        limit = _MAX_QUEUED_AUDIO_S * self.audio.timescale
        while self._audio_queue[-1].dts - self._audio_queue[0].dts > limit:
            self._audio_queue.popleft()  # video stalled: keep memory bounded
        return []

    def end(self) -> list[Part | Segment]:
        """Flush the held-back sample and close the last part and segment."""
        if self.ended:
            return []
        self.ended = True
        if self._pending is None or self._seg_start is None:
            return []
        last = self._pending
        dur = self._last_dur or self._default_duration()
        self._samples.append(self._fragment_sample(last, dur))
        end = last.dts + dur
        out: list[Part | Segment] = [self._close_part(end, flush_audio=True)]
        out.append(self._close_segment(end))
        return out

    # -- internals -----------------------------------------------------------------------

    def _check_dts(self, track: str, dts: int) -> None:
        if self.ended:
            raise HLSError("rendition has ended")
        if dts < 0:
            raise HLSError(f"negative {track} dts {dts}; rebase timestamps before packaging")
        last = self._last_dts.get(track)
        if last is not None and dts <= last:
            raise HLSError(f"{track} dts {dts} does not increase (previous {last})")
        self._last_dts[track] = dts

    def _default_duration(self) -> int:
        if self.video is None and self.audio is not None:
            return self.audio.config.frame_samples
        return self.timescale // 30

    def _fragment_sample(self, s: Sample, dur: int) -> FragmentSample:
        pts = s.dts if s.pts is None else s.pts
        return FragmentSample(s.data, dur, s.keyframe or s.independent, pts - s.dts)

    def _push_driver(self, sample: Sample, *, cut: bool = False) -> list[Part | Segment]:
        if self._anchor is None and sample.wallclock_s is not None:
            self._anchor = (sample.wallclock_s, sample.dts)
        out: list[Part | Segment] = []
        if self._seg_start is None:
            if not sample.keyframe:
                return out  # a stream starts at its first keyframe
            self._seg_start = self._part_start = sample.dts
            self._part_independent = True
            self._pending = sample
            self._drop_audio_before(sample.dts)
            return out
        prev = self._pending
        assert prev is not None
        dur = sample.dts - prev.dts
        self._samples.append(self._fragment_sample(prev, dur))
        self._last_dur = dur
        t = sample.dts
        if sample.keyframe and (cut or t - self._seg_start >= self.segment_target):
            out.append(self._close_part(t))
            out.append(self._close_segment(t))
        elif t - self._part_start + dur > self.part_target + self.part_slack or (
            sample.independent and t - self._part_start >= self.part_target * 0.85
        ):  # an IDR closes a part that is long enough, so the next one starts independent
            out.append(self._close_part(t))
        if not self._samples:
            self._part_start = t
            self._part_independent = sample.keyframe or sample.independent
        self._pending = sample
        return out

    def _drop_audio_before(self, video_dts: int) -> None:
        if self.audio is None:
            return
        rate = self.audio.timescale
        while self._audio_queue and self._audio_queue[0].dts * self.timescale < video_dts * rate:
            self._audio_queue.popleft()

    def _audio_run(self, end: int, flush: bool) -> TrackRun | None:
        if self.audio is None or not self._audio_queue:
            return None
        rate, frame = self.audio.timescale, self.audio.config.frame_samples
        queue = self._audio_queue
        taken: list[Sample] = []
        while queue and (flush or queue[0].dts * self.timescale < end * rate):
            taken.append(queue.popleft())
        if not taken:
            return None
        samples = []
        for i, s in enumerate(taken):
            nxt = taken[i + 1] if i + 1 < len(taken) else (queue[0] if queue else None)
            gap = nxt.dts - s.dts if nxt is not None else frame
            samples.append(FragmentSample(s.data, gap if 0 < gap <= 4 * frame else frame))
        return TrackRun(2, taken[0].dts, samples, per_sample_flags=False)

    def _close_part(self, end: int, *, flush_audio: bool = False) -> Part:
        runs = [TrackRun(1, self._part_start, self._samples)]
        if self.video is not None:
            audio = self._audio_run(end, flush_audio)
            if audio is not None:
                runs.append(audio)
        payload = fragment(self._sequence, runs)
        self._sequence += 1
        ticks = end - self._part_start
        self.max_part_ticks = max(self.max_part_ticks, ticks)
        part = Part(
            self.msn, len(self.parts), ticks / self.timescale, self._part_independent, payload
        )
        self.parts.append(part)
        self._samples = []
        return part

    def _close_segment(self, end: int) -> Segment:
        start = self._seg_start
        assert start is not None
        seg = Segment(
            self.msn,
            tuple(self.parts),
            (end - start) / self.timescale,
            start / self.timescale,
            self.pdt_at(start),
            b"".join(p.payload for p in self.parts),
            self.open_discontinuity,
            self.map_index,
        )
        self.open_discontinuity = False
        self.msn += 1
        self.parts = []
        self._seg_start = end
        return seg
