"""The media node's health reporter: snapshots every `health_sample_s`, sent in batches.

Off the hot path: the pipelines only bump counters (`health.HealthMeter`); this task takes
`MediaHub.health()` on its own schedule and, every `health_flush_s`, enqueues one bus item
per stream on `HEALTH_QUEUE` (keyed by stream id, so one analytics worker gets a stream's
batches in order). Like the edges' access records, a batch the bus cannot take is counted
and dropped, never retried into a backlog: health figures are estimates, media comes first.
At most `MAX_PENDING_PER_STREAM` snapshots wait per stream between flushes.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import trio

from ...backends.bus import Bus
from .health import HEALTH_QUEUE, StreamHealth, encode_batch

log = logging.getLogger(__name__)

MAX_PENDING_PER_STREAM = 120
SEND_TIMEOUT_S = 5.0

Sender = Callable[[str, bytes], Awaitable[None]]  # (key, payload): bus.enqueue, bound


@dataclass
class ReporterStats:
    snapshots: int = 0
    batches_sent: int = 0
    batches_dropped: int = 0


class HealthReporter:
    def __init__(self, sample: Callable[[], list[StreamHealth]], send: Sender, *,
                 sample_s: float, flush_s: float) -> None:
        self._sample = sample
        self._send = send
        self.sample_s = sample_s
        self.flush_s = max(flush_s, sample_s)
        self._pending: dict[str, list[StreamHealth]] = {}
        self.latest: dict[str, StreamHealth] = {}  # each stream's newest snapshot
        self.stats = ReporterStats()
        self.flushed = trio.Event()  # replaced at each flush (tests wait for one)

    def take_sample(self) -> None:
        for snap in self._sample():
            queue = self._pending.setdefault(snap.stream_id, [])
            if len(queue) >= MAX_PENDING_PER_STREAM:
                del queue[0]
            queue.append(snap)
            self.latest[snap.stream_id] = snap
            self.stats.snapshots += 1

    async def flush(self) -> None:
        """Send each stream's pending snapshots; all of it within `flush_s` (a full queue
        with no analytics consuming it must not hold the next samples back)."""
        pending, self._pending = self._pending, {}
        left = len(pending)
        with trio.move_on_after(self.flush_s):
            for stream_id, snaps in pending.items():
                try:
                    with trio.fail_after(SEND_TIMEOUT_S):
                        await self._send(stream_id, encode_batch(snaps))
                    self.stats.batches_sent += 1
                except Exception as exc:  # the bus is down or slow: drop, never block media
                    self._dropped(1, exc)
                left -= 1
        if left:
            self._dropped(left, TimeoutError("flush took longer than health_flush_s"))
        self.flushed.set()
        self.flushed = trio.Event()

    def _dropped(self, batches: int, exc: BaseException) -> None:
        before = self.stats.batches_dropped
        self.stats.batches_dropped += batches
        if before == 0 or before // 100 != self.stats.batches_dropped // 100:
            log.warning("media: %d health batches dropped (%r)", self.stats.batches_dropped,
                        exc)

    async def run(self, *, shutdown: trio.Event) -> None:
        """Sample and flush until `shutdown`, then flush what is left once."""
        next_flush = trio.current_time() + self.flush_s
        while not shutdown.is_set():
            with trio.move_on_after(self.sample_s):
                await shutdown.wait()
            if shutdown.is_set():
                break
            self.take_sample()
            if trio.current_time() >= next_flush:
                await self.flush()
                next_flush = max(next_flush + self.flush_s, trio.current_time())
        await self.flush()


def bus_sender(bus: Bus) -> Sender:
    """Enqueue on HEALTH_QUEUE, keyed by stream id."""

    async def send(key: str, payload: bytes) -> None:
        await bus.enqueue(HEALTH_QUEUE, key, payload)

    return send
