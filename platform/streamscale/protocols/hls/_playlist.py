"""Playlist text: pure functions from the packaging model to M3U8 (RFC 8216bis).

Rendering is split so the expensive part happens once: each segment's lines (PDT, parts,
EXTINF, URI) are built when the segment closes and reused by every later render; a
playlist render is then a join of cached blocks plus a header and a tail.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace

from ._model import Part, Segment, SegmentInfo, init_uri, part_uri, segment_uri

_SKIP_RE = re.compile(rb"^(#EXT-X-SKIP:SKIPPED-SEGMENTS=[0-9]+)\n", re.MULTILINE)
LL_VERSION = 9  # EXT-X-SKIP/delta updates; PART etc. need at least 6
CLASSIC_VERSION = 7


def duration(seconds: float) -> str:
    """Five decimals: exact enough for 90 kHz ticks, and rounding never reorders values."""
    return f"{seconds:.5f}"


def program_date_time(unix_s: float) -> str:
    stamp = dt.datetime.fromtimestamp(unix_s, tz=dt.UTC)
    return stamp.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def rounded(seconds: float) -> int:
    """Round half up, as RFC 8216 4.3.3.1 compares EXTINF with TARGETDURATION."""
    return math.floor(seconds + 0.5)


def part_line(part: Part) -> str:
    independent = ",INDEPENDENT=YES" if part.independent else ""
    return f'#EXT-X-PART:DURATION={duration(part.duration_s)},URI="{part.uri}"{independent}\n'


def pdt_line(unix_s: float | None) -> str:
    return "" if unix_s is None else f"#EXT-X-PROGRAM-DATE-TIME:{program_date_time(unix_s)}\n"


def discontinuity_lines(map_index: int) -> str:
    """A new video track from here on: the break, then the init segment that applies."""
    return f'#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="{init_uri(map_index)}"\n'


def segment_block(seg: Segment | SegmentInfo, *, with_parts: bool) -> str:
    """The lines of one complete segment, optionally preceded by its parts."""
    brk = discontinuity_lines(seg.map_index) if seg.discontinuity else ""
    parts = (
        "".join(part_line(p) for p in seg.parts) if with_parts and isinstance(seg, Segment) else ""
    )
    return (
        f"{brk}{pdt_line(seg.program_date_time_s)}{parts}"
        f"#EXTINF:{duration(seg.duration_s)},\n{segment_uri(seg.msn)}\n"
    )


def server_control(
    *, target_duration: int, part_target_s: float, skip_until_s: float | None
) -> str:
    """Hold-backs at three targets: the spec's floor for HOLD-BACK, Apple's advice for parts."""
    skip = f",CAN-SKIP-UNTIL={duration(skip_until_s)}" if skip_until_s is not None else ""
    return (
        f"#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES{skip},"
        f"PART-HOLD-BACK={duration(3 * part_target_s)},"
        f"HOLD-BACK={duration(3 * target_duration)}\n"
    )


def media_header(
    *,
    target_duration: int,
    media_sequence: int,
    part_target_s: float | None,
    skip_until_s: float | None = None,
    skipped: int = 0,
    map_index: int = 0,
    discontinuity_sequence: int = 0,
) -> str:
    """Everything above the first segment; `part_target_s=None` means classic HLS."""
    lines = [
        "#EXTM3U\n",
        f"#EXT-X-VERSION:{CLASSIC_VERSION if part_target_s is None else LL_VERSION}\n",
        f"#EXT-X-TARGETDURATION:{target_duration}\n",
    ]
    if part_target_s is not None:
        lines.append(
            server_control(
                target_duration=target_duration,
                part_target_s=part_target_s,
                skip_until_s=skip_until_s,
            )
        )
        lines.append(f"#EXT-X-PART-INF:PART-TARGET={duration(part_target_s)}\n")
    lines.append(f"#EXT-X-MEDIA-SEQUENCE:{media_sequence}\n")
    if discontinuity_sequence:
        lines.append(f"#EXT-X-DISCONTINUITY-SEQUENCE:{discontinuity_sequence}\n")
    lines.append(f'#EXT-X-MAP:URI="{init_uri(map_index)}"\n')
    if skipped:
        lines.append(f"#EXT-X-SKIP:SKIPPED-SEGMENTS={skipped}\n")
    return "".join(lines)


def part_target(
    configured_s: float, complete: Iterable[Sequence[float]], open_s: Sequence[float]
) -> float:
    """PART-TARGET for the parts a playlist lists (complete segments' parts, then the open
    segment's): the configured target, unless a listed part other than a segment's last
    falls under 85% of it (frames too long to fill a part, or a target raised by a
    timestamp gap); then the longest listed part, which every part reaches to the frame.
    Compared as printed, so a strict parser reads the same numbers."""
    floor = 0.85 * round(configured_s, 5)  # round(x, 5) is what `duration` prints
    longest = 0.0
    short = False
    for durations, last_exempt in [*((d, True) for d in complete), (open_s, False)]:
        if durations:
            longest = max(longest, max(durations))
            checked = durations[:-1] if last_exempt else durations
            short = short or (bool(checked) and round(min(checked), 5) < floor)
    return longest if short else configured_s


def skipping_dateranges(delta: bytes) -> bytes:
    """A delta update answering `_HLS_skip=v2`: EXT-X-SKIP must then list the date ranges
    removed since the skipped segments; there are never any, so the list is empty."""
    return _SKIP_RE.sub(rb'\1,RECENTLY-REMOVED-DATERANGES=""\n', delta, count=1)


def preload_hint(msn: int, index: int) -> str:
    return f'#EXT-X-PRELOAD-HINT:TYPE=PART,URI="{part_uri(msn, index)}"\n'


def rendition_report(uri: str, last_msn: int, last_part: int) -> str:
    return f'#EXT-X-RENDITION-REPORT:URI="{uri}",LAST-MSN={last_msn},LAST-PART={last_part}\n'


def vod_playlist(segments: Sequence[SegmentInfo | Segment]) -> bytes:
    """A complete VOD playlist for a recorded stream: every segment, then ENDLIST."""
    target = max((rounded(s.duration_s) for s in segments), default=1)
    first = segments[0].msn if segments else 0
    lines = [
        "#EXTM3U\n",
        f"#EXT-X-VERSION:{CLASSIC_VERSION}\n",
        f"#EXT-X-TARGETDURATION:{max(target, 1)}\n",
        "#EXT-X-PLAYLIST-TYPE:VOD\n",
        f"#EXT-X-MEDIA-SEQUENCE:{first}\n",
        "#EXT-X-INDEPENDENT-SEGMENTS\n",
        f'#EXT-X-MAP:URI="{init_uri(segments[0].map_index if segments else 0)}"\n',
    ]
    lines.extend(segment_block(s, with_parts=False) for s in segments)
    lines.append("#EXT-X-ENDLIST\n")
    return "".join(lines).encode()


@dataclass(frozen=True, slots=True)
class Variant:
    """One EXT-X-STREAM-INF entry of a master playlist."""

    uri: str
    bandwidth_bps: int
    codecs: str
    average_bandwidth_bps: int | None = None
    resolution: tuple[int, int] | None = None
    frame_rate: float | None = None
    stable_id: str | None = None  # STABLE-VARIANT-ID: the same variant on every pathway
    pathway_id: str | None = None  # PATHWAY-ID (content steering)


def master_playlist(
    variants: Iterable[Variant], *, steering: tuple[str, str] | None = None
) -> bytes:
    """`steering`: (SERVER-URI, default PATHWAY-ID) of EXT-X-CONTENT-STEERING."""
    lines = ["#EXTM3U\n", "#EXT-X-VERSION:6\n", "#EXT-X-INDEPENDENT-SEGMENTS\n"]
    if steering is not None:
        lines.append(f'#EXT-X-CONTENT-STEERING:SERVER-URI="{steering[0]}",'
                     f'PATHWAY-ID="{steering[1]}"\n')
    for v in variants:
        attrs = [f"BANDWIDTH={v.bandwidth_bps}"]
        if v.average_bandwidth_bps is not None:
            attrs.append(f"AVERAGE-BANDWIDTH={v.average_bandwidth_bps}")
        if v.resolution is not None:
            attrs.append(f"RESOLUTION={v.resolution[0]}x{v.resolution[1]}")
        if v.frame_rate is not None:
            attrs.append(f"FRAME-RATE={v.frame_rate:.3f}")
        attrs.append(f'CODECS="{v.codecs}"')
        if v.stable_id is not None:
            attrs.append(f'STABLE-VARIANT-ID="{v.stable_id}"')
        if v.pathway_id is not None:
            attrs.append(f'PATHWAY-ID="{v.pathway_id}"')
        lines.append(f"#EXT-X-STREAM-INF:{','.join(attrs)}\n{v.uri}\n")
    return "".join(lines).encode()


def steered_master_playlist(
    variants: Sequence[Variant],
    pathways: Iterable[tuple[str, str]],
    *,
    server_uri: str,
    default_pathway: str,
) -> bytes:
    """A multi-pathway master (RFC 8216bis 7, Content Steering): every variant once per
    (PATHWAY-ID, URI prefix) in `pathways`, its URI made absolute with the prefix, and
    STABLE-VARIANT-ID (the rendition: the relative URI's first step) tying the copies
    together across pathways."""
    steered = [
        replace(v, uri=f"{prefix}{v.uri}", stable_id=v.uri.split("/")[0],
                pathway_id=pathway)
        for pathway, prefix in pathways
        for v in variants
    ]
    return master_playlist(steered, steering=(server_uri, default_pathway))
