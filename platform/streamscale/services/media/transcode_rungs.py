"""Ladder rungs (from config) and admission control by transcode cost.

Cost is counted in "720p30-equivalents": one unit is the reference ladder of DESIGN.md
(720p30 in; 720p/480p/360p/160p libx264 veryfast out). Encode cost scales with pixels
per second; that is rough (x264 speed is not quite linear in area) but it is the quantity
that decides whether a ladder fits, and `bench/transcode.py` measures the capacity.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

log = logging.getLogger(__name__)

SOURCE_RUNG_NAME = "source"


@dataclass(frozen=True, kw_only=True)
class RungSpec:
    """One rendition of the ladder.

    Encoded rungs give a height (the width keeps the source aspect, rounded to even) and
    a bitrate; `max_fps` caps the frame rate (frames are dropped, never duplicated).
    The passthrough rung forwards the publisher's access units unchanged: no cost.
    """

    name: str
    height: int = 0
    video_bitrate_kbps: int = 0
    max_fps: float | None = None
    passthrough: bool = False

    def __post_init__(self) -> None:
        if not self.name or "/" in self.name:
            raise ValueError(f"rung name {self.name!r} must be non-empty and contain no '/'")
        if self.passthrough:
            if self.height or self.video_bitrate_kbps or self.max_fps is not None:
                raise ValueError(f"passthrough rung {self.name!r} takes no height/bitrate/fps")
            return
        if self.height < 16 or self.height % 2:
            raise ValueError(f"rung {self.name!r}: height must be an even number >= 16")
        if self.video_bitrate_kbps <= 0:
            raise ValueError(f"rung {self.name!r}: video_bitrate_kbps must be positive")
        if self.max_fps is not None and self.max_fps <= 0:
            raise ValueError(f"rung {self.name!r}: max_fps must be positive")

    def size(self, source_width: int, source_height: int) -> tuple[int, int]:
        """Output (width, height) for a source size: aspect kept, both even."""
        if self.passthrough:
            return source_width, source_height
        width = max(2, round(source_width * self.height / source_height / 2) * 2)
        return width, self.height

    def fps(self, source_fps: float) -> float:
        return source_fps if self.max_fps is None else min(source_fps, self.max_fps)


SOURCE_RUNG = RungSpec(name=SOURCE_RUNG_NAME, passthrough=True)

# Bitrates in the range of Apple's HLS authoring guidance for 16:9 at 30 fps.
DEFAULT_LADDER: tuple[RungSpec, ...] = (
    SOURCE_RUNG,
    RungSpec(name="720p", height=720, video_bitrate_kbps=3000),
    RungSpec(name="480p", height=480, video_bitrate_kbps=1400),
    RungSpec(name="360p", height=360, video_bitrate_kbps=800),
)

# The ladder DESIGN.md measured (and bench/transcode.py re-measures): the cost unit.
REFERENCE_LADDER: tuple[RungSpec, ...] = (
    RungSpec(name="720p", height=720, video_bitrate_kbps=3000),
    RungSpec(name="480p", height=480, video_bitrate_kbps=1400),
    RungSpec(name="360p", height=360, video_bitrate_kbps=800),
    RungSpec(name="160p", height=160, video_bitrate_kbps=250),
)

_KEYS = {"name", "height", "video_bitrate_kbps", "max_fps", "passthrough"}


def parse_ladder(items: Sequence[Mapping[str, Any]]) -> list[RungSpec]:
    """Rungs from config (a TOML array of tables); ValueError names the bad entry and key.

    `{name = "source", passthrough = true}` is the passthrough rung; at most one is allowed.
    """
    if not items:
        raise ValueError("ladder: needs at least one rung")
    rungs: list[RungSpec] = []
    for i, item in enumerate(items):
        where = f"ladder[{i}]"
        if not isinstance(item, Mapping):
            raise ValueError(f"{where}: expected a table, got {type(item).__name__}")
        unknown = sorted(set(item) - _KEYS)
        if unknown:
            raise ValueError(f"{where}: unknown key {unknown[0]!r} (allowed: {sorted(_KEYS)})")
        name = item.get("name")
        if not isinstance(name, str):
            raise ValueError(f"{where}: key 'name' must be a string")
        passthrough = item.get("passthrough", False)
        if not isinstance(passthrough, bool):
            raise ValueError(f"{where} ({name}): key 'passthrough' must be true or false")
        kwargs: dict[str, Any] = {"name": name, "passthrough": passthrough}
        for key in ("height", "video_bitrate_kbps"):
            if key in item:
                value = item[key]
                if isinstance(value, bool) or not isinstance(value, int):
                    raise ValueError(f"{where} ({name}): key {key!r} must be an integer")
                kwargs[key] = value
            elif not passthrough:
                raise ValueError(f"{where} ({name}): missing key {key!r}")
        if item.get("max_fps") is not None:
            fps = item["max_fps"]
            if isinstance(fps, bool) or not isinstance(fps, int | float):
                raise ValueError(f"{where} ({name}): key 'max_fps' must be a number")
            kwargs["max_fps"] = float(fps)
        try:
            rungs.append(RungSpec(**kwargs))
        except ValueError as exc:
            raise ValueError(f"{where}: {exc}") from None
    names = [r.name for r in rungs]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ValueError(f"ladder: duplicate rung name {dupes[0]!r}")
    if sum(r.passthrough for r in rungs) > 1:
        raise ValueError("ladder: at most one passthrough rung")
    return rungs


def source_rung_spec(name: str, width: int, height: int, fps: float) -> RungSpec:
    """The encoded rung that stands in for the passthrough when browsers cannot decode the
    source (4:4:4, 10-bit, ...): the source size (height rounded down to even, as 4:2:0
    needs), 3000 kbps per 720p30 of pixel rate (the 720p rung's figure), 400-8000 kbps."""
    even = max(16, height - height % 2)
    kbps = round(3000 * width * even * fps / (1280 * 720 * 30))
    return RungSpec(name=name, height=even, video_bitrate_kbps=min(8000, max(400, kbps)))


def usable_rungs(rungs: Sequence[RungSpec], source_height: int) -> list[RungSpec]:
    """The rungs worth encoding for a source: never upscale (passthrough always kept)."""
    return [r for r in rungs if r.passthrough or r.height <= source_height]


def pixel_rate(rungs: Sequence[RungSpec], width: int, height: int, fps: float) -> float:
    """Encoded pixels per second of a ladder for a given source (passthrough is free)."""
    total = 0.0
    for rung in usable_rungs(rungs, height):
        if not rung.passthrough:
            w, h = rung.size(width, height)
            total += w * h * rung.fps(fps)
    return total


_REFERENCE_PIXEL_RATE = pixel_rate(REFERENCE_LADDER, 1280, 720, 30.0)


def ladder_cost(
    rungs: Sequence[RungSpec],
    *,
    source_width: int = 1280,
    source_height: int = 720,
    source_fps: float = 30.0,
    decode_weight: float = 0.25,
) -> float:
    """A ladder's cost in 720p30-equivalents (the reference ladder costs exactly 1.0).

    Decoding a pixel costs `decode_weight` times encoding one (bench/transcode.py: decode
    is ~14% of the low-latency reference ladder's wall time, single-threaded); it counts
    only when something is encoded (a passthrough-only ladder never decodes).
    """
    encoded = pixel_rate(rungs, source_width, source_height, source_fps)
    if encoded == 0:
        return 0.0
    decode = decode_weight * source_width * source_height * source_fps
    reference_decode = decode_weight * 1280 * 720 * 30.0
    return (encoded + decode) / (_REFERENCE_PIXEL_RATE + reference_decode)


@dataclass(frozen=True, slots=True)
class Admission:
    """The answer to `AdmissionControl.admit`: truthy when admitted; `reason` says why not."""

    admitted: bool
    cost: float
    reason: str = ""

    def __bool__(self) -> bool:
        return self.admitted


class AdmissionControl:
    """Refuses a new stream whose ladder would push the node past its transcode capacity.

    Pure bookkeeping (no clocks, no I/O): the service calls `admit` when a publisher
    starts, `update` when a rung is dropped under overload, `release` when it ends.
    `capacity` defaults to 2.0: two reference 720p30 ladders saturate this 2-core machine
    (DESIGN.md "Measured"). bench/transcode.py re-measured it shared with other work (load
    average 5-7): 2 ladders in real time every run, 3 only sometimes; at ~0.5 CPU-s per
    media second an idle box would fit ~3. Set it per node from that benchmark.
    """

    def __init__(self, capacity: float = 2.0) -> None:
        if capacity <= 0:
            raise ValueError("capacity must be positive (720p30-equivalents)")
        self.capacity = capacity
        self._costs: dict[str, float] = {}

    @property
    def used(self) -> float:
        return sum(self._costs.values())

    @property
    def available(self) -> float:
        return self.capacity - self.used

    def admit(
        self,
        stream_id: str,
        rungs: Sequence[RungSpec],
        *,
        source_width: int = 1280,
        source_height: int = 720,
        source_fps: float = 30.0,
    ) -> Admission:
        cost = ladder_cost(
            rungs, source_width=source_width, source_height=source_height, source_fps=source_fps
        )
        if stream_id in self._costs:
            return Admission(False, cost, f"stream {stream_id} already has a transcode ladder")
        used = self.used
        if used + cost > self.capacity + 1e-9:
            reason = (
                f"transcode capacity exceeded: stream {stream_id} needs {cost:.2f} "
                f"720p30-equivalents, {self.capacity - used:.2f} of {self.capacity:.2f} free"
            )
            log.warning("admission refused: %s", reason)
            return Admission(False, cost, reason)
        self._costs[stream_id] = cost
        return Admission(True, cost)

    def revise(self, stream_id: str, cost: float) -> Admission:
        """Raise (or lower) an admitted stream's cost if it still fits; refused otherwise.

        For work found only once the media arrives (a source that must be transcoded):
        a refusal keeps the old cost, and the caller ends the publish.
        """
        old = self._costs.get(stream_id)
        if old is None:
            return Admission(False, cost, f"stream {stream_id} was not admitted")
        free = self.capacity - (self.used - old)
        if cost > old and cost > free + 1e-9:
            reason = (
                f"transcode capacity exceeded: stream {stream_id} needs {cost:.2f} "
                f"720p30-equivalents, {free:.2f} of {self.capacity:.2f} free"
            )
            log.warning("admission refused: %s", reason)
            return Admission(False, cost, reason)
        self._costs[stream_id] = max(0.0, cost)
        return Admission(True, cost)

    def update(self, stream_id: str, cost: float) -> None:
        """Record a stream's new cost (after dropping rungs); unknown streams are ignored."""
        if stream_id in self._costs:
            self._costs[stream_id] = max(0.0, cost)

    def release(self, stream_id: str) -> None:
        self._costs.pop(stream_id, None)
