"""Live renditions and the presentation that groups them: window, lookups, cached bytes.

The packager task pushes samples; the origin (same trio thread) asks for bytes. Every
change bumps a version counter, and each playlist is rendered lazily on the first request
after a change, then served from cached bytes until the next change: at thousands of
requests per second most requests cost a dict lookup and an integer compare.
"""

from __future__ import annotations

import math
import re
from collections import deque
from collections.abc import Iterator
from typing import Literal

from . import _playlist as pl
from ._errors import HLSError
from ._fmp4 import AudioTrack, VideoTrack, init_segment
from ._model import PackagerConfig, Part, Sample, Segment, Segmenter, SegmentInfo, parse_resource
from ._reload import Availability, BlockingRequest, LivePosition, check_request, playlist_ready

PLAYLIST_URI = "index.m3u8"  # LL-HLS media playlist, per rendition folder
CLASSIC_PLAYLIST_URI = "classic.m3u8"  # the same without part tags
_NAME_RE = re.compile(r"[A-Za-z0-9_-]{1,32}")


class _Entry:
    """A segment in the window with its playlist lines rendered once."""

    __slots__ = ("plain", "segment", "with_parts")

    def __init__(self, segment: Segment) -> None:
        self.segment = segment
        self.with_parts = pl.segment_block(segment, with_parts=True)
        self.plain = pl.segment_block(segment, with_parts=False)


