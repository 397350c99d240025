"""Redis work-queue consumers: shard leases, ordered reads, recovery of a dead owner's items.

Ownership: shard s of a queue is owned by whoever holds the key `...:{s}:lease` (SET NX
PX lease_s). Each consumer ticks every lease_s/3 in one script: it heartbeats in the
queue's worker set, renews its leases, releases the ones it was asked to give up and
takes free shards up to its fair share, ceil(shards / live workers). A consumer over its
share stops reading the extra shards and releases each once everything it took from it
is acked, so a shard moves only when its old owner is done with it. A consumer that dies
stops renewing: its leases expire after lease_s and the others take its shards.

Recovery: on taking a shard, the new owner first claims every pending entry of the
shard's group (XPENDING + XCLAIM, oldest first, `deliveries` = times delivered + 1),
then reads new entries (XREADGROUP >), so per-shard order survives the handover. Each
tick also claims entries left pending by any other consumer on the shards it owns (a
stale owner's last read), so nothing stays stuck.

Fencing: ack is a script that XACKs (and XDELs) only while the lease is still ours, and
an owner stops reading a shard when its last successful renewal is about to run out. A
process paused for longer than lease_s can still overlap briefly with the next owner:
delivery is at-least-once and processing idempotent (chat deduplicates by message id).
"""

from __future__ import annotations

import logging
import math
import uuid
import zlib
from collections import Counter, deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any

import redis
import trio

from ._interface import BusClosed, BusError, WorkItem

if TYPE_CHECKING:
    from ._redis import RedisBus

logger = logging.getLogger(__name__)
GROUP = "workers"
RECOVER_BATCH = 100

ENQUEUE_LUA = """
if redis.call('XLEN', KEYS[1]) >= tonumber(ARGV[1]) then return false end
return redis.call('XADD', KEYS[1], '*', 'k', ARGV[2], 'p', ARGV[3])
"""

