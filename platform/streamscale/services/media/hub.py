"""The media node: a `StreamPipeline` per publishing stream, admission control, overload.

The ingest opens a publish with `hub.publish(stream_id)` and sends tags into it. When
the publisher goes away the pipeline waits `reconnect_grace_s`: a publisher that comes
back continues the same stream (its timestamps are shifted to follow on); otherwise the
stream ends (ENDLIST, recording finalised, status "ended").
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import trio

from ...protocols.hls import PART_SLACK_S, PackagerConfig, Presentation
from ..origin.registry import MediaRegistry
from ..streaming import StreamService
from .health import StreamHealth
from .ingest import PublishRefused, Tag
from .pipeline import StreamPipeline
from .transcode import AdmissionControl, Ladder, RungSpec
from .transcode_overload import OverloadPolicy

FEED_QUEUE_TAGS = 256  # ~4 s of 30 fps video plus audio; past it the publisher waits
ENDED_LINGER_S = 60.0  # an ended stream's playlists stay served this long, then are freed


@dataclass
class MediaStats:
    publishes: int = 0
    refused: int = 0
    transcoder_restarts: int = 0
    dropped_rungs: int = 0
    restored_rungs: int = 0
    flv_errors: int = 0


@dataclass
class _Feed:
    send_channel: trio.MemorySendChannel[Tag]
    pipeline: StreamPipeline

    async def send(self, tag: Tag) -> None:
        """Raises PublishRefused once the pipeline has refused the media (the ingest then
        sends the publisher an error status and closes the connection)."""
        if self.pipeline.refusal is not None:
            raise PublishRefused(self.pipeline.refusal)
        await self.send_channel.send(tag)




class MediaHub:
    """Every publishing stream's pipeline on this node, with admission control."""

    def __init__(
        self, *, nursery: trio.Nursery, streams: StreamService, registry: MediaRegistry,
        rungs: list[RungSpec], packager: PackagerConfig, recordings_root: Path,
        capacity: float, reconnect_grace_s: float, overload: OverloadPolicy | None = None,
        independent_s: float = 0.0,
    ) -> None:
        self.nursery = nursery
        self.streams = streams
        self.registry = registry
        self.rungs = rungs
        self.packager = packager
        self.recordings_root = recordings_root
        self.admission = AdmissionControl(capacity)
        self.reconnect_grace_s = reconnect_grace_s
        self.overload = overload or OverloadPolicy()
        self.independent_s = independent_s
        self.limiter = trio.CapacityLimiter(max(2, int(capacity * 2)))
        self.stats = MediaStats()
        self._pipelines: dict[str, StreamPipeline] = {}

    def new_ladder(self, frame_rate: float, *, shed: Sequence[str] = ()) -> Ladder:
        """A ladder for this node's rungs and policies, for a source at `frame_rate`."""
        return Ladder(self.rungs, frame_rate=frame_rate, overload=self.overload, shed=shed,
                      independent_every=self.independent_every(frame_rate))

    def independent_every(self, frame_rate: float) -> int:
        """Frames between extra IDRs in encoded rungs: `independent_s` rounded to whole
        LL-HLS parts (as the packager cuts them at this frame rate), so each extra IDR
        starts a part, which is then INDEPENDENT=YES; 0 when off."""
        if self.independent_s <= 0:
            return 0
        frame_s = 1 / frame_rate
        per_part = max(1, math.floor((self.packager.part_target_s + PART_SLACK_S) / frame_s
                                     + 1e-9))
        parts = max(1, round(self.independent_s / (per_part * frame_s)))
        return per_part * parts

    def pipeline(self, stream_id: str) -> StreamPipeline | None:
        return self._pipelines.get(stream_id)

    async def shed(self, stream_id: str) -> str | None:
        """Shed a live stream's costliest rung now, as overload would (for operators and
        drills); the rung's name, or None if nothing is left to shed."""
        return await self._force(stream_id, "shed")

    async def restore(self, stream_id: str) -> str | None:
        """Restore a live stream's most recently shed rung; its name, or None."""
        return await self._force(stream_id, "restore")

    async def _force(self, stream_id: str, action: str) -> str | None:
        pipeline = self._pipelines.get(stream_id)
        if pipeline is None or not pipeline.publishing or pipeline.ladder is None:
            return None
        send, receive = trio.open_memory_channel[str | None](1)
        pipeline._forced.append((action, send))  # done after the next pushed frame
        async with receive:
            return await receive.receive()

    def health(self) -> list[StreamHealth]:
        """A health snapshot of every publishing stream (restarts their windows)."""
        now = time.time()
        return [p.meter.snapshot(sid, now_s=now, ladder=p.ladder)
                for sid, p in self._pipelines.items() if p.publishing]

    @property
    def live(self) -> list[str]:
        return [sid for sid, p in self._pipelines.items() if p.publishing]

    @asynccontextmanager
    async def publish(self, stream_id: str) -> AsyncIterator[_Feed]:
        pipeline = self._pipelines.get(stream_id)
        if pipeline is not None and pipeline.publishing:
            self.stats.refused += 1
            raise PublishRefused("the stream already has a publisher")
        if pipeline is None:
            admission = self.admission.admit(stream_id, self.rungs)
            if not admission:
                self.stats.refused += 1
                raise PublishRefused(admission.reason)
            pipeline = self._pipelines[stream_id] = StreamPipeline(stream_id, self)
        elif pipeline._grace is not None:
            pipeline._grace.cancel()  # the publisher came back within the grace period
        pipeline.publishing = True
        self.stats.publishes += 1
        send, receive = trio.open_memory_channel[Tag](FEED_QUEUE_TAGS)
        done = trio.Event()

        async def consume() -> None:
            try:
                await pipeline.consume(receive)
            finally:
                done.set()

        self.nursery.start_soon(consume)
        try:
            async with send:
                yield _Feed(send, pipeline)
        finally:
            with trio.CancelScope(shield=True):
                await done.wait()  # the pipeline has taken every tag sent
            pipeline.publishing = False
            self.nursery.start_soon(self._end_after_grace, pipeline)

    async def _end_after_grace(self, pipeline: StreamPipeline) -> None:
        with trio.CancelScope() as scope:
            pipeline._grace = scope
            await trio.sleep(self.reconnect_grace_s)
        pipeline._grace = None
        if scope.cancelled_caught or pipeline.publishing:
            return
        if self._pipelines.get(pipeline.stream_id) is not pipeline:
            return  # already ended (shutdown)
        del self._pipelines[pipeline.stream_id]
        with trio.CancelScope(shield=True):
            presentation = pipeline.presentation
            await pipeline.finish()
        self.nursery.start_soon(self._forget_later, pipeline.stream_id, presentation)

    async def _forget_later(self, stream_id: str, presentation: Presentation | None) -> None:
        """Free an ended stream's media once late viewers have seen its ENDLIST."""
        await trio.sleep(ENDED_LINGER_S)
        if presentation is not None and self.registry.lookup(stream_id) is presentation:
            self.registry.remove(stream_id)

    async def close(self) -> None:
        """Shutdown: end every stream now (no grace)."""
        for pipeline in list(self._pipelines.values()):
            if pipeline._grace is not None:
                pipeline._grace.cancel()
            self._pipelines.pop(pipeline.stream_id, None)
            with trio.CancelScope(shield=True):
                await pipeline.finish()
