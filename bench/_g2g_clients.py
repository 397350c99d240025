"""The bench's HTTP side: live-edge watchers and player models, recording what arrived when.

- `follow_parts`: follows an LL-HLS playlist part by part with blocking reloads
  (`_HLS_msn`/`_HLS_part`); a part is available when a playlist listing it arrives.
- `follow_segments`: polls a classic playlist every `poll_s`; a segment is available when
  a playlist listing it arrives (so the figure carries up to `poll_s` of polling delay).
- `ll_player`: joins PART-HOLD-BACK behind the end of the playlist (RFC 8216bis 6.3.3),
  fetches from the independent part at or before that point, then asks for each next
  part with a blocking reload and fetches it; plays in real time from the join point.
- `classic_player`: joins three target durations (HOLD-BACK) behind the end, fetches the
  segment holding that point and every later one, reloading the playlist after one target
  duration when it changed and half of one when it did not (RFC 8216bis 6.3.4).

Every fetched part or segment is parsed for its video decode timestamps; the pure code
in `_g2g_media` turns (arrival time, timestamps) into per-frame latencies.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from urllib.parse import urljoin

import httpx
import trio
from _g2g_media import (
    VIDEO_TIMESCALE,
    Item,
    Playlist,
    Playout,
    covering,
    fmp4_video_dts,
    init_video_track,
    join_target_s,
    parse_playlist,
    ts_video_dts,
)


@dataclass
class Arrival:
    wall_s: float
    msn: int
    index: int  # -1: a whole segment
    dts: list[int]


@dataclass
class Record:
    """What one watcher or player saw; a player also has its presentation clock."""

    arrivals: list[Arrival] = field(default_factory=list)
    playout: Playout | None = None
    errors: int = 0
    playlist: Playlist | None = None  # the latest one seen


class Media:
    """Fetches parts/segments and reads their video timestamps (fMP4 or MPEG-TS)."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self._tracks: dict[str, int] = {}

    async def dts(self, playlist_url: str, uri: str) -> list[int]:
        url = urljoin(playlist_url, uri)
        r = await self.client.get(url)
        r.raise_for_status()
        if uri.endswith(".ts"):
            return ts_video_dts(r.content)
        init_url = urljoin(playlist_url, "init.mp4")
        if init_url not in self._tracks:
            init = await self.client.get(init_url)
            init.raise_for_status()
            track_id, timescale = init_video_track(init.content)
            if timescale != VIDEO_TIMESCALE:
                raise ValueError(f"video timescale {timescale}, expected {VIDEO_TIMESCALE}")
            self._tracks[init_url] = track_id
        return fmp4_video_dts(r.content, self._tracks[init_url])


async def _playlist(client: httpx.AsyncClient, url: str, **params: int) -> Playlist | None:
    r = await client.get(url, params=params or None)
    if r.status_code != 200:
        return None
    return parse_playlist(r.text)


async def _first_playlist(client: httpx.AsyncClient, url: str, *, parts: bool,
                          joining: bool = False, poll_s: float = 0.02) -> tuple[float, Playlist]:
    """The first playlist that lists parts (or segments); for a player `joining`, the first
    that also holds the hold-back plus one target duration of media, as for a viewer who
    arrives at a stream that has been live for a while."""
    while True:
        pl = await _playlist(client, url)
        listed = pl is not None and (pl.parts if parts else pl.segments)
        if pl is not None and listed and (
                not joining or pl.end_s >= hold_back_s(pl, ll=parts) + pl.target_duration_s):
            return time.monotonic(), pl
        await trio.sleep(poll_s)


def hold_back_s(pl: Playlist, *, ll: bool) -> float:
    """How far behind the end a player starts: PART-HOLD-BACK (LL-HLS; the spec's floor
    is three part durations) or HOLD-BACK (classic; three target durations)."""
    if ll:
        return pl.part_hold_back_s or 3 * max(p.duration_s for p in pl.parts)
    return pl.hold_back_s or 3 * pl.target_duration_s


