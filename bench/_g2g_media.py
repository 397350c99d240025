"""Pure parts of the glass-to-glass bench: read media timestamps, playlists, play out.

Nothing here does I/O or reads a clock: the bench's live tasks record what arrived when,
and these functions turn those records into per-frame latencies (so they can be tested).

- `fmp4_video_dts` / `ts_video_dts`: the decode timestamps (90 kHz) of every video frame
  in an fMP4 part/segment (tfdt + trun) or an MPEG-TS segment (PES headers).
- `parse_playlist`: the few tags a player model needs (parts, segments, hold-backs).
- `Playout`: a player's presentation clock: real time from a join point, stalling when a
  frame arrives after it is due; latency = presentation wall time - publish wall time.
"""

from __future__ import annotations

import math
import re
import struct
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field

VIDEO_TIMESCALE = 90_000

# -- fMP4 -----------------------------------------------------------------------------------


def _boxes(data: bytes, start: int = 0, end: int | None = None) -> Iterator[tuple[bytes, int, int]]:
    """(type, payload start, box end) for each box in data[start:end]."""
    end = len(data) if end is None else end
    pos = start
    while pos + 8 <= end:
        size, kind = struct.unpack_from(">I4s", data, pos)
        header = 8
        if size == 1:
            size = struct.unpack_from(">Q", data, pos + 8)[0]
            header = 16
        elif size == 0:
            size = end - pos
        if size < header or pos + size > end:
            raise ValueError(f"truncated {kind!r} box at {pos}")
        yield kind, pos + header, pos + size
        pos += size


def _child(data: bytes, start: int, end: int, kind: bytes) -> tuple[int, int] | None:
    for k, s, e in _boxes(data, start, end):
        if k == kind:
            return s, e
    return None


def init_video_track(init: bytes) -> tuple[int, int]:
    """(track id, timescale) of the first video track of an fMP4 init segment."""
    moov = _child(init, 0, len(init), b"moov")
    if moov is None:
        raise ValueError("init segment has no moov")
    for kind, start, end in _boxes(init, *moov):
        if kind != b"trak":
            continue
        tkhd = _child(init, start, end, b"tkhd")
        mdia = _child(init, start, end, b"mdia")
        if tkhd is None or mdia is None:
            continue
        mdhd = _child(init, *mdia, b"mdhd")
        hdlr = _child(init, *mdia, b"hdlr")
        if mdhd is None or hdlr is None or init[hdlr[0] + 8 : hdlr[0] + 12] != b"vide":
            continue
        v1 = init[tkhd[0]] == 1
        track_id = struct.unpack_from(">I", init, tkhd[0] + (20 if v1 else 12))[0]
        v1 = init[mdhd[0]] == 1
        timescale = struct.unpack_from(">I", init, mdhd[0] + (20 if v1 else 12))[0]
        return int(track_id), int(timescale)
    raise ValueError("init segment has no video track")


def fmp4_video_dts(data: bytes, track_id: int = 1) -> list[int]:
    """Decode timestamps of every sample of `track_id` in one or more moof+mdat pairs."""
    out: list[int] = []
    for kind, start, end in _boxes(data):
        if kind != b"moof":
            continue
        for k, s, e in _boxes(data, start, end):
            if k != b"traf":
                continue
            tfhd = _child(data, s, e, b"tfhd")
            tfdt = _child(data, s, e, b"tfdt")
            if tfhd is None or tfdt is None:
                continue
            flags = int.from_bytes(data[tfhd[0] + 1 : tfhd[0] + 4], "big")
            if struct.unpack_from(">I", data, tfhd[0] + 4)[0] != track_id:
                continue
            pos = tfhd[0] + 8 + (8 if flags & 0x01 else 0) + (4 if flags & 0x02 else 0)
            default_dur = struct.unpack_from(">I", data, pos)[0] if flags & 0x08 else 0
            v1 = data[tfdt[0]] == 1
            dts = struct.unpack_from(">Q" if v1 else ">I", data, tfdt[0] + 4)[0]
            for kk, ts, _te in _boxes(data, s, e):
                if kk != b"trun":
                    continue
                tflags = int.from_bytes(data[ts + 1 : ts + 4], "big")
                count = struct.unpack_from(">I", data, ts + 4)[0]
                pos = ts + 8 + (4 if tflags & 0x01 else 0) + (4 if tflags & 0x04 else 0)
                fields = [bit for bit in (0x100, 0x200, 0x400, 0x800) if tflags & bit]
                for _ in range(count):
                    dur = default_dur
                    for bit in fields:
                        if bit == 0x100:
                            dur = struct.unpack_from(">I", data, pos)[0]
                        pos += 4
                    out.append(dts)
                    dts += dur
    return out