class Rendition:
    """One rung: a segmenter, the live window, and cached playlist bytes."""

    def __init__(
        self,
        owner: Presentation,
        name: str,
        video: VideoTrack | None,
        audio: AudioTrack | None,
        *,
        bandwidth_bps: int | None,
        frame_rate: float | None,
    ) -> None:
        if not _NAME_RE.fullmatch(name):
            raise HLSError(f"rendition name {name!r} must match {_NAME_RE.pattern}")
        self.name = name
        self.video, self.audio = video, audio
        self.bandwidth_bps, self.frame_rate = bandwidth_bps, frame_rate
        self._owner = owner
        self._config = owner.config
        self._seg = Segmenter(video, audio, owner.config)
        self._inits = {0: init_segment(self._seg.tracks)}  # by map index (see init_uri)
        self.codecs = ",".join(t.config.codec for t in self._seg.tracks)
        self.hidden = False  # left out of the master (a rung shed under overload)
        self._discontinuities = 0  # closed segments that start a new video track
        self.target_duration = max(1, math.ceil(self._config.segment_target_s - 1e-9))
        self.version = 0  # bumps on every new part or segment
        self.segment_version = 0  # bumps only when a segment closes or the stream ends
        self._entries: deque[_Entry] = deque()
        self._history: list[SegmentInfo] = []
        self._open_block = ""
        self._started = False
        self._frames, self._first_dts, self._last_dts = 0, 0, 0
        self._ll_body: list[tuple[int, str] | None] = [None, None]
        self._ll: list[tuple[int, bytes] | None] = [None, None]
        self._classic: tuple[int, bytes] | None = None
        self._position: tuple[int, LivePosition] | None = None

    # -- packager side -------------------------------------------------------------------

    @property
    def init_segment(self) -> bytes:
        """The init segment of the current video track."""
        return self._inits[self._seg.map_index]

    def init_for(self, map_index: int) -> bytes | None:
        """The init segment a segment with this map index needs (None if never made)."""
        return self._inits.get(map_index)

    def switch_video(self, track: VideoTrack) -> None:
        """Package `track` from the next video sample (a keyframe) on; see
        `Segmenter.switch_video`. The playlist goes on: a discontinuity and a new init."""
        self._seg.switch_video(track)

    def push_video(self, sample: Sample) -> list[Part | Segment]:
        """Add an AVCC access unit; returns the parts and segments it completed."""
        map_index = self._seg.map_index
        events = self._seg.push_video(sample)
        if self._seg.map_index != map_index:  # a switch took effect
            self.video = self._seg.video
            self._inits[self._seg.map_index] = init_segment(self._seg.tracks)
            self.codecs = ",".join(t.config.codec for t in self._seg.tracks)
        if self._frames == 0:
            self._first_dts = sample.dts
        self._frames += 1
        self._last_dts = sample.dts
        return self._apply(events)

    def push_audio(self, sample: Sample) -> list[Part | Segment]:
        """Add a raw AAC frame (dts in samples)."""
        return self._apply(self._seg.push_audio(sample))

    def end(self) -> list[Part | Segment]:
        """Flush and mark the playlist ended (ENDLIST); blocked requests complete."""
        if self._seg.ended:
            return []
        events = self._seg.end()
        self._apply(events, force=True)
        return events

    @property
    def ended(self) -> bool:
        return self._seg.ended

    def _apply(self, events: list[Part | Segment], *, force: bool = False) -> list[Part | Segment]:
        if not self._started and self._seg.open_start_s is not None:
            self._started = force = True  # the first keyframe brings the preload hint
        if not events and not force:
            return events
        closed = self._seg.ended  # ENDLIST changes the classic playlist too
        for ev in events:
            if isinstance(ev, Part):
                self._open_block += pl.part_line(ev)
                continue
            closed = True
            self._discontinuities += ev.discontinuity
            self._entries.append(_Entry(ev))
            self._history.append(ev.info)
            self._open_block = ""
            self.target_duration = max(self.target_duration, pl.rounded(ev.duration_s))
            while len(self._entries) > self._config.window_segments + self._config.retain_segments:
                self._entries.popleft()
        self.version += 1
        if closed:
            self.segment_version += 1
        self._owner._changed(closed)
        return events

    # -- origin side: state and lookups ----------------------------------------------------

    @property
    def part_target_s(self) -> float:
        """PART-TARGET: the configured target, raised only by an oversized timestamp gap."""
        return self._seg.max_part_ticks / self._seg.timescale

    @property
    def position(self) -> LivePosition:
        cached = self._position
        if cached is not None and cached[0] == self.version:
            return cached[1]
        last_msn = self._entries[-1].segment.msn if self._entries else -1
        if self._seg.parts:
            part_msn, last_part = self._seg.msn, len(self._seg.parts) - 1
        elif self._entries:
            part_msn, last_part = last_msn, len(self._entries[-1].segment.parts) - 1
        else:
            part_msn, last_part = -1, -1
        pos = LivePosition(last_msn, part_msn, last_part, self._seg.ended)
        self._position = (self.version, pos)
        return pos

    def check_request(self, req: BlockingRequest) -> None:
        """Raise HLSError (status 400) if a blocking reload reaches too far ahead."""
        per_segment = math.ceil(self.target_duration / self.part_target_s)
        check_request(
            req, self.position, part_target_s=self.part_target_s, parts_per_segment=per_segment
        )

    def playlist_ready(self, req: BlockingRequest) -> bool:
        return playlist_ready(req, self.position)

    @property
    def blocking_timeout_s(self) -> float:
        """How long an origin may hold a blocking reload before answering 503."""
        return 3.0 * self.target_duration

    def _entry(self, msn: int) -> tuple[Availability, _Entry | None]:
        if self._entries:
            first = self._entries[0].segment.msn
            if msn < first:
                return Availability.EXPIRED, None
            if msn - first < len(self._entries):
                return Availability.AVAILABLE, self._entries[msn - first]
        if msn == self._seg.msn and not self._seg.ended:
            return Availability.PENDING, None
        return Availability.NOT_FOUND, None

    def segment(self, msn: int) -> tuple[Availability, bytes | None]:
        status, entry = self._entry(msn)
        return status, None if entry is None else entry.segment.payload

    def part(self, msn: int, index: int) -> tuple[Availability, bytes | None]:
        """A part's bytes; PENDING for the preload-hinted next part (hold the request)."""
        status, entry = self._entry(msn)
        if entry is not None:
            parts = entry.segment.parts
            if index < len(parts):
                return Availability.AVAILABLE, parts[index].payload
            return Availability.NOT_FOUND, None
        if status is Availability.PENDING:
            parts_open = self._seg.parts
            if index < len(parts_open):
                return Availability.AVAILABLE, parts_open[index].payload
            if index > len(parts_open):
                return Availability.NOT_FOUND, None
        return status, None

    def resource(self, name: str) -> tuple[Availability, bytes | None]:
        """Look up `init.mp4`, `<msn>.m4s` or `<msn>.<part>.m4s` by file name."""
        ref = parse_resource(name)
        if ref is None:
            return Availability.NOT_FOUND, None
        if ref.kind == "init":
            init = self.init_for(ref.map_index)
            return (Availability.AVAILABLE, init) if init else (Availability.NOT_FOUND, None)
        if ref.kind == "segment":
            return self.segment(ref.msn)
        return self.part(ref.msn, ref.part)

    # -- origin side: playlists --------------------------------------------------------------

    def _window(self) -> list[_Entry]:
        entries = self._entries
        skip = max(0, len(entries) - self._config.window_segments)
        return [entries[i] for i in range(skip, len(entries))]

    def skip_until_s(self) -> float | None:
        """CAN-SKIP-UNTIL: at least six target durations, as the spec requires."""
        if self._config.skip_until_s is None:
            return None
        return max(self._config.skip_until_s, 6.0 * self.target_duration)

    def media_playlist(
        self, *, low_latency: bool = True, skip: bool | Literal["YES", "v2"] = False
    ) -> bytes:
        """The live media playlist bytes, rendered at most once per change.

        `skip` asks for a delta update (`_HLS_skip=YES`, or `v2`, which also skips date
        ranges: we have none, so it differs only by the empty removed-list the spec wants).
        Without CAN-SKIP-UNTIL configured, the full playlist is the answer.
        """
        if skip == "v2" and low_latency:
            return pl.skipping_dateranges(self.media_playlist(skip=True))
        if not low_latency:
            if self._classic is None or self._classic[0] != self.segment_version:
                self._classic = (self.segment_version, self._render_classic())
            return self._classic[1]
        key = 1 if skip and self._config.skip_until_s is not None else 0
        stamp = self._owner.version
        cached = self._ll[key]
        if cached is not None and cached[0] == stamp:
            return cached[1]
        body = self._ll_body[key]
        if body is None or body[0] != self.version:
            body = self._ll_body[key] = (self.version, self._render_ll(skip=key == 1))
        data = (body[1] + self._owner._reports(self)).encode()
        self._ll[key] = (stamp, data)
        return data

    def _render_classic(self) -> bytes:
        window = self._window()
        first = window[0].segment.msn if window else self._seg.msn
        text = pl.media_header(
            target_duration=self.target_duration, media_sequence=first, part_target_s=None,
            map_index=self._map_of(window),
            discontinuity_sequence=self._discontinuity_sequence(window),
        )
        text += "".join(e.plain for e in window)
        return (text + ("#EXT-X-ENDLIST\n" if self._seg.ended else "")).encode()

    def _render_ll(self, *, skip: bool) -> str:
        window = self._window()
        first = window[0].segment.msn if window else self._seg.msn
        open_parts = self._seg.parts
        end_s = sum(p.duration_s for p in open_parts)
        if window:
            end_s += _end(window[-1])
        skip_until = self.skip_until_s()
        skipped = 0
        if skip and skip_until is not None:
            while skipped < len(window) and end_s - _end(window[skipped]) >= skip_until:
                skipped += 1
        listed = window[skipped:]
        # The open segment (its parts, or just the preload hint) is a segment to a parser.
        open_listed = not self._seg.ended and self._seg.open_start_s is not None
        cut = len(listed) - _part_window(listed, end_s - 3 * self.target_duration, open_listed)
        part_target_s = pl.part_target(
            self.part_target_s,
            [[p.duration_s for p in e.segment.parts] for e in listed[cut:]],
            [p.duration_s for p in open_parts],
        )
        text = pl.media_header(
            target_duration=self.target_duration,
            media_sequence=first,
            part_target_s=part_target_s,
            skip_until_s=skip_until,
            skipped=skipped,
            map_index=self._map_of(listed),
            discontinuity_sequence=self._discontinuity_sequence(window),
        )
        text += "".join(e.plain if i < cut else e.with_parts for i, e in enumerate(listed))
        if self._seg.ended:
            return text + "#EXT-X-ENDLIST\n"
        if open_listed and self._seg.open_discontinuity:
            text += pl.discontinuity_lines(self._seg.map_index)
        if open_parts:
            text += pl.pdt_line(self._seg.open_pdt()) + self._open_block
        if open_listed:
            text += pl.preload_hint(self._seg.msn, len(open_parts))
        return text

    def _map_of(self, listed: list[_Entry]) -> int:
        """The init segment for the header's EXT-X-MAP: the first listed segment's."""
        return listed[0].segment.map_index if listed else self._seg.map_index

    def _discontinuity_sequence(self, window: list[_Entry]) -> int:
        """EXT-X-DISCONTINUITY-SEQUENCE: the breaks that have left the playlist."""
        return self._discontinuities - sum(e.segment.discontinuity for e in window)

    def vod_playlist(self) -> bytes:
        """Every segment since the start, as a VOD playlist (for a recorded stream)."""
        return pl.vod_playlist(self._history)

    def bandwidth(self) -> tuple[int, int | None]:
        """(peak, average) bits per second: declared, raised by what the window measured."""
        peak, total_bits, total_s = 0.0, 0, 0.0
        for e in self._entries:
            seg = e.segment
            if seg.duration_s > 0:
                peak = max(peak, len(seg.payload) * 8 / seg.duration_s)
                total_bits += len(seg.payload) * 8
                total_s += seg.duration_s
        average = round(total_bits / total_s) if total_s else self.bandwidth_bps
        return max(self.bandwidth_bps or 0, math.ceil(peak)), average

    def measured_frame_rate(self) -> float | None:
        if self._frames < 2 or self._last_dts <= self._first_dts:
            return None
        return (self._frames - 1) * 90_000 / (self._last_dts - self._first_dts)


