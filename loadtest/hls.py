"""What an hls.js player decides, as pure functions over parsed playlists (no I/O, no Locust).

The Locust player (`loadtest.users.player`) does the fetching; every choice it makes comes
from here so it can be tested on recorded playlists:

- `join_point`: where a player starts, behind the live edge by the hold-back
  (PART-HOLD-BACK for LL-HLS, HOLD-BACK for classic; 3 targets when absent), moved back to
  an independent part so decoding can start (hls.js `liveSyncPosition`).
- `next_chunk` / `blocking_request`: the next part (or segment) after the last one loaded,
  and the `_HLS_msn`/`_HLS_part` a blocking reload asks for when it is not listed yet.
- `Throughput` and `choose_variant`: hls.js's EWMA bandwidth estimate (fast 3 s, slow 9 s
  half-lives, the smaller wins) and its up/down factors (0.7 / 0.95).
- `steering_pathway`: the first PATHWAY-PRIORITY entry the player has not penalised.
- `Playback`: startup, stalls and live-edge latency from PROGRAM-DATE-TIME, on a clock
  the caller passes in.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache

import m3u8

DEFAULT_ESTIMATE_BPS = 500_000.0  # hls.js abrEwmaDefaultEstimate
UP_FACTOR = 0.7  # hls.js abrBandWidthUpFactor
DOWN_FACTOR = 0.95  # hls.js abrBandWidthFactor
FAST_HALF_LIFE_S = 3.0  # hls.js abrEwmaFastLive
SLOW_HALF_LIFE_S = 9.0  # hls.js abrEwmaSlowLive


class PlaylistError(ValueError):
    """A playlist the player cannot use (no media, no variants)."""


@dataclass(frozen=True)
class Chunk:
    """One loadable piece: a part (`part` set) or a whole segment (`part` None)."""

    msn: int
    part: int | None
    uri: str
    duration_s: float
    independent: bool
    start_epoch_s: float | None  # PROGRAM-DATE-TIME of its first sample


@dataclass(frozen=True)
class MediaView:
    """The parts of a live media playlist a player uses."""

    segments: tuple[Chunk, ...]  # complete segments
    parts: tuple[Chunk, ...]  # every listed part, in order (incl. the open segment's)
    hold_back_s: float
    part_hold_back_s: float | None
    target_duration_s: float
    can_block_reload: bool
    init_uri: str | None
    ended: bool

    @property
    def low_latency(self) -> bool:
        return bool(self.parts) and self.part_hold_back_s is not None


def parse_media(text: str) -> MediaView:
    """Read a media playlist; PDT is carried forward over segments that lack the tag."""
    if not text.startswith("#EXTM3U"):
        raise PlaylistError("not an HLS playlist")
    playlist = m3u8.loads(text)
    control = playlist.server_control
    target_s = float(playlist.target_duration or 0)
    part_target_s = float(playlist.part_inf.part_target) if playlist.part_inf else None
    segments: list[Chunk] = []
    parts: list[Chunk] = []
    msn = int(playlist.media_sequence or 0)
    next_epoch: float | None = None
    for segment in playlist.segments:
        epoch = (segment.program_date_time.timestamp() if segment.program_date_time
                 else next_epoch)
        part_epoch = epoch
        for index, part in enumerate(segment.parts):
            parts.append(Chunk(msn, index, part.uri, float(part.duration),
                               bool(part.independent), part_epoch))
            part_epoch = None if part_epoch is None else part_epoch + float(part.duration)
        if segment.uri:
            segments.append(Chunk(msn, None, segment.uri, float(segment.duration), True, epoch))
            next_epoch = None if epoch is None else epoch + float(segment.duration)
        else:
            next_epoch = part_epoch
        msn += 1
    hold_back = getattr(control, "hold_back", None)
    part_hold_back = getattr(control, "part_hold_back", None)
    if part_hold_back is None and part_target_s is not None:
        part_hold_back = 3 * part_target_s
    return MediaView(
        segments=tuple(segments), parts=tuple(parts),
        hold_back_s=float(hold_back) if hold_back is not None else 3 * target_s,
        part_hold_back_s=float(part_hold_back) if part_hold_back is not None else None,
        target_duration_s=target_s,
        can_block_reload=getattr(control, "can_block_reload", None) == "YES",
        init_uri=playlist.segment_map[0].uri if playlist.segment_map else None,
        ended=bool(playlist.is_endlist),
    )


@lru_cache(maxsize=256)
def parse_media_shared(text: str) -> MediaView:
    """`parse_media`, shared by the players of one generator process.

    LL-HLS wakes every player of a rendition at once with the same playlist bytes; parsing
    them once per process instead of once per player keeps that burst (and the generator's
    own lag, which would inflate every figure it measures) short. Views are immutable.
    """
    return parse_media(text)


def _chunks(view: MediaView, low_latency: bool) -> tuple[Chunk, ...]:
    return view.parts if low_latency and view.low_latency else view.segments


def join_point(view: MediaView, *, low_latency: bool) -> Chunk:
    """The first chunk to load: hold-back behind the live edge, on an independent chunk."""
    chunks = _chunks(view, low_latency)
    if not chunks:
        raise PlaylistError("the playlist lists nothing to play yet")
    use_parts = chunks is view.parts
    hold_s = view.part_hold_back_s if use_parts and view.part_hold_back_s else view.hold_back_s
    behind_s = 0.0
    index = len(chunks) - 1
    while index > 0 and behind_s + chunks[index].duration_s < hold_s:
        behind_s += chunks[index].duration_s
        index -= 1
    while index > 0 and not chunks[index].independent:
        index -= 1
    return chunks[index]


def _order(chunk: Chunk) -> tuple[int, int]:
    return chunk.msn, -1 if chunk.part is None else chunk.part


def next_chunk(view: MediaView, after: Chunk, *, low_latency: bool) -> Chunk | None:
    """The chunk that follows `after` if the playlist lists it yet (matched by number)."""
    for chunk in _chunks(view, low_latency):
        if after.part is None or chunk.part is None:
            if chunk.msn > after.msn:
                return chunk
        elif _order(chunk) > _order(after):
            return chunk
    return None


def blocking_request(view: MediaView, after: Chunk) -> tuple[int, int | None]:
    """(`_HLS_msn`, `_HLS_part`) of the reload that waits for the chunk after `after`.

    After a part: the next part of its segment, or part 0 of the next segment once the
    playlist shows its segment complete. After a segment: the next segment (no part).
    """
    if after.part is None:
        return after.msn + 1, None
    if any(segment.msn == after.msn for segment in view.segments):
        return after.msn + 1, 0
    return after.msn, after.part + 1


def choose_variant(bandwidths_bps: Sequence[float], estimate_bps: float, current: int) -> int:
    """Index of the variant hls.js would pick: the highest whose BANDWIDTH fits the
    estimate (times 0.95 for the current rung and below, 0.7 to go up); else the lowest."""
    if not bandwidths_bps:
        raise PlaylistError("the master lists no variants")
    order = sorted(range(len(bandwidths_bps)), key=lambda i: bandwidths_bps[i])
    current_bps = bandwidths_bps[current] if 0 <= current < len(bandwidths_bps) else 0.0
    best = order[0]
    for index in order:
        factor = DOWN_FACTOR if bandwidths_bps[index] <= current_bps else UP_FACTOR
        if bandwidths_bps[index] <= estimate_bps * factor:
            best = index
    return best


@dataclass
class _Ewma:
    half_life_s: float
    estimate: float = 0.0
    total_weight: float = 0.0

    def sample(self, weight_s: float, value: float) -> None:
        alpha = math.pow(0.5, weight_s / self.half_life_s)
        self.estimate = value * (1 - alpha) + alpha * self.estimate
        self.total_weight += weight_s

    def value(self, default: float) -> float:
        if self.total_weight <= 0:
            return default
        zero_factor = 1 - math.pow(0.5, self.total_weight / self.half_life_s)
        return self.estimate / zero_factor


@dataclass
class Throughput:
    """hls.js EwmaBandWidthEstimator: samples weighted by transfer time (at least 50 ms)."""

    fast: _Ewma = field(default_factory=lambda: _Ewma(FAST_HALF_LIFE_S))
    slow: _Ewma = field(default_factory=lambda: _Ewma(SLOW_HALF_LIFE_S))

    def sample(self, elapsed_s: float, size_bytes: int) -> None:
        elapsed_s = max(elapsed_s, 0.05)
        bps = 8 * size_bytes / elapsed_s
        self.fast.sample(elapsed_s, bps)
        self.slow.sample(elapsed_s, bps)

    def estimate_bps(self) -> float:
        return min(self.fast.value(DEFAULT_ESTIMATE_BPS), self.slow.value(DEFAULT_ESTIMATE_BPS))


def steering_pathway(priority: Sequence[str], available: Sequence[str],
                     penalised: set[str]) -> str:
    """The first pathway of PATHWAY-PRIORITY the master offers and the player has not
    penalised; if every one is penalised, the first offered (hls.js resets penalties)."""
    offered = [p for p in priority if p in available] or list(available)
    if not offered:
        raise PlaylistError("the master lists no pathway")
    for pathway in offered:
        if pathway not in penalised:
            return pathway
    return offered[0]


@dataclass
class Playback:
    """A player's clock: media loaded vs wall time played; stalls are rebuffering.

    Playback starts when the first chunk has loaded (startup = that moment minus the
    session's scheduled arrival). From then the playhead advances with wall time while
    media is buffered; whenever new media arrives after the buffer ran dry, the gap is a
    stall. Latency is wall time minus the PROGRAM-DATE-TIME at the playhead.
    """

    arrival_s: float  # the scheduled arrival time, on the caller's clock
    started_s: float | None = None
    loaded_media_s: float = 0.0
    stalled_s: float = 0.0
    stalls: int = 0
    loaded_end_epoch_s: float | None = None  # PDT just past the newest loaded chunk

    def played_media_s(self, now_s: float) -> float:
        if self.started_s is None:
            return 0.0
        return min(now_s - self.started_s - self.stalled_s, self.loaded_media_s)

    def buffer_s(self, now_s: float) -> float:
        return self.loaded_media_s - self.played_media_s(now_s)

    def _settle(self, now_s: float) -> None:
        if self.started_s is None:
            return
        dry_s = now_s - self.started_s - self.stalled_s - self.loaded_media_s
        if dry_s > 0:
            self.stalled_s += dry_s
            self.stalls += 1

    def loaded(self, chunk: Chunk, now_s: float) -> float | None:
        """Record a loaded chunk; returns the startup time on the first one."""
        self._settle(now_s)
        self.loaded_media_s += chunk.duration_s
        if chunk.start_epoch_s is not None:
            self.loaded_end_epoch_s = chunk.start_epoch_s + chunk.duration_s
        if self.started_s is None:
            self.started_s = now_s
            return now_s - self.arrival_s
        return None

    def finish(self, now_s: float) -> tuple[float, float]:
        """(watched wall seconds, stalled seconds) at the end of the session."""
        self._settle(now_s)
        if self.started_s is None:
            return 0.0, 0.0
        return now_s - self.started_s, self.stalled_s

    def latency_s(self, now_s: float, now_epoch_s: float) -> float | None:
        """Live-edge latency: wall clock minus the PDT of the media at the playhead."""
        if self.loaded_end_epoch_s is None or self.started_s is None:
            return None
        return now_epoch_s - (self.loaded_end_epoch_s - self.buffer_s(now_s))