# -- MPEG-TS --------------------------------------------------------------------------------


def _pes_timestamp(b: bytes) -> int:
    return ((b[0] >> 1) & 7) << 30 | b[1] << 22 | (b[2] >> 1) << 15 | b[3] << 7 | b[4] >> 1


def ts_video_dts(data: bytes) -> list[int]:
    """DTS (PTS when no DTS) of every H.264 PES in an MPEG-TS segment, 90 kHz, unwrapped."""
    pmt_pid = video_pid = None
    out: list[int] = []
    for pos in range(0, len(data) - 187, 188):
        pkt = data[pos : pos + 188]
        if pkt[0] != 0x47:
            raise ValueError(f"lost TS sync at byte {pos}")
        pusi = bool(pkt[1] & 0x40)
        pid = (pkt[1] & 0x1F) << 8 | pkt[2]
        payload = 4
        if pkt[3] & 0x20:
            payload += 1 + pkt[4]
        if not pkt[3] & 0x10 or payload >= 188:
            continue
        body = pkt[payload:]
        if pid == 0 and pusi:
            sec = body[1 + body[0] :]
            pmt_pid = (sec[10] & 0x1F) << 8 | sec[11]  # first program
        elif pid == pmt_pid and pusi:
            sec = body[1 + body[0] :]
            length = (sec[1] & 0x0F) << 8 | sec[2]
            i = 12 + ((sec[10] & 0x0F) << 8 | sec[11])
            while i + 5 <= 3 + length - 4:
                stype, epid = sec[i], (sec[i + 1] & 0x1F) << 8 | sec[i + 2]
                if stype in (0x1B, 0x24) and video_pid is None:
                    video_pid = epid
                i += 5 + ((sec[i + 3] & 0x0F) << 8 | sec[i + 4])
        elif pid == video_pid and pusi and body[:3] == b"\x00\x00\x01":
            pts_dts = body[7] >> 6
            if pts_dts == 3:
                out.append(_pes_timestamp(body[14:19]))
            elif pts_dts == 2:
                out.append(_pes_timestamp(body[9:14]))
    for i in range(1, len(out)):  # 33-bit wrap
        while out[i] < out[i - 1] - (1 << 32):
            out[i] += 1 << 33
    return out


# -- playlists ------------------------------------------------------------------------------

_ATTR_RE = re.compile(r'([A-Z0-9-]+)=("[^"]*"|[^,]*)')
_PART_URI_RE = re.compile(r"(\d+)\.(\d+)\.m4s$")


def _attrs(line: str) -> dict[str, str]:
    return {k: v.strip('"') for k, v in _ATTR_RE.findall(line.partition(":")[2])}


@dataclass(frozen=True, slots=True)
class Item:
    """A part or a segment as listed; `start_s` counts from the first listed segment."""

    uri: str
    msn: int
    index: int  # part index in its segment; -1 for a whole segment
    start_s: float
    duration_s: float
    independent: bool

    @property
    def end_s(self) -> float:
        return self.start_s + self.duration_s


@dataclass
class Playlist:
    target_duration_s: float = 0.0
    media_sequence: int = 0
    part_hold_back_s: float | None = None
    hold_back_s: float | None = None
    segments: list[Item] = field(default_factory=list)
    parts: list[Item] = field(default_factory=list)
    preload_uri: str | None = None
    ended: bool = False

    @property
    def end_s(self) -> float:
        ends = [i.end_s for i in (self.segments[-1:] + self.parts[-1:])]
        return max(ends, default=0.0)


