"""The transcode ladder: decode once, scale once per rung, encode each rung with libx264.

Synchronous and blocking on purpose: the media service runs one `Ladder` per stream in a
worker thread (`trio.to_thread.run_sync` behind a `CapacityLimiter`); PyAV releases the
GIL in decode, scale and encode, and DESIGN.md measured codec threading inside one thread
beating a thread or a process per rung. Nothing here touches trio.

Keyframes are aligned across rungs: every encoded rung gets an IDR exactly where the
source has a keyframe and nowhere else (x264 keyint=infinite, scenecut=0), so the
packager cuts every rung, the passthrough source included, at the same instants. All
rungs keep the source timeline: the k-th encoded frame (presentation order) gets the
source pts and the k-th source dts, which is never after its pts and equals the source
dts at each IDR of a closed-GOP input.

A source that browsers cannot decode (`H264Config.browser_problem`: 4:4:4, 10-bit,
profiles beyond High) gets an encoded rung at its own size, 4:2:0 8-bit, in place of the
passthrough and under its name; that rung counts in `cost` like any other.

Under overload the ladder degrades instead of stalling: it tracks how far its encode
time runs behind media time (`behind_s`, `load`), and `rebalance()` applies the overload
policy (`transcode_overload`): shed the costliest rung on sustained lag, restore it when
headroom comes back. A shed rung is never ended: from the next source keyframe its
rendition carries the pictures of the next rung down (`EncodedFrame.track` names whose),
so players that chose it from the master keep playing through a discontinuity; the
packager switches the rendition's track there (`Rendition.switch_video`). Restoring
switches it back, again on a keyframe.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections import deque
from collections.abc import Callable, Sequence
from typing import Any

import av

from ...protocols.hls import H264Config, HLSError
from .transcode_codec import (
    LOW_LATENCY,
    THROUGHPUT,
    TIME_BASE,
    CodecSettings,
    EncodedFrame,
    EncodedRung,
    FrameMeta,
    LadderStats,
    TranscodeError,
    mapped_errors,
)
from .transcode_overload import Decision, OverloadGovernor, OverloadPolicy
from .transcode_routes import RungRoutes
from .transcode_rungs import (
    DEFAULT_LADDER,
    REFERENCE_LADDER,
    SOURCE_RUNG,
    SOURCE_RUNG_NAME,
    Admission,
    AdmissionControl,
    RungSpec,
    ladder_cost,
    parse_ladder,
    source_rung_spec,
    usable_rungs,
)

__all__ = [
    "DEFAULT_LADDER",
    "LOW_LATENCY",
    "REFERENCE_LADDER",
    "SOURCE_RUNG",
    "SOURCE_RUNG_NAME",
    "THROUGHPUT",
    "Admission",
    "AdmissionControl",
    "CodecSettings",
    "EncodedFrame",
    "Ladder",
    "LadderStats",
    "RungSpec",
    "TranscodeError",
    "ladder_cost",
    "parse_ladder",
]

log = logging.getLogger(__name__)

_TICKS_PER_MS = 90
_LOAD_WINDOW_S = 2.0  # `load` averages over about this much media time


class Ladder:
    """Decode a stream once and encode every rung; see the module docstring.

        ladder = Ladder(DEFAULT_LADDER, frame_rate=30)
        ladder.configure(avcc_record)              # from the AVC sequence header
        for f in ladder.push(au, dts_ms=dts, pts_ms=dts + cto, keyframe=k, wallclock_s=t):
            renditions[f.rung].push_video(Sample(f.data, f.dts_90k, f.pts_90k, ...))

    `frame_rate` (from the publisher's onMetaData when known) sets x264 rate control;
    the timestamps themselves always come from the input.
    """

    def __init__(
        self,
        rungs: Sequence[RungSpec] = DEFAULT_LADDER,
        *,
        frame_rate: float = 30.0,
        settings: CodecSettings = LOW_LATENCY,
        max_consecutive_errors: int = 5,
        clock: Callable[[], float] = time.perf_counter,
        overload: OverloadPolicy | None = None,
        shed: Sequence[str] = (),
        independent_every: int = 0,
    ) -> None:
        if frame_rate <= 0:
            raise ValueError("frame_rate must be positive")
        self.specs = self._requested = tuple(rungs)
        self.source_problem: str | None = None  # why the source rung is encoded, if it is
        self.frame_rate = frame_rate
        self.settings = settings
        self.max_consecutive_errors = max_consecutive_errors
        self._clock = clock  # wall seconds, for the lag figures (a fake one in tests)
        self.stats = LadderStats()
        self.behind_s = 0.0  # backlog if input arrives in real time and we run as measured
        self.load = 0.0  # smoothed ladder seconds per media second (> 1: falling behind)
        self._source: tuple[int, int] | None = None
        self._avcc_record = b""
        self._length_size = 4
        self._source_name = next((r.name for r in self.specs if r.passthrough), None)
        self._rungs: dict[str, EncodedRung] = {}
        self._decoder: Any = None
        self._synced = False  # seen a keyframe since configure
        self._flushed = False
        self._pending: dict[int, FrameMeta] = {}  # pts -> input metadata, until decoded
        self._dts_queue: deque[int] = deque()
        self._last_dts_out: int | None = None
        self._last_input_dts: int | None = None
        self._errors_in_row = 0
        self._media_s = 0.0
        self._busy_acc = self._media_acc = 0.0
        self.governor = OverloadGovernor(overload)
        self._routes = RungRoutes(shed)
        # Encoded rungs get an extra IDR every this many frames after a source keyframe (0:
        # none), so a player joins near the live edge instead of decoding from the GOP's
        # start; the media service makes it a whole number of LL-HLS parts.
        self.independent_every = independent_every
        self._since_key = 0
        self._shares: dict[str, float] = {}  # a shed rung's measured load, for restoring

    # -- setup -------------------------------------------------------------------------

    def configure(self, avcc_record: bytes) -> None:
        """Start (or restart) from an AVCDecoderConfigurationRecord; opens all codecs.

        Frames still held by a previous configuration are discarded: `flush()` first
        to keep them. Rungs taller than the source are skipped (never upscale).
        """
        try:
            config = H264Config.from_extradata(bytes(avcc_record))
        except (HLSError, IndexError) as exc:
            raise TranscodeError(f"bad AVC sequence header: {exc}") from exc
        if avcc_record[:1] != b"\x01" or len(avcc_record) < 7:
            raise TranscodeError("AVC sequence header is not an avcC record")
        self._avcc_record = bytes(avcc_record)
        self._length_size = (avcc_record[4] & 0x3) + 1
        self._source = (config.width, config.height)
        self._encode_source_if_undecodable(config)
        with mapped_errors("open codecs"):
            dec: Any = av.CodecContext.create("h264", "r")
            dec.extradata = self._avcc_record
            dec.thread_type, dec.thread_count = self.settings.decoder_thread_type, 0
            dec.open()
            self._decoder = dec
            self._rungs = {}
            for spec in usable_rungs(self.specs, config.height):
                if spec.passthrough or spec.name in self._routes.shed:
                    continue
                width, height = spec.size(config.width, config.height)
                self._rungs[spec.name] = EncodedRung(
                    spec, width, height, spec.fps(self.frame_rate), self.settings
                )
        skipped = [r.name for r in self.specs if not r.passthrough and r.height > config.height]
        if skipped:
            log.info("source is %dp: not upscaling to %s", config.height, ", ".join(skipped))
        self._synced = self._flushed = False
        self._pending.clear()
        self._dts_queue.clear()
        self._last_dts_out = None
        self._routes = RungRoutes(self._routes.shed_rungs)
        self._reroute(0)

    def _encode_source_if_undecodable(self, config: H264Config) -> None:
        """Browsers cannot decode every H.264 (4:4:4, 10-bit, ...): then the source rung
        is encoded at the source size under the same name instead of passed through.
        An encoded rung of that very size would be the same picture twice: the source rung
        takes its place (and its bitrate and frame-rate cap)."""
        passthrough = next((r for r in self._requested if r.passthrough), None)
        self.specs, self._source_name = self._requested, passthrough.name if passthrough else None
        self.source_problem = config.browser_problem() if passthrough else None
        if passthrough is None or self.source_problem is None:
            return
        encoded = source_rung_spec(passthrough.name, config.width, config.height,
                                   self.frame_rate)
        twin = next((r for r in self._requested
                     if not r.passthrough and r.height == encoded.height), None)
        if twin is not None:
            encoded = dataclasses.replace(twin, name=passthrough.name)
        self.specs = tuple(encoded if r is passthrough else r for r in self._requested
                           if r is not twin)
        self._source_name = None

    @property
    def configured(self) -> bool:
        return self._source is not None

    @property
    def rungs(self) -> list[str]:
        """The renditions this ladder serves: the passthrough first, then the encoded rungs
        as configured, shed ones included (they carry another rung's pictures)."""
        if self._source is None:
            return []
        return ([self._source_name] if self._source_name else []) + list(self._routes.routes)

    @property
    def encoded(self) -> list[str]:
        """The renditions that are encoded here (not passed through), shed ones included."""
        return list(self._routes.routes)

    @property
    def shed_rungs(self) -> list[str]:
        """Rungs shed (or about to be, at the next keyframe), oldest first."""
        return self._routes.shed_rungs

    def track_of(self, name: str) -> str:
        """Whose pictures rendition `name` carries now (its own unless shed)."""
        if self._is_passthrough(name):
            return name
        return self._routes.track_of(name)

    def rung_size(self, name: str) -> tuple[int, int]:
        """The picture size rendition `name` carries now."""
        if self._source is None:
            raise TranscodeError("ladder is not configured")
        track = self.track_of(name)
        if self._is_passthrough(track):
            return self._source
        rung = self._rung(track)
        return rung.width, rung.height

    def rung_extradata(self, name: str) -> bytes:
        """SPS/PPS of what rendition `name` carries now (or of encoder/passthrough `name`),
        for `VideoTrack.from_extradata` (avcC or Annex-B)."""
        if self._source is None:
            raise TranscodeError("ladder is not configured")
        track = name if name in self._rungs else self.track_of(name)
        if self._is_passthrough(track):
            return self._avcc_record
        return self._rung(track).extradata

    @property
    def cost(self) -> float:
        """Cost in 720p30-equivalents once pending changes apply, for admission control."""
        if self._source is None:
            return 0.0
        active = [r for r in self.specs if r.passthrough
                  or (r.name in self._rungs and r.name not in self._routes.to_shed)
                  or r.name in self._routes.to_restore]
        width, height = self._source
        return ladder_cost(
            active, source_width=width, source_height=height, source_fps=self.frame_rate
        )

    # -- the hot path --------------------------------------------------------------------

    def push(
        self,
        access_unit_avcc: bytes,
        *,
        dts_ms: int,
        pts_ms: int,
        keyframe: bool,
        wallclock_s: float,
    ) -> list[EncodedFrame]:
        """Feed one access unit; returns whatever every rung has ready (maybe nothing)."""
        if self._decoder is None or self._flushed:
            raise TranscodeError("push before configure() or after flush()")
        started = self._clock()
        self.stats.frames_in += 1
        data = self._check_framing(bytes(access_unit_avcc))
        meta = FrameMeta(pts_ms * _TICKS_PER_MS, dts_ms * _TICKS_PER_MS, keyframe, wallclock_s)
        out: list[EncodedFrame] = []
        if keyframe and self._routes.pending:
            out.extend(self._apply_changes(meta.dts))
        name = self._source_name
        if name is not None:
            out.append(EncodedFrame(name, data, meta.dts, meta.pts, keyframe, wallclock_s))
            self.stats.count(name, 1)
        self._synced = self._synced or keyframe
        if self._rungs and self._synced:
            self._pending[meta.pts] = meta
            self._dts_queue.append(meta.dts)
            packet = av.Packet(access_unit_avcc)
            packet.pts, packet.dts, packet.time_base = meta.pts, meta.dts, TIME_BASE
            for frame in self._decode(packet):
                out.extend(self._encode(frame))
        self._account(meta.dts, self._clock() - started)
        return self._routes.route(out, self._source_name)

    def flush(self) -> list[EncodedFrame]:
        """End of stream: drain the decoder and every encoder. Configure to start again."""
        if self._decoder is None or self._flushed:
            return []
        self._flushed = True
        out: list[EncodedFrame] = []
        if self._rungs and self._synced:
            for frame in self._decode(None):
                out.extend(self._encode(frame))
        for rung in self._rungs.values():
            started = self._clock()
            frames = rung.flush()
            self.stats.count(rung.name, len(frames), self._clock() - started)
            out.extend(frames)
        return self._routes.route(out, self._source_name)

    # -- overload ----------------------------------------------------------------------

    def shed(self) -> str | None:
        """Shed the costliest encoded rung from the next source keyframe on; its name, or
        None if there is nothing left to shed (the passthrough is free; without one, the
        last encoded rung stays). Its rendition goes on with the next rung's pictures."""
        name = self._routes.plan_shed(self._rungs, rate=self._pixel_rate,
                                      keep_one=self._source_name is None)
        if name is None:
            return None
        if name in self._rungs:
            self._shares[name] = self._share(name)
        self.stats.dropped_rungs.append(name)
        self.governor.changed(self._media_s)
        return name

    def restore(self) -> str | None:
        """Bring back the most recently shed rung from the next source keyframe on."""
        name = self._routes.plan_restore()
        if name is not None:
            self.governor.changed(self._media_s)
        return name

    def rebalance(self, *, can_afford: Callable[[float], bool]) -> tuple[Decision, str] | None:
        """The overload policy, once per pushed frame: shed or restore one rung, or not.

        `can_afford(extra_cost)` asks admission control whether the node has room for a
        restored rung (other streams may have taken it meanwhile).
        """
        waiting = self._routes.next_restore
        restored_load = None
        if waiting is not None and not self._routes.to_shed:
            restored_load = self.load + self._shares.get(waiting, self.load)
        decision = self.governor.observe(
            self._media_s, behind_s=self.behind_s, load=self.load, restored_load=restored_load
        )
        if decision == "shed":
            name = self.shed()
        elif decision == "restore":
            before = self.cost
            name = self.restore()
            if name is not None and not can_afford(self.cost - before):
                self._routes.to_restore.remove(name)
                name = None
        else:
            return None
        if name is None:
            return None
        log.warning(
            "%s rung %s (behind %.2f s, load %.2f%s)", decision, name, self.behind_s, self.load,
            "" if restored_load is None else f", projected {restored_load:.2f} with it",
        )
        return decision, name

    # -- internals ---------------------------------------------------------------------

    def _is_passthrough(self, name: str) -> bool:
        return name == self._source_name

    def _apply_changes(self, dts: int) -> list[EncodedFrame]:
        """At a source keyframe: stop shed encoders (their held frames come out first),
        open restored ones, and point every rendition at its new track from `dts`."""
        out: list[EncodedFrame] = []
        routes = self._routes
        for name in routes.to_shed:
            rung = self._rungs.pop(name, None)
            if rung is not None:
                out.extend(rung.flush())
            routes.shed.append(name)
        for name in routes.to_restore:
            spec = next(r for r in self.specs if r.name == name)
            assert self._source is not None
            width, height = spec.size(*self._source)
            with mapped_errors(f"reopen encoder {name}"):
                self._rungs[name] = EncodedRung(
                    spec, width, height, spec.fps(self.frame_rate), self.settings
                )
            routes.shed.remove(name)
        routes.to_shed.clear()
        routes.to_restore.clear()
        if not self._rungs:
            self._pending.clear()
            self._dts_queue.clear()
        self._reroute(dts)
        return out

    def _reroute(self, dts: int) -> None:
        assert self._source is not None
        served = [r.name for r in usable_rungs(self.specs, self._source[1]) if not r.passthrough]
        self._routes.reroute(dts, served=served, active=self._rungs, rate=self._pixel_rate,
                             passthrough=self._source_name)

    def _pixel_rate(self, name: str) -> float:
        rung = self._rungs.get(name)
        if rung is not None:
            return rung.pixel_rate
        spec = next(r for r in self.specs if r.name == name)
        assert self._source is not None
        width, height = spec.size(*self._source)
        return width * height * spec.fps(self.frame_rate)

    def _share(self, name: str) -> float:
        """The load a rung added (seconds per media second), from its own timings; with no
        other encoder left running, the decode it forces counts too."""
        rung = self._rungs.get(name)
        if rung is None:
            return self.load
        share = self.stats.encode_ms_per_frame(name) * rung.fps / 1000
        if len([n for n in self._rungs if n not in self._routes.to_shed]) <= 1 and self._media_s:
            share += self.stats.decode_s / self._media_s
        return share

    def _rung(self, name: str) -> EncodedRung:
        try:
            return self._rungs[name]
        except KeyError:
            raise KeyError(f"no active rung {name!r} (active: {self.rungs})") from None

    def _check_framing(self, data: bytes) -> bytes:
        """Validate the NAL length prefixes; rewrite to 4-byte prefixes for the packager."""
        size, pos, n = self._length_size, 0, len(data)
        nals: list[bytes] = []
        while pos < n:
            if pos + size > n:
                raise TranscodeError("access unit: truncated NAL length prefix")
            length = int.from_bytes(data[pos : pos + size], "big")
            if length == 0 or pos + size + length > n:
                raise TranscodeError("access unit: NAL length runs past the end")
            if size != 4:
                nals.append(data[pos + size : pos + size + length])
            pos += size + length
        if n == 0:
            raise TranscodeError("access unit: empty")
        if size == 4:
            return data
        return b"".join(len(nal).to_bytes(4, "big") + nal for nal in nals)

    def _decode(self, packet: Any) -> list[Any]:
        started = self._clock()
        try:
            frames: list[Any] = self._decoder.decode(packet)
            self._errors_in_row = 0
        except av.FFmpegError as exc:
            self.stats.decode_errors += 1
            self._errors_in_row += 1
            log.info("h264 decode error (%d in a row): %s", self._errors_in_row, exc)
            if self._errors_in_row > self.max_consecutive_errors:
                raise TranscodeError(f"{self._errors_in_row} decode errors in a row") from exc
            frames = []
        self.stats.decode_s += self._clock() - started
        self.stats.frames_decoded += len(frames)
        return frames

    def _meta_for(self, frame: Any) -> FrameMeta | None:
        """Match a decoded frame to its input and give it the next source dts.

        Inputs the decoder dropped (corrupt) are forgotten along with one queued dts
        each, so the k-th output frame keeps getting the k-th surviving dts.
        """
        meta = self._pending.pop(frame.pts, None) if frame.pts is not None else None
        if meta is None:
            return None
        lost = [pts for pts in self._pending if pts < meta.pts]
        for pts in lost:
            del self._pending[pts]
        for _ in range(min(len(lost), len(self._dts_queue) - 1)):
            self._dts_queue.popleft()
        dts = min(self._dts_queue.popleft(), meta.pts) if self._dts_queue else meta.pts
        if self._last_dts_out is not None and dts <= self._last_dts_out:
            dts = self._last_dts_out + 1
        self._last_dts_out = dts
        self._since_key = 0 if meta.keyframe else self._since_key + 1
        every = self.independent_every
        extra = every > 0 and self._since_key > 0 and self._since_key % every == 0
        return FrameMeta(meta.pts, dts, meta.keyframe, meta.wallclock_s, independent=extra)

    def _encode(self, frame: Any) -> list[EncodedFrame]:
        meta = self._meta_for(frame)
        if meta is None:
            return []
        out: list[EncodedFrame] = []
        for rung in list(self._rungs.values()):
            if rung.wants(meta):
                started = self._clock()
                frames = rung.encode(frame, meta)
                self.stats.count(rung.name, len(frames), self._clock() - started)
                out.extend(frames)
        return out

    def _account(self, dts_90k: int, spent_s: float) -> None:
        """Track ladder time against media time (input dts steps, capped at 1 s)."""
        if self._last_input_dts is None or dts_90k <= self._last_input_dts:
            media_s = 1 / self.frame_rate
        else:
            media_s = min(1.0, (dts_90k - self._last_input_dts) / 90_000)
        self._last_input_dts = dts_90k
        self._media_s += media_s
        self.behind_s = max(0.0, self.behind_s + spent_s - media_s)
        decay = math.exp(-media_s / _LOAD_WINDOW_S)
        self._busy_acc = self._busy_acc * decay + spent_s
        self._media_acc = self._media_acc * decay + media_s
        self.load = self._busy_acc / self._media_acc