async def _follow_blocking(media: Media, url: str, pl: Playlist, wall_s: float,
                           rec: Record, seen: set[str]) -> None:
    """From playlist `pl` (arrived at wall_s) on: fetch every part not yet seen, then
    block for the next one; until the playlist ends (or the caller cancels)."""
    while True:
        rec.playlist = pl
        for part in pl.parts:
            if part.uri not in seen:
                seen.add(part.uri)
                rec.arrivals.append(Arrival(wall_s, part.msn, part.index,
                                            await media.dts(url, part.uri)))
        if pl.ended or not pl.parts:
            return
        last = pl.parts[-1]
        nxt = await _playlist(media.client, url, _HLS_msn=last.msn, _HLS_part=last.index + 1)
        wall_s = time.monotonic()
        if nxt is None:
            rec.errors += 1  # 503 after the origin's hold timeout: ask again
            continue
        pl = nxt


async def follow_parts(client: httpx.AsyncClient, url: str, rec: Record) -> None:
    wall_s, pl = await _first_playlist(client, url, parts=True)
    await _follow_blocking(Media(client), url, pl, wall_s, rec, set())


async def follow_segments(client: httpx.AsyncClient, url: str, rec: Record,
                          poll_s: float = 0.02) -> None:
    media, seen = Media(client), set()
    while True:
        pl = await _playlist(client, url)
        wall_s = time.monotonic()
        if pl is not None:
            rec.playlist = pl
            for seg in pl.segments:
                if seg.uri not in seen:
                    seen.add(seg.uri)
                    rec.arrivals.append(Arrival(wall_s, seg.msn, -1,
                                                await media.dts(url, seg.uri)))
            if pl.ended:
                return
        await trio.sleep(poll_s)


def _start_dts(item_start_s: float, dts: list[int], target_s: float) -> int:
    """The first frame at or after playlist time target_s in an item starting at
    item_start_s (timestamps from the item's own first frame)."""
    want = dts[0] + round((target_s - item_start_s) * VIDEO_TIMESCALE)
    return next((d for d in dts if d >= want), dts[-1])


async def _sleep_until(wall_s: float) -> None:
    await trio.sleep(max(0.0, wall_s - time.monotonic()))


async def ll_player(client: httpx.AsyncClient, url: str, delay_s: float, rec: Record) -> None:
    """Joins `delay_s` after the playlist first holds enough media to join."""
    await _first_playlist(client, url, parts=True, joining=True)
    await trio.sleep(delay_s)
    _, pl = await _first_playlist(client, url, parts=True, joining=True)
    target = join_target_s(pl, hold_back_s(pl, ll=True))
    at = covering(pl.parts, target) or pl.parts[0]
    i = pl.parts.index(at)
    first = max((j for j in range(i + 1) if pl.parts[j].independent), default=0)
    media, seen = Media(client), set()
    part: Item
    for part in pl.parts[first : i + 1]:  # decode from the independent part; show from `at`
        seen.add(part.uri)
        dts = await media.dts(url, part.uri)
        rec.arrivals.append(Arrival(time.monotonic(), part.msn, part.index, dts))
    rec.playout = Playout(_start_dts(at.start_s, rec.arrivals[-1].dts, target),
                          time.monotonic())
    await _follow_blocking(media, url, pl, time.monotonic(), rec, seen)


async def classic_player(client: httpx.AsyncClient, url: str, delay_s: float,
                         rec: Record) -> None:
    """Joins `delay_s` after the playlist first holds enough media to join."""
    await _first_playlist(client, url, parts=False, joining=True)
    await trio.sleep(delay_s)
    loaded_at, pl = await _first_playlist(client, url, parts=False, joining=True)
    target_duration = pl.target_duration_s
    target = join_target_s(pl, hold_back_s(pl, ll=False))
    at = covering(pl.segments, target) or pl.segments[0]
    media, seen = Media(client), set()
    dts = await media.dts(url, at.uri)
    seen.add(at.uri)
    now = time.monotonic()
    rec.arrivals.append(Arrival(now, at.msn, -1, dts))
    rec.playout = Playout(_start_dts(at.start_s, dts, target), now)
    changed = True
    while True:
        for seg in pl.segments:
            if seg.uri not in seen and seg.msn > at.msn:
                seen.add(seg.uri)
                rec.arrivals.append(Arrival(time.monotonic(), seg.msn, -1,
                                            await media.dts(url, seg.uri)))
        if pl.ended:
            return
        await _sleep_until(loaded_at + (target_duration if changed else target_duration / 2))
        loaded_at = time.monotonic()
        nxt = await _playlist(client, url)
        if nxt is None:
            rec.errors += 1
            changed = False
            continue
        changed = any(s.uri not in seen for s in nxt.segments)
        pl = nxt