def _end(entry: _Entry) -> float:
    return entry.segment.start_s + entry.segment.duration_s


def _part_window(listed: list[_Entry], parts_from_s: float, open_listed: bool) -> int:
    """How many of the last listed segments keep their EXT-X-PART tags.

    RFC 8216bis 4.4.4.9: remove part tags once they are more than three target durations
    from the end of the playlist. A segment keeps them only if it starts within that
    span (so none of its parts lies further out), and at most the last three segments,
    the open one counted, do: strict parsers read the rule by count.
    """
    allowed = 2 if open_listed else 3
    count = 0
    for entry in reversed(listed):
        if count == allowed or entry.segment.start_s < parts_from_s - 1e-9:
            break
        count += 1
    return count


class Presentation:
    """All renditions of one live stream: master playlist and rendition reports."""

    def __init__(self, config: PackagerConfig | None = None) -> None:
        self.config = config or PackagerConfig()
        self.version = 0  # bumps on any rendition change (rendition reports follow it)
        self.segment_version = 0
        self._renditions: dict[str, Rendition] = {}
        self._master: list[tuple[int, bytes] | None] = [None, None]
        # Which variant to list first, by preference (players start on the first one).
        self.start_with: tuple[str, ...] = ()

    def add_rendition(
        self,
        name: str,
        *,
        video: VideoTrack | None = None,
        audio: AudioTrack | None = None,
        bandwidth_bps: int | None = None,
        frame_rate: float | None = None,
    ) -> Rendition:
        if name in self._renditions:
            raise HLSError(f"rendition {name!r} already exists")
        rendition = Rendition(
            self, name, video, audio, bandwidth_bps=bandwidth_bps, frame_rate=frame_rate
        )
        self._renditions[name] = rendition
        self._changed(True)
        return rendition

    def __iter__(self) -> Iterator[Rendition]:
        return iter(self._renditions.values())

    def get(self, name: str) -> Rendition | None:
        return self._renditions.get(name)

    def end(self) -> None:
        for rendition in self._renditions.values():
            rendition.end()

    def set_hidden(self, name: str, hidden: bool) -> None:
        """Leave a rendition out of the master (new players) or put it back; players that
        already know it keep loading its playlist, which goes on either way."""
        rendition = self._renditions[name]
        if rendition.hidden != hidden:
            rendition.hidden = hidden
            self._changed(True)

    def _changed(self, segment_closed: bool) -> None:
        self.version += 1
        if segment_closed:
            self.segment_version += 1

    def _reports(self, current: Rendition) -> str:
        lines = []
        for other in self._renditions.values():
            if other is current:
                continue
            pos = other.position
            if pos.part_msn >= 0:
                lines.append(
                    pl.rendition_report(
                        f"../{other.name}/{PLAYLIST_URI}", pos.part_msn, pos.last_part
                    )
                )
        return "".join(lines)

    def _ordered(self) -> list[Rendition]:
        """Renditions in master order: the first visible of `start_with` first (players
        start on the first variant), then the others as added."""
        ordered = list(self._renditions.values())
        first = next((r for name in self.start_with
                      if (r := self._renditions.get(name)) is not None and not r.hidden), None)
        if first is not None:
            ordered.remove(first)
            ordered.insert(0, first)
        return ordered

    def master_playlist(self, *, low_latency: bool = True) -> bytes:
        """Variants `<name>/index.m3u8` (or classic.m3u8); a rung appears once it can be
        described: declared bandwidth, or one complete segment to measure."""
        key = 0 if low_latency else 1
        cached = self._master[key]
        if cached is not None and cached[0] == self.segment_version:
            return cached[1]
        data = pl.master_playlist(self.master_variants(low_latency=low_latency))
        self._master[key] = (self.segment_version, data)
        return data

    def master_variants(self, *, low_latency: bool = True) -> list[pl.Variant]:
        """The master's variants (relative URIs), for masters built elsewhere (a steered
        master lists them once per pathway); they change with `segment_version`."""
        uri = PLAYLIST_URI if low_latency else CLASSIC_PLAYLIST_URI
        variants = []
        for r in self._ordered():
            if r.hidden:
                continue
            peak, average = r.bandwidth()
            if peak <= 0:
                continue
            resolution = None
            if r.video is not None:
                resolution = (r.video.config.width, r.video.config.height)
            fps = r.frame_rate or (r.measured_frame_rate() if r.video else None)
            variants.append(pl.Variant(f"{r.name}/{uri}", peak, r.codecs, average, resolution, fps))
        return variants