def parse_playlist(text: str) -> Playlist:
    """The tags the player models use, from a live media playlist (LL-HLS or classic)."""
    pl = Playlist()
    seg_start = part_start = 0.0
    in_segment = 0  # parts seen for the segment being listed
    pending: float | None = None
    for raw in text.splitlines():
        line = raw.strip()
        if line.startswith("#EXT-X-TARGETDURATION:"):
            pl.target_duration_s = float(line.partition(":")[2])
        elif line.startswith("#EXT-X-MEDIA-SEQUENCE:"):
            pl.media_sequence = int(line.partition(":")[2])
        elif line.startswith("#EXT-X-SERVER-CONTROL:"):
            attrs = _attrs(line)
            if "PART-HOLD-BACK" in attrs:
                pl.part_hold_back_s = float(attrs["PART-HOLD-BACK"])
            if "HOLD-BACK" in attrs:
                pl.hold_back_s = float(attrs["HOLD-BACK"])
        elif line.startswith("#EXT-X-PART:"):
            attrs = _attrs(line)
            uri, duration = attrs["URI"], float(attrs["DURATION"])
            msn = pl.media_sequence + len(pl.segments)
            match = _PART_URI_RE.search(uri)
            if in_segment == 0:
                part_start = seg_start
            pl.parts.append(Item(uri, msn, int(match[2]) if match else in_segment, part_start,
                                 duration, attrs.get("INDEPENDENT") == "YES"))
            part_start += duration
            in_segment += 1
        elif line.startswith("#EXTINF:"):
            pending = float(line.partition(":")[2].split(",")[0])
        elif line.startswith("#EXT-X-PRELOAD-HINT:"):
            attrs = _attrs(line)
            if attrs.get("TYPE") == "PART":
                pl.preload_uri = attrs.get("URI")
        elif line == "#EXT-X-ENDLIST":
            pl.ended = True
        elif line and not line.startswith("#") and pending is not None:
            msn = pl.media_sequence + len(pl.segments)
            pl.segments.append(Item(line, msn, -1, seg_start, pending, True))
            seg_start += pending
            pending, in_segment = None, 0
    return pl


def join_target_s(pl: Playlist, hold_back_s: float) -> float:
    """The playlist-relative media time a player starts presenting at: the end minus the
    hold-back (RFC 8216bis 6.3.3: never closer to the end than that), clamped at 0."""
    return max(0.0, pl.end_s - hold_back_s)


def covering(items: Iterable[Item], t_s: float) -> Item | None:
    """The listed item whose span holds t_s (the last one if t_s is at the very end)."""
    last = None
    for item in items:
        last = item
        if item.start_s <= t_s < item.end_s:
            return item
    return last if last is not None and math.isclose(t_s, last.end_s) else None


# -- playout --------------------------------------------------------------------------------


@dataclass
class Playout:
    """A player's presentation clock: plays in real time from the join frame; a frame that
    arrives after it is due stalls playback until it arrives (and later frames follow)."""

    start_dts: int  # first presented frame (90 kHz)
    start_wall_s: float  # when it is presented
    stall_s: float = 0.0
    stalls: int = 0

    def present(self, dts: int, arrived_wall_s: float) -> float | None:
        """Presentation wall time of the frame at `dts` (frames in decode order), or None
        for a frame before the join point (decoded, never shown)."""
        if dts < self.start_dts:
            return None
        due = self.start_wall_s + (dts - self.start_dts) / VIDEO_TIMESCALE + self.stall_s
        if arrived_wall_s > due + 1e-9:
            self.stall_s += arrived_wall_s - due
            self.stalls += 1
            due = arrived_wall_s
        return due


def frame_latencies(
    arrivals: Iterable[tuple[float, list[int]]],
    sent_s: Mapping[int, float],
    *,
    offset_90k: int = 0,
    playout: Playout | None = None,
    first_sent_ms: int | None = None,
) -> dict[int, float]:
    """Per frame (publisher dts, ms): when it was playable (or presented, with `playout`)
    minus when it was sent. `arrivals` are (wall time, video dts list) per part/segment;
    each frame counts once, at its first arrival; frames sent before `first_sent_ms`
    (warm-up) are left out."""
    out: dict[int, float] = {}
    for wall_s, dts_list in arrivals:
        for dts in dts_list:
            ms = round((dts - offset_90k) / 90)
            if ms in out or ms not in sent_s:
                continue
            at = wall_s if playout is None else playout.present(dts, wall_s)
            if at is None or (first_sent_ms is not None and ms < first_sent_ms):
                continue
            out[ms] = at - sent_s[ms]
    return out


def percentile(values: Iterable[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..100); NaN for no values."""
    ordered = sorted(values)
    if not ordered:
        return math.nan
    rank = max(1, math.ceil(q / 100 * len(ordered)))
    return ordered[rank - 1]
