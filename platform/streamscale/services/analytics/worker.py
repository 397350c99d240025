"""The analytics worker: consumes `RECORDS_QUEUE` into `ViewerCounts`, samples it every
`cdn.viewer_sample_s`, and writes the samples to the store.

Two tasks, each owning its state. The counting task owns the `ViewerCounts`: it takes
batches from the bus (acked once applied), and at each tick hands the snapshots to the
writer over a channel, so a slow or failing store never stops the counting. The writer
owns the pending writes: per stream the latest counts (`set_viewer_count`) and the sample
rows (`add_viewer_samples`, idempotent), kept and retried every `retry_s` while the store
fails, a bounded number per stream. A stream the store refuses (ended, or not a stream)
goes back to the counting task, which forgets it and ignores its later batches.

A stream's counts are written only by the worker that owns its shard: at each tick the
counting task drops the streams of shards the bus has moved elsewhere.
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections import OrderedDict, deque
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

import trio

from ...backends.bus import Bus, BusClosed, BusError, Consumer, WorkItem, shard_for
from ...backends.storage import Store, ViewerSample
from ..cdn.records import RECORDS_QUEUE, UsageBatch
from .counts import Snapshot, ViewerCounts

log = logging.getLogger(__name__)

_BATCH_ITEMS = 256
_PENDING_SAMPLES_PER_STREAM = 720  # an hour at the default 5 s while the store is down
_IGNORED_MAX = 10_000  # ended or unknown streams whose late batches are skipped
_TICKS_QUEUED = 64


@dataclass
class WorkerStats:
    batches: int = 0  # applied
    bad_batches: int = 0  # failed to decode: logged, acked, skipped
    ignored_batches: int = 0  # for streams that ended or do not exist
    ticks: int = 0
    dropped_ticks: int = 0  # the writer was too far behind to take a tick's snapshots
    samples_written: int = 0
    samples_dropped: int = 0  # pending past the per-stream bound while the store failed
    store_failures: int = 0
    bus_failures: int = 0


class AnalyticsWorker:
    def __init__(self, store: Store, bus: Bus, *, worker_id: str, idle_s: float,
                 sample_s: float, retry_s: float | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        self.worker_id = worker_id
        self.counts = ViewerCounts(idle_s=idle_s, clock=clock)
        self.stats = WorkerStats()
        self._store = store
        self._bus = bus
        self._sample_s = sample_s
        self._retry_s = sample_s if retry_s is None else retry_s
        self._ignored: OrderedDict[str, None] = OrderedDict()
        self._ticks_send, self._ticks = trio.open_memory_channel[list[Snapshot]](_TICKS_QUEUED)
        self._closed_send, self._closed = trio.open_memory_channel[str](_IGNORED_MAX)
        self._pending: dict[str, deque[Snapshot]] = {}
        self.ticked = trio.Event()  # replaced at each tick: tests wait for the next one
        self.wrote = trio.Event()  # replaced at each flush that wrote something

    async def run(self, *, shutdown: trio.Event | None = None, flush_s: float = 2.0,
                  task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Count until `shutdown` (or cancelled), then give the writer `flush_s` to finish."""
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._write_loop)
            with trio.CancelScope() as counting:
                if shutdown is not None:
                    nursery.start_soon(_cancel_on, shutdown, counting)
                try:
                    async with self._bus.consume(RECORDS_QUEUE, self.worker_id) as consumer:
                        task_status.started()
                        await self._count_loop(consumer)
                except BusClosed:
                    log.info("analytics %s: bus closed", self.worker_id)
            await self._ticks_send.aclose()  # the writer flushes what it holds, then ends
            nursery.cancel_scope.deadline = trio.current_time() + flush_s

    # counting task ---------------------------------------------------------------------
    async def _count_loop(self, consumer: Consumer) -> None:
        next_tick = trio.current_time() + self._sample_s
        while True:
            if trio.current_time() >= next_tick:
                self._tick(consumer)
                next_tick = max(next_tick + self._sample_s, trio.current_time())
            items: list[WorkItem] = []
            with trio.move_on_at(next_tick):
                try:
                    items = await consumer.receive_batch(_BATCH_ITEMS)
                except BusClosed:
                    raise
                except BusError as exc:
                    self.stats.bus_failures += 1
                    log.warning("analytics %s: cannot read records (%r)", self.worker_id, exc)
                    await trio.sleep_forever()  # until the tick: counts keep being written
            if not items:
                continue
            for item in items:
                self._apply(item)
            try:
                await consumer.ack(*items)
            except BusClosed:
                raise
            except BusError as exc:  # redelivered later: bytes may count twice, not viewers
                self.stats.bus_failures += 1
                log.warning("analytics %s: ack failed (%r)", self.worker_id, exc)

    def _apply(self, item: WorkItem) -> None:
        try:
            batch = UsageBatch.decode(item.payload)
        except ValueError as exc:
            self.stats.bad_batches += 1
            if self.stats.bad_batches == 1 or self.stats.bad_batches % 100 == 0:
                log.warning("analytics: %d usage batches failed to decode (latest %s: %s)",
                            self.stats.bad_batches, item.id, exc)
            return
        if batch.stream_id in self._ignored:
            self.stats.ignored_batches += 1
            return
        self.counts.apply(batch)
        self.stats.batches += 1

    def _tick(self, consumer: Consumer) -> None:
        while True:
            try:
                stream_id = self._closed.receive_nowait()
            except trio.WouldBlock:
                break
            self.counts.forget(stream_id)
            self._ignored[stream_id] = None
            if len(self._ignored) > _IGNORED_MAX:
                self._ignored.popitem(last=False)
        owned = consumer.shards
        for stream_id in self.counts.streams():
            if shard_for(stream_id, self._bus.shards) not in owned:
                self.counts.forget(stream_id)  # its new owner counts it from now on
        snapshots = self.counts.sample()
        self.stats.ticks += 1
        if snapshots:
            try:
                self._ticks_send.send_nowait(snapshots)
            except trio.WouldBlock:
                self.stats.dropped_ticks += 1
                log.warning("analytics: the store writer is behind; a sample tick dropped")
        self.ticked.set()
        self.ticked = trio.Event()

    # writing task -----------------------------------------------------------------------
    async def _write_loop(self) -> None:
        open_ = True  # until the counting task closes the channel
        while True:
            if open_ and not self._pending:
                try:
                    self._merge(await self._ticks.receive())
                except trio.EndOfChannel:
                    open_ = False
            if open_:
                open_ = self._merge_ready()
            if not self._pending:
                if open_:
                    continue
                return
            try:
                await self._flush()
            except Exception as exc:
                self.stats.store_failures += 1
                log.warning("analytics: storing viewer counts failed, retrying in %.1f s "
                            "(%r)", self._retry_s, exc)
                if not open_:
                    return  # shutting down: what is left goes with the process
                with trio.move_on_after(self._retry_s):
                    async for snapshots in self._ticks:
                        self._merge(snapshots)
                    open_ = False

    def _merge_ready(self) -> bool:
        """Take every tick already queued; False once the counting task has finished."""
        while True:
            try:
                self._merge(self._ticks.receive_nowait())
            except trio.WouldBlock:
                return True
            except trio.EndOfChannel:
                return False

    def _merge(self, snapshots: list[Snapshot]) -> None:
        for snap in snapshots:
            queue = self._pending.get(snap.stream_id)
            if queue is None:
                queue = self._pending[snap.stream_id] = deque()
            if len(queue) >= _PENDING_SAMPLES_PER_STREAM:
                queue.popleft()
                self.stats.samples_dropped += 1
            queue.append(snap)

    async def _flush(self) -> None:
        """Write every pending stream; what is not written stays pending (retried)."""
        kept: list[str] = []
        for stream_id in list(self._pending):
            latest = self._pending[stream_id][-1]
            if await self._store.set_viewer_count(
                stream_id, latest.concurrent, unique_viewers=latest.unique_viewers,
                by_rendition=latest.by_rendition,
            ):
                kept.append(stream_id)
                continue
            del self._pending[stream_id]  # ended or unknown: nothing more to store for it
            with contextlib.suppress(trio.WouldBlock):  # else refused again next tick
                self._closed_send.send_nowait(stream_id)
        rows = [_row(s) for stream_id in kept for s in self._pending[stream_id]]
        if rows:
            await self._store.add_viewer_samples(rows)  # idempotent: safe to retry
        for stream_id in kept:
            del self._pending[stream_id]
        self.stats.samples_written += len(rows)
        self.wrote.set()
        self.wrote = trio.Event()


def _row(s: Snapshot) -> ViewerSample:
    return ViewerSample(
        stream_id=s.stream_id, at=datetime.fromtimestamp(s.at_s, UTC), interval_s=s.interval_s,
        concurrent=s.concurrent, unique_viewers=s.unique_viewers, by_rendition=s.by_rendition,
        bytes=s.bytes, watch_s=s.watch_s)


async def _cancel_on(event: trio.Event, scope: trio.CancelScope) -> None:
    await event.wait()
    scope.cancel()