# KEYS: worker set, then the lease key of every shard. ARGV: me, lease ms, first shard to
# try, shards to release (space-separated). Returns {live workers, fair share, owned...}.
TICK_LUA = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local me, lease = ARGV[1], tonumber(ARGV[2])
redis.call('ZADD', KEYS[1], now + lease, me)
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
redis.call('PEXPIRE', KEYS[1], lease * 3)
local workers = redis.call('ZCARD', KEYS[1])
local shards = #KEYS - 1
local share = math.ceil(shards / workers)
local release = {}
for s in string.gmatch(ARGV[4], '%d+') do release[tonumber(s)] = true end
local out = {workers, share}
for i = 0, shards - 1 do
  if redis.call('GET', KEYS[i + 2]) == me then
    if release[i] then redis.call('DEL', KEYS[i + 2])
    else redis.call('PEXPIRE', KEYS[i + 2], lease); out[#out + 1] = i end
  end
end
local start = tonumber(ARGV[3])
for j = 0, shards - 1 do
  if #out - 2 >= share then break end
  local i = (start + j) % shards
  if redis.call('SET', KEYS[i + 2], me, 'NX', 'PX', lease) then out[#out + 1] = i end
end
return out
"""

# KEYS: lease, stream. ARGV: group, me, ids... Returns how many were acked, -1: not ours.
ACK_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[2] then return -1 end
local n = redis.call('XACK', KEYS[2], ARGV[1], unpack(ARGV, 3))
redis.call('XDEL', KEYS[2], unpack(ARGV, 3))
return n
"""

RELEASE_LUA = "if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('DEL', KEYS[1]) end"


def stream_key(prefix: str, queue: str, shard: int) -> str:
    return f"{prefix}:q:{queue}:{shard}"


def meta_key(prefix: str, queue: str) -> str:
    return f"{prefix}:q:{queue}:shards"


class RedisConsumer:
    """`Consumer` on Redis. Its driver task owns the lease state; `ack` reports to it."""

    def __init__(self, bus: RedisBus, queue: str, worker_id: str) -> None:
        self._bus = bus
        self._queue = queue
        self._worker_id = worker_id
        self._me = f"{worker_id}:{uuid.uuid4().hex[:12]}"  # unique even if ids repeat
        shards = bus.shards
        self._streams = [stream_key(bus.prefix, queue, s) for s in range(shards)]
        self._leases = [f"{k}:lease" for k in self._streams]
        self._workers_key = f"{bus.prefix}:q:{queue}:workers"
        self._start = zlib.crc32(worker_id.encode()) % shards
        self._tick_script = bus.client.register_script(TICK_LUA)
        self._ack_script = bus.client.register_script(ACK_LUA)
        self._reader: Any = redis.Redis(
            connection_pool=bus.blocking_pool(), single_connection_client=True
        )
        self._read_limiter = trio.CapacityLimiter(1)
        # Driver state: which shards we own and what we took from them.
        self._owned: frozenset[int] = frozenset()
        self._draining: set[int] = set()  # over our share: no new reads, release when done
        self._recovering: dict[int, str] = {}  # shard -> XPENDING start id
        self._inflight: Counter[int] = Counter()  # sent to the app, not yet acked
        self._backlog: deque[WorkItem] = deque()  # read from Redis, not yet sent
        self._valid_until = -math.inf  # when our leases may have run out (trio clock)
        self._items_send, self._items = trio.open_memory_channel[WorkItem](RECOVER_BATCH)
        self._acked_send, self._acked = trio.open_memory_channel[list[WorkItem]](math.inf)

    @classmethod
    @asynccontextmanager
    async def run(cls, bus: RedisBus, queue: str, worker_id: str) -> AsyncIterator[RedisConsumer]:
        consumer = cls(bus, queue, worker_id)
        try:
            async with trio.open_nursery() as nursery:
                nursery.start_soon(consumer._drive)
                try:
                    yield consumer
                finally:
                    nursery.cancel_scope.cancel()
        finally:
            consumer._items_send.close()
            with trio.CancelScope(shield=True), trio.move_on_after(5):
                await consumer._leave()

    @property
    def worker_id(self) -> str:
        return self._worker_id

    @property
    def shards(self) -> frozenset[int]:
        return self._owned

    async def receive(self) -> WorkItem:
        try:
            return await self._items.receive()
        except trio.EndOfChannel:
            raise BusClosed("consumer has left the queue") from None

    async def receive_batch(self, max_items: int) -> list[WorkItem]:
        if max_items < 1:
            raise ValueError("max_items must be at least 1")
        batch = [await self.receive()]
        while len(batch) < max_items:
            try:
                batch.append(self._items.receive_nowait())
            except (trio.WouldBlock, trio.EndOfChannel):
                break
        return batch

    def __aiter__(self) -> AsyncIterator[WorkItem]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[WorkItem]:
        while True:
            try:
                item = await self.receive()
            except BusClosed:
                return
            yield item

    async def ack(self, *items: WorkItem) -> None:
        by_shard: dict[int, list[WorkItem]] = {}
        for item in items:
            if item.queue != self._queue:
                raise ValueError(f"item from queue {item.queue!r} acked on {self._queue!r}")
            by_shard.setdefault(item.shard, []).append(item)

        def work() -> list[int]:
            pipe = self._bus.client.pipeline(transaction=False)
            for shard, group in by_shard.items():
                ids = [i.id for i in group]
                keys = [self._leases[shard], self._streams[shard]]
                self._ack_script(keys=keys, args=[GROUP, self._me, *ids], client=pipe)
            return [int(n) for n in pipe.execute()]

        try:
            results = await self._bus.call(work)
        finally:
            self._acked_send.send_nowait(list(items))
        for shard, n in zip(by_shard, results, strict=True):
            if n < 0:
                logger.warning("lost shard %d of %s: its new owner redelivers", shard, self._queue)

    # the driver ---------------------------------------------------------------------------
    async def _drive(self) -> None:
        renew_s = self._bus.lease_s / 3
        next_tick = trio.current_time()
        while True:
            if trio.current_time() >= next_tick:
                await self._tick()
                next_tick = trio.current_time() + renew_s
            self._note_acks()
            if self._backlog:
                with trio.move_on_at(next_tick):
                    while self._backlog:
                        await self._items_send.send(self._backlog[0])
                        self._inflight[self._backlog.popleft().shard] += 1
            elif self._recovering:
                await self._recover(*next(iter(self._recovering.items())))
            else:
                readable = sorted(self._owned - self._draining)
                until = min(next_tick, self._valid_until)
                if readable and until > trio.current_time():
                    self._backlog.extend(await self._read(readable, until))
                else:
                    await trio.sleep_until(next_tick)

    async def _tick(self) -> None:
        """Heartbeat, renew, release what we were asked to, take our share; then decide."""
        started = trio.current_time()
        release = [s for s in self._draining if not self._busy(s)]
        keys = [self._workers_key, *self._leases]
        args: list[str | int] = [
            self._me,
            int(self._bus.lease_s * 1000),
            self._start,
            " ".join(map(str, release)),
        ]

        def work() -> tuple[list[int], list[Any]]:
            out = [int(x) for x in self._tick_script(keys=keys, args=args)]
            owned = out[2:]
            pipe = self._bus.client.pipeline(transaction=False)
            for shard in owned:
                pipe.xpending(self._streams[shard], GROUP)
            return out, pipe.execute()

        try:
            out, pending = await self._bus.call(work)
        except BusError as exc:
            logger.warning("lease renewal for %s failed: %s", self._queue, exc)
            if trio.current_time() >= self._valid_until:
                self._set_owned(frozenset())
            return
        self._valid_until = started + self._bus.lease_s * 0.8  # margin for clock drift
        share, owned = out[1], out[2:]
        self._set_owned(frozenset(owned))
        for shard, summary in zip(owned, pending, strict=True):
            others = [c for c in summary.get("consumers") or () if c["name"].decode() != self._me]
            if shard not in self._recovering and others:
                self._recovering[shard] = "-"  # a stale owner left items behind
        excess = len(self._owned) - share
        keep = sorted(
            self._owned - self._draining, key=lambda s: (s - self._start) % len(self._leases)
        )
        while excess > len(self._draining) and keep:
            self._draining.add(keep.pop())

    def _set_owned(self, owned: frozenset[int]) -> None:
        for shard in owned - self._owned:
            self._recovering[shard] = "-"  # new to us: the previous owner's items first
        lost = self._owned - owned
        if lost:
            self._backlog = deque(i for i in self._backlog if i.shard not in lost)
            for shard in lost:
                self._recovering.pop(shard, None)
                self._inflight.pop(shard, None)
        self._draining &= owned
        self._owned = owned

    def _busy(self, shard: int) -> bool:
        return self._inflight[shard] > 0 or any(i.shard == shard for i in self._backlog)

    def _note_acks(self) -> None:
        while True:
            try:
                items = self._acked.receive_nowait()
            except trio.WouldBlock:
                return
            for item in items:
                if self._inflight[item.shard] > 0:
                    self._inflight[item.shard] -= 1

    async def _recover(self, shard: int, start: str) -> None:
        stream = self._streams[shard]
        client: Any = self._bus.client

        def work() -> tuple[list[WorkItem], str | None]:
            pending = client.xpending_range(stream, GROUP, min=start, max="+", count=RECOVER_BATCH)
            counts = {p["message_id"]: int(p["times_delivered"]) for p in pending}
            ids = list(counts)
            claimed = client.xclaim(stream, GROUP, self._me, 0, ids) if ids else []
            items = [
                self._item(shard, eid, fields, counts[eid] + 1)
                for eid, fields in claimed
                if fields  # None: deleted meanwhile (Redis < 7 still lists it)
            ]
            done = len(pending) < RECOVER_BATCH
            return items, None if done else "(" + ids[-1].decode()

        items, next_start = await self._bus.call(work)
        if shard not in self._owned:
            return  # lost while we were claiming: the next owner claims them again
        self._backlog.extend(items)
        if next_start is None:
            self._recovering.pop(shard, None)
        else:
            self._recovering[shard] = next_start

    async def _read(self, shards: list[int], until: float) -> list[WorkItem]:
        """XREADGROUP on our own connection. Not abandoned on cancel: a read the server
        completes after we released the shard would leave items pending behind its next
        owner's recovery, so exit waits for at most one short block instead."""
        block_ms = max(1, int(min(self._bus.block_s, until - trio.current_time()) * 1000))
        streams = {self._streams[s]: ">" for s in shards}
        index = {self._streams[s].encode(): s for s in shards}

        def work() -> list[WorkItem]:
            reply = self._reader.xreadgroup(
                GROUP, self._me, streams, count=RECOVER_BATCH, block=block_ms
            )
            return [
                self._item(index[name], eid, fields, 1)
                for name, entries in reply or ()
                for eid, fields in entries
            ]

        return await self._bus.call(work, limiter=self._read_limiter)

    def _item(self, shard: int, eid: bytes, fields: dict[bytes, bytes], n: int) -> WorkItem:
        return WorkItem(
            queue=self._queue,
            shard=shard,
            key=fields[b"k"].decode(),
            payload=fields[b"p"],
            id=eid.decode(),
            deliveries=n,
        )

    async def _leave(self) -> None:
        """Give our shards back at once (un-acked items stay pending for the next owner)."""
        try:
            if not self._bus.closed:
                await self._release()
        except BusError as exc:
            logger.warning("could not release %s leases (they expire): %s", self._queue, exc)
        finally:
            await trio.to_thread.run_sync(self._close_reader)

    def _close_reader(self) -> None:
        self._reader.close()
        self._reader.connection_pool.disconnect()

    async def _release(self) -> None:
        owned = sorted(self._owned)

        def work() -> None:
            pipe = self._bus.client.pipeline(transaction=False)
            pipe.zrem(self._workers_key, self._me)
            for shard in owned:
                pipe.eval(RELEASE_LUA, 1, self._leases[shard], self._me)
            pipe.execute()

        await self._bus.call(work)
