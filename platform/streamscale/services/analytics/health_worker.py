"""Stores the media nodes' ingest health batches (`HEALTH_QUEUE`) as `ingest_health` rows.

One task: take what the bus has (up to `_BATCH_ITEMS` items), decode, insert (idempotent:
a redelivered batch inserts nothing twice), then ack. While the store fails the same rows
are retried every `retry_s`, unacked, so nothing is lost to a database outage short of the
bus's own bounds (a full shard makes the media node drop its newest batches instead).
A batch that does not decode is logged, counted and acked: it would never decode.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime

import trio

from ...backends.bus import Bus, BusClosed, BusError, WorkItem
from ...backends.storage import HealthSample, Store
from ..media.health import HEALTH_QUEUE, StreamHealth, decode_batch

log = logging.getLogger(__name__)

_BATCH_ITEMS = 256


@dataclass
class HealthWorkerStats:
    batches: int = 0
    samples_written: int = 0
    bad_batches: int = 0
    store_failures: int = 0
    bus_failures: int = 0


def to_sample(h: StreamHealth) -> HealthSample:
    return HealthSample(
        stream_id=h.stream_id, at=datetime.fromtimestamp(h.at_s, UTC), interval_s=h.interval_s,
        ingest_kbps=h.ingest_kbps, frame_rate_fps=h.frame_rate_fps,
        keyframe_interval_s=h.keyframe_interval_s, frames=h.frames,
        dropped_frames=h.dropped_frames, transcoder_behind_s=h.transcoder_behind_s,
        transcoder_load=h.transcoder_load, shed_rungs=h.shed_rungs)


class HealthWorker:
    def __init__(self, store: Store, bus: Bus, *, worker_id: str, retry_s: float = 2.0) -> None:
        self.worker_id = worker_id
        self.stats = HealthWorkerStats()
        self._store = store
        self._bus = bus
        self._retry_s = retry_s
        self.wrote = trio.Event()  # replaced after each write (tests wait for one)

    async def run(self, *, shutdown: trio.Event | None = None,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Store batches until `shutdown` (or cancelled); what was not acked is redelivered."""
        async with trio.open_nursery() as nursery:
            if shutdown is not None:
                nursery.start_soon(_cancel_on, shutdown, nursery.cancel_scope)
            await self._consume(task_status)
            nursery.cancel_scope.cancel()

    async def _consume(self, task_status: trio.TaskStatus[None]) -> None:
        try:
            async with self._bus.consume(HEALTH_QUEUE, self.worker_id) as consumer:
                task_status.started()
                while True:
                    try:
                        items = await consumer.receive_batch(_BATCH_ITEMS)
                    except BusClosed:
                        raise
                    except BusError as exc:
                        self.stats.bus_failures += 1
                        log.warning("analytics: cannot read health batches (%r)", exc)
                        await trio.sleep(self._retry_s)
                        continue
                    await self._store_all(items)
                    try:
                        await consumer.ack(*items)
                    except BusClosed:
                        raise
                    except BusError as exc:  # redelivered later: the insert is idempotent
                        self.stats.bus_failures += 1
                        log.warning("analytics: health ack failed (%r)", exc)
        except BusClosed:
            log.info("analytics %s: bus closed", self.worker_id)

    async def _store_all(self, items: list[WorkItem]) -> None:
        samples: list[HealthSample] = []
        for item in items:
            try:
                samples.extend(to_sample(h) for h in decode_batch(item.payload))
                self.stats.batches += 1
            except ValueError as exc:
                self.stats.bad_batches += 1
                if self.stats.bad_batches == 1 or self.stats.bad_batches % 100 == 0:
                    log.warning("analytics: %d health batches failed to decode (latest: %s)",
                                self.stats.bad_batches, exc)
        while samples:
            try:
                await self._store.add_health_samples(samples)
                break
            except Exception as exc:
                self.stats.store_failures += 1
                log.warning("analytics: storing ingest health failed, retrying in %.1f s "
                            "(%r)", self._retry_s, exc)
                await trio.sleep(self._retry_s)
        self.stats.samples_written += len(samples)
        self.wrote.set()
        self.wrote = trio.Event()


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
