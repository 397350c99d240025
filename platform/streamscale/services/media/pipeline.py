"""One stream's media path after ingest: FLV tags -> ladder -> packager -> origin, recorder.

`hub.MediaHub` owns a `StreamPipeline` per publishing stream and feeds it the ingest's
tags; the pipeline task is the only owner of the stream's ladder, presentation and
recorder. The ladder runs in a worker thread (one hop per access unit); AAC passes
through to every rung unchanged.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

import trio

from ...protocols import flv
from ...protocols.hls import (
    AudioTrack,
    H264Config,
    HLSError,
    Part,
    Presentation,
    Rendition,
    Sample,
    Segment,
    VideoTrack,
)
from .health import HealthMeter
from .ingest import Tag
from .recording import Recorder
from .transcode import Ladder, RungSpec, TranscodeError
from .transcode_rungs import DEFAULT_LADDER, REFERENCE_LADDER

if TYPE_CHECKING:
    from .hub import MediaHub

log = logging.getLogger(__name__)

RUNGS: dict[str, RungSpec] = {r.name: r for r in (*DEFAULT_LADDER, *REFERENCE_LADDER)}
AUDIO_BITRATE_BPS = 128_000
AAC_FRAME_SAMPLES = 1024
AUDIO_ONLY_AFTER_S = 2.0  # audio this long and no video sequence header: audio only
AUDIO_RENDITION = "audio"  # the one rendition of an audio-only stream
RECORDING_DRAIN_S = 10.0  # at most this long for a recording to reach the disk at the end


@dataclass(eq=False)
class StreamPipeline:
    stream_id: str
    hub: MediaHub
    presentation: Presentation | None = None
    recorder: Recorder | None = None
    ladder: Ladder | None = None
    avc_record: bytes = b""
    nal_length_size: int = 4
    aac: flv.AACConfig | None = None
    asc: bytes = b""
    audio_track: AudioTrack | None = None
    video_declared: bool | None = None  # onMetaData's videocodecid: None when not sent
    refusal: str | None = None  # why this publish is refused; the feed tells the ingest
    frame_rate: float = 30.0
    publishing: bool = False
    offset_ms: int = 0  # added to this publish's timestamps (continuity after reconnect)
    _session_first_ms: int | None = None
    _last_video_dts_ms: int = -1
    _audio_next: int | None = None  # next AAC dts in samples
    _audio_last_ms: int = -1
    _audio_waiting: list[tuple[bytes, int]] = field(default_factory=list)  # before any video
    _grace: trio.CancelScope | None = None
    renditions: dict[str, Rendition] = field(default_factory=dict)
    _tracks: dict[str, str] = field(default_factory=dict)  # rendition -> whose pictures
    _forced: list[tuple[str, trio.MemorySendChannel[str | None]]] = field(default_factory=list)
    finished: trio.Event = field(default_factory=trio.Event)  # the stream has ended
    meter: HealthMeter = field(default_factory=lambda: HealthMeter(time.time()))  # health.py

    # -- one publish -----------------------------------------------------------------------

    async def consume(self, tags: trio.MemoryReceiveChannel[Tag]) -> None:
        self._session_first_ms = None
        self.refusal = None
        async with tags:
            async for tag in tags:
                if self.refusal is not None:
                    continue  # refused: the feed ends the publish at the next tag
                if self._session_first_ms is None:
                    self._session_first_ms = tag.timestamp_ms
                    last_ms = max(self._last_video_dts_ms, self._audio_last_ms)
                    if last_ms >= 0:  # a reconnect: follow on from before
                        self.offset_ms = last_ms + 40 - tag.timestamp_ms
                ts = tag.timestamp_ms + self.offset_ms
                self.meter.tag(tag.kind, ts, tag.payload)
                try:
                    if tag.kind == "video":
                        await self._video(tag.payload, ts)
                    elif tag.kind == "audio":
                        self._audio(tag.payload, ts)
                    else:
                        self._script(tag.payload)
                except flv.FLVUnsupportedCodec as exc:
                    self._refuse(str(exc))
                except (flv.FLVError, HLSError) as exc:
                    self.hub.stats.flv_errors += 1
                    log.warning("stream %s: bad media from publisher: %s", self.stream_id, exc)
        forced, self._forced = self._forced, []
        for _action, answer in forced:  # asked for while the publisher left: nothing done
            answer.send_nowait(None)

    def _refuse(self, reason: str) -> None:
        """End this publish with an RTMP error status carrying `reason` (via the feed)."""
        self.refusal = reason
        self.hub.stats.refused += 1
        log.warning("stream %s: publish refused: %s", self.stream_id, reason)

    def _script(self, payload: bytes) -> None:
        try:
            tag = flv.parse_script(payload)
        except flv.FLVError:
            return
        fps = tag.properties.get("framerate")
        if isinstance(fps, int | float) and 1 <= fps <= 240:
            self.frame_rate = float(fps)
        if tag.name == "onMetaData":  # ffmpeg and GStreamer leave videocodecid out if no video
            self.video_declared = tag.properties.get("videocodecid") not in (None, 0, "")

    async def _video(self, payload: bytes, ts_ms: int) -> None:
        tag = flv.parse_video(payload, nal_length_size=self.nal_length_size)
        if isinstance(tag, flv.AVCSequenceHeader):
            if tag.config.record != self.avc_record:
                await self._configure(tag.config.record, tag.config.nal_length_size)
            return
        if not isinstance(tag, flv.AVCFrame) or self.ladder is None:
            return
        keyframe = tag.frame_type is flv.FrameType.KEY
        if self.presentation is None:
            if not keyframe:
                return
            self._open_presentation()
            for name in self.ladder.shed_rungs:  # shed before this presentation began
                if name in self.renditions and self.presentation is not None:
                    self.presentation.set_hidden(name, True)
        dts_ms = max(ts_ms, self._last_video_dts_ms + 1)
        self._last_video_dts_ms = dts_ms
        now = time.time()
        ladder = self.ladder
        push = partial(ladder.push, tag.data, dts_ms=dts_ms,
                       pts_ms=dts_ms + tag.composition_time_ms, keyframe=keyframe,
                       wallclock_s=now)
        try:
            frames = await trio.to_thread.run_sync(push, limiter=self.hub.limiter)
        except TranscodeError as exc:
            await self._restart_ladder(exc)
            return
        self.meter.transcoded(ladder)
        changed = False
        for frame in frames:
            rendition = self.renditions.get(frame.rung)
            if rendition is None:
                continue
            if self._tracks.setdefault(frame.rung, frame.source) != frame.source:
                # A shed rung now carries another rung's pictures, or a restored one its
                # own again: same playlist, a discontinuity and a new init from here.
                self._tracks[frame.rung] = frame.source
                rendition.switch_video(
                    VideoTrack.from_extradata(ladder.rung_extradata(frame.source)))
                log.info("stream %s: rung %s now carries %s pictures", self.stream_id,
                         frame.rung, "its own" if frame.source == frame.rung
                         else f"{frame.source}'s")
            events = rendition.push_video(Sample(
                frame.data, dts=frame.dts_90k, pts=frame.pts_90k, keyframe=frame.keyframe,
                wallclock_s=frame.wallclock_s, independent=frame.independent))
            changed |= self._record(rendition, events)
        self._rebalance(ladder)
        if changed:
            self.hub.registry.changed(self.stream_id)

    def _rebalance(self, ladder: Ladder) -> None:
        """Overload: the policy's decision, then any forced one (MediaHub.shed/restore),
        between two pushes, so the ladder is never touched while a worker thread runs it."""
        admission = self.hub.admission
        decision = ladder.rebalance(
            can_afford=lambda extra: admission.available >= extra - 1e-9)
        if decision is not None:
            self._overload_change(ladder, *decision)
        forced, self._forced = self._forced, []
        for action, answer in forced:
            name = ladder.shed() if action == "shed" else ladder.restore()
            if name is not None:
                log.warning("stream %s: %s rung %s (asked for)", self.stream_id, action, name)
                self._overload_change(ladder, action, name)
            answer.send_nowait(name)

    def _overload_change(self, ladder: Ladder, action: str, name: str) -> None:
        """A rung shed leaves the master (new players do not pick it) but its playlist goes
        on; a restored one comes back. Admission control follows the ladder's cost."""
        self.hub.admission.update(self.stream_id, ladder.cost)
        if action == "shed":
            self.hub.stats.dropped_rungs += 1
        else:
            self.hub.stats.restored_rungs += 1
        if self.presentation is not None and name in self.renditions:
            self.presentation.set_hidden(name, action == "shed")
            self.hub.registry.changed(self.stream_id)
        log.warning("stream %s: %s rung %s; ladder cost now %.2f (%s shed)", self.stream_id,
                    "shed" if action == "shed" else "restored", name, ladder.cost,
                    ", ".join(ladder.shed_rungs) or "none")

    def _audio(self, payload: bytes, ts_ms: int) -> None:
        tag = flv.parse_audio(payload)
        if isinstance(tag, flv.AACSequenceHeader):
            try:
                self.audio_track = AudioTrack.from_asc(tag.config.raw)
            except HLSError as exc:
                self._refuse(f"cannot package the AAC audio: {exc}")
                return
            self.aac, self.asc = tag.config, tag.config.raw
            return
        if not isinstance(tag, flv.AACFrame) or self.aac is None:
            return
        self._audio_last_ms = ts_ms
        if self.presentation is None:
            if self.ladder is not None:
                return  # video is configured: audio joins at its first keyframe
            # No video yet: hold the audio until video or the audio-only verdict.
            self._audio_waiting.append((tag.data, ts_ms))
            waited_ms = ts_ms - self._audio_waiting[0][1]
            if self.video_declared is not False and waited_ms < AUDIO_ONLY_AFTER_S * 1000:
                return
            self._open_audio_only(waited_ms)
            waiting, self._audio_waiting = self._audio_waiting, []
            now = time.time()
            for data, held_ms in waiting:  # PDT: as if each had arrived in real time
                self._push_audio(data, held_ms, wallclock_s=now - (ts_ms - held_ms) / 1000)
            return
        self._push_audio(tag.data, ts_ms, wallclock_s=time.time())

    def _push_audio(self, data: bytes, ts_ms: int, *, wallclock_s: float) -> None:
        """Into every rendition with audio; the wall clock matters only when audio drives
        the timeline (audio only), where it anchors PROGRAM-DATE-TIME."""
        assert self.aac is not None
        rate = self.aac.sample_rate
        expected = self._audio_next
        from_ts = ts_ms * rate // 1000
        # Count samples (1024 per frame) for exact durations; resync on a jump > 100 ms.
        dts = from_ts if expected is None or abs(from_ts - expected) > rate // 10 else expected
        self._audio_next = dts + AAC_FRAME_SAMPLES
        changed = False
        for rendition in self.renditions.values():
            if rendition.audio is not None:
                events = rendition.push_audio(Sample(data, dts=dts, wallclock_s=wallclock_s))
                changed |= self._record(rendition, events)
        if changed:
            self.hub.registry.changed(self.stream_id)

    def _record(self, rendition: Rendition, events: list[Part | Segment]) -> bool:
        if events and self.recorder is not None:
            self.recorder.record(rendition, events)
        return bool(events)

    # -- ladder and presentation -------------------------------------------------------------

    async def _configure(self, record: bytes, nal_length_size: int) -> None:
        audio_only = self.presentation is not None and self.ladder is None
        if self.presentation is not None:
            # New video: the publisher changed resolution or codec, or video came after an
            # audio-only start. A new presentation from here on (players reload the master).
            if audio_only:
                log.info("stream %s: video after an audio-only start: a new presentation "
                         "with video from the next keyframe", self.stream_id)
            await self._close_presentation()
        self._audio_waiting.clear()
        self.ladder = None
        ladder = self.hub.new_ladder(self.frame_rate)
        try:
            await trio.to_thread.run_sync(ladder.configure, record, limiter=self.hub.limiter)
        except TranscodeError as exc:
            self._refuse(f"cannot decode the video: {exc}")
            return
        if ladder.source_problem is not None or audio_only:
            # Work admission could not foresee (it assumed a 720p30 source the browsers
            # decode, or released an audio-only stream's share): it must still fit.
            admission = self.hub.admission.revise(self.stream_id, ladder.cost)
            if not admission:
                why = admission.reason
                if ladder.source_problem is not None:
                    why = f"the source must be transcoded ({ladder.source_problem}): {why}"
                self._refuse(why)
                return
        if ladder.source_problem is not None:
            log.warning("stream %s: source is %s: %s; transcoding the source rung "
                        "(ladder cost %.2f)", self.stream_id,
                        H264Config.from_extradata(record).description, ladder.source_problem,
                        ladder.cost)
        self.avc_record, self.nal_length_size = record, nal_length_size
        self.ladder = ladder
        # Admitted on an assumed 720p30 source; now the real size and rate are known.
        self.hub.admission.update(self.stream_id, ladder.cost)

    async def _restart_ladder(self, exc: TranscodeError) -> None:
        self.hub.stats.transcoder_restarts += 1
        log.error("stream %s: transcoder failed (%s); restarting from the next keyframe",
                  self.stream_id, exc)
        # The same rungs, the shed ones still shed (their renditions keep their stand-ins).
        shed = self.ladder.shed_rungs if self.ladder is not None else []
        ladder = self.hub.new_ladder(self.frame_rate, shed=shed)
        await trio.to_thread.run_sync(ladder.configure, self.avc_record,
                                      limiter=self.hub.limiter)
        self.ladder = ladder
        self.hub.admission.update(self.stream_id, ladder.cost)

    def _open_presentation(self) -> None:
        ladder = self.ladder
        assert ladder is not None
        config = self.hub.packager
        presentation = Presentation(config)
        audio = self.audio_track
        for name in ladder.rungs:
            spec = RUNGS.get(name)
            video_bps = (spec.video_bitrate_kbps * 1000 if spec and spec.video_bitrate_kbps
                         else 6_000_000)
            self.renditions[name] = presentation.add_rendition(
                name, video=VideoTrack.from_extradata(ladder.rung_extradata(name)),
                audio=audio, bandwidth_bps=video_bps + (AUDIO_BITRATE_BPS if audio else 0),
                frame_rate=self.frame_rate,
            )
        # Players start on the first variant: an encoded rung, whose extra IDRs
        # (media.independent_s) let them join near the live edge, not the source's GOP start.
        presentation.start_with = tuple(n for n in ladder.rungs if n in ladder.encoded)
        self._publish_presentation(presentation)
        log.info("stream %s: packaging %s", self.stream_id, ", ".join(self.renditions))

    def _open_audio_only(self, waited_ms: int) -> None:
        """No video: one audio rendition (CODECS mp4a only); nothing to transcode."""
        audio = self.audio_track
        assert audio is not None
        why = ("onMetaData declares no video" if self.video_declared is False else
               f"no video sequence header in the first {waited_ms / 1000:.1f} s of audio")
        presentation = Presentation(self.hub.packager)
        self.renditions[AUDIO_RENDITION] = presentation.add_rendition(
            AUDIO_RENDITION, audio=audio, bandwidth_bps=AUDIO_BITRATE_BPS)
        self.hub.admission.update(self.stream_id, 0.0)
        self._publish_presentation(presentation)
        log.info("stream %s: %s: packaging audio only (%s)", self.stream_id, why,
                 audio.config.codec)

    def _publish_presentation(self, presentation: Presentation) -> None:
        self.presentation = presentation
        self.recorder = Recorder(self.hub.recordings_root, self.stream_id)
        self.hub.nursery.start_soon(self.recorder.run)
        self.hub.registry.publish(self.stream_id, presentation)

    async def _close_presentation(self) -> None:
        ladder = self.ladder
        if ladder is not None and ladder.configured:
            try:
                frames = await trio.to_thread.run_sync(ladder.flush, limiter=self.hub.limiter)
            except TranscodeError:
                frames = []
            for frame in frames:
                rendition = self.renditions.get(frame.rung)
                if rendition is not None:
                    self._record(rendition, rendition.push_video(Sample(
                        frame.data, dts=frame.dts_90k, pts=frame.pts_90k,
                        keyframe=frame.keyframe, wallclock_s=frame.wallclock_s,
                        independent=frame.independent)))
        for rendition in self.renditions.values():
            self._record(rendition, rendition.end())
        if self.presentation is not None:
            self.hub.registry.end(self.stream_id)
        if self.recorder is not None:
            self.recorder.end()
            with trio.move_on_after(RECORDING_DRAIN_S):  # queued segments, then playlists
                await self.recorder.finished.wait()
        self.presentation, self.recorder, self.renditions = None, None, {}
        self._tracks = {}

    async def finish(self) -> None:
        await self._close_presentation()
        self.hub.admission.release(self.stream_id)
        await self.hub.streams.mark_ended(self.stream_id)
        log.info("stream %s ended", self.stream_id)
        self.finished.set()
